"""What the SQL store's operations share: prebuilt statements, row helpers, the outbox write.

The operations themselves are synchronous functions over one ``Connection``
(``users.py``, ``groups.py``, ``search.py``): all the statements of one run in
the caller's transaction (the runner in ``gateway/database/engine.py`` decides
where and how: a thread for SQLite, ``run_sync`` on asyncpg for PostgreSQL).
Nothing here knows about asyncio.
"""

from __future__ import annotations

import orjson
from sqlalchemy import and_, bindparam, delete, exists, func, literal, select, text, update
from sqlalchemy.engine import Connection

from gateway.database.cursor import change, fetch, fetch_in, insert_rows
from gateway.database.engine import schema_lock
from gateway.errors import Conflict, NotFound, StoreUnavailable, VersionMismatch
from gateway.model.schema import ResourceType
from gateway.model.times import stamp
from userstores.base import Record

from . import indexing
from . import tables as t

CHUNK = 500

# Statements of the hot paths, built once: SQLAlchemy then reuses their compiled form
# without rebuilding or re-keying them (a few hundred microseconds per request saved).
_m, _g = t.memberships, t.groups
_mg = t.groups.alias("mg")
# a user and whether it belongs to any group (when not, its groups need no walk)
USER = select(t.users, exists().where(_m.c.member_id == t.users.c.id).label("in_groups"))
USER_BY = {"id": USER.where(t.users.c.id == bindparam("v")),
           "name": USER.where(t.users.c.user_name_ci == bindparam("v")),
           "external": USER.where(t.users.c.external_id == bindparam("v"))
           .order_by(t.users.c.seq)}
GROUP_BY = {"id": select(t.groups).where(t.groups.c.id == bindparam("v")),
            "name": select(t.groups).where(t.groups.c.display_name_ci == bindparam("v")),
            "external": select(t.groups).where(t.groups.c.external_id == bindparam("v"))
            .order_by(t.groups.c.seq)}
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
# the groups holding users of another store (hybrid roles, and the groups holding those)
FOREIGN_GROUPS_OF = _groups_of_statement(and_(
    _m.c.member_id.in_(bindparam("ids", expanding=True)),
    _m.c.member_domain == bindparam("domain")))
MEMBERS_AMONG = (select(_m.c.member_id).distinct()
                 .where(_m.c.member_id.in_(bindparam("ids", expanding=True))))
