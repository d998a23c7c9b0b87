"""The delivery queue and the remote-id map: tables and the SQL that moves rows through them.

``deliveries`` holds one row per (change, connector): ``pending`` until a
dispatcher claims it (``inflight``, with a lease), then ``done``, ``skipped``
(the connector did not select the entity), ``dead`` (gave up, or a permanent
error) or ``cancelled``; a failed attempt puts it back to ``pending`` with a
later ``next_at``. Per connector and entity only the oldest unfinished row is
claimable, so deliveries keep their order per entity and run in parallel
across entities. Claims use ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so that
several gateway processes share the work; a claim whose lease ran out (its
process died) is claimable again.

``remote_ids`` maps (connector, kind, local id) to the id the target knows.
Every function here is one transaction run by a SQL store's runner.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from userstores.sql import tables as store_tables

metadata = MetaData()
_ID = BigInteger().with_variant(Integer, "sqlite")

deliveries = Table(
    "outbound_deliveries",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("connector", String(128), nullable=False),
    Column("source", String(64), nullable=False),  # the user store domain
    Column("source_seq", BigInteger, nullable=False),  # its outbox row
    Column("kind", String(8), nullable=False),
    Column("entity_id", String(64), nullable=False),
    Column("action", String(8), nullable=False),  # upsert, delete
    Column("name", String(512)),
    Column("state", String(12), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_at", String(32), nullable=False),
    Column("lease_until", String(32)),
    Column("owner", String(64)),
    Column("last_error", Text),
    Column("outcome", String(32)),  # created, updated, deleted, deprovisioned, skipped: why
    Column("remote_id", String(512)),
    Column("created", String(32), nullable=False),  # when the change was committed
    Column("updated", String(32), nullable=False),
    UniqueConstraint("source", "source_seq", "connector", name="uq_outbound_source"),
)
Index("ix_outbound_due", deliveries.c.state, deliveries.c.next_at)
Index("ix_outbound_entity", deliveries.c.connector, deliveries.c.entity_id, deliveries.c.id)

remote_ids = Table(
    "outbound_remote_ids",
    metadata,
    Column("connector", String(128), primary_key=True),
    Column("kind", String(8), primary_key=True),
    Column("local_id", String(64), primary_key=True),
    Column("remote_id", String(512), nullable=False),
    Column("updated", String(32), nullable=False),
)

UNFINISHED = ("pending", "inflight")
STATES = ("pending", "inflight", "done", "skipped", "dead", "cancelled")


def stamp(at: dt.datetime | None = None) -> str:
    at = at or dt.datetime.now(dt.UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def create(conn: Connection) -> None:
    metadata.create_all(conn)


def _insert(conn: Connection):
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert


# fan-out ----------------------------------------------------------------------------------
def take_outbox(conn: Connection, limit: int) -> list:
    """The oldest outbox rows of a store, locked against other fan-outs (PostgreSQL)."""
    o = store_tables.outbox
    stmt = select(o).order_by(o.c.seq).limit(limit)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return conn.execute(stmt).all()


def outbox_waiting(conn: Connection) -> bool:
    """Whether a store's outbox has rows (a read: no write transaction when idle)."""
    o = store_tables.outbox
    return conn.execute(select(o.c.seq).limit(1)).first() is not None


def work_waiting(conn: Connection) -> bool:
    """Whether anything could be claimed now (a due delivery or a lapsed lease)."""
    d = deliveries
    now = stamp()
    due = select(d.c.id).where(d.c.state == "pending", d.c.next_at <= now).limit(1)
    lapsed = select(d.c.id).where(d.c.state == "inflight", d.c.lease_until < now).limit(1)
    return (conn.execute(due).first() is not None
            or conn.execute(lapsed).first() is not None)


def outbox_has(conn: Connection, kind: str, entity_id: str) -> bool:
    """Whether a change of this entity still waits in the store's outbox."""
    o = store_tables.outbox
    return conn.execute(select(o.c.seq).where(o.c.kind == kind, o.c.entity_id == entity_id)
                        .limit(1)).first() is not None


def drop_outbox(conn: Connection, seqs: list[int]) -> None:
    o = store_tables.outbox
    for i in range(0, len(seqs), 500):
        conn.execute(delete(o).where(o.c.seq.in_(seqs[i:i + 500])))


