"""The LDAP user store: OpenLDAP (inetOrgPerson/groupOfNames) or Active Directory.

Users live under ``users_base`` as ``uid=<name>`` (AD: ``cn=<name>``), groups
under ``groups_base`` as ``cn=<name>``; ids are the directory's own stable ids
(entryUUID, AD objectGUID), so they survive restarts, renames and moves of the
gateway. Passwords are the directory's: set with the password-modify
operation (AD: ``unicodePwd``), checked with a bind. The entries and their
records are read and written by ``entries.py``; lists are ``listing.py``'s.

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
from .entries import SUBTREE, Entries, member_dns
from .filters import TRUE, FilterTranslator, compare
from .listing import Listing
from .mapping import EMPTY_MEMBER, FLAVORS, Mapping, first_value, values_list


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
        self.entries = Entries(domain, cfg, self.flavor, self.map)
        self.listing: Listing | None = None
        self.capabilities = Capabilities(read_only=read_only, bulk_load=False,
                                         native_passwords=True)
        self._pool_size = pool_size
        self.dir: Directory | None = None

    # lifecycle ---------------------------------------------------------------------------
    async def open(self) -> None:
        self.dir = Directory(self.domain, self.url, self.cfg, self._pool_size)
        self.listing = Listing(self.dir, self.entries, self._users)

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
            if self.entries.named(conn, "User", name) is not None:
                raise Conflict(f"User '{name}' already exists")
            dn = self.entries.user_dn(name)
            attrs = dict(entry)
            if self.flavor.is_ad:
                attrs["cn"] = [name]
            conn.add(dn, list(self.map.user_classes), attrs)
            joined: list[tuple[str, list[str]]] = []  # (group DN, its members before)
            try:
                if password_hash is not None:
                    self.entries.set_password(conn, dn, password_hash)
                for group_id in groups:
                    group = self.entries.with_id(conn, "Group", group_id)
                    if group is None:
                        raise NotFound(f"Group {group_id} not found")
                    before = member_dns(group["attributes"])
                    self.entries.modify_members(conn, group["dn"], before, [dn], [])
                    joined.append((group["dn"], before))
            except Exception:  # nothing half-done: out of the groups it joined, then gone
                for group_dn, before in joined:
                    with contextlib.suppress(Exception):
                        self.entries.modify_members(conn, group_dn, [*before, dn], [], [dn])
                conn.delete(dn)
                raise
            return self.entries.user_record(conn, self.entries.named(conn, "User", name),
                                     True)

        return await self.dir.run(create, read=False)

    async def get_user(self, user_id: str, *, with_groups: bool = True) -> Record | None:
        def get(conn):
            e = self.entries.with_id(conn, "User", user_id)
            return None if e is None else self.entries.user_record(conn, e, with_groups)

        return await self.dir.run(get)

    async def get_user_by_name(self, user_name: str, *, with_groups: bool = True
                               ) -> Record | None:
        def get(conn):
            e = self.entries.named(conn, "User", user_name)
            return None if e is None else self.entries.user_record(conn, e, with_groups)

        return await self.dir.run(get)

    async def get_password_hash(self, user_name: str) -> tuple[Record, str | None] | None:
        rec = await self.get_user_by_name(user_name)
        return None if rec is None else (rec, None)

    async def check_password(self, user_name: str, password: str) -> Record | None:
        if not password:  # an empty password is an anonymous bind: never a login
            return None

        def find(conn):
            e = self.entries.named(conn, "User", user_name)
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
            e = self.entries.with_id(conn, "User", user_id)
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
                other = self.entries.named(conn, "User", data["userName"])
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
                self.entries.set_password(conn, dn, password_hash)
            return self.entries.user_record(conn, self.entries.with_id(conn, "User", rid),
                                     True)

        return await self.dir.run(replace, read=False)

    async def set_password_hash(self, user_id: str, password_hash: str, *,
                                change: Change = WRITE) -> None:
        self._writable()

        def set_password(conn):
            e = self.entries.with_id(conn, "User", user_id)
            if e is None:
                raise NotFound(f"User {user_id} not found")
            self.entries.set_password(conn, e["dn"], password_hash)

        await self.dir.run(set_password, read=False)

    async def delete_user(self, user_id: str, *, expected_version: int | None,
                          change: Change = WRITE) -> None:
        self._writable()
        await self.dir.run(self._delete, "User", user_id, expected_version, read=False)

    def _delete(self, conn, kind: str, entity_id: str, expected_version: int | None) -> None:
        e = self.entries.with_id(conn, kind, entity_id)
        if e is None:
            raise NotFound(f"{kind} {entity_id} not found")
        self._check_version(f"{kind} {entity_id}", self.map.meta(e["attributes"])[1],
                            expected_version)
        # out of every group first (the directory may keep no referential integrity)
        conn.search(self.cfg.groups_base, compare("member", "eq", e["dn"]), SUBTREE,
                    attributes=["member"])
        for g in [x for x in conn.response if x.get("type") == "searchResEntry"]:
            self.entries.modify_members(conn, g["dn"], member_dns(g["attributes"]), [], [e["dn"]])
        conn.delete(e["dn"])

    # groups --------------------------------------------------------------------------------
    def _group_check(self, data: dict) -> str:
        extra = sorted(k for k in data if k not in ("displayName", "members"))
        if extra and self.map.unmapped == "refuse":
            raise InvalidValue(f"This LDAP user store keeps only the name and members of a "
                               f"group, not: {', '.join(extra)}")
        return data["displayName"]

    async def create_group(self, data: dict, members: list[dict], *,
                           change: Change = WRITE, hybrid: bool = False) -> Record:
        # no foreign_members: the pipeline gives its groups members of this store only
        self._writable()
        name = self._group_check(data)

        def create(conn):
            if self.entries.named(conn, "Group", name) is not None:
                raise Conflict(f"Group '{name}' already exists")
            dns = self.entries.member_targets(conn, None, members)
            attrs = {"cn": [name]}
            values = dns or ([] if self.flavor.is_ad else [EMPTY_MEMBER])
            if values:
                attrs["member"] = values
            conn.add(self.entries.group_dn(name), list(self.map.group_classes), attrs)
            e = self.entries.named(conn, "Group", name)
            return self.entries.group_record(conn, e, True)

        return await self.dir.run(create, read=False)

    async def get_group(self, group_id: str, *, with_members: bool = True) -> Record | None:
        def get(conn):
            e = self.entries.with_id(conn, "Group", group_id)
            return None if e is None else self.entries.group_record(conn, e, with_members)

        return await self.dir.run(get)

    async def get_group_by_name(self, name: str, *, with_members: bool = True) -> Record | None:
        def get(conn):
            e = self.entries.named(conn, "Group", name)
            return None if e is None else self.entries.group_record(conn, e, with_members)

        return await self.dir.run(get)

    async def replace_group(self, group_id: str, data: dict, *, expected_version: int | None,
                            members: list[dict] | None = None,
                            change: Change = WRITE, hybrid: bool = False) -> Record:
        return await self.change_members(group_id, expected_version=expected_version,
                                         data=data, remove_all=members is not None,
                                         add=members or [])

    async def change_members(self, group_id: str, *, expected_version: int | None,
                             add=(), remove=(), remove_all: bool = False,
                             data: dict | None = None, with_members: bool = True,
                             change: Change = WRITE, hybrid: bool = False) -> Record:
        self._writable()
        if data is not None:
            self._group_check(data)

        def change(conn):
            e = self.entries.with_id(conn, "Group", group_id)
            if e is None:
                raise NotFound(f"Group {group_id} not found")
            rid, version, *_ = self.map.meta(e["attributes"])
            self._check_version(f"Group {group_id}", version, expected_version)
            dn = e["dn"]
            if any(m["value"] == rid for m in add):
                raise InvalidValue("A group cannot be a member of itself")
            add_dns = self.entries.member_targets(conn, dn, list(add))
            current = member_dns(e["attributes"])
            remove_dns = current if remove_all else [
                d for d, _k in self.entries.dns_of_ids(conn, list(remove)).values()]
            if data is not None and data["displayName"] != str(first_value(e["attributes"]["cn"])):
                other = self.entries.named(conn, "Group", data["displayName"])
                if other is not None and other["dn"] != dn:
                    raise Conflict(f"Group '{data['displayName']}' already exists")
                new_rdn = f"cn={escape_rdn(data['displayName'])}"
                conn.modify_dn(dn, new_rdn, delete_old_dn=True)
                dn = f"{new_rdn},{self.cfg.groups_base}"
            self.entries.modify_members(conn, dn, current, add_dns, remove_dns)
            return self.entries.group_record(conn, self.entries.with_id(conn, "Group", rid),
                                      with_members)

        return await self.dir.run(change, read=False)

    async def delete_group(self, group_id: str, *, expected_version: int | None,
                           change: Change = WRITE) -> None:
        self._writable()
        await self.dir.run(self._delete, "Group", group_id, expected_version, read=False)

    # searches ---------------------------------------------------------------------------
    async def search_users(self, query: Query) -> Page:
        return await self.listing.search("User", query, self._users.translate(query.filter))

    async def search_groups(self, query: Query) -> Page:
        return await self.listing.search("Group", query, self._groups.translate(query.filter))
