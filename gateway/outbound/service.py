"""Outbound provisioning in the gateway process: the service, its dispatcher loop, claims.

Every committed change is a row in its SQL store's outbox (written in the change's own
transaction; for stores without transactions, such as LDAP, the pipeline queues it
right after the change). The dispatcher here moves outbox rows into the delivery queue
(``fanout``), claims due deliveries and hands each to its connector with the entity as
it is *now* (``delivery``: the remote-id map, retries with backoff, dead deliveries),
and purges finished ones. Blocking connectors make the inbound reply wait for their
delivery, within a deadline (``blocking``). Connector health is cached (``health``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import random
import socket
import time

import aiohttp

from connectors import registry
from connectors.base import Connector, EntityKind
from userstores.base import OutboxRow, Record
from userstores.registry import Stores

from .. import operations as ops
from ..config import Config
from ..errors import ConfigError, GatewayError
from ..model.registry import SchemaRegistry
from . import queue
from .blocking import BlockingWait, ProvisioningFailed, deadline
from .delivery import Deliverer
from .fanout import FAN_OUT_BATCH, FanOut
from .health import HealthChecks
from .selection import Selector

__all__ = ["OutboundService", "ProvisioningFailed", "sqlite_beside"]

log = logging.getLogger("gateway.outbound")

IDLE_DRAIN = 5.0  # seconds between outbox checks of a process with no connector
STOP_GRACE = 5.0  # seconds the work in flight gets to end when the gateway stops


def sqlite_beside(url: str) -> str | None:
    """For a SQLite database URL, the URL of the outbound queue's file beside it."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    root, ext = os.path.splitext(parsed.database)
    return parsed.set(database=f"{root}-outbound{ext or '.db'}").render_as_string(
        hide_password=False)