# a member of another store has no name here (the pipeline reads it from its own store)
_MEMBERS = (select(_m.c.group_seq, _m.c.member_id, _m.c.member_type,
                   func.coalesce(t.users.c.user_name, _mg.c.display_name), _m.c.member_domain)
            .select_from(_m.outerjoin(t.users, and_(t.users.c.id == _m.c.member_id,
                                                    _m.c.member_domain.is_(None)))
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


def dumps(data: dict) -> str:
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
    elif version < t.SCHEMA_VERSION:  # one step per version
        if version < 2:  # members of other stores (hybrid roles)
            conn.execute(text("ALTER TABLE memberships ADD COLUMN member_domain VARCHAR(64)"))
        conn.execute(update(t.schema_version).values(version=t.SCHEMA_VERSION))


def ping(conn: Connection) -> None:
    conn.execute(text("SELECT 1"))


def counts(conn: Connection) -> tuple[int, int]:
    users = conn.execute(select(func.count()).select_from(t.users)).scalar_one()
    groups = conn.execute(select(func.count()).select_from(t.groups)).scalar_one()
    return users, groups


# shared pieces ------------------------------------------------------------------------------
def write_values(conn: Connection, table, rows: list[dict]) -> None:
    insert = _VALUE_INSERTS[table.name]
    for i in range(0, len(rows), 5000):
        insert_rows(conn, insert, rows[i:i + 5000])


def groups_of(conn: Connection, user_ids: list[str]) -> dict[str, list]:
    out: dict[str, list] = {uid: [] for uid in user_ids}
    if len(user_ids) > 1:  # the walk up nested groups only from members of any group
        user_ids = [uid for (uid,) in fetch_in(conn, MEMBERS_AMONG, "ids", user_ids)]
    if not user_ids:
        return out
    rows = (fetch(conn, GROUPS_OF_ONE, {"id": user_ids[0]}) if len(user_ids) == 1
            else fetch_in(conn, GROUPS_OF, "ids", user_ids))
    for member_id, gid, display, depth in rows:
        out[member_id].append({"value": gid, "display": display,
                               "type": "direct" if depth == 0 else "indirect"})
    return out


def foreign_groups_of(conn: Connection, domain: str, user_ids: list[str]) -> dict[str, list]:
    """The groups here holding users of the store of ``domain`` (direct: the hybrid roles
    they were added to; indirect: the groups holding those)."""
    out: dict[str, list] = {uid: [] for uid in user_ids}
    for i in range(0, len(user_ids), CHUNK):
        for member_id, gid, display, depth in conn.execute(FOREIGN_GROUPS_OF, {
                "ids": user_ids[i:i + CHUNK], "domain": domain.upper()}):
            out[member_id].append({"value": gid, "display": display,
                                   "type": "direct" if depth == 0 else "indirect"})
    return out


def members_of(conn: Connection, group_seqs: list[int]) -> dict[int, list]:
    """Each group's members: ``{"value", "type", "display"}``, and ``"domain"`` (without
    ``"display"``) for a user of another store."""
    out: dict[int, list] = {s: [] for s in group_seqs}
    rows = (conn.execute(MEMBERS_OF_ONE, {"seq": group_seqs[0]}) if len(group_seqs) == 1
            else conn.execute(MEMBERS_OF, {"seqs": group_seqs}))
    for seq, mid, mtype, display, domain in rows.all():
        item = {"value": mid, "type": mtype}
        if domain is not None:
            item["domain"] = domain
        elif display is not None:
            item["display"] = display
        out[seq].append(item)
    return out


def lock_row(conn: Connection, table, entity_id: str, expected_version: int | None,
             kind: str):
    found = fetch(conn, LOCK[table.name], {"id": entity_id})
    row = found[0] if found else None
    if row is None:
        raise NotFound(f"{kind} {entity_id} not found")
    if expected_version is not None and row.version != expected_version:
        raise VersionMismatch(f"{kind} {entity_id} has changed (version {row.version})")
    return row


_BUMPS: dict[tuple[str, tuple[str, ...]], object] = {}


def _bump_statement(table, keys: tuple[str, ...]):
    """The UPDATE of a row's version, time and these columns, built once per shape."""
    stmt = _BUMPS.get((table.name, keys))
    if stmt is None:
        stmt = _BUMPS[(table.name, keys)] = (
            update(table)
            .where(table.c.seq == bindparam("w_seq"), table.c.version == bindparam("w_version"))
            .values(version=bindparam("s_version"), last_modified=bindparam("s_ts"),
                    **{k: bindparam(f"s_{k}") for k in keys}))
    return stmt


def bump(conn: Connection, table, row, values: dict, kind: str, entity_id: str) -> str:
    ts = now()
    params = {"w_seq": row.seq, "w_version": row.version, "s_version": row.version + 1,
              "s_ts": ts}
    params.update((f"s_{k}", v) for k, v in values.items())
    if change(conn, _bump_statement(table, tuple(values)), params) != 1:
        raise VersionMismatch(f"{kind} {entity_id} was changed concurrently")
    return ts


# the index values of one entity, dropped before it is written again
DROP_VALUES = {table.name: delete(table).where(table.c.entity == bindparam("seq"))
               for table in (t.user_values, t.group_values)}


def drop_values(conn: Connection, table, seq: int) -> None:
    change(conn, DROP_VALUES[table.name], {"seq": seq})


def emit(conn: Connection, events: list[tuple[str, str, str, str | None]]) -> None:
    """Record changes in the outbox, in the changing transaction (kind, id, action, name)."""
    if events and not conn.info.get("outbox_off"):
        ts = now()
        insert_rows(conn, _OUTBOX_INSERT, [
            {"kind": k, "entity_id": i, "action": a, "name": n, "created": ts}
            for k, i, a, n in events])


def touch_groups_of(conn: Connection, member_id: str) -> None:
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


def check_unique(conn: Connection, rtype: ResourceType, table, seq: int, data: dict,
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
