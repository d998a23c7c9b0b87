"""The SCIM 2.0 sub-application mounted at ``/scim2``."""

from __future__ import annotations

import logging

from aiohttp import web

from ..errors import GatewayError, Unauthorized
from ..keys import AUTH, CONFIG, PIPELINE, shared
from ..scim_common.http import PRINCIPAL, error_middleware, scim2_base_url
from . import discovery
from .bulk import bulk
from .http import error_body, respond
from .resources import GROUPS, ME, USERS
from .root_search import root_search

log = logging.getLogger("gateway.scim")

# discovery endpoints are readable without credentials (they describe, they hold no data)
PUBLIC = ("/ServiceProviderConfig", "/ResourceTypes", "/Schemas")


def error_response(exc: GatewayError) -> web.Response:
    response = respond(error_body(exc), exc.status)
    if isinstance(exc, Unauthorized):
        response.headers["WWW-Authenticate"] = 'Basic realm="gateway", Bearer realm="gateway"'
    return response


scim_errors = error_middleware(error_response, log)


@web.middleware
async def scim_auth(request: web.Request, handler):
    rel = request.path[len("/scim2"):] if request.path.startswith("/scim2") else request.path
    if request.method == "GET" and rel.startswith(PUBLIC):
        return await handler(request)
    request[PRINCIPAL] = await shared(request)[AUTH].authenticate_request(request)
    return await handler(request)


async def _spc(request: web.Request) -> web.Response:
    return respond(discovery.service_provider_config(shared(request)[CONFIG],
                                                     scim2_base_url(request)))


async def _resource_types(request: web.Request) -> web.Response:
    return respond(discovery.resource_types(shared(request)[PIPELINE].schemas,
                                            scim2_base_url(request),
                                            request.match_info.get("name")))


async def _schemas(request: web.Request) -> web.Response:
    return respond(discovery.schemas(shared(request)[PIPELINE].schemas,
                                     scim2_base_url(request), request.match_info.get("urn")))


def create_scim_app() -> web.Application:
    app = web.Application(middlewares=[scim_errors, scim_auth])
    app.add_routes(USERS.routes() + GROUPS.routes() + ME.routes() + [
        web.post("/Bulk", bulk),
        web.post("/.search", root_search),
        web.get("/ServiceProviderConfig", _spc),
        web.get("/ResourceTypes", _resource_types),
        web.get("/ResourceTypes/{name}", _resource_types),
        web.get("/Schemas", _schemas),
        web.get("/Schemas/{urn}", _schemas),
    ])
    return app
