"""Async engines for the SQL store: SQLite (embedded default) and PostgreSQL.

SQLite runs in WAL mode with ``case_sensitive_like`` (so LIKE honours
caseExact and prefix searches can use indexes) and two engines: writes go
through one that opens ``BEGIN IMMEDIATE`` transactions, so that concurrent
writers (other tasks, other worker processes) queue on the database lock
instead of failing to upgrade a read lock; reads run in autocommit mode
(each SELECT sees a consistent snapshot on its own), which spares two
round trips to the driver's thread per request.
"""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.errors import ConfigError

SQLITE_BUSY_TIMEOUT_MS = 30_000


def _sqlite_engine(url: str, immediate: bool, pool_size: int) -> AsyncEngine:
    engine = create_async_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=60,
        # reads run without an explicit transaction (each SELECT is atomic on its own),
        # so there is nothing to roll back when a connection returns to the pool
        pool_reset_on_return="rollback" if immediate else None,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA case_sensitive_like=ON")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA cache_size=-65536")
        cur.close()

    if immediate:
        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def make_engines(url: str, pool_size: int = 8) -> tuple[AsyncEngine, AsyncEngine]:
    """(write engine, read engine) for a database URL."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # noqa: BLE001 - any parse failure is a config error
        raise ConfigError(f"not a database URL: {url!r}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.get_driver_name() != "aiosqlite":
            parsed = parsed.set(drivername="sqlite+aiosqlite")
        if parsed.database in (None, "", ":memory:"):
            raise ConfigError("SQLite needs a file (an in-memory database is not shared)")
        text = parsed.render_as_string(hide_password=False)
        return _sqlite_engine(text, True, 1), _sqlite_engine(text, False, pool_size)
    if backend == "postgresql":
        if parsed.get_driver_name() != "asyncpg":
            parsed = parsed.set(drivername="postgresql+asyncpg")
        try:
            import asyncpg  # noqa: F401
        except ImportError as exc:
            raise ConfigError(
                "PostgreSQL needs the 'postgres' extra: "
                "pip install 'provisioning-gateway[postgres]'"
            ) from exc
        engine = create_async_engine(
            parsed, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
        )
        return engine, engine
    raise ConfigError(f"unsupported database {backend!r}: use sqlite or postgresql")
