"""Logins remembered by one process end soon after credentials change in another.

A process remembers a successful login for ``[auth] cache_seconds``. When a
password, an account's state (disabled, locked) or a membership changes, the
process that made the change forgets at once, and bumps a counter in the state
database (table ``login_epoch``); every process reads that counter at most once
a second, at its next authentication, and forgets the store users' logins it
remembers when the counter moved. So a user disabled through one worker or host
is refused by all within about a second, not within ``cache_seconds``.

A user's own change bumps at once; membership changes, which come in bursts,
are folded into one bump every ``COALESCE_SECONDS``. Without a state database
each process only forgets its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from sqlalchemy import Column, Integer, String, Table, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from gateway.database.engine import Runner

from .. import state

CHECK_SECONDS = 1.0
COALESCE_SECONDS = 0.5

login_epoch = Table(
    "login_epoch",
    state.metadata,
    Column("name", String(32), primary_key=True),
    Column("value", Integer, nullable=False),
)


def _create(conn: Connection) -> None:
    state.create(conn)
    try:
        with conn.begin_nested():
            conn.execute(login_epoch.insert().values(name="logins", value=0))
    except IntegrityError:
        pass  # there already


def _bump(conn: Connection) -> int:
    """Move the counter on; its new value."""
    conn.execute(update(login_epoch).where(login_epoch.c.name == "logins")
                 .values(value=login_epoch.c.value + 1))
    return _read(conn)


def _read(conn: Connection) -> int:
    return conn.execute(select(login_epoch.c.value)
                        .where(login_epoch.c.name == "logins")).scalar_one_or_none() or 0


class LoginEpoch:
    def __init__(self) -> None:
        self.runner: Runner | None = None
        self._seen: int | None = None
        self._checked = 0.0
        self._pending: asyncio.Task | None = None

    async def start(self, runner: Runner | None) -> None:
        self.runner = runner
        if runner is not None:
            await runner.write(_create)
            self._seen = await runner.read(_read)
            self._checked = time.monotonic()

    async def stop(self) -> None:
        """A coalesced bump still waiting is dropped: the other processes then learn of
        those membership changes within their ``cache_seconds``, as without the epoch."""
        if self._pending is not None:
            self._pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pending

    async def bump(self) -> None:
        """Tell the other processes now."""
        await self._write()

    def bump_soon(self) -> None:
        """Tell the other processes within ``COALESCE_SECONDS``, with what else comes."""
        if self.runner is not None and self._pending is None:
            self._pending = asyncio.get_running_loop().create_task(self._later())

    async def _later(self) -> None:
        await asyncio.sleep(COALESCE_SECONDS)
        self._pending = None
        await self._write()

    async def _write(self) -> None:
        if self.runner is None:
            return
        value = await self.runner.write(_bump)
        # this process's own bump is no news to it (it forgot what it had to already);
        # when another process bumped meanwhile, the next look still sees that
        if self._seen is not None and value == self._seen + 1:
            self._seen = value

    async def moved(self) -> bool:
        """Whether another process changed credentials since this one last looked (looks
        at most every ``CHECK_SECONDS``)."""
        if self.runner is None or time.monotonic() - self._checked < CHECK_SECONDS:
            return False
        self._checked = time.monotonic()
        value = await self.runner.read(_read)
        moved = self._seen is not None and value != self._seen
        self._seen = value
        return moved
