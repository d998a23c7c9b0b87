"""The LDAP user store: OpenLDAP (inetOrgPerson/groupOfNames) or Active Directory.

Users live under ``users_base`` as ``uid=<name>`` (AD: ``cn=<name>``), groups
under ``groups_base`` as ``cn=<name>``; ids are the directory's own stable ids
(entryUUID, AD objectGUID), so they survive restarts, renames and moves of the
gateway. Passwords are the directory's: set with the password-modify
operation (AD: ``unicodePwd``), checked with a bind. A list in the default
order (by id) is one search with server-side sorting and a virtual list view
when the directory offers them (OpenLDAP's ``sssvlv``, Active Directory): the
directory sorts, counts and returns the page. Otherwise, and for other sort
orders, the store walks the matches with the simple paged results control,
keeping only each match's sort key and id, then reads the entries of the page
(never the whole directory in memory, but time in proportion to the matches).

The directory has no transactions: a create that fails half-way (the entry was
added, the password was not accepted) removes the entry again; a version
check (If-Match) and the write after it are not atomic.
"""

from __future__ import annotations

import contextlib

import ldap3
from ldap3.utils.dn import escape_rdn

from gateway.config import LdapConfig
from gateway.errors import Conflict, InvalidValue, NotFound, ReadOnlyStore, VersionMismatch
from gateway.model.query import AttrRef
from gateway.model.registry import DEFAULT, SchemaRegistry
from userstores.base import (
    UNCHANGED,
    WRITE,
    Capabilities,
    Change,
    Page,
    Query,
    Record,
    UserStore,
)

from .account_state import lock_changes
from .directory import Directory
from .filters import TRUE, FilterTranslator, compare
from .mapping import EMPTY_MEMBER, FLAVORS, Mapping, entry_id, first_value, values_list
from .vlv import SSS_OID, VLV_OID, sort_control, vlv_control, vlv_response

SUBTREE = ldap3.SUBTREE
MAX_MATCHES = 1_000_000  # the most entries one list may walk
BATCH = 100  # DNs or ids resolved per search


