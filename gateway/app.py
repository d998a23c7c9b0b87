"""The application factory: one aiohttp app, a sub-app per inbound protocol."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web

from userstores.registry import Stores

from . import forwarded, health, http_limits, state
from .admin.app import create_admin_app
from .admin.metrics import metrics
from .auth.authenticator import Authenticator
from .auth.epoch import LoginEpoch
from .auth.guard import Guard
from .config import Config
from .errors import ConfigError
from .jit.app import create_jit_app
from .jit.service import JitService
from .keys import AUTH, CONFIG, HOME, JIT, ONCE, OUTBOUND, PIPELINE, SCHEMAS, STORES
from .metrics import snapshots as metric_snapshots
from .model.registry import SchemaRegistry
from .once import Once
from .outbound.service import OutboundService
from .passwords import Passwords
from .pipeline import Pipeline
from .request_context import request_context
from .scim.app import create_scim_app
from .scim11.app import create_scim11_app
from .soap.app import create_soap_app

log = logging.getLogger("gateway")

ADMIN_USER_ENV = "GATEWAY_ADMIN_USER"
ADMIN_PASSWORD_ENV = "GATEWAY_ADMIN_PASSWORD"  # noqa: S105 - a variable name
ADMIN_PASSWORD_FILE_ENV = "GATEWAY_ADMIN_PASSWORD_FILE"  # noqa: S105 - a variable name


def chosen_admin(environ=os.environ) -> tuple[str, str] | None:
    """The administrator the environment names (``GATEWAY_ADMIN_USER`` and
    ``GATEWAY_ADMIN_PASSWORD``, or the password in the file ``GATEWAY_ADMIN_PASSWORD_FILE``
    names), or None."""
    user = environ.get(ADMIN_USER_ENV) or None
    password = environ.get(ADMIN_PASSWORD_ENV) or None
    path = environ.get(ADMIN_PASSWORD_FILE_ENV) or None
    if path is not None:
        if password is not None:
            raise ConfigError(f"set {ADMIN_PASSWORD_ENV} or {ADMIN_PASSWORD_FILE_ENV}, not both")
        try:
            password = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeError) as exc:
            raise ConfigError(f"{ADMIN_PASSWORD_FILE_ENV}: cannot read {path}: "
                              f"{exc.strerror or exc}") from None
        password = password.removesuffix("\n").removesuffix("\r") or None
        if password is None:
            raise ConfigError(f"{ADMIN_PASSWORD_FILE_ENV}: {path} is empty")
    if bool(user) != bool(password):
        log.warning("set both %s and %s to choose the administrator; creating 'admin'",
                    ADMIN_USER_ENV, ADMIN_PASSWORD_ENV)
        return None
    return (user, password) if user else None


async def bootstrap_admin(pipeline: Pipeline, environ=os.environ) -> str | None:
    """Ensure the administrator exists; returns a generated password (to print once)."""
    user, password = chosen_admin(environ) or (None, None)
    return await pipeline.ensure_admin(user, password)


async def bootstrap_admin_now(app: web.Application) -> None:
    """The administrator, made by a running server (``gateway serve`` calls it once it
    listens: a start that fails makes no account); a failure is logged, not fatal."""
    try:
        generated = await bootstrap_admin(app[PIPELINE])
    except Exception:  # noqa: BLE001 - the server runs on; the log says why
        log.exception("could not make the bootstrap administrator")
        return
    if generated:
        print_once_admin(generated)


Context = Callable[[web.Application], AsyncIterator[None]]


def _stores(config: Config) -> Context:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        stores = Stores.from_config(config)
        await stores.open()
        app[STORES] = stores
        app[SCHEMAS] = SchemaRegistry.build(config.extensions)
        try:
            yield
        finally:
            await stores.close()
    return ctx


def _state(config: Config) -> Context:
    """The state database (gateway.state): the queue's, the audit trail's, the counters'."""
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        home, own = state.open_home(config.outbound.database, app[STORES])
        app[HOME] = home
        try:
            yield
        finally:
            if own and home is not None:
                await home.close()
    return ctx


def _outbound(config: Config, dispatch: bool) -> Context:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        outbound = OutboundService(config, app[STORES], app[SCHEMAS], app[HOME])
        try:
            await outbound.start(run_dispatcher=dispatch)
        except BaseException:
            await outbound.stop()
            raise
        app[OUTBOUND] = outbound
        try:
            yield
        finally:
            await outbound.stop()
    return ctx


def _pipeline(config: Config) -> Context:
    """The pipeline, the authenticator and what they keep in the state database."""
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        home = app[HOME]
        passwords = Passwords(config.passwords)
        guard, once, epoch = Guard(config.security), Once(home), LoginEpoch()
        pipeline = Pipeline(config, app[STORES], passwords, guard, app[OUTBOUND],
                            app[SCHEMAS])
        try:
            await once.start()
            await guard.start(home)
            await epoch.start(home)
            await pipeline.history.start(home)
            await pipeline.audit.start(home)
            app[PIPELINE] = pipeline
            app[AUTH] = Authenticator(config, pipeline, passwords, once, epoch)
            app[ONCE] = once
            yield
        finally:
            await pipeline.audit.stop()
            await epoch.stop()
            passwords.close()
    return ctx


def _jit(config: Config) -> Context:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        jit = JitService(config.jit, app[PIPELINE], app[HOME], app[ONCE])
        try:
            await jit.start()
            app[JIT] = jit
            yield
        finally:
            await jit.stop()
    return ctx


def _bootstrap(bootstrap: bool) -> Context:
    """The administrator, once everything runs (``gateway.app.bootstrap_admin``)."""
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        if bootstrap:
            generated = await bootstrap_admin(app[PIPELINE])
            if generated:
                print_once_admin(generated)
        yield
    return ctx


def create_app(config: Config, *, bootstrap: bool = True, dispatch: bool = True
               ) -> web.Application:
    """The gateway as an aiohttp application (stores opened on startup; with ``dispatch``,
    the outbound dispatcher runs in it)."""
    http_limits.install()
    # the largest body any route takes; each route enforces its own limit
    app = web.Application(client_max_size=max(config.max_body_bytes,
                                               config.bulk_max_payload_bytes),
                          handler_args=http_limits.HANDLER_ARGS,
                          # the request's id first, then the client a trusted proxy
                          # names (gateway.forwarded), for every adapter below
                          middlewares=[request_context, *(
                              [forwarded.middleware(config.trusted_proxies)]
                              if config.trusted_proxies else [])])
    app[CONFIG] = config

    # one context per resource, opened in this order and closed in the reverse one
    app.cleanup_ctx.extend([
        metric_snapshots,  # a worker's counters for the others (gateway.metrics)
        _stores(config), _state(config), _outbound(config, dispatch), _pipeline(config),
        _jit(config), _bootstrap(bootstrap)])
    app.add_routes(health.ROUTES)
    app.add_subapp("/scim2", create_scim_app())
    app.add_subapp("/services", create_soap_app())
    app.add_subapp("/wso2/scim", create_scim11_app())
    app.add_subapp("/admin", create_admin_app())
    app.add_subapp("/jit", create_jit_app())
    app.router.add_get("/metrics", metrics)
    return app


def print_once_admin(password: str) -> None:
    # printed, not logged: it must not end up in log files kept for long
    print("=" * 64, flush=True)
    print("Created the administrator 'admin' with the password:", flush=True)
    print(f"    {password}", flush=True)
    print("It is shown only now. Change it, or set GATEWAY_ADMIN_USER/_PASSWORD.", flush=True)
    print("=" * 64, flush=True)
