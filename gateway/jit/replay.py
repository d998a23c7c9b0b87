"""Tokens and assertions are accepted once: their ids are remembered until they expire.

The memory is per process and bounded (``[jit] replay_cache_size``); entries
leave in expiry order (a heap), so a full memory first drops what expired,
and if nothing did, the login is refused (rather than forgetting a live
entry, which would let a replay through). Providers bound how long an entry
must live (``max_age_seconds``: a token issued longer ago is refused
anyway). Several processes or hosts each have their own: a replay sent to
another process within the token's lifetime is not caught (docs/jit.md).
"""

from __future__ import annotations

import heapq
import time

from .errors import InvalidLogin


class ReplayCache:
    def __init__(self, size: int = 100_000, grace: float = 300.0):
        self.size = size
        self.grace = grace  # kept this much longer than the expiry (clock skew)
        self._seen: dict[str, float] = {}
        self._order: list[tuple[float, str]] = []  # (until, key), soonest first

    def _expire(self, now: float) -> None:
        while self._order and self._order[0][0] < now:
            until, key = heapq.heappop(self._order)
            if self._seen.get(key) == until:
                del self._seen[key]

    def use(self, key: str, expires: float) -> None:
        now = time.time()
        self._expire(now)
        until = self._seen.get(key)
        if until is not None and until >= now:
            raise InvalidLogin("This token or assertion was used already (replay)")
        if len(self._seen) >= self.size:
            raise InvalidLogin("Too many logins in flight; try again shortly")
        until = max(expires, now) + self.grace
        self._seen[key] = until
        heapq.heappush(self._order, (until, key))
