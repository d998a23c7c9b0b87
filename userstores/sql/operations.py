"""The SQL store's operations as synchronous functions over one ``Connection``.

Each public function here is one store operation: all its statements run in
the caller's transaction (the runner in ``engine.py`` decides where and how:
a thread for SQLite, ``run_sync`` on asyncpg for PostgreSQL). Nothing here
knows about asyncio.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import orjson
from sqlalchemy import and_, bindparam, delete, func, literal, or_, select, text, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DataError, IntegrityError

from gateway.database.cursor import fetch, insert_rows
from gateway.database.engine import schema_lock
from gateway.errors import (
    Conflict,
    GatewayError,
    InvalidValue,
    NotFound,
    StoreUnavailable,
    VersionMismatch,
)
from gateway.model.schema import ResourceType
from gateway.model.times import stamp
from userstores.base import UNCHANGED, Page, Query, Record

from . import indexing
from . import tables as t
from .filters import FilterCompiler

CHUNK = 500

# Statements of the hot paths, built once: SQLAlchemy then reuses their compiled form
# without rebuilding or re-keying them (a few hundred microseconds per request saved).
_m, _g = t.memberships, t.groups
_mg = t.groups.alias("mg")
USER_BY = {"id": select(t.users).where(t.users.c.id == bindparam("v")),
           "name": select(t.users).where(t.users.c.user_name_ci == bindparam("v"))}
GROUP_BY = {"id": select(t.groups).where(t.groups.c.id == bindparam("v")),
            "name": select(t.groups).where(t.groups.c.display_name_ci == bindparam("v"))}
MAX_NESTING = 32  # how deep group-in-group chains are followed


def _groups_of_statement(start):
    """The groups of some members, direct (depth 0) and through nested groups (indirect)."""
    chain = (select(_m.c.member_id.label("member"), _m.c.group_seq.label("group_seq"),
                    literal(0).label("depth"))
             .where(start).cte("chain", recursive=True))
    m2, g2 = t.memberships.alias("m2"), t.groups.alias("g2")
    chain = chain.union(
        select(chain.c.member, m2.c.group_seq, chain.c.depth + 1)
        .select_from(chain.join(g2, g2.c.seq == chain.c.group_seq)
                     .join(m2, m2.c.member_id == g2.c.id))
        .where(chain.c.depth < MAX_NESTING))
    return (select(chain.c.member, _g.c.id, _g.c.display_name, func.min(chain.c.depth))
            .select_from(chain.join(_g, _g.c.seq == chain.c.group_seq))
            .group_by(chain.c.member, _g.c.id, _g.c.display_name, _g.c.display_name_ci)
            .order_by(_g.c.display_name_ci))


GROUPS_OF = _groups_of_statement(_m.c.member_id.in_(bindparam("ids", expanding=True)))
GROUPS_OF_ONE = _groups_of_statement(_m.c.member_id == bindparam("id"))
_MEMBERS = (select(_m.c.group_seq, _m.c.member_id, _m.c.member_type,
                   func.coalesce(t.users.c.user_name, _mg.c.display_name))
            .select_from(_m.outerjoin(t.users, t.users.c.id == _m.c.member_id)
                         .outerjoin(_mg, _mg.c.id == _m.c.member_id)))
MEMBERS_OF = (_MEMBERS.where(_m.c.group_seq.in_(bindparam("seqs", expanding=True)))
              .order_by(_m.c.group_seq, _m.c.member_id))
MEMBERS_OF_ONE = _MEMBERS.where(_m.c.group_seq == bindparam("seq")).order_by(_m.c.member_id)
LOCK = {table.name: select(table.c.seq, table.c.version, table.c.created,
                          name_col.label("name"))
        .where(table.c.id == bindparam("id"))
        for table, name_col in ((t.users, t.users.c.user_name),
                                (t.groups, t.groups.c.display_name))}
INSERT_USER = t.users.insert().returning(t.users.c.seq)
INSERT_GROUP = t.groups.insert().returning(t.groups.c.seq)
_OUTBOX_INSERT = t.outbox.insert()
# one prebuilt INSERT per values table (insert_rows caches its compiled form by the statement)
_VALUE_INSERTS = {table.name: table.insert() for table in (t.user_values, t.group_values)}


def now() -> str:
    return stamp()


def _dumps(data: dict) -> str:
    return orjson.dumps(data).decode()


def record(row, relations: list[dict] | None, kind: str) -> Record:
    rec = Record(id=row.id, data=orjson.loads(row.data), version=row.version,
                 created=row.created, last_modified=row.last_modified)
    if kind == "User":
        rec.groups = relations
    else:
        rec.members = relations
    return rec


# schema ---------------------------------------------------------------------------------
def migrate(conn: Connection, domain: str) -> None:
    schema_lock(conn)
    t.metadata.create_all(conn)
    version = conn.execute(select(t.schema_version.c.version)).scalar()
    if version is None:
        conn.execute(t.schema_version.insert().values(version=t.SCHEMA_VERSION))
    elif version > t.SCHEMA_VERSION:
        raise StoreUnavailable(
            f"store {domain}: database schema version {version} is newer than "
            f"this gateway ({t.SCHEMA_VERSION}); upgrade the gateway")
    # migrations from older versions go here, one step per version


def ping(conn: Connection) -> None:
    conn.execute(text("SELECT 1"))


def counts(conn: Connection) -> tuple[int, int]:
    users = conn.execute(select(func.count()).select_from(t.users)).scalar_one()
    groups = conn.execute(select(func.count()).select_from(t.groups)).scalar_one()
    return users, groups


# shared pieces ------------------------------------------------------------------------------
def _write_values(conn: Connection, table, rows: list[dict]) -> None:
    insert = _VALUE_INSERTS[table.name]
    for i in range(0, len(rows), 5000):
        insert_rows(conn, insert, rows[i:i + 5000])


def _groups_of(conn: Connection, user_ids: list[str]) -> dict[str, list]:
    out: dict[str, list] = {uid: [] for uid in user_ids}
    if not user_ids:
        return out
    rows = (fetch(conn, GROUPS_OF_ONE, {"id": user_ids[0]}) if len(user_ids) == 1
            else conn.execute(GROUPS_OF, {"ids": user_ids}).all())
    for member_id, gid, display, depth in rows:
        out[member_id].append({"value": gid, "display": display,
                               "type": "direct" if depth == 0 else "indirect"})
    return out


def _members_of(conn: Connection, group_seqs: list[int]) -> dict[int, list]:
    out: dict[int, list] = {s: [] for s in group_seqs}
    rows = (conn.execute(MEMBERS_OF_ONE, {"seq": group_seqs[0]}) if len(group_seqs) == 1
            else conn.execute(MEMBERS_OF, {"seqs": group_seqs}))
    for seq, mid, mtype, display in rows.all():
        item = {"value": mid, "type": mtype}
        if display is not None:
            item["display"] = display
        out[seq].append(item)
    return out


def _lock_row(conn: Connection, table, entity_id: str, expected_version: int | None,
              kind: str):
    row = conn.execute(LOCK[table.name], {"id": entity_id}).first()
    if row is None:
        raise NotFound(f"{kind} {entity_id} not found")
    if expected_version is not None and row.version != expected_version:
        raise VersionMismatch(f"{kind} {entity_id} has changed (version {row.version})")
    return row


def _bump(conn: Connection, table, row, values: dict, kind: str, entity_id: str) -> str:
    ts = now()
    res = conn.execute(
        update(table)
        .where(table.c.seq == row.seq, table.c.version == row.version)
        .values(version=row.version + 1, last_modified=ts, **values)
    )
    if res.rowcount != 1:
        raise VersionMismatch(f"{kind} {entity_id} was changed concurrently")
    return ts


def emit(conn: Connection, events: list[tuple[str, str, str, str | None]]) -> None:
    """Record changes in the outbox, in the changing transaction (kind, id, action, name)."""
    if events and not conn.info.get("outbox_off"):
        ts = now()
        insert_rows(conn, _OUTBOX_INSERT, [
            {"kind": k, "entity_id": i, "action": a, "name": n, "created": ts}
            for k, i, a, n in events])


def _touch_groups_of(conn: Connection, member_id: str) -> None:
    """A member is going away: its groups change version, its memberships go."""
    m = t.memberships
    emit(conn, [("Group", gid, "upsert", name) for gid, name in conn.execute(
        select(t.groups.c.id, t.groups.c.display_name).where(
            t.groups.c.seq.in_(select(m.c.group_seq).where(m.c.member_id == member_id))))])
    conn.execute(
        update(t.groups)
        .where(t.groups.c.seq.in_(select(m.c.group_seq).where(m.c.member_id == member_id)))
        .values(version=t.groups.c.version + 1, last_modified=now())
    )
    conn.execute(delete(m).where(m.c.member_id == member_id))


def _check_unique(conn: Connection, rtype: ResourceType, table, seq: int, data: dict,
                  pending: list[dict] = ()) -> None:
    """Attributes of an extension declared unique (uniqueness server/global) must be.

    Checked inside the writing transaction; on SQLite writers are serialised, on
    PostgreSQL two concurrent writers of the same value can both pass (userName and
    displayName are enforced by unique indexes instead)."""
    for row in indexing.rows(rtype, seq, data, unique_only=True):
        clash = conn.execute(
            select(table.c.entity).where(table.c.attr == row["attr"], table.c.sub == row["sub"],
                                         table.c.value == row["value"],
                                         table.c.entity != seq).limit(1)).first()
        if clash is None:  # rows of the same batch not written yet
            clash = next((p for p in pending if p["entity"] != seq and p["attr"] == row["attr"]
                          and p["sub"] == row["sub"] and p["value"] == row["value"]), None)
        if clash is not None:
            name = row["attr"].rpartition(":")[2]
            raise Conflict(f"Another resource already has this '{name}'")


# users ------------------------------------------------------------------------------------
def create_user(conn: Connection, rtype: ResourceType, data: dict,
                password_hash: str | None, groups: list[str] = (), domain: str = "") -> Record:
    """A new user, and a member of ``groups`` (ids) in the same transaction."""
    uid, ts = str(uuid.uuid4()), now()
    name = data["userName"]
    try:
        (seq,) = insert_rows(conn, INSERT_USER, [{
            "id": uid, "user_name": name, "user_name_ci": name.lower(),
            "external_id": data.get("externalId"), "password_hash": password_hash,
            "data": _dumps(data), "version": 1, "created": ts, "last_modified": ts,
        }], returning=True)
    except IntegrityError as exc:
        raise Conflict(f"User '{name}' already exists") from exc
    _write_values(conn, t.user_values, indexing.rows(rtype, seq, data))
    _check_unique(conn, rtype, t.user_values, seq, data)
    emit(conn, [("User", uid, "upsert", name)])
    for group_id in groups:
        _join(conn, group_id, uid, domain)
    return Record(uid, data, 1, ts, ts,
                  groups=_groups_of(conn, [uid])[uid] if groups else [])


def _join(conn: Connection, group_id: str, member_id: str, domain: str) -> None:
    """``member_id`` (a user) joins the group ``group_id``: its version moves, both are
    recorded in the outbox; NotFound when there is no such group."""
    change_members(conn, None, group_id, None, [{"value": member_id, "type": "User"}], [],
                   False, None, domain, with_members=False)


def _insert_users(conn: Connection, rtype: ResourceType,
                  items: list[tuple[dict, str | None]]) -> list[Record]:
    """Many new users in multi-row statements; Conflict if any name is taken."""
    if not items:
        return []
    ts = now()
    rows = [{
        "id": str(uuid.uuid4()), "user_name": data["userName"],
        "user_name_ci": data["userName"].lower(), "external_id": data.get("externalId"),
        "password_hash": password_hash, "data": _dumps(data), "version": 1,
        "created": ts, "last_modified": ts,
    } for data, password_hash in items]
    try:
        # RETURNING without sort_by_parameter_order: SQLAlchemy can then batch the rows;
        # the generated ids say which seq belongs to which user
        returned = conn.execute(t.users.insert().returning(t.users.c.seq, t.users.c.id),
                                rows).all()
    except IntegrityError as exc:
        raise Conflict("A user of this batch already exists") from exc
    seq_of = {uid: seq for seq, uid in returned}
    values = []
    for row, (data, _) in zip(rows, items, strict=True):
        seq = seq_of[row["id"]]
        values.extend(indexing.rows(rtype, seq, data))
        _check_unique(conn, rtype, t.user_values, seq, data, pending=values)
    _write_values(conn, t.user_values, values)
    emit(conn, [("User", row["id"], "upsert", row["user_name"]) for row in rows])
    return [Record(row["id"], data, 1, ts, ts, groups=[])
            for row, (data, _) in zip(rows, items, strict=True)]


def bulk_insert_users(conn: Connection, rtype: ResourceType,
                      items: list[tuple[dict, str | None]]) -> int:
    return len(_insert_users(conn, rtype, items))


def create_users(conn: Connection, rtype: ResourceType,
                 items: list[tuple[dict, str | None]]) -> list[Record | GatewayError]:
    """Create several users, each succeeding or failing on its own (SCIM /Bulk).

    All at once in multi-row statements inside a savepoint; when one of them is
    refused, the savepoint is undone and each is created in a savepoint of its own,
    so that the others still are."""
    try:
        with conn.begin_nested():
            return list(_insert_users(conn, rtype, items))
    except (GatewayError, IntegrityError, DataError):
        pass
    out: list[Record | GatewayError] = []
    for data, password_hash in items:
        try:
            with conn.begin_nested():
                out.append(create_user(conn, rtype, data, password_hash))
        except GatewayError as exc:
            out.append(exc)
        except IntegrityError:
            out.append(Conflict(f"User '{data['userName']}' already exists"))
        except DataError as exc:
            detail = str(exc.orig).splitlines()[0][:200] if exc.orig else "invalid data"
            out.append(InvalidValue(f"A value cannot be stored: {detail}"))
    return out


def get_user(conn: Connection, by: str, value: str, with_groups: bool
             ) -> tuple[Record, str | None] | None:
    """The user by ``id`` or by (lower-cased) ``name``, and its password hash."""
    found = fetch(conn, USER_BY[by], {"v": value})
    row = found[0] if found else None
    if row is None:
        return None
    groups = _groups_of(conn, [row.id])[row.id] if with_groups else None
    return record(row, groups, "User"), row.password_hash


def get_users(conn: Connection, user_ids: list[str]) -> dict[str, Record]:
    """Users by id, with their groups (missing ones are left out)."""
    out: dict[str, Record] = {}
    for i in range(0, len(user_ids), CHUNK):
        chunk = user_ids[i:i + CHUNK]
        rows = conn.execute(select(t.users).where(t.users.c.id.in_(chunk))).all()
        groups = _groups_of(conn, [r.id for r in rows])
        out.update((r.id, record(r, groups[r.id], "User")) for r in rows)
    return out


def replace_user(conn: Connection, rtype: ResourceType, user_id: str, data: dict,
                 expected_version: int | None, password_hash) -> Record:
    name = data["userName"]
    values = {"user_name": name, "user_name_ci": name.lower(),
              "external_id": data.get("externalId"), "data": _dumps(data)}
    if password_hash is not UNCHANGED:
        values["password_hash"] = password_hash
    row = _lock_row(conn, t.users, user_id, expected_version, "User")
    try:
        ts = _bump(conn, t.users, row, values, "User", user_id)
    except IntegrityError as exc:
        raise Conflict(f"User '{name}' already exists") from exc
    conn.execute(delete(t.user_values).where(t.user_values.c.entity == row.seq))
    _write_values(conn, t.user_values, indexing.rows(rtype, row.seq, data))
    _check_unique(conn, rtype, t.user_values, row.seq, data)
    emit(conn, [("User", user_id, "upsert", name)])
    groups = _groups_of(conn, [user_id])[user_id]
    return Record(user_id, data, row.version + 1, row.created, ts, groups=groups)


def set_password_hash(conn: Connection, user_id: str, password_hash: str) -> None:
    row = _lock_row(conn, t.users, user_id, None, "User")
    _bump(conn, t.users, row, {"password_hash": password_hash}, "User", user_id)
    emit(conn, [("User", user_id, "upsert", row.name)])


def delete_user(conn: Connection, user_id: str, expected_version: int | None) -> None:
    row = _lock_row(conn, t.users, user_id, expected_version, "User")
    _touch_groups_of(conn, user_id)
    conn.execute(delete(t.user_values).where(t.user_values.c.entity == row.seq))
    conn.execute(delete(t.users).where(t.users.c.seq == row.seq))
    emit(conn, [("User", user_id, "delete", row.name)])


def search(conn: Connection, query: Query, compiler: FilterCompiler) -> Page:
    kind = compiler.kind
    table = t.users if kind == "User" else t.groups
    where = compiler.compile(query.filter) if query.filter is not None else true()
    total = None
    rows = []
    if query.limit > 0:
        order = []
        key = compiler.sort_key(query.sort) if query.sort is not None else None
        if key is not None:
            # resources without a value come last ascending, first descending
            order.append(key.desc().nulls_first() if query.descending else key.asc().nulls_last())
        order.append(table.c.seq.desc() if query.descending else table.c.seq.asc())
        stmt = select(table)
        if query.keyset:
            stmt = select(table, (key if key is not None else literal(None)).label("_key"))
        page_where = where
        if query.after is not None:
            page_where = and_(where, _after(table.c.seq, key, query.after, query.descending))
        rows = conn.execute(stmt.where(page_where).order_by(*order)
                            .offset(query.offset).limit(query.limit)).all()
        # a page that is not full tells the total without counting (the usual "eq" lookup)
        if query.after is None and len(rows) < query.limit and (rows or query.offset == 0):
            total = query.offset + len(rows)
    if query.with_total and total is None:
        total = conn.execute(select(func.count()).select_from(table).where(where)).scalar_one()
    relations = None
    if query.with_relations and rows:
        if kind == "User":
            relations = _groups_of(conn, [r.id for r in rows])
        else:
            by_seq = _members_of(conn, [r.seq for r in rows])
            relations = {r.id: by_seq[r.seq] for r in rows}
    records = [record(r, relations[r.id] if relations else None, kind) for r in rows]
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


# groups ------------------------------------------------------------------------------------
def resolve(conn: Connection, ids: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for i in range(0, len(ids), CHUNK):
        chunk = ids[i:i + CHUNK]
        for (uid,) in conn.execute(select(t.users.c.id).where(t.users.c.id.in_(chunk))):
            found[uid] = "User"
        for (gid,) in conn.execute(select(t.groups.c.id).where(t.groups.c.id.in_(chunk))):
            found[gid] = "Group"
    return found


def _check_members(conn: Connection, members: Iterable[dict], group_id: str,
                   domain: str) -> list[dict]:
    """Members as stored: each id must be a user or group of this store."""
    wanted = {m["value"]: m.get("type") for m in members}
    if not wanted:
        return []
    if group_id in wanted:
        raise InvalidValue("A group cannot be a member of itself")
    found = resolve(conn, list(wanted))
    missing = [i for i in wanted if i not in found]
    if missing:
        raise InvalidValue(f"Unknown member id(s) in {domain}: {', '.join(missing[:10])}")
    nested = [i for i in wanted if found[i] == "Group"]
    if nested:
        # a group may not contain a group it is itself (indirectly) a member of
        ancestors = {g["value"] for g in _groups_of(conn, [group_id])[group_id]}
        circular = [i for i in nested if i in ancestors]
        if circular:
            raise InvalidValue(f"Group {circular[0]} contains this group (directly or through "
                               "other groups): adding it would make a cycle")
    for mid, given in wanted.items():
        if given is not None and given != found[mid]:
            raise InvalidValue(f"Member {mid} is a {found[mid]}, not a {given}")
    return [{"member_id": mid, "member_type": found[mid]} for mid in wanted]


def _add_members(conn: Connection, seq: int, rows: list[dict]) -> None:
    if rows:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(dialect.insert(t.memberships).on_conflict_do_nothing(),
                     [{"group_seq": seq, **r} for r in rows])


def _membership_changes(conn: Connection, seq: int, add_rows: list[dict], remove: list[str],
                        remove_all: bool) -> set[str]:
    """The members whose membership adding/removing these changes (only they are read)."""
    m = t.memberships
    wanted = {r["member_id"] for r in add_rows}
    if remove_all:  # a replacement: compare the sets
        current = {mid for (mid,) in conn.execute(
            select(m.c.member_id).where(m.c.group_seq == seq))}
        return current ^ wanted
    ids, present = list(wanted | set(remove)), set()
    for i in range(0, len(ids), CHUNK):
        present.update(mid for (mid,) in conn.execute(
            select(m.c.member_id).where(m.c.group_seq == seq,
                                        m.c.member_id.in_(ids[i:i + CHUNK]))))
    return (wanted - present) | (set(remove) & present)


def create_group(conn: Connection, rtype: ResourceType, data: dict, members: list[dict],
                 domain: str) -> Record:
    gid, ts = str(uuid.uuid4()), now()
    name = data["displayName"]
    rows = _check_members(conn, members, gid, domain)
    try:
        seq = conn.execute(INSERT_GROUP, {
            "id": gid, "display_name": name, "display_name_ci": name.lower(),
            "external_id": data.get("externalId"), "data": _dumps(data), "version": 1,
            "created": ts, "last_modified": ts,
        }).scalar_one()
    except IntegrityError as exc:
        raise Conflict(f"Group '{name}' already exists") from exc
    _write_values(conn, t.group_values, indexing.rows(rtype, seq, data))
    _check_unique(conn, rtype, t.group_values, seq, data)
    _add_members(conn, seq, rows)
    emit(conn, [("Group", gid, "upsert", name)]
         + [(r["member_type"], r["member_id"], "upsert", None) for r in rows])
    return Record(gid, data, 1, ts, ts, members=_members_of(conn, [seq])[seq])


def get_group(conn: Connection, by: str, value: str, with_members: bool) -> Record | None:
    row = conn.execute(GROUP_BY[by], {"v": value}).first()
    if row is None:
        return None
    members = _members_of(conn, [row.seq])[row.seq] if with_members else None
    return record(row, members, "Group")


def get_groups(conn: Connection, group_ids: list[str]) -> dict[str, Record]:
    """Groups by id, with their members (missing ones are left out)."""
    out: dict[str, Record] = {}
    for i in range(0, len(group_ids), CHUNK):
        chunk = group_ids[i:i + CHUNK]
        rows = conn.execute(select(t.groups).where(t.groups.c.id.in_(chunk))).all()
        members = _members_of(conn, [r.seq for r in rows]) if rows else {}
        out.update((r.id, record(r, members[r.seq], "Group")) for r in rows)
    return out


def change_members(conn: Connection, rtype: ResourceType, group_id: str,
                   expected_version: int | None, add,
                   remove, remove_all: bool, data: dict | None, domain: str,
                   with_members: bool = True) -> Record:
    m = t.memberships
    row = _lock_row(conn, t.groups, group_id, expected_version, "Group")
    rows = _check_members(conn, add, group_id, domain)
    moved = _membership_changes(conn, row.seq, rows, list(remove), remove_all)
    if data is not None or moved:
        values = {}
        if data is not None:
            name = data["displayName"]
            values = {"display_name": name, "display_name_ci": name.lower(),
                      "external_id": data.get("externalId"), "data": _dumps(data)}
        try:
            _bump(conn, t.groups, row, values, "Group", group_id)
        except IntegrityError as exc:
            raise Conflict(f"Group '{data['displayName']}' already exists") from exc
        if data is not None:
            conn.execute(delete(t.group_values).where(t.group_values.c.entity == row.seq))
            _write_values(conn, t.group_values, indexing.rows(rtype, row.seq, data))
            _check_unique(conn, rtype, t.group_values, row.seq, data)
        if remove_all:
            conn.execute(delete(m).where(m.c.group_seq == row.seq))
        elif remove:
            ids = list(remove)
            for i in range(0, len(ids), CHUNK):
                conn.execute(delete(m).where(m.c.group_seq == row.seq,
                                             m.c.member_id.in_(ids[i:i + CHUNK])))
        _add_members(conn, row.seq, rows)
        kinds = dict(resolve(conn, list(moved))) if moved else {}
        emit(conn, [("Group", group_id, "upsert",
                     data["displayName"] if data is not None else row.name)]
             + [(kinds.get(mid, "User"), mid, "upsert", None) for mid in sorted(moved)])
    # no change: nothing written, the version stays
    full = conn.execute(select(t.groups).where(t.groups.c.seq == row.seq)).one()
    return record(full, _members_of(conn, [row.seq])[row.seq] if with_members else None,
                  "Group")


def delete_group(conn: Connection, group_id: str, expected_version: int | None) -> None:
    row = _lock_row(conn, t.groups, group_id, expected_version, "Group")
    _touch_groups_of(conn, group_id)
    m = t.memberships
    emit(conn, [("Group", group_id, "delete", row.name)]
         + [(kind, mid, "upsert", None) for mid, kind in conn.execute(
             select(m.c.member_id, m.c.member_type).where(m.c.group_seq == row.seq))])
    conn.execute(delete(t.memberships).where(t.memberships.c.group_seq == row.seq))
    conn.execute(delete(t.group_values).where(t.group_values.c.entity == row.seq))
    conn.execute(delete(t.groups).where(t.groups.c.seq == row.seq))
