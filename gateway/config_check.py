"""``gateway config check``: each store reached and described, nothing changed.

A SQL store is read without creating its file or a table (SQLite opened read-only);
the other stores' ``open`` only connects. Connector types are checked against the
installed connectors.
"""

from __future__ import annotations

import asyncio
import os

from .config import Config
from .errors import ConfigError, GatewayError


def _sqlite_probe(path: str) -> str:
    """What a SQLite store's file holds, read-only (nothing created, not even the file)."""
    import sqlite3
    from urllib.parse import quote

    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    if path in ("", ":memory:"):
        raise ConfigError("SQLite needs a file (an in-memory database is not shared)")
    file = os.path.abspath(path)
    if not os.path.exists(file):
        folder = os.path.dirname(file)
        if not os.path.isdir(folder):
            raise ConfigError(f"{path}: the folder {folder} does not exist")
        if not os.access(folder, os.W_OK):
            raise ConfigError(f"{path}: the folder {folder} is not writable")
        return f"sqlite: {path} does not exist yet (created at the first start)"
    # read-only; while no process has the database open (no -wal file, in WAL mode) also
    # without locking, so that SQLite creates no -wal or -shm file beside it either
    busy = os.path.exists(file + "-wal")
    uri = f"file:{quote(file)}?mode=ro" + ("" if busy else "&immutable=1")
    engine = create_engine("sqlite://", poolclass=NullPool,
                           creator=lambda: sqlite3.connect(uri, uri=True))
    try:
        with engine.connect() as conn:
            return "sqlite: " + _sql_probe(conn)
    finally:
        engine.dispose()


def _sql_probe(conn) -> str:
    """A SQL store's database, read only: its users and groups, or that it is empty."""
    from sqlalchemy import func, inspect, select

    from userstores.sql import tables

    if not inspect(conn).has_table(tables.users.name):
        return "no tables yet (created at the first start)"
    version = conn.execute(select(tables.schema_version.c.version)).scalar()
    if version is not None and version > tables.SCHEMA_VERSION:
        raise ConfigError(f"database schema version {version} is newer than this gateway "
                          f"({tables.SCHEMA_VERSION}): upgrade the gateway")
    users = conn.execute(select(func.count()).select_from(tables.users)).scalar_one()
    groups = conn.execute(select(func.count()).select_from(tables.groups)).scalar_one()
    return f"{users} users, {groups} groups"


async def _check_sql(sc) -> str:
    """``config check`` of a SQL store: connect and read, never create or migrate."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from .database.engine import make_runner
    from .errors import StoreUnavailable

    try:
        url = make_url(sc.url)
    except Exception as exc:  # noqa: BLE001 - any parse failure is a config error
        raise ConfigError(f"userstores.{sc.domain}.url: not a database URL") from exc
    try:
        if url.get_backend_name() == "sqlite":
            return await asyncio.to_thread(_sqlite_probe, url.database or "")
        runner = make_runner(sc.url, 1)  # postgresql (or a ConfigError naming the backend)
        try:
            return f"{runner.dialect}: " + await runner.read(_sql_probe)
        finally:
            await runner.close()
    except (SQLAlchemyError, OSError, ConnectionError) as exc:
        raise StoreUnavailable(f"user store {sc.domain} is unavailable") from exc


async def check(cfg: Config) -> bool:
    """Connect to each store and say what it holds, without changing anything: a SQL
    store is read (no file, no table created); the others' ``open`` only connects."""
    from userstores.registry import build_store

    from .model.registry import SchemaRegistry
    from .redact import text as redact

    ok = True
    schemas = SchemaRegistry.build(cfg.extensions)
    for domain, sc in cfg.stores.items():
        store = None
        try:
            if sc.type == "sql":
                found = await _check_sql(sc)
            else:
                store = build_store(sc, schemas)
                await store.open()
                found = await store.check()
            print(f"  [{domain}] ok: {found}{' (read-only)' if sc.read_only else ''}")
        except (GatewayError, ConfigError) as exc:
            cause = exc.__cause__
            why = str(cause).splitlines()[0] if cause is not None and str(cause) else ""
            print(f"  [{domain}] FAILED: {getattr(exc, 'detail', exc)}"
                  + redact(f" ({type(cause).__name__}: {why})" if cause else ""))
            ok = False
        except Exception as exc:  # noqa: BLE001 - a diagnosis, not a traceback
            why = str(exc).splitlines()[0] if str(exc) else ""
            print(f"  [{domain}] FAILED: " + redact(f"{type(exc).__name__}: {why}"))
            ok = False
        finally:
            if store is not None:
                await store.close()
    return ok


def check_connectors(cfg: Config) -> None:
    """Each connector's type names a connector this installation has (ConfigError with
    the file and key path if not)."""
    from connectors.registry import connector_class

    for i, connector in enumerate(cfg.outbound.connectors):
        try:
            connector_class(connector.type)
        except ConfigError as exc:
            raise ConfigError(f"{cfg.source}: outbound.connectors[{i}].type: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - a third party's module that fails to load
            raise ConfigError(f"{cfg.source}: outbound.connectors[{i}].type: the connector "
                              f"type {connector.type!r} cannot be loaded: "
                              f"{type(exc).__name__}: {exc}") from None