class OutboundService:
    def __init__(self, config: Config, stores: Stores, schemas: SchemaRegistry, home):
        """``home``: the state database (``gateway.state.open_home``): the queue lives
        there when it is ``[outbound] database``, or beside it (SQLite), or in it."""
        self.config = config
        self.cfg = config.outbound
        self.stores = stores
        self.schemas = schemas
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{random.getrandbits(24):06x}"
        self.connectors: dict[str, Connector] = {}
        self.configs = {c.name: c for c in self.cfg.active}
        self.selectors: dict[str, Selector] = {}
        self.runner = None  # the queue's database
        self.home = home
        self.health = HealthChecks(self.connectors)
        self._own_runner = False
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task | None = None
        self._running: set[asyncio.Task] = set()  # deliveries in flight in this process
        self._deliverer: Deliverer | None = None
        self._fan_out: FanOut | None = None
        self._blocking: BlockingWait | None = None
        self._stopping = False
        self._wake = asyncio.Event()
        self._last_purge = 0.0
        self._last_claim_full = False

    # lifecycle --------------------------------------------------------------------------------
    async def start(self, run_dispatcher: bool = True) -> None:
        active = self.cfg.active
        try:
            self.runner = await self._queue_runner()
        except ConfigError:
            if active:
                raise
            self.runner = None  # no connector, no queue: the outboxes are only drained
        if self.runner is not None:
            await self.runner.write(queue.create)
        self._session = aiohttp.ClientSession()
        for cfg in active:
            self.connectors[cfg.name] = registry.build(cfg, self._session)
            self.selectors[cfg.name] = Selector(cfg, self.schemas.user, self.stores.qualify)
        dispatching = run_dispatcher and self.cfg.enabled
        self._deliverer = Deliverer(self.cfg, self.stores, self.runner, self.owner,
                                    self.connectors, self.selectors, batching=dispatching)
        self._fan_out = FanOut(self.stores, self.runner, self._targets, self.queueing)
        self._blocking = BlockingWait(self.cfg, self.runner, self.owner, self.kick,
                                      None if dispatching else self._spawn)
        if dispatching:
            self._task = asyncio.create_task(self._run(), name="outbound-dispatcher")

    async def _queue_runner(self):
        """The queue's database: ``[outbound] database``; else, for a SQLite PRIMARY, a file
        of its own beside it (``gateway.db`` -> ``gateway-outbound.db``: the dispatcher's
        writes never hold the lock the requests' writes need); else PRIMARY's database."""
        from gateway.database.engine import make_runner

        runner = self.home
        if runner is None:
            raise ConfigError("[outbound] database is required when the PRIMARY store is not "
                              "SQL: the delivery queue lives in a SQL database")
        beside = None if self.cfg.database else sqlite_beside(runner.url)
        if beside is None:
            return runner
        self._own_runner = True
        return make_runner(beside, 4)

    async def stop(self) -> None:
        """Stop at a clean point: the dispatcher ends its round and deliveries in flight get
        a few seconds to finish (cancelling them inside a database call can leave a pooled
        connection stuck); what is left is cancelled, and the claims handed back (their
        entities count as possibly provisioned: see ``queue.MAYBE``)."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await _settle_or_cancel([self._task], STOP_GRACE)
            self._task = None
        running, self._running = list(self._running), set()
        await _settle_or_cancel(running, STOP_GRACE)
        flusher = self._deliverer.flusher() if self._deliverer is not None else None
        if flusher is not None:
            await _settle_or_cancel([flusher], STOP_GRACE)
        await self.health.close()
        if self.runner is not None:
            try:  # what this process had claimed goes back to the queue at once
                await self.runner.write(queue.release, self.owner)
            except Exception:  # noqa: BLE001 - the leases run out anyway
                log.warning("could not hand back the claims of %s", self.owner)
        for connector in self.connectors.values():
            try:
                await connector.close()
            except Exception:  # noqa: BLE001 - closing anyway
                log.warning("closing connector %s failed", connector)
        if self._session is not None:
            await self._session.close()
        if self._own_runner and self.runner is not None:
            await self.runner.close()

    def kick(self) -> None:
        self._wake.set()

    # the dispatcher --------------------------------------------------------------------------
    async def _run(self) -> None:
        # without connectors there is only the outbox to drain: this process's writes wake
        # the dispatcher, other processes' rows are picked up within IDLE_DRAIN seconds
        idle = self.cfg.poll_interval_ms / 1000 if self.selectors else IDLE_DRAIN
        while not self._stopping:
            try:
                moved = await self.fan_out()
                claimed = await self.start_due()
                if self.runner is not None and time.monotonic() - self._last_purge > 3600:
                    await self._purge()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the dispatcher must outlive a bad moment
                log.exception("outbound dispatcher round failed")
                moved = claimed = 0
                await asyncio.sleep(idle)
            if moved >= FAN_OUT_BATCH or (claimed and self._last_claim_full):
                continue  # more is waiting: no pause (else rows come in batches, each poll)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=idle)
            except TimeoutError:
                pass

    def _targets(self, domain: str):
        def targets(row) -> list[str]:
            return [name for name, sel in self.selectors.items()
                    if sel.takes_domain(domain) and sel.takes_kind(row.kind)]
        return targets

    @property
    def queueing(self) -> bool:
        """Whether changes are queued for delivery: a queue, and a connector enabled."""
        return self.runner is not None and bool(self.selectors)

    async def fan_out(self) -> int:
        """Move outbox rows of every SQL store into the delivery queue."""
        return await self._fan_out.run()

    async def record(self, domain: str, kind: str, entity_id: str, action: str,
                     name: str | None) -> None:
        """Queue a change of a store without an outbox of its own (LDAP)."""
        if not self.queueing:
            return
        row = OutboxRow(time.time_ns(), kind, entity_id, action, name, queue.stamp())
        await self.runner.write(queue.enqueue,
                                queue.delivery_rows(domain, [row], self._targets(domain)))
        self.kick()

    async def start_due(self) -> int:
        """Claim due deliveries for the free slots and start them (not waiting for them:
        a slow target holds one slot, never the dispatcher). While deliveries run, a claim
        waits for a quarter of the slots to be free, so that claims come in batches whose
        entities are read together."""
        free = self.cfg.concurrency - len(self._running)
        if self._stopping or not self.selectors or free < self._claim_at():
            return 0
        if not self._last_claim_full and not await self.runner.read(queue.work_waiting):
            return 0
        rows = await self.runner.write(queue.claim, self.owner, free, self.cfg.lease_seconds)
        self._last_claim_full = len(rows) == free
        if not rows:
            return 0
        records = await self._read_entities(rows)
        for row in rows:
            self._spawn(row, records)
        return len(rows)

    def _spawn(self, row, records: dict | None = None) -> asyncio.Task:
        """Start one claimed delivery as a task of this process."""
        task = asyncio.create_task(self._deliverer.deliver(row, records or {}),
                                   name=f"outbound-{row.id}")
        self._running.add(task)
        task.add_done_callback(self._delivered)
        return task

    def _claim_at(self) -> int:
        """How many slots must be free for a claim."""
        return 1 if not self._running else max(1, self.cfg.concurrency // 4)

    def _delivered(self, task: asyncio.Task) -> None:
        self._running.discard(task)
        # enough slots are free for the next claim, and the last one left work behind (else
        # new work comes through the outbox, at the next poll or kick)
        if self._last_claim_full and \
                self.cfg.concurrency - len(self._running) >= self._claim_at():
            self._wake.set()

    async def _read_entities(self, rows) -> dict[tuple[str, str, str], Record | None]:
        """The entities of claimed deliveries as they are now, one store read per store and
        kind: ``(source, kind, id) -> Record`` (None: gone)."""
        wanted: dict[tuple[str, str], set[str]] = {}
        for row in rows:
            if row.action != "delete" and row.connector in self.connectors:
                wanted.setdefault((row.source, row.kind), set()).add(row.entity_id)
        out: dict[tuple[str, str, str], Record | None] = {}
        for (source, kind), ids in wanted.items():
            try:
                store = self.stores.get(source)
                found = (await store.get_users(sorted(ids)) if kind == EntityKind.USER
                         else await store.get_groups(sorted(ids)))
            except GatewayError:
                continue  # each delivery reads its entity itself, and fails on its own
            for entity_id in ids:
                out[(source, kind, entity_id)] = found.get(entity_id)
        return out

    async def _purge(self) -> None:
        self._last_purge = time.monotonic()
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(hours=self.cfg.retention_hours)
        await self.runner.write(queue.purge, queue.stamp(cutoff))

    # what the admin API and /metrics report ----------------------------------------------------
    async def backlog(self) -> tuple[dict[str, dict[str, int]], dict[str, str]]:
        """Per connector: deliveries waiting, in flight or dead, and changes still in the
        outboxes (``outbox``: not fanned out yet); and the oldest unfinished change's
        commit time. Nothing in either for a connector: everything was delivered."""
        counts: dict[str, dict[str, int]] = {}
        for name, state, n in await self.runner.read(queue.backlog):
            counts.setdefault(name, {})[state] = n
        oldest = await self.runner.read(queue.oldest_pending)
        for name, (n, first) in (await self._fan_out.unqueued()).items():
            counts.setdefault(name, {})["outbox"] = n
            if first is not None:
                oldest[name] = min(oldest.get(name, first), first)
        return counts, oldest

    # the pipeline's side -----------------------------------------------------------------------
    def blocking_for(self, domain: str, kind: str) -> list[str]:
        return [name for name in self.connectors
                if self.configs[name].blocking and self.selectors[name].takes_domain(domain)
                and self.selectors[name].takes_kind(kind)]

    async def committed(self, entity: ops.Entity, action: str, since: str) -> None:
        """After a change committed: queue it (stores without an outbox), wake the
        dispatcher, and wait for blocking connectors (until ``blocking_timeout_seconds``
        after ``since``, when the change began)."""
        if not self.queueing:
            return  # no outbox row was written (what an older configuration left drains idly)
        store = self.stores.get(entity.domain)
        if store.outbox is None:
            key = "userName" if entity.kind == ops.USER else "displayName"
            await self.record(entity.domain, entity.kind, entity.id, action,
                              self.stores.qualify(entity.domain,
                                                  entity.record.data.get(key, "")))
        blocking = self.blocking_for(entity.domain, entity.kind)
        if not blocking:
            self.kick()
            return
        by = deadline(since, self.cfg.blocking_timeout_seconds)
        await self.fan_out()
        self.kick()
        await self._blocking.settle(store.outbox, entity.kind, entity.id, blocking, since, by)


async def _settle_or_cancel(tasks: list[asyncio.Task], grace: float) -> None:
    """Let tasks end within ``grace`` seconds, then cancel what is left."""
    if not tasks:
        return
    _done, pending = await asyncio.wait(tasks, timeout=grace)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