def drain(conn: Connection, limit: int) -> int:
    """Drop outbox rows no connector wants (none is configured)."""
    rows = take_outbox(conn, limit)
    drop_outbox(conn, [r.seq for r in rows])
    return len(rows)


def enqueue(conn: Connection, rows: list[dict]) -> None:
    """Delivery rows for outbox rows; a fan-out done twice adds nothing."""
    if rows:
        stmt = _insert(conn)(deliveries).on_conflict_do_nothing(
            index_elements=["source", "source_seq", "connector"])
        conn.execute(stmt, rows)


def fan_out_local(conn: Connection, source: str, limit: int, targets) -> int:
    """Outbox rows of the store whose database also holds the queue: moved in one
    transaction. ``targets(row)`` names the connectors a row goes to."""
    rows = take_outbox(conn, limit)
    enqueue(conn, delivery_rows(source, rows, targets))
    drop_outbox(conn, [r.seq for r in rows])
    return len(rows)


def delivery_rows(source: str, rows, targets) -> list[dict]:
    now = stamp()
    return [{"connector": c, "source": source, "source_seq": r.seq, "kind": r.kind,
             "entity_id": r.entity_id, "action": r.action, "name": r.name,
             "state": "pending", "attempts": 0, "next_at": now, "created": r.created,
             "updated": now}
            for r in rows for c in targets(r)]


# claims -----------------------------------------------------------------------------------
def claim(conn: Connection, owner: str, limit: int, lease_seconds: float) -> list:
    """Due deliveries, the oldest unfinished one per (connector, entity), leased to owner,
    each with the remote id its connector knows the entity by (``mapped``)."""
    d = deliveries
    now = dt.datetime.now(dt.UTC)
    # claims whose process died: claimable again
    conn.execute(update(d).where(d.c.state == "inflight", d.c.lease_until < stamp(now))
                 .values(state="pending", owner=None))
    e = deliveries.alias("e")
    earlier = select(e.c.id).where(e.c.connector == d.c.connector,
                                   e.c.entity_id == d.c.entity_id, e.c.id < d.c.id,
                                   e.c.state.in_(UNFINISHED)).exists()
    stmt = (select(d.c.id).where(d.c.state == "pending", d.c.next_at <= stamp(now), ~earlier)
            .order_by(d.c.id).limit(limit))
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=d, skip_locked=True)
    ids = [i for (i,) in conn.execute(stmt)]
    if not ids:
        return []
    until = stamp(now + dt.timedelta(seconds=lease_seconds))
    conn.execute(update(d).where(d.c.id.in_(ids), d.c.state == "pending")
                 .values(state="inflight", lease_until=until, owner=owner,
                         attempts=d.c.attempts + 1, updated=stamp(now)))
    r = remote_ids
    mapped = (select(r.c.remote_id).where(r.c.connector == d.c.connector, r.c.kind == d.c.kind,
                                          r.c.local_id == d.c.entity_id)
              .scalar_subquery().label("mapped"))
    return conn.execute(select(d, mapped).where(d.c.id.in_(ids), d.c.owner == owner,
                                                d.c.state == "inflight").order_by(d.c.id)).all()


def release(conn: Connection, owner: str) -> None:
    """A stopping process hands its claims back (they need not wait for their lease)."""
    d = deliveries
    conn.execute(update(d).where(d.c.owner == owner, d.c.state == "inflight")
                 .values(state="pending", owner=None, lease_until=None, updated=stamp()))


def finish(conn: Connection, delivery_id: int, owner: str, state: str, outcome: str | None,
           error: str | None, next_at: str | None = None,
           remote: tuple[str, str, str, str | None] | None = None) -> bool:
    """Record how a claimed delivery ended (or when to try again); False if the claim was
    lost (the lease ran out and another process took it)."""
    d = deliveries
    values = {"state": state, "outcome": outcome, "last_error": error, "updated": stamp(),
              "lease_until": None, "owner": None if state != "inflight" else owner}
    if next_at is not None:
        values["next_at"] = next_at
    if remote is not None:
        values["remote_id"] = remote[3]
    res = conn.execute(update(d).where(d.c.id == delivery_id, d.c.owner == owner,
                                       d.c.state == "inflight").values(**values))
    if res.rowcount != 1:
        return False
    if remote is not None:
        set_remote(conn, *remote)
    return True


