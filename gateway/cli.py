"""The ``gateway`` command: serve, config check, hash-password, import, export."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import os
import sys
import time
from dataclasses import replace

from .config import DEFAULT_PORT, Config, logs
from .errors import ConfigError, GatewayError
from .settings import load

# a process `gateway serve` spawns (the outbound dispatcher; the workers import
# gateway.serving, which does the same) logs as its parent does from its first line on
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


def cmd_serve(args) -> int:
    from .app import chosen_admin
    from .config_check import check_connectors
    from .outbound import process as dispatcher
    from .serving import ensure_chosen_admin, scheme, serve, tls_context

    cfg = _config(args)
    check_connectors(cfg)  # before anything is started or written
    tls_context(cfg)
    logs.configure(cfg.logging, export=True)
    access_log = cfg.logging.access_log if args.access_log is None else args.access_log
    # the administrator the environment names is there before the first request; a random
    # one is made by the first worker once it listens (a start that fails makes none)
    chosen = chosen_admin() is not None
    if chosen:
        asyncio.run(ensure_chosen_admin(cfg))
    supervisor = dispatcher.Supervisor(cfg) if dispatcher.wanted(cfg) else None
    inline = dispatcher.inline(cfg)
    where = ("a process of its own" if supervisor else "the workers" if inline
             else "not here (external)")
    print(f"gateway: serving on {scheme(cfg)}://{cfg.host}:{cfg.port} "
          f"({cfg.workers} worker(s); user stores: {', '.join(cfg.stores)}; "
          f"outbound dispatcher: {where})", flush=True)
    if supervisor is not None:
        supervisor.start()
    try:
        return serve(cfg, access_log, inline, bootstrap=not chosen)
    finally:
        if supervisor is not None:
            supervisor.stop()


def cmd_dispatch(args) -> int:
    from .config_check import check_connectors
    from .outbound import process as dispatcher

    cfg = _config(args)
    check_connectors(cfg)
    logs.configure(cfg.logging)
    what = ("delivering" if cfg.outbound.active
            else "no connector configured: draining the outboxes only")
    print(f"gateway: outbound dispatcher running, {what} (stop with Ctrl+C or SIGTERM)",
          flush=True)
    dispatcher.run(cfg)
    return 0


def cmd_config_check(args) -> int:
    """Validate the configuration and connect to each store, changing nothing (no file,
    no table is created): exit 0 when all is well, 2 for a configuration error, 1 when
    a store does not answer."""
    from .config_check import check, check_connectors
    from .serving import tls_context

    try:
        cfg = _config(args)
        check_connectors(cfg)
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
        return 0 if asyncio.run(check(cfg)) else 1
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
