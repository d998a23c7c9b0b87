"""The SQL store's search: one page of users or groups by filter, sort and position."""

from __future__ import annotations

from sqlalchemy import and_, bindparam, func, literal, or_, select
from sqlalchemy.engine import Connection

from gateway.database.cursor import fetch
from userstores.base import Page, Query

from . import tables as t
from .filters import FilterCompiler
from .rows import GROUP_BY, USER, USER_BY, groups_of, members_of, record


def _records(conn: Connection, rows: list, kind: str, with_relations: bool) -> list:
    """The records of a page's rows, with their groups (users) or members (groups) when
    asked; a user's groups are walked only when it belongs to some (``in_groups``, where
    the statement reads it)."""
    if not with_relations or not rows:
        return [record(r, None, kind) for r in rows]
    if kind == "User":
        relations = {r.id: [] for r in rows}
        relations.update(groups_of(conn, [r.id for r in rows
                                          if getattr(r, "in_groups", True)]))
    else:
        by_seq = members_of(conn, [r.seq for r in rows])
        relations = {r.id: by_seq[r.seq] for r in rows}
    return [record(r, relations[r.id], kind) for r in rows]


def point(conn: Connection, query: Query, kind: str, by: str, value: str) -> Page:
    """``search`` for a filter that is one ``eq`` on a column with an index of its own
    (``FilterCompiler.point``): prebuilt statements, and the total is the rows found."""
    found = fetch(conn, (USER_BY if kind == "User" else GROUP_BY)[by], {"v": value})
    rows = found[query.offset:query.offset + query.limit] if query.limit > 0 else []
    records = _records(conn, rows, kind, query.with_relations)
    return Page(records, len(found) if query.with_total else len(records))


# every user or group in the default order (a list without filter): prebuilt statements
_PAGE = {(table.name, descending): select(table).order_by(
             table.c.seq.desc() if descending else table.c.seq.asc())
         .limit(bindparam("lim")).offset(bindparam("off"))
         for table in (t.users, t.groups) for descending in (False, True)}
# no WHERE at all: SQLite counts a whole table from its smallest index only then
# (``WHERE 1 = 1`` reads every row: 20 times slower)
_COUNT = {table.name: select(func.count()).select_from(table) for table in (t.users, t.groups)}


def _by_value(table, values):
    return table.c.seq.in_(select(values.c.entity).where(
        values.c.attr == bindparam("a"), values.c.sub == bindparam("s"),
        values.c.value == bindparam("x")))


_USERS_BY_VALUE = _by_value(t.users, t.user_values)
_GROUPS_BY_VALUE = _by_value(t.groups, t.group_values)
_VALUE_PAGE = {
    "User": USER.where(_USERS_BY_VALUE)
    .order_by(t.users.c.seq).limit(bindparam("lim")).offset(bindparam("off")),
    "Group": select(t.groups).where(_GROUPS_BY_VALUE)
    .order_by(t.groups.c.seq).limit(bindparam("lim")).offset(bindparam("off")),
}
_VALUE_COUNT = {
    "User": select(func.count()).select_from(t.users).where(_USERS_BY_VALUE),
    "Group": select(func.count()).select_from(t.groups).where(_GROUPS_BY_VALUE),
}


def by_value(conn: Connection, query: Query, kind: str, attr: str, sub: str, value: str
             ) -> Page:
    """``search`` for a filter that is one ``eq`` on a string of the values table
    (``FilterCompiler.value_point``): prebuilt statements instead of a compiled search."""
    key = {"a": attr, "s": sub, "x": value}
    rows = []
    total = None
    if query.limit > 0:
        rows = fetch(conn, _VALUE_PAGE[kind], {**key, "lim": query.limit, "off": query.offset})
        if len(rows) < query.limit and (rows or query.offset == 0):
            total = query.offset + len(rows)
    if query.with_total and total is None:
        total = fetch(conn, _VALUE_COUNT[kind], key)[0][0]
    records = _records(conn, rows, kind, query.with_relations)
    return Page(records, total if query.with_total else len(records))


def search(conn: Connection, query: Query, compiler: FilterCompiler) -> Page:
    kind = compiler.kind
    table = t.users if kind == "User" else t.groups
    where = compiler.compile(query.filter) if query.filter is not None else None
    total = None
    rows = []
    plain = where is None and query.sort is None and query.after is None and not query.keyset
    if query.limit > 0 and plain:
        rows = fetch(conn, _PAGE[(table.name, query.descending)],
                     {"lim": query.limit, "off": query.offset})
        if len(rows) < query.limit and (rows or query.offset == 0):
            total = query.offset + len(rows)
    elif query.limit > 0:
        order = []
        key = compiler.sort_key(query.sort) if query.sort is not None else None
        if key is not None:
            # resources without a value come last ascending, first descending
            order.append(key.desc().nulls_first() if query.descending else key.asc().nulls_last())
        order.append(table.c.seq.desc() if query.descending else table.c.seq.asc())
        stmt = select(table)
        if query.keyset:
            stmt = select(table, (key if key is not None else literal(None)).label("_key"))
        conditions = [] if where is None else [where]
        if query.after is not None:
            conditions.append(_after(table.c.seq, key, query.after, query.descending))
        if conditions:
            stmt = stmt.where(and_(*conditions))
        rows = conn.execute(stmt.order_by(*order).offset(query.offset).limit(query.limit)).all()
        # a page that is not full tells the total without counting (the usual "eq" lookup)
        if query.after is None and len(rows) < query.limit and (rows or query.offset == 0):
            total = query.offset + len(rows)
    if query.with_total and total is None:
        if where is None:
            total = fetch(conn, _COUNT[table.name], {})[0][0]
        else:
            total = conn.execute(select(func.count()).select_from(table).where(where)
                                 ).scalar_one()
    records = _records(conn, rows, kind, query.with_relations)
    if query.keyset:
        for rec, row in zip(records, rows, strict=True):
            rec.position = (row._key, row.seq)
    return Page(records, total if query.with_total else len(records))


def _after(seq, key, position: tuple, descending: bool):
    """Rows strictly after ``position`` (value, seq) in the order search() uses."""
    value, last = position
    if key is None:
        return seq < last if descending else seq > last
    if descending:  # nulls first, then values descending; ties by seq descending
        if value is None:
            return or_(and_(key.is_(None), seq < last), key.is_not(None))
        return or_(key < value, and_(key == value, seq < last))
    # ascending: values ascending, nulls last; ties by seq ascending
    if value is None:
        return and_(key.is_(None), seq > last)
    return or_(key > value, and_(key == value, seq > last), key.is_(None))
