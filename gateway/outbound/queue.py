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

``remote_ids`` maps (connector, kind, local id) to the id the target knows, or to
``MAYBE`` (``""``): no id is known, but a delivery whose outcome is unknown (it failed
after sending, or its process died or stopped mid-delivery: its lease ran out or it
was handed back) may have created the entity there. A later create looks it up before
creating, and a delete or a deprovisioning looks it up and removes it.
Every function here is one transaction run by a SQL store's runner.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    case,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from gateway.database.engine import schema_lock
from gateway.model.times import stamp

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
# the claim walks unfinished rows in id order and stops at its limit (not a sort of the backlog)
Index("ix_outbound_claim", deliveries.c.state, deliveries.c.id)

remote_ids = Table(
    "outbound_remote_ids",
    metadata,
    Column("connector", String(128), primary_key=True),
    Column("kind", String(8), primary_key=True),
    Column("local_id", String(64), primary_key=True),
    Column("remote_id", String(512), nullable=False),
    Column("updated", String(32), nullable=False),
)

# counters of every process together, kept in the transactions that record deliveries:
# (connector, metric, label) -> value; metric is delivered (label: outcome), failures
# (label: retryable, permanent), lag_bucket (label: the bucket's upper bound), lag_sum,
# lag_count (label: "")
counters = Table(
    "outbound_counters",
    metadata,
    Column("connector", String(128), primary_key=True),
    Column("metric", String(16), primary_key=True),
    Column("label", String(32), primary_key=True),
    Column("value", Float, nullable=False),
)
LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

MAYBE = ""  # a remote_ids value: possibly provisioned, its remote id unknown
UNFINISHED = ("pending", "inflight")
STATES = ("pending", "inflight", "done", "skipped", "dead", "cancelled")


__all__ = ["stamp"]  # the gateway's one form of a time (gateway.model.times)


def create(conn: Connection) -> None:
    schema_lock(conn)
    metadata.create_all(conn)
    for table in metadata.tables.values():  # indexes added since a table was made
        for index in table.indexes:
            index.create(conn, checkfirst=True)


def _insert(conn: Connection):
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert


# fan-out ----------------------------------------------------------------------------------
def work_waiting(conn: Connection) -> bool:
    """Whether anything could be claimed now (a due delivery or a lapsed lease)."""
    d = deliveries
    now = stamp()
    due = select(d.c.id).where(d.c.state == "pending", d.c.next_at <= now).limit(1)
    lapsed = select(d.c.id).where(d.c.state == "inflight", d.c.lease_until < now).limit(1)
    return (conn.execute(due).first() is not None
            or conn.execute(lapsed).first() is not None)


def enqueue(conn: Connection, rows: list[dict]) -> None:
    """Delivery rows for outbox rows; a fan-out done twice adds nothing."""
    if rows:
        stmt = _insert(conn)(deliveries).on_conflict_do_nothing(
            index_elements=["source", "source_seq", "connector"])
        conn.execute(stmt, rows)


def delivery_rows(source: str, rows, targets) -> list[dict]:
    now = stamp()
    return [{"connector": c, "source": source, "source_seq": r.seq, "kind": r.kind,
             "entity_id": r.entity_id, "action": r.action, "name": r.name,
             "state": "pending", "attempts": 0, "next_at": now, "created": r.created,
             "updated": now}
            for r in rows for c in targets(r)]


# claims -----------------------------------------------------------------------------------
_E = deliveries.alias("e")  # built once: an alias costs more to build than the claim to run
_EARLIER = select(_E.c.id).where(_E.c.connector == deliveries.c.connector,
                                 _E.c.entity_id == deliveries.c.entity_id,
                                 _E.c.id < deliveries.c.id,
                                 _E.c.state.in_(UNFINISHED)).exists()


def claim(conn: Connection, owner: str, limit: int, lease_seconds: float,
          entity: tuple[str, str, list[str]] | None = None) -> list:
    """Due deliveries, the oldest unfinished one per (connector, entity), leased to owner,
    each with the remote id its connector knows the entity by (``mapped``). ``entity``:
    only those of ``(kind, entity id, connectors)``."""
    d = deliveries
    now = dt.datetime.now(dt.UTC)
    # claims whose process died: claimable again, their entities possibly provisioned
    _hand_back(conn, and_(d.c.state == "inflight", d.c.lease_until < stamp(now)),
               {"owner": None})
    # walk the backlog in id order (ix_outbound_claim) and stop at the limit, rather than
    # sort it whole: next_at inside a function keeps planners off ix_outbound_due here
    due = func.coalesce(d.c.next_at, "") <= stamp(now)
    stmt = (select(d.c.id).where(d.c.state == "pending", due, ~_EARLIER)
            .order_by(d.c.id).limit(limit))
    if entity is not None:
        kind, entity_id, connectors = entity
        stmt = stmt.where(d.c.kind == kind, d.c.entity_id == entity_id,
                          d.c.connector.in_(connectors))
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
    _hand_back(conn, and_(d.c.owner == owner, d.c.state == "inflight"),
               {"owner": None, "lease_until": None, "updated": stamp()})


def _hand_back(conn: Connection, where, values: dict) -> None:
    """Claims that ended without a word (lease run out, handed back) go back to pending;
    the entities of their creates and updates are possibly provisioned (``MAYBE``) where
    no remote id is known: the attempt may have reached the target."""
    d = deliveries
    rows = conn.execute(select(d.c.id, d.c.connector, d.c.kind, d.c.entity_id, d.c.action)
                        .where(where)).all()
    if not rows:
        return
    mark_uncertain(conn, [(r.connector, r.kind, r.entity_id) for r in rows
                          if r.action != "delete"])
    conn.execute(update(d).where(d.c.id.in_([r.id for r in rows]), where)
                 .values(state="pending", **values))


