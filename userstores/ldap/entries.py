"""A directory's entries as the LDAP store sees them: DNs, lookups, records, memberships.

Synchronous functions over one ldap3 connection (the store runs them on the
directory's thread pool, ``directory.py``); they know the flavor (OpenLDAP or
Active Directory), the bases and the attribute map, and nothing of asyncio.
"""

from __future__ import annotations

import ldap3
from ldap3.utils.dn import escape_rdn

from gateway.config import LdapConfig
from gateway.errors import InvalidValue
from userstores.base import Record

from .filters import TRUE, compare
from .mapping import EMPTY_MEMBER, Flavor, Mapping, entry_id, first_value, values_list

SUBTREE = ldap3.SUBTREE
BATCH = 100  # DNs or ids resolved per search


class Entries:
    def __init__(self, domain: str, cfg: LdapConfig, flavor: Flavor, mapping: Mapping):
        self.domain = domain
        self.cfg = cfg
        self.flavor = flavor
        self.map = mapping

    def user_dn(self, name: str) -> str:
        return f"{self.flavor.user_rdn}={escape_rdn(name)},{self.cfg.users_base}"

    def group_dn(self, name: str) -> str:
        return f"cn={escape_rdn(name)},{self.cfg.groups_base}"

    def find(self, conn, base: str, flt: str, attributes) -> list[dict]:
        conn.search(base, flt, SUBTREE, attributes=attributes, size_limit=2)
        return [e for e in conn.response if e.get("type") == "searchResEntry"]

    def one(self, conn, kind: str, flt: str):
        base, attrs = self.kind(kind)
        found = self.find(conn, base, flt, attrs)
        return found[0] if found else None

    def named(self, conn, kind: str, name: str):
        """The entry of the user or group of this name, or None."""
        return self.one(conn, kind, self.by_name(kind, name))

    def with_id(self, conn, kind: str, entity_id: str):
        """The entry of the user or group of this id, or None."""
        return self.one(conn, kind, self.by_id(kind, entity_id))

    def kind(self, kind: str) -> tuple[str, list[str]]:
        if kind == "User":
            return self.cfg.users_base, self.map.user_attributes
        return self.cfg.groups_base, self.map.group_attributes

    def by_id(self, kind: str, entity_id: str) -> str:
        return compare(self.flavor.id_attribute, "eq", entity_id)

    def by_name(self, kind: str, name: str) -> str:
        attr = self.flavor.user_name if kind == "User" else "cn"
        classes = self.map.user_classes if kind == "User" else self.map.group_classes
        return f"(&(objectClass={classes[0]}){compare(attr, 'eq', name)})"

    def user_record(self, conn, entry: dict, with_groups: bool) -> Record:
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

    def group_record(self, conn, entry: dict, with_members: bool) -> Record:
        attrs = entry["attributes"]
        rid, version, created, modified = self.map.meta(attrs)
        data = {"displayName": str(first_value(attrs["cn"]))}
        members = self.resolve_dns(conn, member_dns(attrs)) if with_members else None
        return Record(rid, data, version, created, modified, members=members)

    def resolve_dns(self, conn, dns: list[str]) -> list[dict]:
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

    def dns_of_ids(self, conn, ids: list[str]) -> dict[str, tuple[str, str]]:
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

    def set_password(self, conn, dn: str, password: str) -> None:
        if self.flavor.is_ad:
            conn.extend.microsoft.modify_password(dn, str(password))
        else:
            conn.extend.standard.modify_password(dn, new_password=str(password))

    def modify_members(self, conn, dn: str, current: list[str], add: list[str],
                        remove: list[str]) -> None:
        lower = {d.lower() for d in remove}
        new = [d for d in current if d.lower() not in lower]
        have = {d.lower() for d in new}
        new += [d for d in add if d.lower() not in have and not have.add(d.lower())]
        if [d.lower() for d in new] == [d.lower() for d in current]:
            return
        values = new or ([] if self.flavor.is_ad else [EMPTY_MEMBER])
        conn.modify(dn, {"member": [(ldap3.MODIFY_REPLACE, values)]})

    def member_targets(self, conn, group_dn: str | None, members: list[dict]) -> list[str]:
        ids = [m["value"] for m in members]
        found = self.dns_of_ids(conn, ids)
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
                if kind == "Group" and self.reaches(conn, dn, group_dn):
                    raise InvalidValue("A group cannot contain itself (directly or through "
                                       "other groups): adding it would make a cycle")
        return dns

    def reaches(self, conn, start: str, target: str) -> bool:
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
                    todo += [m for m in member_dns(e["attributes"])
                             if m.lower().endswith(self.cfg.groups_base.lower())]
        return False

def member_dns(attrs: dict) -> list[str]:
    return [str(m) for m in values_list(attrs.get("member")) if str(m).lower() != EMPTY_MEMBER]
