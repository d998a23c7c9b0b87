"""The ``gateway`` command: serve, config check, hash-password, import."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import multiprocessing
import os
import signal
import sys
from dataclasses import replace

from .config import DEFAULT_PORT, Config, logs
from .errors import ConfigError, GatewayError
from .settings import load

# a process `gateway serve` spawns (a worker, the outbound dispatcher) imports this module
# first: it logs as its parent does from its first line on
logs.configure_from_environ()


def _config(args) -> Config:
    path = args.config or os.environ.get("GATEWAY_CONFIG")
    cfg = load(path)
    changes = {}
    for name in ("host", "port", "workers"):
        value = getattr(args, name, None)
        if value is not None:
            changes[name] = value
    return replace(cfg, **changes) if changes else cfg


def _run_worker(cfg: Config, reuse_port: bool, access_log: bool, dispatch: bool,
                bootstrap: bool = True) -> None:
    from aiohttp import web

    from .app import bootstrap_admin_now, create_app
    from .request_context import AccessLog

    logs.configure(cfg.logging)
    app = create_app(cfg, bootstrap=False, dispatch=dispatch)
    started = []

    def listening(_banner: str) -> None:  # run_app calls it once its socket is listening
        print(f"gateway: worker {os.getpid()} listening on http://{cfg.host}:{cfg.port}",
              flush=True)
        if bootstrap:  # the administrator only once the server really serves
            started.append(asyncio.get_running_loop().create_task(bootstrap_admin_now(app)))

    web.run_app(app, host=cfg.host,
                port=cfg.port, reuse_port=reuse_port,
                access_log=logging.getLogger(logs.ACCESS_LOGGER) if access_log else None,
                access_log_class=AccessLog,
                print=listening, handle_signals=True)


def cmd_serve(args) -> int:
    from .outbound import process as dispatcher

    cfg = _config(args)
    _check_connectors(cfg)  # before anything is started or written
    logs.configure(cfg.logging, export=True)
    access_log = cfg.logging.access_log if args.access_log is None else args.access_log
    supervisor = dispatcher.Supervisor(cfg) if dispatcher.wanted(cfg) else None
    inline = dispatcher.inline(cfg)
    where = ("a process of its own" if supervisor else "the workers" if inline
             else "not here (external)")
    print(f"gateway: serving on http://{cfg.host}:{cfg.port} "
          f"({cfg.workers} worker(s); user stores: {', '.join(cfg.stores)}; "
          f"outbound dispatcher: {where})", flush=True)
    if supervisor is not None:
        supervisor.start()
    try:
        return _serve(cfg, access_log, inline)
    finally:
        if supervisor is not None:
            supervisor.stop()


def _serve(cfg: Config, access_log: bool, dispatch: bool) -> int:
    if cfg.workers == 1:
        _run_worker(cfg, False, access_log, dispatch)
        return 0
    ctx = multiprocessing.get_context("spawn")
    # the first worker makes the bootstrap administrator once it listens
    workers = [ctx.Process(target=_run_worker, args=(cfg, True, access_log, dispatch, i == 0),
                           daemon=False)
               for i in range(cfg.workers)]
    for w in workers:
        w.start()

    def stop(signum, _frame):
        for w in workers:
            if w.is_alive():
                w.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    code = 0
    for w in workers:
        w.join()
        code = code or (w.exitcode or 0)
    return 0 if code in (0, -signal.SIGTERM, -signal.SIGINT) else 1


def cmd_dispatch(args) -> int:
    from .outbound import process as dispatcher

    cfg = _config(args)
    _check_connectors(cfg)
    logs.configure(cfg.logging)
    what = ("delivering" if cfg.outbound.active
            else "no connector configured: draining the outboxes only")
    print(f"gateway: outbound dispatcher running, {what} (stop with Ctrl+C or SIGTERM)",
          flush=True)
    dispatcher.run(cfg)
    return 0


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


async def _check(cfg: Config) -> bool:
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


def _check_connectors(cfg: Config) -> None:
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


def cmd_config_check(args) -> int:
    """Validate the configuration and connect to each store, changing nothing (no file,
    no table is created): exit 0 when all is well, 2 for a configuration error, 1 when
    a store does not answer."""
    try:
        cfg = _config(args)
        _check_connectors(cfg)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    print(f"configuration {cfg.source}: valid")
    print(f"  listen {cfg.host}:{cfg.port}, {cfg.workers} worker(s), "
          f"{len(cfg.clients)} API client(s), {len(cfg.issuers)} token issuer(s), "
          f"{len(cfg.outbound.connectors)} connector(s)")
    # what a store logs when it fails is on its FAILED line already
    stores = logging.getLogger("gateway.store")
    quiet = logging.NullHandler()
    stores.addHandler(quiet)
    stores.propagate = False
    try:
        return 0 if asyncio.run(_check(cfg)) else 1
    finally:
        stores.removeHandler(quiet)
        stores.propagate = True


def cmd_hash_password(args) -> int:
    from .passwords import Passwords

    cfg = _config(args)
    secret = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else getpass.getpass(
        "secret: ")
    if not secret:
        print("empty secret", file=sys.stderr)
        return 2
    passwords = Passwords(cfg.passwords)
    print(passwords.hash_sync(secret))
    passwords.close()
    return 0


def cmd_import(args) -> int:
    from .importer import import_users

    cfg = _config(args)
    logs.configure(cfg.logging)
    try:
        count, seconds = asyncio.run(import_users(cfg, args.file, args.domain, args.batch))
    except (GatewayError, ConfigError, OSError) as exc:
        print(f"import failed: {getattr(exc, 'detail', exc)}", file=sys.stderr)
        return 1
    print(f"imported {count} users in {seconds:.1f}s ({count / max(seconds, 1e-9):.0f}/s)")
    return 0


def _version() -> str:
    """The installed distribution's version (the checkout's, installed in place)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("provisioning-gateway")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="Identity provisioning gateway")
    parser.add_argument("--version", action="version", version=f"gateway {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p):
        p.add_argument("--config", help="TOML configuration file (default: none, or "
                       "$GATEWAY_CONFIG; without one: SQLite gateway.db in this folder)")

    serve = sub.add_parser("serve", help="start the gateway")
    common(serve)
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help=f"TCP port (default {DEFAULT_PORT})")
    serve.add_argument("--workers", type=int, help="processes sharing the port (default 1)")
    serve.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=None,
                       help="log every request (default: [logging] access_log, on)")
    serve.set_defaults(func=cmd_serve)

    dispatch = sub.add_parser("dispatch", help="run only the outbound dispatcher (for "
                              "[outbound] dispatcher = \"external\")")
    common(dispatch)
    dispatch.set_defaults(func=cmd_dispatch)

    config = sub.add_parser("config", help="configuration tools")
    csub = config.add_subparsers(dest="config_command", required=True)
    check = csub.add_parser("check", help="validate the configuration and connect to each "
                            "store (changes nothing: no file or table is created)")
    common(check)
    check.set_defaults(func=cmd_config_check)

    hp = sub.add_parser("hash-password", help="argon2 hash of a secret read from stdin, for "
                        "clients' secret_hash")
    common(hp)
    hp.set_defaults(func=cmd_hash_password)

    imp = sub.add_parser("import", help="bulk-load users from a JSON Lines file")
    common(imp)
    imp.add_argument("file", help="one SCIM 2.0 User JSON object per line ('-' for stdin)")
    imp.add_argument("--domain", default="PRIMARY", help="user store domain (default PRIMARY)")
    imp.add_argument("--batch", type=int, default=5000, help="users per transaction")
    imp.set_defaults(func=cmd_import)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
