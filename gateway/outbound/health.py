"""Connector health, checked live on request and otherwise cached.

The admin API's connector listing shows the last result of each connector's check
(``Connector.health``) and when it was made, and starts a new check in the background
when that result is older than ``HEALTH_TTL`` (at most one per connector at a time): a
listing never waits for the targets, and never sends more than one check per minute
to each. ``check`` runs one live (``GET /admin/outbound/connectors/{name}/health``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from connectors.base import Connector

from ..model.times import stamp

HEALTH_TTL = 60.0  # seconds a check's result is shown before the next one is started
HEALTH_TIMEOUT = 5.0  # seconds a check may take


@dataclass(frozen=True)
class Health:
    up: bool
    status: str  # what the target said, or why it is down
    checked: str  # when (gateway.model.times)
    at: float  # time.monotonic() of the check


class HealthChecks:
    def __init__(self, connectors: dict[str, Connector]):
        self._connectors = connectors
        self._last: dict[str, Health] = {}
        self._running: dict[str, asyncio.Task] = {}

    def cached(self, name: str) -> Health | None:
        """The last result for ``name`` (None: never checked); a stale or missing one
        starts a check in the background."""
        last = self._last.get(name)
        if (last is None or time.monotonic() - last.at > HEALTH_TTL) and \
                name not in self._running and name in self._connectors:
            task = asyncio.create_task(self.check(name), name=f"health-{name}")
            self._running[name] = task
            task.add_done_callback(lambda _t, n=name: self._running.pop(n, None))
        return last

    async def check(self, name: str) -> Health:
        """Ask the connector's target now; the result is cached."""
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT):
                health = Health(True, await self._connectors[name].health(), stamp(),
                                time.monotonic())
        except TimeoutError:
            health = Health(False, f"down: no answer within {HEALTH_TIMEOUT:g} s", stamp(),
                            time.monotonic())
        except Exception as exc:  # noqa: BLE001 - health reports any failure
            detail = getattr(exc, "detail", None) or type(exc).__name__
            health = Health(False, f"down: {detail}", stamp(), time.monotonic())
        self._last[name] = health
        return health

    async def close(self) -> None:
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
