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

from .config import DEFAULT_PORT, Config
from .errors import ConfigError, GatewayError
from .settings import load

log = logging.getLogger("gateway")


def _config(args) -> Config:
    path = args.config or os.environ.get("GATEWAY_CONFIG")
    cfg = load(path)
    changes = {}
    for name in ("host", "port", "workers"):
        value = getattr(args, name, None)
        if value is not None:
            changes[name] = value
    return replace(cfg, **changes) if changes else cfg


async def _bootstrap(cfg: Config) -> None:
    from userstores.registry import Stores

    from .app import bootstrap_admin, print_once_admin
    from .passwords import Passwords
    from .pipeline import Pipeline

    passwords = Passwords(cfg.passwords)
    stores = Stores.from_config(cfg)
    await stores.open()
    try:
        generated = await bootstrap_admin(Pipeline(cfg, stores, passwords))
        if generated:
            print_once_admin(generated)
    finally:
        await stores.close()
        passwords.close()


def _run_worker(cfg: Config, reuse_port: bool, access_log: bool, dispatch: bool) -> None:
    from aiohttp import web

    from .app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(name)s %(message)s")

    def listening(_banner: str) -> None:  # run_app calls it once its socket is listening
        print(f"gateway: worker {os.getpid()} listening on http://{cfg.host}:{cfg.port}",
              flush=True)

    web.run_app(create_app(cfg, bootstrap=False, dispatch=dispatch), host=cfg.host,
                port=cfg.port, reuse_port=reuse_port, access_log=log if access_log else None,
                print=listening, handle_signals=True)


def cmd_serve(args) -> int:
    from .outbound import process as dispatcher

    cfg = _config(args)
    asyncio.run(_bootstrap(cfg))
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
        return _serve(cfg, args.access_log, inline)
    finally:
        if supervisor is not None:
            supervisor.stop()


def _serve(cfg: Config, access_log: bool, dispatch: bool) -> int:
    if cfg.workers == 1:
        _run_worker(cfg, False, access_log, dispatch)
        return 0
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_run_worker, args=(cfg, True, access_log, dispatch),
                           daemon=False)
               for _ in range(cfg.workers)]
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
    what = ("delivering" if cfg.outbound.active
            else "no connector configured: draining the outboxes only")
    print(f"gateway: outbound dispatcher running, {what} (stop with Ctrl+C or SIGTERM)",
          flush=True)
    dispatcher.run(cfg)
    return 0


async def _check(cfg: Config) -> bool:
    from userstores.registry import build_store

    from .model.registry import SchemaRegistry

    ok = True
    schemas = SchemaRegistry.build(cfg.extensions)
    for domain, sc in cfg.stores.items():
        store = build_store(sc, schemas)
        try:
            await store.open()
            print(f"  [{domain}] ok: {await store.check()}"
                  f"{' (read-only)' if sc.read_only else ''}")
        except (GatewayError, ConfigError) as exc:
            cause = exc.__cause__
            print(f"  [{domain}] FAILED: {getattr(exc, 'detail', exc)}"
                  f"{f' ({type(cause).__name__}: {cause})' if cause else ''}")
            ok = False
        finally:
            await store.close()
    return ok


def cmd_config_check(args) -> int:
    try:
        cfg = _config(args)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    print(f"configuration {cfg.source}: valid")
    print(f"  listen {cfg.host}:{cfg.port}, {cfg.workers} worker(s), "
          f"{len(cfg.clients)} API client(s), {len(cfg.issuers)} token issuer(s)")
    return 0 if asyncio.run(_check(cfg)) else 1


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
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.set_defaults(func=cmd_serve)

    dispatch = sub.add_parser("dispatch", help="run only the outbound dispatcher (for "
                              "[outbound] dispatcher = \"external\")")
    common(dispatch)
    dispatch.set_defaults(func=cmd_dispatch)

    config = sub.add_parser("config", help="configuration tools")
    csub = config.add_subparsers(dest="config_command", required=True)
    check = csub.add_parser("check", help="validate the configuration and connect to each store")
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
