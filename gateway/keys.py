"""Typed keys for the state the aiohttp applications share."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from userstores.registry import Stores

    from .auth.authenticator import Authenticator
    from .config import Config
    from .jit.service import JitService
    from .model.registry import SchemaRegistry
    from .once import Once
    from .outbound.service import OutboundService
    from .pipeline import Pipeline

CONFIG: web.AppKey[Config] = web.AppKey("config")
STORES: web.AppKey[Stores] = web.AppKey("stores")
PIPELINE: web.AppKey[Pipeline] = web.AppKey("pipeline")
AUTH: web.AppKey[Authenticator] = web.AppKey("authenticator")
OUTBOUND: web.AppKey[OutboundService] = web.AppKey("outbound")
JIT: web.AppKey[JitService] = web.AppKey("jit")
SCHEMAS: web.AppKey[SchemaRegistry] = web.AppKey("schemas")
# the state database's SQL runner (gateway.state.open_home), or None
HOME: web.AppKey[object] = web.AppKey("home")
ONCE: web.AppKey[Once] = web.AppKey("once")
