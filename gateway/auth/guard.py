"""Failed logins: throttling by account name and source address, and account lockout.

Every password check (HTTP Basic, WS-Security, SOAP ``authenticate``, an old
password) first asks :meth:`Guard.admit`: each account name and each source
address has a bucket of failures it may make (``[security] account_burst`` and
``address_burst``) that refills over time (``*_per_minute``); an empty bucket
refuses the login at once (429, a SOAP Client fault), before any password hash
is computed. A failure takes one from each bucket; ``lockout_attempts``
consecutive failures of one account lock it (the pipeline records the lock on
the account, as WSO2's ``accountLocked`` and ``unlockTime`` claims, and here),
for ``lockout_seconds``, each further lockout ``lockout_growth`` times longer.
A successful login clears the account's failures and lockouts.

The buckets live in the gateway's state database (table ``auth_failures``,
beside ``used_once``), so every worker and host sharing it counts the same
failures; keys are SHA-256 hashes (no names or addresses stored in clear).
Without a state database they are the process's own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Column, Float, Integer, String, Table, delete, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from gateway.database.engine import Runner

from .. import state
from ..config import SecurityConfig
from ..errors import ClientError
from ..once import key_of

MEMORY_LIMIT = 100_000

failures_table = Table(
    "auth_failures",
    state.metadata,
    Column("key", String(64), primary_key=True),
    Column("tokens", Float, nullable=False),  # failures still allowed, as of ``updated``
    Column("updated", Float, nullable=False),
    Column("failures", Integer, nullable=False, default=0),  # consecutive (accounts)
    Column("lockouts", Integer, nullable=False, default=0),  # automatic lockouts so far
    Column("locked_until", Float, nullable=False, default=0.0),
)


class Throttled(ClientError):
    status = 429
    default_detail = "Too many failed logins: try again later"


@dataclass
class Bucket:
    tokens: float
    updated: float
    failures: int = 0
    lockouts: int = 0
    locked_until: float = 0.0


@dataclass(frozen=True)
class Admission:
    """What :meth:`Guard.admit` found: the account's state, for what follows the check."""

    account: str | None  # None: not counted by name (API clients)
    source: str | None
    had_failures: bool
    locked_until: float  # an automatic lockout still running (0: none)


def _refill(bucket: Bucket, capacity: int, per_second: float, now: float) -> float:
    return min(float(capacity), bucket.tokens + max(0.0, now - bucket.updated) * per_second)


# SQL --------------------------------------------------------------------------------------
def _read(conn: Connection, keys: list[str]) -> dict[str, Bucket]:
    rows = conn.execute(select(failures_table).where(failures_table.c.key.in_(keys)))
    return {r.key: Bucket(r.tokens, r.updated, r.failures, r.lockouts, r.locked_until)
            for r in rows}


def _fail(conn: Connection, key: str, capacity: int, per_second: float, now: float
          ) -> Bucket:
    """One failure more for ``key``: its bucket after it."""
    t = failures_table
    for _ in range(2):  # a concurrent first failure may insert the row meanwhile
        row = conn.execute(select(t).where(t.c.key == key).with_for_update()).first()
        if row is None:
            bucket = Bucket(capacity - 1.0, now, 1)
            try:
                with conn.begin_nested():
                    conn.execute(t.insert().values(key=key, tokens=bucket.tokens, updated=now,
                                                   failures=1, lockouts=0, locked_until=0.0))
                return bucket
            except IntegrityError:
                continue
        old = Bucket(row.tokens, row.updated, row.failures, row.lockouts, row.locked_until)
        bucket = Bucket(_refill(old, capacity, per_second, now) - 1.0, now, old.failures + 1,
                        old.lockouts, old.locked_until)
        conn.execute(update(t).where(t.c.key == key).values(
            tokens=bucket.tokens, updated=now, failures=bucket.failures))
        return bucket
    raise RuntimeError("auth_failures: the row neither exists nor can be made")


def _fail_all(conn: Connection, counted: list[tuple[str, int, float]], now: float
              ) -> list[Bucket]:
    """One failure more for each (key, capacity, rate), in one transaction."""
    return [_fail(conn, key, capacity, rate, now) for key, capacity, rate in counted]


def _lock(conn: Connection, key: str, until: float) -> None:
    t = failures_table
    conn.execute(update(t).where(t.c.key == key).values(
        failures=0, lockouts=t.c.lockouts + 1, locked_until=until))


