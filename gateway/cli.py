"""The ``gateway`` command: serve, config check, hash-password, import, export."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import ssl
import sys
import time
from dataclasses import dataclass, replace

from .config import DEFAULT_PORT, Config, logs
from .errors import ConfigError, GatewayError
from .settings import load

# a process `gateway serve` spawns (a worker, the outbound dispatcher) imports this module
# first: it logs as its parent does from its first line on
logs.configure_from_environ()

log = logging.getLogger("gateway.workers")


def _config(args) -> Config:
    path = args.config or os.environ.get("GATEWAY_CONFIG")
    cfg = load(path)
    changes = {}
    for name in ("host", "port", "workers"):
        value = getattr(args, name, None)
        if value is not None:
            changes[name] = value
    return replace(cfg, **changes) if changes else cfg


def tls_context(cfg: Config) -> ssl.SSLContext | None:
    """The server's TLS context (TLS 1.2 or later) when ``[server] cert_file`` and
    ``key_file`` are set, else None; a ConfigError naming them when they do not hold a
    certificate and its key."""
    if not cfg.cert_file:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cfg.cert_file, cfg.key_file)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ConfigError(f"{cfg.source}: server.cert_file, server.key_file: not a PEM "
                          f"certificate (chain) and its private key ({exc})") from None
    return context


def _scheme(cfg: Config) -> str:
    return "https" if cfg.cert_file else "http"


PR_SET_PDEATHSIG = 1  # prctl(2)


def _stop_with_parent(parent: int) -> None:
    """SIGTERM to this worker when ``parent`` (its supervisor) dies, even by ``kill -9``:
    no worker serves on, unsupervised, for a gateway that is gone (Linux; elsewhere the
    parent stops its workers on a clean exit only)."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before the line above
        os.kill(os.getpid(), signal.SIGTERM)


def _run_worker(cfg: Config, reuse_port: bool, access_log: bool, dispatch: bool,
                bootstrap: bool = True, listening_event=None, parent: int | None = None
                ) -> None:
    """One HTTP worker: serves until SIGTERM or SIGINT, then stops listening and lets the
    requests it has read finish (up to ``[server] shutdown_grace_seconds``) before it
    closes its resources and exits 0. ``parent``: the supervisor's pid (``Workers``), whose
    death stops this worker the same way."""
    from aiohttp import web

    from .app import bootstrap_admin_now, create_app
    from .request_context import AccessLog

    if parent is not None:
        _stop_with_parent(parent)
    logs.configure(cfg.logging)
    app = create_app(cfg, bootstrap=False, dispatch=dispatch)
    started = []
    stopping = []

    def stop(signum: int) -> None:
        if stopping:  # a second signal (Ctrl+C reaches the workers and their parent)
            log.info("worker %d: %s again: still finishing the requests in flight",
                     os.getpid(), signal.Signals(signum).name)
            return
        stopping.append(signum)
        log.info("worker %d: %s: no new connections; finishing the requests in flight "
                 "(at most %g s)", os.getpid(), signal.Signals(signum).name,
                 cfg.shutdown_grace_seconds)
        raise web.GracefulExit()

    def listening(_banner: str) -> None:  # run_app calls it once its socket is listening
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):  # instead of aiohttp's: only once
            loop.add_signal_handler(signum, stop, signum)
        print(f"gateway: worker {os.getpid()} listening on {_scheme(cfg)}://{cfg.host}:"
              f"{cfg.port}", flush=True)
        if listening_event is not None:
            listening_event.set()
        if bootstrap:  # the administrator only once the server really serves
            started.append(loop.create_task(bootstrap_admin_now(app)))

    web.run_app(app, host=cfg.host,
                port=cfg.port, reuse_port=reuse_port, ssl_context=tls_context(cfg),
                # aiohttp takes 0 for "no limit": 0 here is "do not wait"
                shutdown_timeout=cfg.shutdown_grace_seconds or 0.001,
                access_log=logging.getLogger(logs.ACCESS_LOGGER) if access_log else None,
                access_log_class=AccessLog,
                print=listening, handle_signals=True)


