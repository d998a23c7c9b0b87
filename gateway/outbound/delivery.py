"""One delivery: a claimed queue row becomes a connector call, and its end is recorded.

The connector gets the entity as it is *now* (read when its delivery was claimed), so a
retried or late delivery never sends stale data, and the connector's selection (roles,
rule) is judged on it then. Its remote id comes with the claim (``row.mapped``): an id,
None (never provisioned), or ``queue.MAYBE``: an earlier attempt's outcome is unknown
and the entity may be at the target. Such a delivery is ``uncertain``: a create looks
the entity up before creating it (so a retry never makes a second one, even where
names are not unique), and a delete, a deprovisioning, or a create whose entity is gone
here looks it up and removes it (so a create whose answer was lost leaves no phantom).

A delivery that fails after its request may have left, or that does not end within
half of ``lease_seconds``, marks its entity ``MAYBE`` (where no id is known).

Failures are retried with exponential backoff and jitter until ``max_attempts``, after
which a delivery is ``dead``; permanent failures are dead at once. The end of each
delivery is recorded without waiting for it: deliveries ending together share one
transaction (``queue.finish_many``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random

from connectors.base import Action, Change, Connector, DeliveryError, EntityKind
from userstores.registry import Stores

from ..config import OutboundConfig
from ..errors import GatewayError
from . import queue
from .selection import Selector

log = logging.getLogger("gateway.outbound")

FLUSH_WAIT = 0.02  # seconds the end of a delivery waits to be recorded with others


def lag_counts(connector: str, seconds: float) -> list[tuple[str, str, str, float]]:
    """The counter increments of one delivery made ``seconds`` after its commit."""
    bucket = next((f"{b:g}" for b in queue.LAG_BUCKETS if seconds <= b), "+Inf")
    return [(connector, "lag_bucket", bucket, 1), (connector, "lag_sum", "", seconds),
            (connector, "lag_count", "", 1)]


def _parse(stamp: str) -> dt.datetime:
    """A commit time as the stores write it (ISO 8601, UTC, ``Z``)."""
    at = dt.datetime.fromisoformat(stamp)
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)


class Deliverer:
    """Makes claimed deliveries and records how they ended.

    ``batching``: whether ends wait a moment to be recorded together (a dispatcher's);
    a process without a dispatcher only makes blocking deliveries, whose replies wait.
    """

    def __init__(self, cfg: OutboundConfig, stores: Stores, runner, owner: str,
                 connectors: dict[str, Connector], selectors: dict[str, Selector],
                 batching: bool):
        self.cfg = cfg
        self.stores = stores
        self.runner = runner
        self.owner = owner
        self.connectors = connectors
        self.selectors = selectors
        self.configs = {c.name: c for c in cfg.active}
        self.batching = batching
        # a delivery (every request it makes) ends before its lease can run out, so that
        # no other process takes it while it still runs (docs/outbound.md, Failures)
        self.limit = cfg.lease_seconds / 2
        self._finishes: list[tuple] = []  # ended deliveries waiting to be recorded
        self._flusher: asyncio.Task | None = None

    async def deliver(self, row, records: dict) -> None:
        connector = self.connectors.get(row.connector)
        if connector is None:  # no longer configured
            self._finish(row, "cancelled", "connector not configured", None)
            return
        sel = self.selectors[row.connector]
        change = None
        try:
            change, remote, intent, name = await self._change(row, sel, records)
            if change is None:
                self._finish(row, "skipped", intent, None, name=name)
                return
            async with asyncio.timeout(self.limit):  # not wait_for: no task of its own
                done = await connector.deliver(change, remote)
        except DeliveryError as exc:
            self._failed(row, change, exc, exc.retryable, exc.retry_after)
            return
        except TimeoutError:
            self._failed(row, change, DeliveryError(
                f"no answer within {self.limit:g} s (half of lease_seconds)",
                retryable=True), True, None)
            return
        except GatewayError as exc:  # the local store, while reading the entity
            self._failed(row, change, exc, exc.status >= 500, None)
            return
        except Exception as exc:  # noqa: BLE001 - a connector bug must not kill the loop
            log.exception("connector %s failed on delivery %s", row.connector, row.id)
            self._failed(row, change, exc, True, None)
            return
        mapped = None if change.action == Action.DELETE else done.remote_id
        lag = max(0.0, (dt.datetime.now(dt.UTC) - _parse(row.created)).total_seconds())
        self._finish(row, "done", intent, (row.connector, row.kind, row.entity_id, mapped),
                     counts=[(row.connector, "delivered", intent, 1),
                             *lag_counts(row.connector, lag)], name=name)

    async def _change(self, row, sel: Selector, records: dict
                      ) -> tuple[Change | None, str | None, str, str | None]:
        """What to send for a delivery (None: nothing), the remote id, why, and the
        entity's name."""
        remote = row.mapped or None
        uncertain = row.mapped == queue.MAYBE
        kind = EntityKind(row.kind)

        def change(action: Action, resource: dict | None, name: str, **more) -> Change:
            # externalId: the local id, so that the target's copy is found exactly
            return Change(kind, action, row.entity_id, row.source, resource, name,
                          uncertain=uncertain, external_id=row.entity_id, **more)

        if row.action == "delete":
            if remote is None and not uncertain and (sel.roles or sel.rule is not None):
                return None, None, "never provisioned", None
            return change(Action.DELETE, None, row.name or ""), remote, "deleted", None
        key = (row.source, row.kind, row.entity_id)
        if key in records:
            rec = records[key]
        else:  # not read with its batch (that read failed): alone, so its error is its own
            store = self.stores.get(row.source)
            rec = (await store.get_user(row.entity_id, with_groups=True)
                   if kind == EntityKind.USER
                   else await store.get_group(row.entity_id, with_members=True))
        if rec is None:  # gone here: a copy it may have at the target goes now
            if remote is None and not (uncertain and row.name):
                return None, None, ("gone (its delete follows and looks it up)" if uncertain
                                    else "gone (its delete follows)"), None
            return change(Action.DELETE, None, row.name or ""), remote, "deleted (gone)", None
        name_key = "userName" if kind == EntityKind.USER else "displayName"
        name = self.stores.qualify(row.source, rec.data[name_key])
        resource = {**rec.data, name_key: name, "id": rec.id}
        if kind == EntityKind.USER and not sel.selects_user(row.source, resource,
                                                            rec.groups or []):
            if remote is None and not uncertain:
                return None, None, "not selected", name
            return change(Action.DELETE, None, name), remote, "deprovisioned", name
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
        return change(action, resource, name, member_remote_ids=members), remote, \
            "created" if remote is None else "updated", name

    # recording ---------------------------------------------------------------------------------
    def _finish(self, row, state: str, outcome: str | None, remote,
                error: str | None = None, next_at: str | None = None,
                counts: list[tuple] = (), name: str | None = None) -> None:
        """Record how a delivery ended, without waiting for it: deliveries ending together
        share one transaction, and a slot is free for the next delivery at once. Until it
        is recorded the delivery stays ``inflight``, so its entity's next change waits."""
        self._finishes.append((row.id, state, outcome, error, next_at, remote, counts,
                               None if row.name else name))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="outbound-finishes")

    async def _flush(self) -> None:
        while self._finishes:
            if self.batching and len(self._finishes) < self.cfg.concurrency:
                # a dispatcher's deliveries: more end meanwhile, one transaction for all
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

    def flusher(self) -> asyncio.Task | None:
        """The task recording ends, while it runs (a stopping service lets it finish)."""
        return self._flusher

    def _failed(self, row, change: Change | None, exc: Exception, retryable: bool,
                retry_after) -> None:
        cfg = self.configs.get(row.connector)
        limit = (cfg.max_attempts if cfg is not None and cfg.max_attempts
                 else self.cfg.max_attempts)
        detail = getattr(exc, "detail", None) or f"{type(exc).__name__}: {exc}"
        counts = [(row.connector, "failures", "retryable" if retryable else "permanent", 1)]
        # a create or update that may have reached the target without an id coming back
        remote = None
        if change is not None and change.action != Action.DELETE and row.mapped is None:
            remote = (row.connector, row.kind, row.entity_id, queue.MAYBE)
        if not retryable or row.attempts >= limit:
            log.warning("delivery %s to %s is dead after %s attempt(s): %s", row.id,
                        row.connector, row.attempts, detail)
            self._finish(row, "dead", "failed", remote, detail[:2000], counts=counts)
            return
        delay = min(self.cfg.backoff_max_seconds,
                    self.cfg.backoff_base_seconds * 2 ** max(0, row.attempts - 1))
        delay *= random.uniform(0.5, 1.0)  # noqa: S311 - jitter
        if retry_after:
            delay = max(delay, float(retry_after))
        when = queue.stamp(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=delay))
        self._finish(row, "pending", "retrying", remote, detail[:2000], when, counts)