def _clear(conn: Connection, key: str) -> None:
    conn.execute(delete(failures_table).where(failures_table.c.key == key))


class Guard:
    def __init__(self, config: SecurityConfig):
        self.cfg = config
        self.runner: Runner | None = None
        self._memory: dict[str, Bucket] = {}
        self._empty: dict[str, float] = {}  # buckets known empty, until when

    async def start(self, runner: Runner | None) -> None:
        """Keep the buckets in ``runner``'s database (the state database), or here."""
        self.runner = runner
        if runner is not None:
            await runner.write(state.create)

    @staticmethod
    def account_key(name: str) -> str:
        return key_of("account", name.lower())

    @staticmethod
    def source_key(address: str) -> str:
        return key_of("address", address)

    def _limits(self, key: str, account: str) -> tuple[int, float]:
        if key == account:
            return self.cfg.account_burst, self.cfg.account_per_minute / 60
        return self.cfg.address_burst, self.cfg.address_per_minute / 60

    async def admit(self, name: str, source: str | None, by_name: bool = True) -> Admission:
        """Refuse (Throttled) a login whose account name (``by_name``) or source address
        has no failure left to make; else what is known of the account."""
        account = self.account_key(name)
        address = self.source_key(source) if source else None
        keys = ([account] if by_name else []) + ([address] if address else [])
        now = time.time()
        if any(self._empty.get(k, 0.0) > now for k in keys):
            raise Throttled()  # known empty until then: no need to read it again
        found = (await self.runner.read(_read, keys) if self.runner is not None
                 else {k: self._memory[k] for k in keys if k in self._memory})
        for key, bucket in found.items():
            capacity, rate = self._limits(key, account)
            tokens = _refill(bucket, capacity, rate, now)
            if tokens < 1.0:
                self._remember_empty(key, now + (1.0 - tokens) / rate)
                raise Throttled()
        mine = found.get(account)
        return Admission(account if by_name else None, address, mine is not None,
                         mine.locked_until if mine and mine.locked_until > now else 0.0)

    async def failed(self, admission: Admission) -> float:
        """Count a failed login; returns until when the account is now locked (0: it is
        not), when this failure completed ``lockout_attempts``."""
        now = time.time()
        counted = [(key, *self._limits(key, admission.account))
                   for key in (admission.account, admission.source) if key is not None]
        if self.runner is not None:
            buckets = await self.runner.write(_fail_all, counted, now)
        else:
            buckets = [self._fail_here(key, capacity, rate, now)
                       for key, capacity, rate in counted]
        bucket = buckets[0] if admission.account is not None else None
        attempts = self.cfg.lockout_attempts
        if not attempts or bucket is None or bucket.failures < attempts:
            return 0.0
        growth = self.cfg.lockout_growth ** min(bucket.lockouts, 64)  # no float overflow
        until = now + min(self.cfg.lockout_max_seconds, self.cfg.lockout_seconds * growth)
        if self.runner is not None:
            await self.runner.write(_lock, admission.account, until)
        else:
            b = self._memory[admission.account]
            b.failures, b.lockouts, b.locked_until = 0, b.lockouts + 1, until
        return until

    async def cleared(self, name: str) -> None:
        """The account signed in, or an administrator unlocked it: its failures end."""
        key = self.account_key(name)
        if self.runner is not None:
            await self.runner.write(_clear, key)
        else:
            self._memory.pop(key, None)

    def _remember_empty(self, key: str, until: float) -> None:
        """A bucket found empty stays so at least until it regains one failure (failures
        elsewhere only make that later): until then, this process refuses at once."""
        if len(self._empty) >= MEMORY_LIMIT:
            now = time.time()
            self._empty = {k: t for k, t in self._empty.items() if t > now}
        self._empty[key] = until

    def _fail_here(self, key: str, capacity: int, rate: float, now: float) -> Bucket:
        old = self._memory.get(key)
        if old is None:
            if len(self._memory) >= MEMORY_LIMIT:
                self._memory = {k: b for k, b in self._memory.items()
                                if _refill(b, capacity, rate, now) < capacity}
            bucket = Bucket(capacity - 1.0, now, 1)
        else:
            bucket = Bucket(_refill(old, capacity, rate, now) - 1.0, now, old.failures + 1,
                            old.lockouts, old.locked_until)
        self._memory[key] = bucket
        return bucket