def cmd_serve(args) -> int:
    from .app import chosen_admin
    from .outbound import process as dispatcher

    cfg = _config(args)
    _check_connectors(cfg)  # before anything is started or written
    tls_context(cfg)
    logs.configure(cfg.logging, export=True)
    access_log = cfg.logging.access_log if args.access_log is None else args.access_log
    # the administrator the environment names is there before the first request; a random
    # one is made by the first worker once it listens (a start that fails makes none)
    chosen = chosen_admin() is not None
    if chosen:
        asyncio.run(_ensure_chosen_admin(cfg))
    supervisor = dispatcher.Supervisor(cfg) if dispatcher.wanted(cfg) else None
    inline = dispatcher.inline(cfg)
    where = ("a process of its own" if supervisor else "the workers" if inline
             else "not here (external)")
    print(f"gateway: serving on {_scheme(cfg)}://{cfg.host}:{cfg.port} "
          f"({cfg.workers} worker(s); user stores: {', '.join(cfg.stores)}; "
          f"outbound dispatcher: {where})", flush=True)
    if supervisor is not None:
        supervisor.start()
    try:
        return _serve(cfg, access_log, inline, bootstrap=not chosen)
    finally:
        if supervisor is not None:
            supervisor.stop()


async def _ensure_chosen_admin(cfg: Config) -> None:
    from userstores.registry import Stores

    from .app import bootstrap_admin
    from .passwords import Passwords
    from .pipeline import Pipeline

    passwords = Passwords(cfg.passwords)
    stores = Stores.from_config(cfg)
    await stores.open()
    try:
        await bootstrap_admin(Pipeline(cfg, stores, passwords))
    finally:
        await stores.close()
        passwords.close()


def _serve(cfg: Config, access_log: bool, dispatch: bool, bootstrap: bool = True) -> int:
    if cfg.workers == 1:
        _run_worker(cfg, False, access_log, dispatch, bootstrap)
        return 0
    from . import metrics

    with metrics.run_directory():  # where the workers add up their metrics
        return Workers(cfg, access_log, dispatch, bootstrap).run()


# a worker that died is started again after 0.5 s, then 1, 2, 4 ... up to 30 s while it
# keeps dying; once one has served for STEADY_SECONDS, its next death waits 0.5 s again
RESTART_FIRST_SECONDS = 0.5
RESTART_MAX_SECONDS = 30.0
STEADY_SECONDS = 60.0
# how long the workers may take to stop beyond the grace period (closing stores, pools)
STOP_SLACK_SECONDS = 15.0
TICK_SECONDS = 0.2


