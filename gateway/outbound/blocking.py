"""Blocking connectors: the inbound reply waits for the change's delivery, within a deadline.

A change that a ``blocking = true`` connector takes makes its reply wait until that
connector's delivery of it ended, for at most ``blocking_timeout_seconds`` counted from
the change (the ``since`` mark the pipeline takes before writing it; every entity one
request changes shares it, so a user and its groups wait within one deadline). A
delivery that failed (dead), or that did not end in time, is ``ProvisioningFailed``: the
reply is an error (SCIM 502, a SOAP Server fault) saying that the change was saved and
stays queued. A delivery still running at the deadline is not cancelled: it goes on
in the background, and its end is recorded as any other's.

In a process without a dispatcher of its own (``gateway serve``'s HTTP workers, whose
dispatcher is a process of its own) the worker claims and makes that entity's
deliveries itself, so the reply never waits for the dispatcher's next poll.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable

from ..config import OutboundConfig
from ..errors import GatewayError
from . import queue

SETTLE_POLL = 0.02  # seconds between looks at the deliveries a reply waits for


class ProvisioningFailed(GatewayError):
    """The change was saved locally, but a blocking connector did not take it (yet)."""

    status = 502
    soap_fault = "Server"
    default_detail = "The change was saved, but provisioning it failed"


def deadline(since: str, seconds: float) -> float:
    """The ``time.monotonic()`` by which a reply for a change made at ``since`` (a
    ``gateway.model.times`` stamp; empty: now) must come."""
    left = seconds
    if since:
        at = dt.datetime.fromisoformat(since)
        at = at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)
        left -= max(0.0, (dt.datetime.now(dt.UTC) - at).total_seconds())
    return time.monotonic() + left


class BlockingWait:
    """Waits for an entity's deliveries to blocking connectors.

    ``start``: starts one claimed delivery as a task of the service (so that it runs on
    after a deadline, and a stopping service ends it); None when the service runs a
    dispatcher of its own, which is then only woken (``kick``)."""

    def __init__(self, cfg: OutboundConfig, runner, owner: str, kick: Callable[[], None],
                 start: Callable[[object], asyncio.Task] | None):
        self.cfg = cfg
        self.runner = runner
        self.owner = owner
        self.kick = kick
        self.start = start

    async def settle(self, outbox, kind: str, entity_id: str, connectors: list[str],
                     since: str, by: float) -> None:
        """Wait until the deliveries of this entity's latest change to ``connectors``
        ended, until ``by`` (``time.monotonic()``) at most."""
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
            left = by - time.monotonic()
            if left <= 0:
                errors = "; ".join(f"{c}: {_state(latest[c])}" for c in open_ if c in latest)
                raise ProvisioningFailed(
                    f"The change was saved, but provisioning it did not finish in "
                    f"{self.cfg.blocking_timeout_seconds:g} s ({errors or 'not delivered yet'}"
                    "); it stays queued and will be delivered")
            if self.start is not None:  # no dispatcher in this process: deliver them here
                await self._deliver_now(kind, entity_id, connectors, by)
            else:
                self.kick()
            await asyncio.sleep(max(0.0, min(SETTLE_POLL, by - time.monotonic())))

    async def _deliver_now(self, kind: str, entity_id: str, connectors: list[str],
                           by: float) -> None:
        """Claim and make this entity's due deliveries to ``connectors`` (those another
        process holds are left to it); wait for them until ``by`` at most."""
        rows = await self.runner.write(queue.claim, self.owner, len(connectors),
                                       self.cfg.lease_seconds, (kind, entity_id, connectors))
        if rows:
            await asyncio.wait([self.start(row) for row in rows],
                               timeout=max(0.0, by - time.monotonic()))


def _state(row) -> str:
    if row.state == "inflight":
        return "still being delivered"
    return row.last_error or "not delivered yet"