class LDAPUserStore(UserStore):
    # a directory has no outbox and no journal: each write's ``change`` is the pipeline's
    # to honour (it reports the change to the dispatcher and keeps its audit event after
    # the change commits)
    def __init__(self, domain: str, url: str, cfg: LdapConfig, *, read_only: bool = False,
                 pool_size: int = 8, schemas: SchemaRegistry = DEFAULT):
        self.domain = domain
        self.url = url
        self.cfg = cfg
        self.flavor = FLAVORS[cfg.flavor].with_id(cfg.id_attribute)
        self.map = Mapping(self.flavor, schemas.user, schemas.group, cfg.attributes,
                           cfg.unmapped, cfg.user_object_classes, cfg.group_object_classes)
        self._users = FilterTranslator(self.map.users, self.flavor, "User")
        self._groups = FilterTranslator(None, self.flavor, "Group")
        self.capabilities = Capabilities(read_only=read_only, bulk_load=False,
                                         native_passwords=True)
        self._pool_size = pool_size
        self.dir: Directory | None = None

    # lifecycle ---------------------------------------------------------------------------
    async def open(self) -> None:
        self.dir = Directory(self.domain, self.url, self.cfg, self._pool_size)
        self._vlv: bool | None = None  # found out at the first list

    def _supports_vlv(self, conn) -> bool:
        conn.search("", "(objectClass=*)", ldap3.BASE, attributes=["supportedControl"])
        found = [e for e in conn.response if e.get("type") == "searchResEntry"]
        controls = {str(c) for c in values_list(found[0]["attributes"].get("supportedControl"))} \
            if found else set()
        return SSS_OID in controls and VLV_OID in controls

    async def close(self) -> None:
        if self.dir is not None:
            self.dir.close()
            self.dir = None

    async def ping(self) -> None:
        await self.dir.run(lambda c: c.search(self.cfg.users_base, TRUE, ldap3.BASE,
                                              attributes=["1.1"]))

    async def check(self) -> str:
        def count(conn, base):
            n = 0
            for _ in conn.extend.standard.paged_search(base, TRUE, ldap3.LEVEL,
                                                       attributes=["1.1"], paged_size=1000,
                                                       generator=True):
                n += 1
            return n

        users = await self.dir.run(count, self.cfg.users_base)
        groups = await self.dir.run(count, self.cfg.groups_base)
        return f"LDAP ({self.flavor.name}) {self.url}: {users} users, {groups} groups"

    def _writable(self) -> None:
        if self.capabilities.read_only:
            raise ReadOnlyStore(f"The user store {self.domain} is read-only")

    # entries ---------------------------------------------------------------------------
    def _user_dn(self, name: str) -> str:
        return f"{self.flavor.user_rdn}={escape_rdn(name)},{self.cfg.users_base}"

    def _group_dn(self, name: str) -> str:
        return f"cn={escape_rdn(name)},{self.cfg.groups_base}"

    def _find(self, conn, base: str, flt: str, attributes) -> list[dict]:
        conn.search(base, flt, SUBTREE, attributes=attributes, size_limit=2)
        return [e for e in conn.response if e.get("type") == "searchResEntry"]

    def _one(self, conn, kind: str, flt: str):
        base, attrs = self._kind(kind)
        found = self._find(conn, base, flt, attrs)
        return found[0] if found else None

    def _kind(self, kind: str) -> tuple[str, list[str]]:
        if kind == "User":
            return self.cfg.users_base, self.map.user_attributes
        return self.cfg.groups_base, self.map.group_attributes

    def _by_id(self, kind: str, entity_id: str) -> str:
        return compare(self.flavor.id_attribute, "eq", entity_id)

    def _by_name(self, kind: str, name: str) -> str:
        attr = self.flavor.user_name if kind == "User" else "cn"
        classes = self.map.user_classes if kind == "User" else self.map.group_classes
        return f"(&(objectClass={classes[0]}){compare(attr, 'eq', name)})"

    def _user_record(self, conn, entry: dict, with_groups: bool) -> Record:
        attrs = entry["attributes"]
        rid, version, created, modified = self.map.meta(attrs)
        groups = None
        if with_groups:
            conn.search(self.cfg.groups_base, compare("member", "eq", entry["dn"]), SUBTREE,
                        attributes=["cn", self.flavor.id_attribute])
            groups = sorted(
                ({"value": entry_id(first_value(g["attributes"][self.flavor.id_attribute])),
                  "display": str(first_value(g["attributes"]["cn"]))}
                 for g in conn.response if g.get("type") == "searchResEntry"),
                key=lambda g: g["display"].lower())
        return Record(rid, self.map.user_data(attrs), version, created, modified, groups=groups)

    def _group_record(self, conn, entry: dict, with_members: bool) -> Record:
        attrs = entry["attributes"]
        rid, version, created, modified = self.map.meta(attrs)
        data = {"displayName": str(first_value(attrs["cn"]))}
        members = self._resolve_dns(conn, _member_dns(attrs)) if with_members else None
        return Record(rid, data, version, created, modified, members=members)

    def _resolve_dns(self, conn, dns: list[str]) -> list[dict]:
        """[{value, type, display}] of member DNs (DNs no longer there are left out)."""
        out = []
        id_attr, dn_attr = self.flavor.id_attribute, self.flavor.dn_attribute
        for kind, base, name_attr in (("User", self.cfg.users_base, self.flavor.user_name),
                                      ("Group", self.cfg.groups_base, "cn")):
            for i in range(0, len(dns), BATCH):
                batch = dns[i:i + BATCH]
                flt = "(|" + "".join(compare(dn_attr, "eq", dn) for dn in batch) + ")"
                for e in conn.extend.standard.paged_search(
                        base, flt, SUBTREE, attributes=[id_attr, name_attr],
                        paged_size=self.cfg.page_size, generator=True):
                    if e.get("type") != "searchResEntry":
                        continue
                    out.append({"value": entry_id(first_value(e["attributes"][id_attr])),
                                "type": kind,
                                "display": str(first_value(e["attributes"][name_attr]))})
        return sorted(out, key=lambda m: m["display"].lower())

    def _dns_of_ids(self, conn, ids: list[str]) -> dict[str, tuple[str, str]]:
        """id -> (DN, "User"/"Group") for the ids found."""
        out = {}
        id_attr = self.flavor.id_attribute
        for kind, base in (("User", self.cfg.users_base), ("Group", self.cfg.groups_base)):
            for i in range(0, len(ids), BATCH):
                batch = ids[i:i + BATCH]
                flt = "(|" + "".join(compare(id_attr, "eq", x) for x in batch) + ")"
                conn.search(base, flt, SUBTREE, attributes=[id_attr])
                for e in conn.response:
                    if e.get("type") == "searchResEntry":
                        out[entry_id(first_value(e["attributes"][id_attr]))] = (e["dn"], kind)
        return out

    @staticmethod
    def _check_version(entity: str, current: int, expected: int | None) -> None:
        if expected is not None and current != expected:
            raise VersionMismatch(f"{entity} has changed (version {current})")

    # users -------------------------------------------------------------------------------
    async def create_user(self, data: dict, password_hash: str | None, *,
                          groups: list[str] = (), change: Change = WRITE) -> Record:
        self._writable()
        entry = {k: v for k, v in self.map.user_entry(data).items() if v}
        entry.update({k: v for k, v in lock_changes(self.flavor, data, {}).items() if v})
        name = data["userName"]

        def create(conn):
            if self._one(conn, "User", self._by_name("User", name)) is not None:
                raise Conflict(f"User '{name}' already exists")
            dn = self._user_dn(name)
            attrs = dict(entry)
            if self.flavor.is_ad:
                attrs["cn"] = [name]
            conn.add(dn, list(self.map.user_classes), attrs)
            joined: list[tuple[str, list[str]]] = []  # (group DN, its members before)
            try:
                if password_hash is not None:
                    self._set_password(conn, dn, password_hash)
                for group_id in groups:
                    group = self._one(conn, "Group", self._by_id("Group", group_id))
                    if group is None:
                        raise NotFound(f"Group {group_id} not found")
                    before = _member_dns(group["attributes"])
                    self._modify_members(conn, group["dn"], before, [dn], [])
                    joined.append((group["dn"], before))
            except Exception:  # nothing half-done: out of the groups it joined, then gone
                for group_dn, before in joined:
                    with contextlib.suppress(Exception):
                        self._modify_members(conn, group_dn, [*before, dn], [], [dn])
                conn.delete(dn)
                raise
            return self._user_record(conn, self._one(conn, "User", self._by_name("User", name)),
                                     True)

        return await self.dir.run(create, read=False)

    def _set_password(self, conn, dn: str, password: str) -> None:
        if self.flavor.is_ad:
            conn.extend.microsoft.modify_password(dn, str(password))
        else:
            conn.extend.standard.modify_password(dn, new_password=str(password))

    async def get_user(self, user_id: str, *, with_groups: bool = True) -> Record | None:
        def get(conn):
            e = self._one(conn, "User", self._by_id("User", user_id))
            return None if e is None else self._user_record(conn, e, with_groups)

        return await self.dir.run(get)

    async def get_user_by_name(self, user_name: str, *, with_groups: bool = True
                               ) -> Record | None:
        def get(conn):
            e = self._one(conn, "User", self._by_name("User", user_name))
            return None if e is None else self._user_record(conn, e, with_groups)

        return await self.dir.run(get)

    async def get_password_hash(self, user_name: str) -> tuple[Record, str | None] | None:
        rec = await self.get_user_by_name(user_name)
        return None if rec is None else (rec, None)

    async def check_password(self, user_name: str, password: str) -> Record | None:
        if not password:  # an empty password is an anonymous bind: never a login
            return None

        def find(conn):
            e = self._one(conn, "User", self._by_name("User", user_name))
            return None if e is None else e["dn"]

        dn = await self.dir.run(find)
        if dn is None or not await self.dir.bind_as(dn, password):
            return None
        return await self.get_user_by_name(user_name)

    async def replace_user(self, user_id: str, data: dict, *, expected_version: int | None,
                           password_hash=UNCHANGED, change: Change = WRITE) -> Record:
        self._writable()
        self.map.user_entry(data)  # what the map cannot hold is refused before any I/O

        def replace(conn):
            e = self._one(conn, "User", self._by_id("User", user_id))
            if e is None:
                raise NotFound(f"User {user_id} not found")
            entry = self.map.user_entry(data, e["attributes"])
            rid, version, *_ = self.map.meta(e["attributes"])
            self._check_version(f"User {user_id}", version, expected_version)
            # the directory's lock: changed only when asked (an unlock needs the right to)
            lock = lock_changes(self.flavor, data, e["attributes"])
            dn = e["dn"]
            old_name = str(first_value(e["attributes"][self.flavor.user_name]))
            if data["userName"] != old_name:
                other = self._one(conn, "User", self._by_name("User", data["userName"]))
                if other is not None and other["dn"] != dn:
                    raise Conflict(f"User '{data['userName']}' already exists")
                new_rdn = f"{self.flavor.user_rdn}={escape_rdn(data['userName'])}"
                conn.modify_dn(dn, new_rdn, delete_old_dn=True)
                dn = f"{new_rdn},{self.cfg.users_base}"
            changes = {}
            for attr, values in entry.items():
                if attr == self.flavor.user_rdn:
                    continue
                old = [str(v) for v in values_list(e["attributes"].get(attr))]
                if old != values:
                    changes[attr] = [(ldap3.MODIFY_REPLACE, values)]
            if self.flavor.is_ad:
                changes.pop("cn", None)
            changes.update({a: [(ldap3.MODIFY_REPLACE, v)] for a, v in lock.items()})
            if changes:
                conn.modify(dn, changes)
            if password_hash is not UNCHANGED and password_hash is not None:
                self._set_password(conn, dn, password_hash)
            return self._user_record(conn, self._one(conn, "User", self._by_id("User", rid)),
                                     True)

        return await self.dir.run(replace, read=False)

    async def set_password_hash(self, user_id: str, password_hash: str, *,
                                change: Change = WRITE) -> None:
        self._writable()

        def set_password(conn):
            e = self._one(conn, "User", self._by_id("User", user_id))
            if e is None:
                raise NotFound(f"User {user_id} not found")
            self._set_password(conn, e["dn"], password_hash)

        await self.dir.run(set_password, read=False)

    async def delete_user(self, user_id: str, *, expected_version: int | None,
                          change: Change = WRITE) -> None:
        self._writable()
        await self.dir.run(self._delete, "User", user_id, expected_version, read=False)

    def _delete(self, conn, kind: str, entity_id: str, expected_version: int | None) -> None:
        e = self._one(conn, kind, self._by_id(kind, entity_id))
        if e is None:
            raise NotFound(f"{kind} {entity_id} not found")
        self._check_version(f"{kind} {entity_id}", self.map.meta(e["attributes"])[1],
                            expected_version)
        # out of every group first (the directory may keep no referential integrity)
        conn.search(self.cfg.groups_base, compare("member", "eq", e["dn"]), SUBTREE,
                    attributes=["member"])
        for g in [x for x in conn.response if x.get("type") == "searchResEntry"]:
            self._modify_members(conn, g["dn"], _member_dns(g["attributes"]), [], [e["dn"]])
        conn.delete(e["dn"])

    # groups --------------------------------------------------------------------------------
    def _group_check(self, data: dict) -> str:
        extra = sorted(k for k in data if k not in ("displayName", "members"))
        if extra and self.map.unmapped == "refuse":
            raise InvalidValue(f"This LDAP user store keeps only the name and members of a "
                               f"group, not: {', '.join(extra)}")
        return data["displayName"]

    def _modify_members(self, conn, dn: str, current: list[str], add: list[str],
                        remove: list[str]) -> None:
        lower = {d.lower() for d in remove}
        new = [d for d in current if d.lower() not in lower]
        have = {d.lower() for d in new}
        new += [d for d in add if d.lower() not in have and not have.add(d.lower())]
        if [d.lower() for d in new] == [d.lower() for d in current]:
            return
        values = new or ([] if self.flavor.is_ad else [EMPTY_MEMBER])
        conn.modify(dn, {"member": [(ldap3.MODIFY_REPLACE, values)]})

    def _member_targets(self, conn, group_dn: str | None, members: list[dict]) -> list[str]:
        ids = [m["value"] for m in members]
        found = self._dns_of_ids(conn, ids)
        missing = [i for i in ids if i not in found]
        if missing:
            raise InvalidValue(f"Unknown member id(s) in {self.domain}: "
                               f"{', '.join(missing[:10])}")
        for m in members:
            given = m.get("type")
            if given and given != found[m["value"]][1]:
                raise InvalidValue(f"Member {m['value']} is a {found[m['value']][1]}, "
                                   f"not a {given}")
        dns = [found[i][0] for i in ids]
        if group_dn is not None:
            for dn, kind in (found[i] for i in ids):
                if kind == "Group" and self._reaches(conn, dn, group_dn):
                    raise InvalidValue("A group cannot contain itself (directly or through "
                                       "other groups): adding it would make a cycle")
        return dns

    def _reaches(self, conn, start: str, target: str) -> bool:
        """Whether group ``start`` is ``target`` or contains it, through nested groups."""
        seen, todo = set(), [start]
        while todo:
            dn = todo.pop()
            if dn.lower() == target.lower():
                return True
            if dn.lower() in seen or len(seen) > 10_000:
                continue
            seen.add(dn.lower())
            conn.search(dn, TRUE, ldap3.BASE, attributes=["member"])
            for e in conn.response:
                if e.get("type") == "searchResEntry":
                    todo += [m for m in _member_dns(e["attributes"])
                             if m.lower().endswith(self.cfg.groups_base.lower())]
        return False

    async def create_group(self, data: dict, members: list[dict], *,
                           change: Change = WRITE) -> Record:
        self._writable()
        name = self._group_check(data)

        def create(conn):
            if self._one(conn, "Group", self._by_name("Group", name)) is not None:
                raise Conflict(f"Group '{name}' already exists")
            dns = self._member_targets(conn, None, members)
            attrs = {"cn": [name]}
            values = dns or ([] if self.flavor.is_ad else [EMPTY_MEMBER])
            if values:
                attrs["member"] = values
            conn.add(self._group_dn(name), list(self.map.group_classes), attrs)
            e = self._one(conn, "Group", self._by_name("Group", name))
            return self._group_record(conn, e, True)

        return await self.dir.run(create, read=False)

    async def get_group(self, group_id: str, *, with_members: bool = True) -> Record | None:
        def get(conn):
            e = self._one(conn, "Group", self._by_id("Group", group_id))
            return None if e is None else self._group_record(conn, e, with_members)

        return await self.dir.run(get)

    async def get_group_by_name(self, name: str, *, with_members: bool = True) -> Record | None:
        def get(conn):
            e = self._one(conn, "Group", self._by_name("Group", name))
            return None if e is None else self._group_record(conn, e, with_members)

        return await self.dir.run(get)

    async def replace_group(self, group_id: str, data: dict, *, expected_version: int | None,
                            members: list[dict] | None = None,
                            change: Change = WRITE) -> Record:
        return await self.change_members(group_id, expected_version=expected_version,
                                         data=data, remove_all=members is not None,
                                         add=members or [])

    async def change_members(self, group_id: str, *, expected_version: int | None,
                             add=(), remove=(), remove_all: bool = False,
                             data: dict | None = None, with_members: bool = True,
                             change: Change = WRITE) -> Record:
        self._writable()
        if data is not None:
            self._group_check(data)

        def change(conn):
            e = self._one(conn, "Group", self._by_id("Group", group_id))
            if e is None:
                raise NotFound(f"Group {group_id} not found")
            rid, version, *_ = self.map.meta(e["attributes"])
            self._check_version(f"Group {group_id}", version, expected_version)
            dn = e["dn"]
            if any(m["value"] == rid for m in add):
                raise InvalidValue("A group cannot be a member of itself")
            add_dns = self._member_targets(conn, dn, list(add))
            current = _member_dns(e["attributes"])
            remove_dns = current if remove_all else [
                d for d, _k in self._dns_of_ids(conn, list(remove)).values()]
            if data is not None and data["displayName"] != str(first_value(e["attributes"]["cn"])):
                other = self._one(conn, "Group", self._by_name("Group", data["displayName"]))
                if other is not None and other["dn"] != dn:
                    raise Conflict(f"Group '{data['displayName']}' already exists")
                new_rdn = f"cn={escape_rdn(data['displayName'])}"
                conn.modify_dn(dn, new_rdn, delete_old_dn=True)
                dn = f"{new_rdn},{self.cfg.groups_base}"
            self._modify_members(conn, dn, current, add_dns, remove_dns)
            return self._group_record(conn, self._one(conn, "Group", self._by_id("Group", rid)),
                                      with_members)

        return await self.dir.run(change, read=False)

    async def delete_group(self, group_id: str, *, expected_version: int | None,
                           change: Change = WRITE) -> None:
        self._writable()
        await self.dir.run(self._delete, "Group", group_id, expected_version, read=False)

    # searches ---------------------------------------------------------------------------
    async def search_users(self, query: Query) -> Page:
        return await self._search("User", query, self._users.translate(query.filter))

    async def search_groups(self, query: Query) -> Page:
        return await self._search("Group", query, self._groups.translate(query.filter))

    def _sort_attribute(self, kind: str, sort: AttrRef | None) -> str | None:
        if sort is None:
            return None
        if kind == "Group":
            if sort.attr.name == "displayName":
                return "cn"
        elif sort.attr.name == "userName":
            return self.flavor.user_name
        special = self._users._special(sort) if kind == "User" else None
        if special:
            return special
        for target in self._users.targets if kind == "User" else []:
            if target.key == sort.key and target.sub == (sort.sub.name if sort.sub else None):
                return target.ldap
        return None

    async def _search(self, kind: str, query: Query, flt: str) -> Page:
        base, attrs = self._kind(kind)
        classes = self.map.user_classes if kind == "User" else self.map.group_classes
        flt = f"(&(objectClass={classes[0]}){flt})"
        id_attr = self.flavor.id_attribute
        sort_attr = self._sort_attribute(kind, query.sort)
        if self._vlv is None:
            self._vlv = await self.dir.run(self._supports_vlv)
        if self._vlv and query.sort is None and not query.descending:
            return await self.dir.run(self._window, kind, query, base, flt, attrs)

        def run(conn):
            # 1. the key (sort value, id) of every match: small, whatever the entries hold
            keys = []
            wanted = [id_attr] + ([sort_attr] if sort_attr else [])
            for e in conn.extend.standard.paged_search(base, flt, SUBTREE, attributes=wanted,
                                                       paged_size=self.cfg.page_size,
                                                       generator=True):
                if e.get("type") != "searchResEntry":
                    continue
                a = e["attributes"]
                value = first_value(a.get(sort_attr)) if sort_attr else None
                keys.append((None if value in (None, "") else str(value).lower(),
                             entry_id(first_value(a[id_attr]))))
                if len(keys) > MAX_MATCHES:
                    raise InvalidValue(f"More than {MAX_MATCHES} matches: narrow the filter")
            keys.sort(key=lambda k: (k[0] is None, k[0] or "", k[1]),
                      reverse=query.descending)
            if query.descending:  # missing values still last
                keys.sort(key=lambda k: k[0] is None)
            total = len(keys)
            if query.after is not None:
                after = (query.after[0], query.after[1])
                keys = [k for k in keys if _after(k, after, query.descending)]
            window = keys[query.offset:query.offset + query.limit]
            # 2. the entries of the page
            records = {}
            for i in range(0, len(window), BATCH):
                batch = [k[1] for k in window[i:i + BATCH]]
                f = "(|" + "".join(compare(id_attr, "eq", x) for x in batch) + ")"
                conn.search(base, f, SUBTREE, attributes=attrs)
                for e in [x for x in conn.response if x.get("type") == "searchResEntry"]:
                    rec = (self._user_record(conn, e, query.with_relations) if kind == "User"
                           else self._group_record(conn, e, query.with_relations))
                    records[rec.id] = rec
            out = []
            for value, rid in window:
                rec = records.get(rid)
                if rec is not None:  # gone between the two reads
                    rec.position = (value, rid)
                    out.append(rec)
            return Page(out, total if query.with_total else 0)

        return await self.dir.run(run)

    def _view(self, base: str, flt: str, attrs, window) -> tuple[list, tuple | None]:
        """One list-view search, on a connection of its own: the directory keeps one view
        per connection (OpenLDAP refuses a second), and it goes with the connection."""
        view = self.dir.connect()
        try:
            view.search(base, flt, SUBTREE, attributes=attrs,
                        controls=[sort_control(self.flavor.id_attribute), window])
            entries = [e for e in view.response or () if e.get("type") == "searchResEntry"]
            return entries, vlv_response((view.result or {}).get("controls"))
        except KeyError:  # ldap3 does not know result 76 (virtualListViewError)
            return [], None
        finally:
            view.unbind()

    def _window(self, conn, kind: str, query: Query, base: str, flt: str, attrs) -> Page:
        """One page in id order, sorted and counted by the directory (server-side sort and
        a virtual list view): one short search whatever the number of matches."""
        if query.after is not None:  # the first entry >= the last one seen, which is skipped
            window = vlv_control(query.limit, value=str(query.after[1]))
        else:
            window = vlv_control(max(query.limit - 1, 0), offset=query.offset + 1)
        entries, found = self._view(base, flt, attrs, window)
        if found is None:  # past the end (virtualListViewError): just the count
            _nothing, found = self._view(base, flt, ["1.1"], vlv_control(0, offset=1))
            entries = []
        total = found[1] if found else len(entries)
        if query.after is None and query.offset >= total:
            entries = []  # past the end the directory answers with the last entries
        out = []
        for e in entries:
            rec = (self._user_record(conn, e, query.with_relations) if kind == "User"
                   else self._group_record(conn, e, query.with_relations))
            if query.after is not None and rec.id <= str(query.after[1]):
                continue
            rec.position = (None, rec.id)
            out.append(rec)
        return Page(out[:query.limit], total if query.with_total else 0)


def _after(key: tuple, after: tuple, descending: bool) -> bool:
    """Whether ``key`` comes after the keyset position ``after`` in the list's order."""
    if descending:
        return _desc_after(key, after)
    value, rid = key
    a_value, a_rid = after
    return (value is None, value or "", rid) > (a_value is None, a_value or "", a_rid)


def _desc_after(key: tuple, after: tuple) -> bool:
    """Descending order (missing values still last): is ``key`` after ``after``?"""
    value, rid = key
    a_value, a_rid = after
    if (value is None) != (a_value is None):
        return value is None
    if value != a_value:
        return value < a_value
    return rid < a_rid


def _member_dns(attrs: dict) -> list[str]:
    return [str(m) for m in values_list(attrs.get("member")) if str(m).lower() != EMPTY_MEMBER]