def mark_uncertain(conn: Connection, entities: list[tuple[str, str, str]]) -> None:
    """``(connector, kind, local id)`` may be at the target: ``MAYBE`` where no remote id
    is known (a known one stays)."""
    if not entities:
        return
    now = stamp()
    stmt = _insert(conn)(remote_ids).on_conflict_do_nothing(
        index_elements=["connector", "kind", "local_id"])
    conn.execute(stmt, [{"connector": c, "kind": k, "local_id": e, "remote_id": MAYBE,
                         "updated": now} for c, k, e in sorted(set(entities))])


_FINISH = (update(deliveries).where(deliveries.c.id == bindparam("_id"))
           .values(state=bindparam("_state"), outcome=bindparam("_outcome"),
                   last_error=bindparam("_error"), updated=bindparam("_now"), lease_until=None,
                   owner=bindparam("_owner"),
                   next_at=func.coalesce(bindparam("_next"), deliveries.c.next_at),
                   name=func.coalesce(deliveries.c.name, bindparam("_name")),
                   remote_id=case((bindparam("_set_remote"), bindparam("_remote")),
                                  else_=deliveries.c.remote_id)))
_UNMAP = delete(remote_ids).where(remote_ids.c.connector == bindparam("_c"),
                                  remote_ids.c.kind == bindparam("_k"),
                                  remote_ids.c.local_id == bindparam("_l"))


def finish_many(conn: Connection, owner: str, items: list[tuple]) -> list[bool]:
    """Record how claimed deliveries ended (or when to try again), in one transaction.

    An item is ``(id, state, outcome, error, next_at, remote, counts, name)``: ``remote``
    is ``(connector, kind, local id, remote id)`` to keep in the remote-id map (remote
    id None: forget it; ``MAYBE``: possibly provisioned, unless an id is known),
    ``counts`` the ``(connector, metric, label, value)`` increments of ``counters`` the
    delivery makes, ``name`` the entity's name for a delivery queued
    without one (a membership change's). An item whose claim was lost (its lease ran
    out and another process took it) changes nothing and is False. A finished delivery
    keeps its owner: who delivered it."""
    d = deliveries
    if not items:
        return []
    held_stmt = select(d.c.id).where(d.c.id.in_([i[0] for i in items]), d.c.owner == owner,
                                     d.c.state == "inflight")
    if conn.dialect.name == "postgresql":
        held_stmt = held_stmt.with_for_update()
    held = {i for (i,) in conn.execute(held_stmt)}
    mine = [i for i in items if i[0] in held]
    if mine:
        now = stamp()
        conn.execute(_FINISH, [
            {"_id": i, "_state": state, "_outcome": outcome, "_error": error, "_now": now,
             "_owner": None if state == "pending" else owner, "_next": next_at,
             "_set_remote": remote is not None and remote[3] != MAYBE,
             "_remote": remote[3] if remote else None, "_name": name}
            for i, state, outcome, error, next_at, remote, _counts, name in mine])
        remotes = [item[5] for item in mine if item[5] is not None and item[5][3] != MAYBE]
        mark_uncertain(conn, [item[5][:3] for item in mine
                              if item[5] is not None and item[5][3] == MAYBE])
        if remotes:
            conn.execute(_UNMAP, [{"_c": c, "_k": k, "_l": local} for c, k, local, _r in remotes])
            kept = [{"connector": c, "kind": k, "local_id": local, "remote_id": r,
                     "updated": now} for c, k, local, r in remotes if r is not None]
            if kept:
                conn.execute(remote_ids.insert(), kept)
        add_counts(conn, [c for item in mine for c in item[6]])
    return [item[0] in held for item in items]


def add_counts(conn: Connection, increments) -> None:
    """Add ``(connector, metric, label, value)`` increments to ``counters`` (summed first,
    and in key order, so that concurrent transactions lock rows in the same order)."""
    totals: dict[tuple[str, str, str], float] = {}
    for connector, metric, label, value in increments:
        key = (connector, metric, label)
        totals[key] = totals.get(key, 0.0) + value
    if not totals:
        return
    stmt = _insert(conn)(counters)
    stmt = stmt.on_conflict_do_update(index_elements=["connector", "metric", "label"],
                                      set_={"value": counters.c.value + stmt.excluded.value})
    conn.execute(stmt, [{"connector": c, "metric": m, "label": lbl, "value": v}
                        for (c, m, lbl), v in sorted(totals.items())])


def counts(conn: Connection) -> list:
    """Every counter: (connector, metric, label, value)."""
    c = counters
    return conn.execute(select(c.c.connector, c.c.metric, c.c.label, c.c.value)
                        .order_by(c.c.connector, c.c.metric, c.c.label)).all()


# remote ids -----------------------------------------------------------------------------------
def remote_ids_of(conn: Connection, connector: str, kind: str, local_ids: list[str]
                  ) -> dict[str, str]:
    r = remote_ids
    out = {}
    for i in range(0, len(local_ids), 500):
        chunk = local_ids[i:i + 500]
        out.update(conn.execute(select(r.c.local_id, r.c.remote_id).where(
            r.c.connector == connector, r.c.kind == kind, r.c.local_id.in_(chunk),
            r.c.remote_id != MAYBE)).all())
    return out


def set_names(conn: Connection, source: str, names: list[tuple[int, str]]) -> None:
    """The entity names of deliveries queued without one (``(source seq, name)``)."""
    d = deliveries
    stmt = (update(d).where(d.c.source == source, d.c.source_seq == bindparam("_seq"),
                            d.c.name.is_(None)).values(name=bindparam("_name")))
    if names:
        conn.execute(stmt, [{"_seq": seq, "_name": name} for seq, name in names])


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
