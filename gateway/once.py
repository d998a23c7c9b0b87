"""What may be accepted once only, across every worker and host: WS-Security nonces,
OIDC ID tokens and SAML assertions.

Each is remembered by a key (a SHA-256 of what identifies it) until it expires, in
the table ``used_once`` of the gateway's state database (the one the outbound queue
and JIT links use), so a replay sent to another process or host sharing that
database is refused as well. Inserting the key is the check: the primary key lets
exactly one insert win. An expired key may be taken again; expired rows are
deleted every ``PURGE_EVERY`` uses.

Without a state database (a non-SQL PRIMARY and no ``[outbound] database``), keys
are remembered by the process alone, as a bounded map.
"""

from __future__ import annotations

import hashlib
import time

from sqlalchemy import Column, Float, String, Table, delete, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from gateway.database.engine import Runner

from . import state

PURGE_EVERY = 1000
MEMORY_LIMIT = 100_000

used_once = Table(
    "used_once",
    state.metadata,
    Column("key", String(64), primary_key=True),
    Column("until", Float, nullable=False, index=True),
)


def _take(conn: Connection, key: str, until: float, now: float) -> bool:
    """Whether ``key`` was free (never used, or expired) and is now taken until ``until``."""
    try:
        with conn.begin_nested():
            conn.execute(used_once.insert().values(key=key, until=until))
        return True
    except IntegrityError:
        taken = conn.execute(update(used_once).where(used_once.c.key == key,
                                                     used_once.c.until < now)
                             .values(until=until))
        return taken.rowcount == 1


def _purge(conn: Connection, now: float) -> None:
    conn.execute(delete(used_once).where(used_once.c.until < now))


def key_of(*parts: bytes | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(4, "big") + data)
    return digest.hexdigest()


class Once:
    """``await once.use(key, until)``: True the first time a key is used before it
    expires, False for every later use (a replay)."""

    def __init__(self, runner: Runner | None):
        self.runner = runner
        self._uses = 0
        self._memory: dict[str, float] = {}

    async def start(self) -> None:
        if self.runner is not None:
            await self.runner.write(state.create)

    async def use(self, key: str, until: float) -> bool:
        now = time.time()
        if self.runner is None:
            return self._use_here(key, until, now)
        self._uses += 1
        if self._uses % PURGE_EVERY == 0:
            await self.runner.write(_purge, now)
        return await self.runner.write(_take, key, until, now)

    def _use_here(self, key: str, until: float, now: float) -> bool:
        if self._memory.get(key, 0) >= now:
            return False
        if len(self._memory) >= MEMORY_LIMIT:
            self._memory = {k: v for k, v in self._memory.items() if v >= now}
            if len(self._memory) >= MEMORY_LIMIT:
                return False  # full of live keys: refuse rather than forget one
        self._memory[key] = until
        return True
