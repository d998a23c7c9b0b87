"""Outbound provisioning in the gateway process: fan-out, delivery, blocking waits.

Every committed change is a row in its SQL store's outbox (written in the
change's own transaction; for stores without transactions, such as LDAP, the
pipeline queues it right after the change). The dispatcher here moves outbox
rows into the delivery queue (one delivery per connector that takes the
store's domain and the entity's kind), claims due deliveries and hands each
to its connector with the entity as it is *now* (so a retried delivery sends
current data), keeps the remote-id map, and retries failures with
exponential backoff and jitter until ``max_attempts``, after which a delivery
is ``dead`` (the admin API retries or cancels it). Permanent failures (a 4xx
other than 409/429) are dead at once.

Blocking connectors make the inbound reply wait (at most
``blocking_timeout_seconds``) until their delivery of that change ended; a
failure becomes ``ProvisioningFailed`` (the local change stays, the delivery
stays queued).
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
from connectors.base import Action, Change, Connector, DeliveryError, EntityKind
from userstores.base import OutboxRow, Record
from userstores.registry import Stores

from .. import operations as ops
from ..config import Config
from ..errors import ConfigError, GatewayError
from ..model.registry import SchemaRegistry
from . import queue
from .selection import Selector

log = logging.getLogger("gateway.outbound")

FAN_OUT_BATCH = 500
IDLE_DRAIN = 5.0  # seconds between outbox checks of a process with no connector
STOP_GRACE = 5.0  # seconds the work in flight gets to end when the gateway stops
SETTLE_POLL = 0.02
FLUSH_WAIT = 0.02  # seconds the end of a delivery waits to be recorded with others


class ProvisioningFailed(GatewayError):
    """The change was saved locally, but a blocking connector did not take it (yet)."""

    status = 502
    soap_fault = "Server"
    default_detail = "The change was saved, but provisioning it failed"


def sqlite_beside(url: str) -> str | None:
    """For a SQLite database URL, the URL of the outbound queue's file beside it."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    root, ext = os.path.splitext(parsed.database)
    return parsed.set(database=f"{root}-outbound{ext or '.db'}").render_as_string(
        hide_password=False)


def lag_counts(connector: str, seconds: float) -> list[tuple[str, str, str, float]]:
    """The counter increments of one delivery made ``seconds`` after its commit."""
    bucket = next((f"{b:g}" for b in queue.LAG_BUCKETS if seconds <= b), "+Inf")
    return [(connector, "lag_bucket", bucket, 1), (connector, "lag_sum", "", seconds),
            (connector, "lag_count", "", 1)]


