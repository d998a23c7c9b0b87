"""Tokens and assertions are accepted once: their ids are remembered until they expire.

The memory is per process and bounded; when it is full, the entries that
expired go, and if none did, the login is refused (rather than forgetting a
live entry, which would let a replay through). Several processes or hosts
each have their own: a replay sent to another process within the token's
lifetime is not caught (see docs/jit.md).
"""

from __future__ import annotations

import time

from .errors import InvalidLogin


class ReplayCache:
    def __init__(self, size: int = 100_000, grace: float = 300.0):
        self.size = size
        self.grace = grace  # kept this much longer than the expiry (clock skew)
        self._seen: dict[str, float] = {}

    def use(self, key: str, expires: float) -> None:
        now = time.time()
        until = self._seen.get(key)
        if until is not None and until >= now:
            raise InvalidLogin("This token or assertion was used already (replay)")
        if len(self._seen) >= self.size:
            self._seen = {k: v for k, v in self._seen.items() if v >= now}
            if len(self._seen) >= self.size:
                raise InvalidLogin("Too many logins in flight; try again shortly")
        self._seen[key] = max(expires, now) + self.grace
