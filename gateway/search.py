"""Searching users and groups across user stores: filters, sorting, index and cursor paging.

One store runs its part of a search in its own query language; this module
decides which stores a filter can match in (names carry their domain as
clients see them), pages across stores in configuration order, merges sorted
results in the order each store sorts itself, and keeps cursor positions per
store (``pagination.py``).
"""

from __future__ import annotations

from dataclasses import replace

from userstores.base import Query, UserStore
from userstores.registry import Stores

from . import operations as ops
from . import pagination
from .config import Config
from .model.parsing import parse_filter, resolve_sort
from .model.query import And, Compare, Node, Not, Or
from .model.registry import SchemaRegistry
from .model.schema import ResourceType
from .names import PRIMARY, qualify


class Searcher:
    def __init__(self, config: Config, stores: Stores, schemas: SchemaRegistry):
        self.config = config
        self.stores = stores
        self.schemas = schemas

    def _store_filter(self, rtype: ResourceType, node: Node | None, store: UserStore):
        """The filter as one store must run it: True (all), False (none) or a node.

        Names are compared as clients see them, domain included (``SECONDARY/alice``),
        while stores hold bare names: ``userName eq "SECONDARY/alice"`` becomes
        ``userName eq "alice"`` in SECONDARY and matches nothing elsewhere, and an
        unqualified ``userName eq "alice"`` matches only PRIMARY's alice. ``eq``, ``ne``
        and ``sw`` are exact; other operators compare the bare name.
        """
        if node is None:
            return True
        name_attr = "userName" if rtype.name == ops.USER else "displayName"
        primary = store.domain.upper() == PRIMARY
        prefix = "" if primary else qualify(store.domain, "").lower()

        group = rtype.name == ops.GROUP

        def name(n: Compare) -> Node | bool:
            value = n.value
            domain, bare = self.stores.names.parts(value, group)
            if domain is not None:
                if domain.upper() == store.domain.upper():
                    return Compare(n.ref, n.op, bare)
                if n.op in ("eq", "sw"):
                    return False
                return True if n.op == "ne" else n
            if primary:
                return n
            if n.op == "eq":
                return False
            if n.op == "ne":
                return True
            if n.op == "sw":
                return prefix.startswith(value.lower())
            return n

        def rewrite(n: Node) -> Node | bool:
            if isinstance(n, And | Or):
                is_and = isinstance(n, And)
                terms = []
                for term in n.terms:
                    r = rewrite(term)
                    if r is (not is_and):  # False in an and, True in an or: decided
                        return r
                    if r is not is_and:
                        terms.append(r)
                if not terms:
                    return is_and
                return terms[0] if len(terms) == 1 else type(n)(tuple(terms))
            if isinstance(n, Not):
                r = rewrite(n.expr)
                return (not r) if isinstance(r, bool) else Not(r)
            if (isinstance(n, Compare) and n.ref.sub is None and n.ref.schema is rtype.schema
                    and n.ref.attr.name == name_attr and isinstance(n.value, str)):
                return name(n)
            return n

        return rewrite(node)

    @staticmethod
    async def _run(kind: str, store: UserStore, query: Query):
        if kind == ops.USER:
            return await store.search_users(query)
        return await store.search_groups(query)

    async def search(self, op: ops.Search) -> ops.Results:
        rtype = self.schemas.of(op.kind)
        node = parse_filter(rtype, op.filter) if op.filter else None
        sort = resolve_sort(rtype, op.sort_by) if op.sort_by else None
        count = self.config.default_count if op.count is None else op.count
        count = max(0, min(count, self.config.max_results))
        start = max(1, op.start_index)
        stores = [self.stores.get(op.domain)] if op.domain else self.stores.all
        plans = []  # (store, filter) for the stores the filter can match in
        for store in stores:
            f = self._store_filter(rtype, node, store)
            if f is not False:
                plans.append((store, None if f is True else f))
        if op.cursor is not None:
            return await self._cursor_page(op, plans, sort, count, stores)

        def query(f: Node | None, offset: int, limit: int) -> Query:
            return Query(f, sort, op.descending, offset, limit, True, op.with_relations)

        def run(store: UserStore, q: Query):
            return self._run(op.kind, store, q)

        if sort is None or len(plans) == 1:
            # stores one after the other, in configuration order
            entities, total, skip, want = [], 0, start - 1, count
            for store, f in plans:
                page = await run(store, query(f, skip, want))
                total += page.total
                entities += [ops.Entity(op.kind, store.domain, r) for r in page.records]
                want -= len(page.records)
                skip = max(0, skip - page.total)
            return ops.Results(entities, total, start)
        # sorted across stores: each store's first start+count, merged in the order each
        # store sorts itself (the same order cursor paging follows)
        streams, total = [], 0
        for store, f in plans:
            q = replace(query(f, 0, start - 1 + count), keyset=True)
            page = await run(store, q)
            total += page.total
            streams.append(self._stream(rtype, sort, store.domain, page.records))
        merged = pagination.merge(streams, start - 1 + count, op.descending)
        return ops.Results([e for _p, _i, e in merged[start - 1:]], total, start)

    def _stream(self, rtype: ResourceType, sort, domain: str, records) -> list[tuple]:
        """(merge position, store index, entity) of one store's sorted records.

        Names are sorted as clients see them: a non-primary store's names carry their
        domain prefix, which does not change the order within the store."""
        index = [s.domain for s in self.stores.all].index(domain)
        name_attr = "userName" if rtype.name == ops.USER else "displayName"
        prefix = qualify(domain, "").lower()
        prefixed = (prefix and sort is not None and sort.schema is rtype.schema
                    and sort.attr.name == name_attr)
        out = []
        for r in records:
            value, seq = r.position
            if prefixed and value is not None:
                value = prefix + value
            out.append(((value, seq), index, ops.Entity(rtype.name, domain, r)))
        return out

    async def _cursor_page(self, op: ops.Search, plans, sort, count: int, stores
                           ) -> ops.Results:
        """One page of cursor paging (RFC 9865) across the stores the filter can match in."""
        key = pagination.query_key(op.kind, op.filter, op.sort_by, op.descending, op.domain)
        domains = [s.domain for s in stores]
        positions = pagination.decode(op.cursor, key, domains)
        planned = {s.domain: (s, f) for s, f in plans}
        for domain in domains:  # a store the filter cannot match in has nothing to give
            if domain not in planned:
                positions[domain] = "done"

        def fetch(store, f, after, limit):
            return self._run(op.kind, store, Query(
                f, sort, op.descending, 0, limit, True, op.with_relations,
                after=tuple(after) if after else None, keyset=True))

        total, picked = 0, []
        for domain in domains:  # stores finished earlier still count in totalResults
            if positions[domain] == "done" and domain in planned:
                total += (await fetch(*planned[domain], None, 0)).total
        if sort is None:  # stores one after the other, each in creation order
            want = count
            for index, domain in enumerate(domains):
                if positions[domain] == "done":
                    continue
                store, f = planned[domain]
                page = await fetch(store, f, positions[domain], want + 1 if want else 0)
                total += page.total
                if want == 0:
                    continue
                records = page.records[:want]
                picked += [(r.position, index, ops.Entity(op.kind, domain, r)) for r in records]
                if records:
                    positions[domain] = list(records[-1].position)
                if len(page.records) <= want:
                    positions[domain] = "done"
                want -= len(records)
            for domain in domains:  # stores not reached: done if they have nothing at all
                if positions[domain] is None and not (
                        await fetch(*planned[domain], None, 0)).total:
                    positions[domain] = "done"
        else:  # each store's next page, merged in sort order
            streams = []
            for domain in domains:
                if positions[domain] == "done":
                    continue
                store, f = planned[domain]
                page = await fetch(store, f, positions[domain], count + 1 if count else 0)
                total += page.total
                streams.append(self._stream(self.schemas.of(op.kind), sort, domain,
                                            page.records))
            picked = pagination.merge(streams, count, op.descending)
            taken: dict[str, int] = {}
            for _position, _index, entity in picked:
                positions[entity.domain] = list(entity.record.position)
                taken[entity.domain] = taken.get(entity.domain, 0) + 1
            for stream in streams:
                if stream and len(stream) == taken.get(stream[0][2].domain, 0):
                    positions[stream[0][2].domain] = "done"  # all it had is on this page
            for domain in domains:  # a store that gave nothing has nothing more
                if positions[domain] != "done" and not any(
                        s and s[0][2].domain == domain for s in streams):
                    positions[domain] = "done"
        entities = [entity for _p, _i, entity in picked]
        more = count > 0 and any(p != "done" for p in positions.values())
        return ops.Results(entities, total, None,
                           pagination.encode(key, positions) if more else None)
