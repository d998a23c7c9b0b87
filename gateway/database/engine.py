"""Where the SQL store's work runs: one round trip per store operation.

Every store operation is a plain synchronous function over a SQLAlchemy
``Connection`` (several statements, one transaction). A runner executes it:

- SQLite (embedded): a synchronous pysqlite engine, the whole operation in
  one hop to a thread pool, so the event loop never blocks and pays one
  thread switch per operation rather than one per statement and fetch (which
  is what an async driver costs: about ten per request, each a wake-up the
  scheduler of a busy machine may delay). Point reads (``read_point``: one
  user by id or name, found by a unique index) run on the event loop itself,
  on a connection of their own that never waits for a lock: they take tens of
  microseconds, several times less than the hop, and a database that is busy
  sends them to the pool instead. WAL mode, ``case_sensitive_like``
  (so LIKE honours caseExact and prefix searches can use indexes). Writes go
  through one connection opening ``BEGIN IMMEDIATE`` transactions, so
  concurrent writers (tasks here, other worker processes) queue on the
  database lock instead of failing to upgrade a read lock; reads run in
  autocommit mode, each SELECT a consistent snapshot of its own.
  Checkpoints (copying the WAL into the database file, and the only fsync in
  WAL mode with ``synchronous=NORMAL``) run in a thread of their own while
  there are writes, not inside a request's commit: SQLite's automatic one
  runs in the commit that crosses 1,000 pages, and a slow fsync then held
  every write behind it (stalls of 0.1 to 1 s at 500 writes/s on a busy
  disk, see bench/README.md). The automatic one stays as a safety net, at
  ``WAL_AUTOCHECKPOINT`` pages.
- PostgreSQL: the asyncpg driver, the same function run through
  ``AsyncConnection.run_sync``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.errors import ConfigError

log = logging.getLogger("gateway.store")

SQLITE_BUSY_TIMEOUT_MS = 30_000
WAL_AUTOCHECKPOINT = 16_384  # pages (64 MiB): only if the background checkpoints fall behind
CHECKPOINT_SECONDS = 0.5  # between background checkpoints, while there are writes
T = TypeVar("T")


class Runner:
    dialect: str
    url: str = ""  # the database URL it was made for (make_runner)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        raise NotImplementedError

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        raise NotImplementedError

    async def read_point(self, fn: Callable[..., T], *args: Any) -> T:
        """A read of a few rows found by a unique index (a user by id or name): where the
        backend can do it faster than ``read``, done so; the same result."""
        return await self.read(fn, *args)

    async def close(self) -> None:
        raise NotImplementedError


def _sqlite_engine(url, immediate: bool, pool_size: int,
                   busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> Engine:
    engine = create_engine(
        url,
        connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False},
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=60,
        # reads run without an explicit transaction: nothing to roll back on return
        pool_reset_on_return="rollback" if immediate else None,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA case_sensitive_like=ON")
        cur.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cur.execute("PRAGMA cache_size=-16384")  # 16 MiB per connection; the OS caches the rest
        cur.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT}")
        cur.close()

    if immediate:
        @event.listens_for(engine, "begin")
        def _on_begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class SQLiteRunner(Runner):
    """SQLite's writes are serialised anyway (one database lock): operations that arrive
    while the writer is busy are written together, each in a savepoint of its own inside
    one transaction, so that many concurrent writes share one commit and one thread hop.
    Each still succeeds or fails alone; if the shared commit fails, all of them fail."""

    dialect = "sqlite"
    MAX_GROUP = 64

    def __init__(self, url, pool_size: int):
        self._writer = _sqlite_engine(url, True, 1)
        self._reader = _sqlite_engine(url, False, pool_size)
        self._write_pool = ThreadPoolExecutor(1, thread_name_prefix="sqlite-write")
        self._read_pool = ThreadPoolExecutor(pool_size, thread_name_prefix="sqlite-read")
        self._pending: list[tuple[Callable, tuple, asyncio.Future]] = []
        self._drainer: asyncio.Task | None = None
        # point reads on the event loop itself: a lookup by a unique index on a WAL
        # database takes tens of microseconds, several times less than the hop to a
        # thread and back; it never waits for the lock (a busy database sends it to
        # the thread pool instead)
        self._inline = _sqlite_engine(url, False, 1, busy_timeout_ms=0)
        self._inline_conn: Connection | None = None  # kept open: only the loop uses it
        self._checkpoint_engine = _sqlite_engine(url, False, 1)
        self._checkpoint_pool = ThreadPoolExecutor(1, thread_name_prefix="sqlite-checkpoint")
        self._checkpointer: asyncio.Task | None = None
        self._written = False  # since the last checkpoint

    def _checkpoint(self) -> None:
        """A PASSIVE checkpoint: copies what it can without waiting for readers or
        writers, who go on meanwhile (its fsync holds no lock they need)."""
        with self._checkpoint_engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    async def _checkpoints(self) -> None:
        """Every ``CHECKPOINT_SECONDS`` while there were writes; ends when there were
        none (the next write starts it again)."""
        loop = asyncio.get_running_loop()
        try:
            while self._written:
                await asyncio.sleep(CHECKPOINT_SECONDS)
                self._written = False
                try:
                    await loop.run_in_executor(self._checkpoint_pool, self._checkpoint)
                except Exception as exc:  # noqa: BLE001 - the automatic checkpoint remains
                    log.warning("SQLite checkpoint failed: %s", exc)
        finally:
            self._checkpointer = None

    def _read(self, fn, args):
        with self._reader.connect() as conn:
            return fn(conn, *args)

    def _write_group(self, group: list) -> list[tuple[bool, Any]]:
        """Run a group of write operations: (True, result) or (False, exception) each."""
        if len(group) == 1:
            fn, args, _ = group[0]
            try:
                with self._writer.begin() as conn:
                    return [(True, fn(conn, *args))]
            except Exception as exc:  # noqa: BLE001 - handed to the waiting caller
                return [(False, exc)]
        out: list[tuple[bool, Any]] = []
        with self._writer.begin() as conn:
            # each in a savepoint of its own, written straight to the driver: SQLAlchemy's
            # begin_nested costs about 50 us a savepoint, more than a whole create_user
            raw = conn.connection.dbapi_connection
            for fn, args, _ in group:
                raw.execute("SAVEPOINT gateway_op")
                try:
                    result = fn(conn, *args)
                except Exception as exc:  # noqa: BLE001 - handed to the waiting caller
                    raw.execute("ROLLBACK TO gateway_op")
                    raw.execute("RELEASE gateway_op")
                    out.append((False, exc))
                    continue
                raw.execute("RELEASE gateway_op")
                out.append((True, result))
        return out

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                group = self._pending[:self.MAX_GROUP]
                del self._pending[:self.MAX_GROUP]
                try:
                    results = await loop.run_in_executor(self._write_pool, self._write_group,
                                                         group)
                except Exception as exc:  # noqa: BLE001 - the shared commit failed
                    results = [(False, exc)] * len(group)
                for (_fn, _args, future), (ok, value) in zip(group, results, strict=True):
                    if future.done():
                        continue
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(value)
        finally:
            self._drainer = None

    async def read(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(
            self._read_pool, self._read, fn, args)

    async def read_point(self, fn, *args):
        conn = self._inline_conn
        if conn is None or conn.closed:
            conn = self._inline_conn = self._inline.connect()
        try:
            return fn(conn, *args)
        except OperationalError as exc:
            if not _busy(exc):
                raise
        finally:
            if conn.in_transaction():  # autocommit reads: nothing to keep
                conn.rollback()
        return await self.read(fn, *args)

    async def write(self, fn, *args):
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((fn, args, future))
        if self._drainer is None:
            self._drainer = loop.create_task(self._drain())
        self._written = True
        if self._checkpointer is None:
            self._checkpointer = loop.create_task(self._checkpoints())
        return await future

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        if self._drainer is not None:
            await self._drainer
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpointer
        for pool in (self._write_pool, self._read_pool, self._checkpoint_pool):
            await loop.run_in_executor(None, pool.shutdown, True)
        if self._inline_conn is not None:
            self._inline_conn.close()
            self._inline_conn = None
        self._writer.dispose()
        self._reader.dispose()
        self._inline.dispose()
        self._checkpoint_engine.dispose()


class AsyncRunner(Runner):
    dialect = "postgresql"

    def __init__(self, url, pool_size: int):
        self._engine = create_async_engine(
            url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)

    async def read(self, fn, *args):
        async with self._engine.connect() as conn:
            return await conn.run_sync(fn, *args)

    async def write(self, fn, *args):
        async with self._engine.begin() as conn:
            return await conn.run_sync(fn, *args)

    async def close(self) -> None:
        await self._engine.dispose()


def _busy(exc: OperationalError) -> bool:
    """SQLite could not read now (the database is locked or busy): worth waiting for."""
    text_ = str(exc.orig).lower() if exc.orig is not None else ""
    return "locked" in text_ or "busy" in text_


def schema_lock(conn: Connection) -> None:
    """Serialise schema creation (``create_all``) of processes starting at once against one
    PostgreSQL database (``gateway serve`` and its dispatcher process, several workers or
    hosts): held until the transaction ends. SQLite's writes are serialised anyway."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(7164937)"))


def make_runner(url: str, pool_size: int = 8) -> Runner:
    try:
        parsed = make_url(url)
    except Exception as exc:  # noqa: BLE001 - any parse failure is a config error
        raise ConfigError(f"not a database URL: {url!r}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise ConfigError("SQLite needs a file (an in-memory database is not shared)")
        runner = SQLiteRunner(parsed.set(drivername="sqlite+pysqlite"), pool_size)
        runner.url = url
        return runner
    if backend == "postgresql":
        try:
            import asyncpg  # noqa: F401
        except ImportError as exc:
            raise ConfigError(
                "PostgreSQL needs the 'postgres' extra: "
                "pip install 'provisioning-gateway[postgres]'"
            ) from exc
        runner = AsyncRunner(parsed.set(drivername="postgresql+asyncpg"), pool_size)
        runner.url = url
        return runner
    raise ConfigError(f"unsupported database {backend!r}: use sqlite or postgresql")


__all__ = ["Connection", "Runner", "make_runner", "schema_lock"]
