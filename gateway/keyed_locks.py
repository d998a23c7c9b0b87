"""One asyncio lock per key (an entity id), held only while someone wants it.

The pipeline applies the PATCHes of one entity in this process one after the
other: a PATCH reads the entity, applies its operations and writes it back on
the version it read, so two at once in one process would make one of them read
again (up to ``PATCH_RETRIES`` times). In turn, they never collide here; only
writers in other processes or hosts can still make a PATCH read again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class KeyedLocks:
    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)