def finish_many(conn: Connection, owner: str, items: list[tuple]) -> list[bool]:
    """Several ``finish`` in one transaction (the dispatcher batches what ended together)."""
    return [finish(conn, delivery_id, owner, state, outcome, error, next_at, remote)
            for delivery_id, state, outcome, error, next_at, remote in items]


# remote ids -----------------------------------------------------------------------------------
def remote_ids_of(conn: Connection, connector: str, kind: str, local_ids: list[str]
                  ) -> dict[str, str]:
    r = remote_ids
    out = {}
    for i in range(0, len(local_ids), 500):
        chunk = local_ids[i:i + 500]
        out.update(conn.execute(select(r.c.local_id, r.c.remote_id).where(
            r.c.connector == connector, r.c.kind == kind, r.c.local_id.in_(chunk))).all())
    return out


def set_remote(conn: Connection, connector: str, kind: str, local_id: str,
               remote: str | None) -> None:
    r = remote_ids
    conn.execute(delete(r).where(r.c.connector == connector, r.c.kind == kind,
                                 r.c.local_id == local_id))
    if remote is not None:
        conn.execute(r.insert().values(connector=connector, kind=kind, local_id=local_id,
                                       remote_id=remote, updated=stamp()))


# the admin API ------------------------------------------------------------------------------
def listing(conn: Connection, state: str | None, connector: str | None, entity: str | None,
            limit: int, before: int | None) -> list:
    d = deliveries
    conds = []
    if state:
        conds.append(d.c.state == state)
    if connector:
        conds.append(d.c.connector == connector)
    if entity:
        conds.append(d.c.entity_id == entity)
    if before:
        conds.append(d.c.id < before)
    stmt = select(d).where(and_(*conds)) if conds else select(d)
    return conn.execute(stmt.order_by(d.c.id.desc()).limit(limit)).all()


def get(conn: Connection, delivery_id: int):
    return conn.execute(select(deliveries).where(deliveries.c.id == delivery_id)).first()


def retry(conn: Connection, delivery_id: int) -> bool:
    d = deliveries
    res = conn.execute(update(d).where(d.c.id == delivery_id,
                                       d.c.state.in_(("dead", "cancelled", "pending")))
                       .values(state="pending", next_at=stamp(), attempts=0, updated=stamp()))
    return res.rowcount == 1


def cancel(conn: Connection, delivery_id: int) -> bool:
    d = deliveries
    res = conn.execute(update(d).where(d.c.id == delivery_id, d.c.state.in_(("pending", "dead")))
                       .values(state="cancelled", updated=stamp()))
    return res.rowcount == 1


def backlog(conn: Connection) -> list:
    """Deliveries waiting, in flight or dead, per connector (finished ones are many and
    counted by the processes that finished them)."""
    d = deliveries
    return conn.execute(select(d.c.connector, d.c.state, func.count())
                        .where(d.c.state.in_((*UNFINISHED, "dead")))
                        .group_by(d.c.connector, d.c.state)).all()


def oldest_pending(conn: Connection) -> dict[str, str]:
    d = deliveries
    return dict(conn.execute(select(d.c.connector, func.min(d.c.created))
                             .where(d.c.state.in_(UNFINISHED)).group_by(d.c.connector)).all())


def latest_for(conn: Connection, kind: str, entity_id: str, connectors: list[str],
               since: str) -> list:
    """The deliveries of an entity's changes committed since ``since``, newest first."""
    d = deliveries
    return conn.execute(select(d.c.connector, d.c.state, d.c.last_error).where(
        d.c.kind == kind, d.c.entity_id == entity_id, d.c.connector.in_(connectors),
        d.c.created >= since).order_by(d.c.id.desc())).all()


def purge(conn: Connection, older_than: str) -> int:
    d = deliveries
    res = conn.execute(delete(d).where(d.c.state.in_(("done", "skipped", "cancelled")),
                                       d.c.updated < older_than))
    return res.rowcount or 0
