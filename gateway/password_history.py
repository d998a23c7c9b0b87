"""Password history: a new password may not be one of an account's last N
(``[passwords] history``; 0, the default, keeps none).

The current password is the store's own hash; when a new one replaces it, the
replaced hash is remembered in the table ``password_history`` of the state
database (the one the outbound queue, ``used_once`` and ``auth_failures`` use),
so every worker and host sees the same history. Only the N - 1 most recent of
each account are kept, and an account's history goes with the account. So the
history holds whatever set the password (SCIM, SOAP, Bulk, JIT, ``gateway
import``). A new password is compared with the current hash and each remembered
one (at most N argon2 verifications, off the event loop); one that matches is
refused like any password the policy does not allow: SCIM 400 ``invalidValue``,
and over SOAP WSO2's coded fault (``22001``). Directories (LDAP stores) keep passwords and
their history themselves (``pwdInHistory``): the gateway remembers nothing of
theirs.

Without a state database (a non-SQL PRIMARY and no ``[outbound] database``), the
history is the process's own, bounded.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from sqlalchemy import Column, Float, String, Table, Text, delete, select
from sqlalchemy.engine import Connection

from gateway.database.engine import Runner

from . import state
from .errors import InvalidValue
from .passwords import Passwords

MEMORY_ACCOUNTS = 100_000

history_table = Table(
    "password_history",
    state.metadata,
    Column("domain", String(64), primary_key=True),
    Column("user_id", String(64), primary_key=True),
    Column("set_at", Float, primary_key=True),
    Column("hash", Text, nullable=False),
)


class PasswordReused(InvalidValue):
    wso2_code = "22001 -"
    default_detail = ("This password has been used in recent history. Please choose a "
                      "different password")


def _recent(conn: Connection, domain: str, user_id: str, depth: int) -> list[str]:
    t = history_table.c
    return [row.hash for row in conn.execute(
        select(t.hash).where(t.domain == domain, t.user_id == user_id)
        .order_by(t.set_at.desc()).limit(depth))]


def _remember(conn: Connection, domain: str, user_id: str, password_hash: str,
              keep: int) -> None:
    t = history_table.c
    newest = conn.execute(select(t.set_at).where(t.domain == domain, t.user_id == user_id)
                          .order_by(t.set_at.desc()).limit(1)).scalar()
    at = max(time.time(), (newest or 0.0) + 1e-6)  # strictly after the previous one
    conn.execute(history_table.insert().values(domain=domain, user_id=user_id, set_at=at,
                                               hash=password_hash))
    oldest_kept = conn.execute(select(t.set_at).where(t.domain == domain, t.user_id == user_id)
                               .order_by(t.set_at.desc()).offset(keep - 1).limit(1)).scalar()
    if oldest_kept is not None:
        conn.execute(delete(history_table).where(t.domain == domain, t.user_id == user_id,
                                                 t.set_at < oldest_kept))


def _forget(conn: Connection, domain: str, user_id: str) -> None:
    t = history_table.c
    conn.execute(delete(history_table).where(t.domain == domain, t.user_id == user_id))


class PasswordHistory:
    """``check`` a new password against the current hash and the remembered ones,
    ``superseded`` once it replaced the current one, ``forget`` when the account is
    deleted; all no-ops with a depth of 0."""

    def __init__(self, depth: int, passwords: Passwords):
        self.depth = depth
        self.passwords = passwords
        self.runner: Runner | None = None
        self._memory: OrderedDict[tuple[str, str], list[str]] = OrderedDict()

    async def start(self, runner: Runner | None) -> None:
        """Keep the history in the state database ``runner`` (None: in this process)."""
        self.runner = runner
        if runner is not None and self.depth > 1:
            await runner.write(state.create)

    async def check(self, domain: str, user_id: str, current: str | None,
                    password: str) -> None:
        """PasswordReused when ``password`` is the current one (its hash ``current``) or
        one of the ``depth`` - 1 before it."""
        if not self.depth:
            return
        earlier = await self._earlier(domain, user_id) if self.depth > 1 else []
        for stored in ([current] if current else []) + earlier:
            if await self.passwords.verify(stored, password):
                raise PasswordReused()

    async def _earlier(self, domain: str, user_id: str) -> list[str]:
        if self.runner is not None:
            return await self.runner.read(_recent, domain, user_id, self.depth - 1)
        return list(reversed(self._memory.get((domain, user_id), [])))

    async def superseded(self, domain: str, user_id: str, previous: str | None) -> None:
        """The password whose hash is ``previous`` was just replaced: remember it."""
        if self.depth < 2 or not previous:
            return
        keep = self.depth - 1
        if self.runner is not None:
            await self.runner.write(_remember, domain, user_id, previous, keep)
            return
        key = (domain, user_id)
        kept = [*self._memory.pop(key, []), previous][-keep:]
        self._memory[key] = kept
        while len(self._memory) > MEMORY_ACCOUNTS:
            self._memory.popitem(last=False)

    async def forget(self, domain: str, user_id: str) -> None:
        if self.depth < 2:
            return
        if self.runner is not None:
            await self.runner.write(_forget, domain, user_id)
        else:
            self._memory.pop((domain, user_id), None)