def _how(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"was killed by signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


@dataclass
class _Slot:
    number: int  # 1..N, as the log names it
    proc: multiprocessing.process.BaseProcess | None = None
    listening: object = None  # the Event the worker sets once it listens
    started: float = 0.0
    restarts: int = 0  # how many times it was started again
    failures: int = 0  # consecutive short lives: the next delay doubles
    restart_at: float | None = None


class Workers:
    """``gateway serve --workers N``: N worker processes sharing the port, each started
    again (with a growing delay) when it dies; SIGTERM or SIGINT stops them all, each
    finishing the requests it has read (``[server] shutdown_grace_seconds``)."""

    def __init__(self, cfg: Config, access_log: bool, dispatch: bool, bootstrap: bool = True):
        self.cfg = cfg
        self.access_log = access_log
        self.dispatch = dispatch
        self.bootstrap = bootstrap  # whether the first worker makes the administrator
        self.ctx = multiprocessing.get_context("spawn")
        self.slots = [_Slot(i + 1) for i in range(cfg.workers)]
        self.signals: list[int] = []

    def _start(self, slot: _Slot, bootstrap: bool) -> None:
        slot.listening = self.ctx.Event()
        slot.proc = self.ctx.Process(
            target=_run_worker, name=f"gateway-worker-{slot.number}", daemon=False,
            args=(self.cfg, True, self.access_log, self.dispatch, bootstrap, slot.listening,
                  os.getpid()))
        slot.proc.start()
        slot.started = time.monotonic()
        slot.restart_at = None

    def _signalled(self, signum, _frame) -> None:
        if not self.signals:
            self.signals.append(signum)

    def run(self) -> int:
        previous = {s: signal.signal(s, self._signalled) for s in (signal.SIGTERM,
                                                                    signal.SIGINT)}
        try:
            for slot in self.slots:
                # the first worker makes the bootstrap administrator once it listens; a
                # worker started again never does
                self._start(slot, bootstrap=self.bootstrap and slot.number == 1)
            code = self._watch()
            self._stop()
            return code
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _watch(self) -> int:
        """Until a signal: start again the workers that die. 1 when the start failed."""
        while not self.signals:
            now = time.monotonic()
            for slot in self.slots:
                if slot.restart_at is not None:
                    if now >= slot.restart_at:
                        slot.restarts += 1
                        self._start(slot, bootstrap=False)
                        log.warning("worker %d started again as process %d", slot.number,
                                    slot.proc.pid)
                    continue
                if slot.proc.is_alive():
                    continue
                pid, code = slot.proc.pid, slot.proc.exitcode
                if slot.restarts == 0 and not slot.listening.is_set():
                    log.error("worker %d (process %d) %s before it listened: the gateway "
                              "could not start", slot.number, pid, _how(code))
                    return 1
                lived = now - slot.started
                if lived >= STEADY_SECONDS:
                    slot.failures = 0
                delay = min(RESTART_FIRST_SECONDS * 2 ** slot.failures, RESTART_MAX_SECONDS)
                slot.failures += 1
                slot.restart_at = now + delay
                log.error("worker %d (process %d) %s after %.1f s; starting it again in "
                          "%g s", slot.number, pid, _how(code), lived, delay)
            waits = [s.restart_at - now for s in self.slots if s.restart_at is not None]
            sentinels = [s.proc.sentinel for s in self.slots
                         if s.restart_at is None and s.proc is not None]
            multiprocessing.connection.wait(
                sentinels, timeout=max(0.0, min([TICK_SECONDS, *waits])))
        return 0

    def _stop(self) -> None:
        """SIGTERM to each worker, then wait for each to finish its requests and exit."""
        why = signal.Signals(self.signals[0]).name if self.signals else "stop"
        alive = [s for s in self.slots if s.restart_at is None and s.proc is not None
                 and s.proc.is_alive()]
        log.info("%s: stopping %d worker(s); each finishes the requests it has read "
                 "(at most %g s)", why, len(alive), self.cfg.shutdown_grace_seconds)
        for slot in alive:
            with contextlib.suppress(OSError):
                slot.proc.terminate()
        deadline = time.monotonic() + self.cfg.shutdown_grace_seconds + STOP_SLACK_SECONDS
        for slot in alive:
            slot.proc.join(max(0.0, deadline - time.monotonic()))
            if slot.proc.is_alive():
                log.warning("worker %d (process %d) did not stop in time: killed",
                            slot.number, slot.proc.pid)
                slot.proc.kill()
                slot.proc.join(5)


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
        tls_context(cfg)
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


class Progress:
    """One line on standard error, written over with ``\\r`` (count, rate, elapsed), only
    when standard error is a terminal; ``end()`` finishes the line."""

    def __init__(self, what: str, stream=None):
        self.what = what
        self.stream = stream or sys.stderr
        self.on = self.stream.isatty()
        self.started = time.monotonic()
        self.shown = 0.0
        self.width = 0

    def __call__(self, count: int, force: bool = False) -> None:
        now = time.monotonic()
        if not self.on or (not force and now - self.shown < 0.2):
            return
        self.shown = now
        elapsed = now - self.started
        text = (f"{self.what}: {count:,} users  {count / max(elapsed, 1e-9):,.0f}/s  "
                f"{int(elapsed) // 60:d}:{elapsed % 60:04.1f}")
        self.stream.write("\r" + text.ljust(self.width))
        self.width = len(text)
        self.stream.flush()

    def end(self) -> None:
        if self.on and self.width:
            self.stream.write("\n")
            self.stream.flush()


def cmd_import(args) -> int:
    from .importer import ImportStopped, import_users

    cfg = _config(args)
    logs.configure(cfg.logging)
    progress = Progress("imported")
    try:
        done = asyncio.run(import_users(cfg, args.file, args.domain, args.batch,
                                        args.skip_existing, progress))
    except ImportStopped as exc:
        progress.end()
        done = exc.done
        print(f"import failed: {exc.detail}", file=sys.stderr)
        where = f" (through line {done.through_line})" if done.users else ""
        first, last = exc.batch or (0, 0)
        lines = f"line {first}" if first == last else f"lines {first}-{last}"
        unwritten = f"; nothing of {lines} was written" if exc.batch else ""
        print(f"imported before the failure: {done.users} users{where}"
              f"{unwritten}", file=sys.stderr)
        print("to resume: correct or remove that line and run the same import again with "
              "--skip-existing", file=sys.stderr)
        return 1
    except (GatewayError, ConfigError, OSError) as exc:
        progress.end()
        print(f"import failed: {getattr(exc, 'detail', exc)}", file=sys.stderr)
        return 1
    progress(done.users, force=True)
    progress.end()
    extra = "".join([f", skipped {done.skipped} existing" if done.skipped else "",
                     f", skipped {done.groups} group lines (groups are not imported)"
                     if done.groups else ""])
    print(f"imported {done.users} users in {done.seconds:.1f}s "
          f"({done.users / max(done.seconds, 1e-9):.0f}/s){extra}")
    return 0


def cmd_export(args) -> int:
    from .exporter import export

    cfg = _config(args)
    logs.configure(cfg.logging)
    progress = Progress("exported")
    to_stdout = args.output in (None, "-")
    target = None if to_stdout else args.output
    partial = f"{target}.partial" if target else None
    try:
        with contextlib.ExitStack() as stack:
            out = sys.stdout.buffer if to_stdout else stack.enter_context(open(partial, "wb"))
            done = asyncio.run(export(cfg, out, args.domain, args.groups, progress))
            out.flush()
        if partial:
            os.replace(partial, target)
    except (GatewayError, ConfigError, OSError) as exc:
        progress.end()
        if partial:
            with contextlib.suppress(OSError):
                os.unlink(partial)
        print(f"export failed: {getattr(exc, 'detail', exc)}", file=sys.stderr)
        return 1
    progress(done.users + done.groups, force=True)
    progress.end()
    groups = f" and {done.groups} groups" if args.groups else ""
    print(f"exported {done.users} users{groups} in {done.seconds:.1f}s "
          f"({(done.users + done.groups) / max(done.seconds, 1e-9):.0f}/s)"
          f"{'' if to_stdout else ' to ' + target}", file=sys.stderr)
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
    imp.add_argument("--skip-existing", action="store_true",
                     help="leave out users whose userName is already taken (to resume an "
                     "import that stopped) instead of stopping at the first")
    imp.set_defaults(func=cmd_import)

    exp = sub.add_parser("export", help="every user (and group) as SCIM 2.0 JSON Lines")
    common(exp)
    exp.add_argument("--domain", help="only this user store (default: every store)")
    exp.add_argument("--output", "-o", default="-", help="file to write ('-', the default: "
                     "standard output)")
    exp.add_argument("--groups", action="store_true", help="the groups too, after the users")
    exp.set_defaults(func=cmd_export)
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
