"""The SCIM 2.0 sub-application mounted at ``/scim2``."""

from __future__ import annotations

import logging

from aiohttp import web

from ..errors import (
    GatewayError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
)
from ..keys import AUTH, CONFIG, PIPELINE
from . import discovery
from .bulk import bulk
from .http import error_body, respond
from .resources import GROUPS, ME, PRINCIPAL, USERS, base_url
from .root_search import root_search

log = logging.getLogger("gateway.scim")

# discovery endpoints are readable without credentials (they describe, they hold no data)
PUBLIC = ("/ServiceProviderConfig", "/ResourceTypes", "/Schemas")


def error_response(exc: GatewayError) -> web.Response:
    response = respond(error_body(exc), exc.status)
    if isinstance(exc, Unauthorized):
        response.headers["WWW-Authenticate"] = 'Basic realm="gateway", Bearer realm="gateway"'
    return response


def error_middleware(render, logger: logging.Logger):
    """A middleware answering every error, ours or aiohttp's, with ``render(error)``
    (each SCIM version has its own error body); a 500 never carries a traceback."""

    @web.middleware
    async def errors(request: web.Request, handler):
        try:
            return await handler(request)
        except GatewayError as exc:
            if exc.status >= 500:
                logger.error("%s %s failed: %s", request.method, request.path, exc.detail,
                             exc_info=exc.__cause__)
            return render(exc)
        except web.HTTPRequestEntityTooLarge:
            return render(PayloadTooLarge("The request body is too large"))
        except web.HTTPNotFound:
            return render(NotFound(f"No such endpoint: {request.path}"))
        except web.HTTPMethodNotAllowed:
            return render(MethodNotAllowed(f"{request.method} is not allowed here"))
        except web.HTTPException:
            raise
        except Exception:
            logger.exception("%s %s failed", request.method, request.path)
            return render(GatewayError("Internal error"))

    return errors


scim_errors = error_middleware(error_response, log)


@web.middleware
async def scim_auth(request: web.Request, handler):
    rel = request.path[len("/scim2"):] if request.path.startswith("/scim2") else request.path
    if request.method == "GET" and rel.startswith(PUBLIC):
        return await handler(request)
    request[PRINCIPAL] = await request.config_dict[AUTH].authenticate_request(request)
    return await handler(request)


async def _spc(request: web.Request) -> web.Response:
    return respond(discovery.service_provider_config(request.config_dict[CONFIG],
                                                     base_url(request)))


async def _resource_types(request: web.Request) -> web.Response:
    return respond(discovery.resource_types(request.config_dict[PIPELINE].schemas,
                                            base_url(request), request.match_info.get("name")))


async def _schemas(request: web.Request) -> web.Response:
    return respond(discovery.schemas(request.config_dict[PIPELINE].schemas, base_url(request),
                                     request.match_info.get("urn")))


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
