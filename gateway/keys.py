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


def shared(request: web.Request) -> web.Application:
    """The root application, which holds the state every route shares (the keys above).

    One lookup away: ``request.config_dict`` builds a chain of the sub-application and
    the root on each access, and finds a key after a KeyError in the sub-application
    (several microseconds, a dozen times per request). Routing puts the root first in
    ``match_info.apps``."""
    return request.match_info.apps[0]
