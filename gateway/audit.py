"""The audit trail: every change and every authentication decision, durably.

Each event says when (``at``, RFC 3339 UTC), who (``actor``: the principal, or the
account name a login tried), from where (``address``), over what (``protocol``:
scim2, scim11, soap, jit, admin, cli; ``operation``: the pipeline's, e.g.
``PatchUser``, ``CheckPassword``), on what (``kind``, ``target_id``, ``target``: the
qualified name), which attributes a change touched (names only, never values:
``password`` says a password was set), the ``outcome`` (``success``, ``denied``: the
caller lacks a permission, ``refused``: a login that did not succeed, ``failed``:
the change was not made) with a short ``detail`` (the error's type or why a login
was refused), and the HTTP request's id (``X-Request-Id``).

Where the events live: the table ``audit_events`` of the state database (the one the
outbound queue, ``used_once`` and ``auth_failures`` use), shared by every worker and
host. A change to a store whose transactions run on that database (the PRIMARY SQL
store, unless ``[outbound] database`` moves the state elsewhere) writes its event in
the change's own transaction (``userstores.base.Journal``): both are kept or neither.
A change to any other store (LDAP, a SQL store on another database) is written right
after it commits, before the reply; a crash in between loses that event. Refusals and
failures are written before the reply too. Authentication decisions are written in
batches within ``FLUSH_SECONDS``; cached logins are not new decisions.

Old events go after ``[audit] retention_days``. Without a state database (a non-SQL
PRIMARY and no ``[outbound] database``) there is no durable trail: events go to the
``gateway.audit`` log only.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

import orjson
from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text, delete, select
from sqlalchemy.engine import Connection

from gateway.database.cursor import insert_rows
from gateway.database.engine import Runner
from userstores.base import Journal, Record

from . import state
from .config import AuditConfig
from .errors import Forbidden, GatewayError
from .model.times import stamp
from .names import qualify
from .request_context import REQUEST

log = logging.getLogger("gateway.audit")

FLUSH_SECONDS = 0.2
BUFFER_LIMIT = 10_000  # authentication decisions waiting for their batch (then dropped)
PURGE_EVERY = 3600.0
PURGE_BATCH = 10_000
_ID = BigInteger().with_variant(Integer, "sqlite")

events_table = Table(
    "audit_events",
    state.metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("at", String(32), nullable=False),
    Column("actor", String(512), nullable=False),
    Column("address", String(64)),
    Column("protocol", String(16), nullable=False),
    Column("operation", String(32), nullable=False),
    Column("kind", String(8)),
    Column("target_id", String(64)),
    Column("target", String(512)),
    Column("attributes", Text),  # a JSON list of names
    Column("outcome", String(16), nullable=False),
    Column("detail", String(512)),
    Column("request_id", String(64)),
)
Index("ix_audit_actor", events_table.c.actor, events_table.c.id)
Index("ix_audit_target_id", events_table.c.target_id, events_table.c.id)
Index("ix_audit_target", events_table.c.target, events_table.c.id)
Index("ix_audit_at", events_table.c.at)

FIELDS = ("id", "at", "actor", "address", "protocol", "operation", "kind", "target_id",
          "target", "attributes", "outcome", "detail", "request_id")


@dataclass
class Event:
    actor: str
    operation: str
    protocol: str = "internal"
    address: str | None = None
    request_id: str | None = None
    kind: str | None = None
    target_id: str | None = None
    target: str | None = None
    attributes: list[str] = field(default_factory=list)
    outcome: str = "success"
    detail: str | None = None
    at: str = ""

    @classmethod
    def now(cls, actor: str, operation: str, **values) -> Event:
        """An event of the request being served (its protocol, address and id)."""
        info = REQUEST.get()
        if info is not None:
            values.setdefault("protocol", info.protocol)
            values.setdefault("address", info.address)
            values.setdefault("request_id", info.id)
        return cls(actor=actor, operation=operation, **values)

    def failed(self, exc: GatewayError) -> Event:
        outcome = "denied" if isinstance(exc, Forbidden) or exc.status == 401 else "failed"
        detail = getattr(exc, "scim_type", None) or type(exc).__name__
        return replace(self, outcome=outcome, detail=f"{exc.status} {detail}")

    def row(self) -> dict:
        values = dict(self.__dict__)  # a flat dataclass: no need for asdict's deep copy
        values["at"] = self.at or stamp()
        values["attributes"] = orjson.dumps(sorted(set(self.attributes))).decode()
        values["actor"] = values["actor"][:512]
        values["target"] = (values["target"] or None) and values["target"][:512]
        values["detail"] = (values["detail"] or None) and values["detail"][:512]
        return values


_INSERT = events_table.insert()


def _insert(conn: Connection, rows: list[dict]) -> None:
    insert_rows(conn, _INSERT, rows)  # in a store's write transaction: the fast path


def _purge(conn: Connection, before: str) -> int:
    t = events_table.c
    ids = select(t.id).where(t.at < before).order_by(t.id).limit(PURGE_BATCH)
    return conn.execute(delete(events_table).where(t.id.in_(ids.scalar_subquery()))).rowcount


@dataclass(frozen=True)
class Filter:
    actor: str | None = None
    target: str | None = None  # an id or a qualified name
    operation: str | None = None
    outcome: str | None = None
    since: str | None = None  # RFC 3339, inclusive
    until: str | None = None  # exclusive


def _where(query, f: Filter):
    t = events_table.c
    if f.actor is not None:
        query = query.where(t.actor == f.actor)
    if f.target is not None:
        query = query.where((t.target_id == f.target) | (t.target == f.target))
    if f.operation is not None:
        query = query.where(t.operation == f.operation)
    if f.outcome is not None:
        query = query.where(t.outcome == f.outcome)
    if f.since is not None:
        query = query.where(t.at >= f.since)
    if f.until is not None:
        query = query.where(t.at < f.until)
    return query


def _page(conn: Connection, f: Filter, before: int | None, after: int | None,
          limit: int) -> list[dict]:
    """Newest first below ``before``, or oldest first above ``after`` (exports)."""
    t = events_table.c
    query = _where(select(events_table), f)
    if after is not None:
        query = query.where(t.id > after).order_by(t.id)
    else:
        if before is not None:
            query = query.where(t.id < before)
        query = query.order_by(t.id.desc())
    return [_public(row) for row in conn.execute(query.limit(limit))]


def _public(row) -> dict:
    out = {name: getattr(row, name) for name in FIELDS}
    out["attributes"] = orjson.loads(out["attributes"] or "[]")
    return out


class EventJournal(Journal):
    """An event a store writes in the transaction of the change it describes."""

    def __init__(self, event: Event, runner: Runner, each: list[list[str]] | None = None):
        self.event = event
        self.runner = runner
        self.done = False
        self._each = each  # several creates: the attributes of each

    def write(self, conn, domain: str, result) -> None:
        events = (created(self.event, domain, result, self._each or [])
                  if isinstance(result, list) else [self._completed(domain, result)])
        if events:
            _insert(conn, [e.row() for e in events])

    def _completed(self, domain: str, result) -> Event:
        return about(self.event, domain, result) \
            if isinstance(result, Record) else self.event


def about(event: Event, domain: str, rec: Record) -> Event:
    """The event, naming the user or group ``rec`` of ``domain``."""
    name = rec.data.get("userName", rec.data.get("displayName"))
    return replace(event, target_id=rec.id,
                   target=qualify(domain, name) if isinstance(name, str) else event.target)


def created(event: Event, domain: str, results: list, each: list[list[str]]) -> list[Event]:
    """One event per user that several creates made (``each``: their attributes)."""
    return [replace(about(event, domain, rec), attributes=names)
            for rec, names in zip(results, each, strict=True) if isinstance(rec, Record)]


class Audit:
    """``journal`` for a change, ``record`` what must be kept before the reply, ``note``
    an authentication decision; ``page`` and ``export`` read the trail."""

    def __init__(self, cfg: AuditConfig):
        self.cfg = cfg
        self.runner: Runner | None = None
        self._buffer: list[dict] = []
        self._flusher: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._stopping = False

    @property
    def enabled(self) -> bool:
        return self.cfg.enabled

    async def start(self, runner: Runner | None) -> None:
        """Keep the trail in the state database ``runner`` (None: the log only)."""
        if not self.enabled:
            return
        self.runner = runner
        if runner is not None:
            await runner.write(state.create)
            self._flusher = asyncio.create_task(self._run(), name="audit-flusher")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._flusher is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._flusher, 10)
            self._flusher = None
        await self._flush()

    def journal(self, event: Event, each: list[list[str]] | None = None
                ) -> EventJournal | None:
        if not self.enabled or self.runner is None:
            return None
        return EventJournal(event, self.runner, each)

    async def record(self, events: list[Event]) -> None:
        """Keep events now (before the reply); a failure to keep them is logged."""
        if not self.enabled or not events:
            return
        rows = [e.row() for e in events]
        if self.runner is None:
            for row in rows:
                log.info("%s", orjson.dumps(row).decode())
            return
        try:
            await self.runner.write(_insert, rows)
        except Exception:  # noqa: BLE001 - the change is made: say the event is lost
            log.error("could not keep %d audit events: %s", len(rows),
                      orjson.dumps(rows).decode())

    def note(self, event: Event) -> None:
        """Keep an authentication decision within FLUSH_SECONDS."""
        if not self.enabled:
            return
        row = event.row()
        if self.runner is None or self._stopping:
            log.info("%s", orjson.dumps(row).decode())
            return
        if len(self._buffer) >= BUFFER_LIMIT:
            log.warning("audit buffer full: %s", orjson.dumps(row).decode())
            return
        self._buffer.append(row)
        self._wake.set()

    async def _flush(self) -> None:
        while self._buffer and self.runner is not None:
            rows, self._buffer = self._buffer[:1000], self._buffer[1000:]
            try:
                await self.runner.write(_insert, rows)
            except Exception:  # noqa: BLE001 - logged, not lost silently
                log.error("could not keep %d audit events: %s", len(rows),
                          orjson.dumps(rows).decode())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_purge = loop.time()
        while not self._stopping:
            with contextlib.suppress(TimeoutError):  # idle: still purge now and then
                await asyncio.wait_for(self._wake.wait(), PURGE_EVERY)
            self._wake.clear()
            if self._buffer:
                await asyncio.sleep(FLUSH_SECONDS)  # the batch fills meanwhile
                await self._flush()
            if self.cfg.retention_days and loop.time() >= next_purge:
                next_purge = loop.time() + PURGE_EVERY
                await self._purge()

    async def _purge(self) -> None:
        before = stamp(dt.datetime.now(dt.UTC) - dt.timedelta(days=self.cfg.retention_days))
        try:
            for _batch in range(1000):  # bounded: the rest goes at the next purge
                if await self.runner.write(_purge, before) < PURGE_BATCH or self._stopping:
                    break
        except Exception:  # noqa: BLE001 - tried again at the next purge
            log.warning("could not purge old audit events", exc_info=True)

    async def page(self, f: Filter, before: int | None, limit: int) -> list[dict]:
        await self._flush()
        return await self.runner.read(_page, f, before, None, limit)

    async def export(self, f: Filter, chunk: int = 1000) -> AsyncIterator[list[dict]]:
        """Every matching event, oldest first, ``chunk`` at a time."""
        await self._flush()
        after = 0
        while True:
            rows = await self.runner.read(_page, f, None, after, chunk)
            if not rows:
                return
            yield rows
            after = rows[-1]["id"]