def _parse(stamp: str) -> dt.datetime:
    """A commit time as the stores write it (ISO 8601, UTC, ``Z``)."""
    at = dt.datetime.fromisoformat(stamp)
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)


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
        self._own_runner = False
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task | None = None
        self._running: set[asyncio.Task] = set()  # deliveries in flight in this process
        self._finishes: list[tuple] = []  # ended deliveries waiting to be recorded
        self._stopping = False
        self._flusher: asyncio.Task | None = None
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
        if run_dispatcher and self.cfg.enabled:
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
        connection stuck); what is left is cancelled, and the claims handed back."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await _settle_or_cancel([self._task], STOP_GRACE)
            self._task = None
        running, self._running = list(self._running), set()
        await _settle_or_cancel(running, STOP_GRACE)
        if self._flusher is not None:
            await _settle_or_cancel([self._flusher], STOP_GRACE)
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
        moved = 0
        queueing = self.queueing
        for store in self.stores.all:
            outbox = store.outbox
            if outbox is None:
                continue
            local = not queueing or outbox.lives_in(self.runner)
            if local and not await outbox.waiting():
                continue  # idle: no write transaction competes with requests
            if not queueing:
                moved += await outbox.drain(FAN_OUT_BATCH)
                continue
            source, targets = store.domain, self._targets(store.domain)
            if local:  # the queue is in the outbox's database: one transaction

                def into(conn, rows, source=source, targets=targets):
                    queue.enqueue(conn, queue.delivery_rows(source, rows, targets))

                moved += await outbox.move(FAN_OUT_BATCH, into)
                continue
            # read (the read is the idle check too), queued, then dropped: a fan-out done
            # twice (another dispatcher, or a crash before the drop) queues nothing twice
            rows = await outbox.take(FAN_OUT_BATCH)
            if not rows:
                continue
            await self.runner.write(queue.enqueue, queue.delivery_rows(source, rows, targets))
            await outbox.drop([r.seq for r in rows])
            moved += len(rows)
        return moved

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
            task = asyncio.create_task(self._deliver(row, records), name=f"outbound-{row.id}")
            self._running.add(task)
            task.add_done_callback(self._delivered)
        return len(rows)

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

    # one delivery ------------------------------------------------------------------------------
    async def _deliver(self, row, records: dict) -> None:
        connector = self.connectors.get(row.connector)
        if connector is None:  # no longer configured
            await self._finish(row, "cancelled", "connector not configured", None)
            return
        sel = self.selectors[row.connector]
        limit = self.cfg.lease_seconds / 2
        try:
            change, remote, intent = await self._change(row, sel, records)
            if change is None:
                await self._finish(row, "skipped", intent, None)
                return
            async with asyncio.timeout(limit):  # not wait_for: no task of its own per delivery
                done = await connector.deliver(change, remote)
        except DeliveryError as exc:
            await self._failed(row, exc, exc.retryable, exc.retry_after)
            return
        except TimeoutError:
            await self._failed(row, DeliveryError(f"no answer within {limit:.0f} s",
                                                  retryable=True), True, None)
            return
        except GatewayError as exc:  # the local store, while reading the entity
            await self._failed(row, exc, exc.status >= 500, None)
            return
        except Exception as exc:  # noqa: BLE001 - a connector bug must not kill the loop
            log.exception("connector %s failed on delivery %s", row.connector, row.id)
            await self._failed(row, exc, True, None)
            return
        mapped = None if change.action == Action.DELETE else done.remote_id
        lag = max(0.0, (dt.datetime.now(dt.UTC) - _parse(row.created)).total_seconds())
        await self._finish(row, "done", intent, (row.connector, row.kind, row.entity_id, mapped),
                           counts=[(row.connector, "delivered", intent, 1),
                                   *lag_counts(row.connector, lag)])

    async def _change(self, row, sel: Selector, records: dict
                      ) -> tuple[Change | None, str | None, str]:
        """What to send for a delivery (None: nothing), the remote id, and why."""
        remote = row.mapped
        kind = EntityKind(row.kind)
        if row.action == "delete":
            if remote is None and (sel.roles or sel.rule is not None):
                return None, None, "never provisioned"
            return Change(kind, Action.DELETE, row.entity_id, row.source, None,
                          row.name or ""), remote, "deleted"
        key = (row.source, row.kind, row.entity_id)
        if key in records:
            rec = records[key]
        else:  # not read with its batch (that read failed): alone, so its error is its own
            store = self.stores.get(row.source)
            rec = (await store.get_user(row.entity_id, with_groups=True)
                   if kind == EntityKind.USER
                   else await store.get_group(row.entity_id, with_members=True))
        if rec is None:
            return None, None, "gone (its delete follows)"
        name_key = "userName" if kind == EntityKind.USER else "displayName"
        name = self.stores.qualify(row.source, rec.data[name_key])
        resource = {**rec.data, name_key: name, "id": rec.id}
        if kind == EntityKind.USER and not sel.selects_user(row.source, resource,
                                                            rec.groups or []):
            if remote is None:
                return None, None, "not selected"
            return Change(kind, Action.DELETE, row.entity_id, row.source, None, name), \
                remote, "deprovisioned"
        members = None
        if kind == EntityKind.GROUP:
            by_kind: dict[str, list[str]] = {}
            for m in rec.members or []:
                by_kind.setdefault(m.get("type", "User"), []).append(m["value"])
            members = {}
            for member_kind, ids in by_kind.items():
                members.update(await self.runner.read(queue.remote_ids_of, row.connector,
                                                      member_kind, ids))
            resource["members"] = [{"value": m["value"], "type": m.get("type", "User")}
                                   for m in rec.members or []]
        action = Action.CREATE if remote is None else Action.UPDATE
        return Change(kind, action, row.entity_id, row.source, resource, name,
                      member_remote_ids=members), remote, \
            "created" if remote is None else "updated"

    async def _finish(self, row, state: str, outcome: str | None, remote,
                      error: str | None = None, next_at: str | None = None,
                      counts: list[tuple] = ()) -> None:
        """Record how a delivery ended, without waiting for it: deliveries ending together
        share one transaction, and a slot is free for the next delivery at once. Until it
        is recorded the delivery stays ``inflight``, so its entity's next change waits."""
        self._finishes.append((row.id, state, outcome, error, next_at, remote, counts))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="outbound-finishes")

    async def _flush(self) -> None:
        while self._finishes:
            if self._task is not None and len(self._finishes) < self.cfg.concurrency:
                # a dispatcher's deliveries: more end meanwhile, one transaction for all (a
                # process without one only ends blocking deliveries: a reply waits for them)
                await asyncio.sleep(FLUSH_WAIT)
            batch, self._finishes = self._finishes, []
            try:
                results = await self.runner.write(queue.finish_many, self.owner, batch)
            except Exception:  # noqa: BLE001 - the leases run out: delivered again, idempotent
                log.exception("recording the end of %d deliveries failed; they go again when "
                              "their lease runs out", len(batch))
                continue
            lost = [item[0] for item, ok in zip(batch, results, strict=True) if not ok]
            if lost:
                log.warning("deliveries %s finished after their lease ran out", lost)

    async def _failed(self, row, exc: Exception, retryable: bool, retry_after) -> None:
        cfg = self.configs.get(row.connector)
        limit = (cfg.max_attempts if cfg is not None and cfg.max_attempts
                 else self.cfg.max_attempts)
        detail = getattr(exc, "detail", None) or f"{type(exc).__name__}: {exc}"
        counts = [(row.connector, "failures", "retryable" if retryable else "permanent", 1)]
        if not retryable or row.attempts >= limit:
            log.warning("delivery %s to %s is dead after %s attempt(s): %s", row.id,
                        row.connector, row.attempts, detail)
            await self._finish(row, "dead", "failed", None, detail[:2000], counts=counts)
            return
        delay = min(self.cfg.backoff_max_seconds,
                    self.cfg.backoff_base_seconds * 2 ** max(0, row.attempts - 1))
        delay *= random.uniform(0.5, 1.0)  # noqa: S311 - jitter
        if retry_after:
            delay = max(delay, float(retry_after))
        when = queue.stamp(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=delay))
        await self._finish(row, "pending", "retrying", None, detail[:2000], when, counts)

    # the pipeline's side -----------------------------------------------------------------------
    def blocking_for(self, domain: str, kind: str) -> list[str]:
        return [name for name in self.connectors
                if self.configs[name].blocking and self.selectors[name].takes_domain(domain)
                and self.selectors[name].takes_kind(kind)]

    async def committed(self, entity: ops.Entity, action: str, since: str) -> None:
        """After a change committed: queue it (stores without an outbox), wake the
        dispatcher, and wait for blocking connectors."""
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
        await self.fan_out()
        self.kick()
        await self.settle(store, entity.kind, entity.id, blocking, since)

    async def settle(self, store, kind: str, entity_id: str, connectors: list[str],
                     since: str) -> None:
        """Wait until the deliveries of this entity's latest change to ``connectors`` ended."""
        outbox = store.outbox
        deadline = time.monotonic() + self.cfg.blocking_timeout_seconds
        while True:
            rows = await self.runner.read(queue.latest_for, kind, entity_id, connectors, since)
            latest: dict[str, tuple] = {}
            for r in rows:  # newest first
                latest.setdefault(r.connector, r)
            failed = [(c, latest[c].last_error) for c in connectors
                      if c in latest and latest[c].state == "dead"]
            if failed:
                c, err = failed[0]
                raise ProvisioningFailed(f"The change was saved, but provisioning it to {c} "
                                         f"failed: {err}")
            open_ = [c for c in connectors if c in latest and latest[c].state
                     in queue.UNFINISHED]
            if any(c not in latest for c in connectors) and outbox is not None and \
                    await outbox.holds(kind, entity_id):
                open_ = open_ or ["(not fanned out yet)"]
            if not open_:  # delivered, or nothing changed that they take
                return
            if time.monotonic() > deadline:
                errors = "; ".join(f"{c}: {latest[c].last_error or 'not delivered yet'}"
                                   for c in open_ if c in latest) or "not delivered yet"
                raise ProvisioningFailed(
                    f"The change was saved, but provisioning it did not finish in "
                    f"{self.cfg.blocking_timeout_seconds:g} s ({errors}); it stays queued "
                    "and will be retried")
            if self._task is None:  # no dispatcher in this process: deliver them here
                await self._deliver_now(kind, entity_id, connectors)
            else:
                self.kick()
            await asyncio.sleep(SETTLE_POLL)

    async def _deliver_now(self, kind: str, entity_id: str, connectors: list[str]) -> None:
        """Claim and deliver this entity's due deliveries to ``connectors`` (those another
        process holds are left to it)."""
        rows = await self.runner.write(queue.claim, self.owner, len(connectors),
                                       self.cfg.lease_seconds, (kind, entity_id, connectors))
        if rows:
            await asyncio.gather(*(self._deliver(row, {}) for row in rows))


async def _settle_or_cancel(tasks: list[asyncio.Task], grace: float) -> None:
    """Let tasks end within ``grace`` seconds, then cancel what is left."""
    if not tasks:
        return
    _done, pending = await asyncio.wait(tasks, timeout=grace)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
