"""Lists of a directory's users or groups: one page by filter, sort and position.

In the default order (by id) with a directory that offers server-side sorting
and a virtual list view (OpenLDAP's ``sssvlv``, Active Directory), one search:
the directory sorts, counts and returns the page. Otherwise the matches are
walked with the simple paged results control, keeping only each match's sort
key and id, and then the entries of the page are read (never the whole
directory in memory, but time in proportion to the matches).
"""

from __future__ import annotations

import ldap3

from gateway.errors import InvalidValue
from gateway.model.query import AttrRef
from userstores.base import Page, Query

from .directory import Directory
from .entries import BATCH, SUBTREE, Entries
from .filters import FilterTranslator, compare
from .mapping import entry_id, first_value, values_list
from .vlv import SSS_OID, VLV_OID, sort_control, vlv_control, vlv_response

MAX_MATCHES = 1_000_000  # the most entries one list may walk


class Listing:
    def __init__(self, directory: Directory, entries: Entries, users: FilterTranslator):
        self.dir = directory
        self.entries = entries
        self.cfg = entries.cfg
        self.flavor = entries.flavor
        self.map = entries.map
        self._users = users
        self.vlv: bool | None = None  # found out at the first list

    def supports_vlv(self, conn) -> bool:
        conn.search("", "(objectClass=*)", ldap3.BASE, attributes=["supportedControl"])
        found = [e for e in conn.response if e.get("type") == "searchResEntry"]
        controls = {str(c) for c in values_list(found[0]["attributes"].get("supportedControl"))} \
            if found else set()
        return SSS_OID in controls and VLV_OID in controls

    def sort_attribute(self, kind: str, sort: AttrRef | None) -> str | None:
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

    async def search(self, kind: str, query: Query, flt: str) -> Page:
        base, attrs = self.entries.kind(kind)
        classes = self.map.user_classes if kind == "User" else self.map.group_classes
        flt = f"(&(objectClass={classes[0]}){flt})"
        id_attr = self.flavor.id_attribute
        sort_attr = self.sort_attribute(kind, query.sort)
        if self.vlv is None:
            self.vlv = await self.dir.run(self.supports_vlv)
        if self.vlv and query.sort is None and not query.descending:
            return await self.dir.run(self.window, kind, query, base, flt, attrs)

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
                    rec = (self.entries.user_record(conn, e, query.with_relations) if kind == "User"
                           else self.entries.group_record(conn, e, query.with_relations))
                    records[rec.id] = rec
            out = []
            for value, rid in window:
                rec = records.get(rid)
                if rec is not None:  # gone between the two reads
                    rec.position = (value, rid)
                    out.append(rec)
            return Page(out, total if query.with_total else 0)

        return await self.dir.run(run)

    def view(self, base: str, flt: str, attrs, window) -> tuple[list, tuple | None]:
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

    def window(self, conn, kind: str, query: Query, base: str, flt: str, attrs) -> Page:
        """One page in id order, sorted and counted by the directory (server-side sort and
        a virtual list view): one short search whatever the number of matches."""
        if query.after is not None:  # the first entry >= the last one seen, which is skipped
            window = vlv_control(query.limit, value=str(query.after[1]))
        else:
            window = vlv_control(max(query.limit - 1, 0), offset=query.offset + 1)
        entries, found = self.view(base, flt, attrs, window)
        if found is None:  # past the end (virtualListViewError): just the count
            _nothing, found = self.view(base, flt, ["1.1"], vlv_control(0, offset=1))
            entries = []
        total = found[1] if found else len(entries)
        if query.after is None and query.offset >= total:
            entries = []  # past the end the directory answers with the last entries
        out = []
        for e in entries:
            rec = (self.entries.user_record(conn, e, query.with_relations) if kind == "User"
                   else self.entries.group_record(conn, e, query.with_relations))
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
