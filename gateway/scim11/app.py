"""The SCIM 1.1 sub-application, mounted at ``/wso2/scim`` (WSO2 Identity Server's path).

Authentication and permissions are those of ``/scim2`` (HTTP Basic for API clients
and store users, bearer JWTs); every error, ours or aiohttp's, is a SCIM 1.1
``{"Errors": [{"description": ..., "code": ...}]}`` body with the matching status.
"""

from __future__ import annotations

import logging

from aiohttp import web

from ..errors import GatewayError, MethodNotAllowed, NotFound, PayloadTooLarge
from ..keys import AUTH, CONFIG
from ..scim.resources import PRINCIPAL
from .bulk import bulk
from .discovery import service_provider_configs
from .http import PREFIX, base_url, error_response, respond
from .resources import GROUPS, USERS

log = logging.getLogger("gateway.scim11")

# readable without credentials (it describes, it holds no data)
PUBLIC = ("/ServiceProviderConfigs",)


@web.middleware
async def scim11_errors(request: web.Request, handler):
    try:
        return await handler(request)
    except GatewayError as exc:
        if exc.status >= 500:
            log.error("%s %s failed: %s", request.method, request.path, exc.detail,
                      exc_info=exc.__cause__)
        return error_response(exc)
    except web.HTTPRequestEntityTooLarge:
        return error_response(PayloadTooLarge("The request body is too large"))
    except web.HTTPNotFound:
        return error_response(NotFound(f"No such endpoint: {request.path}"))
    except web.HTTPMethodNotAllowed:
        return error_response(MethodNotAllowed(f"{request.method} is not allowed here"))
    except web.HTTPException:
        raise
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return error_response(GatewayError("Internal error"))


@web.middleware
async def scim11_auth(request: web.Request, handler):
    rel = request.path[len(PREFIX):] if request.path.startswith(PREFIX) else request.path
    if request.method == "GET" and rel in PUBLIC:
        return await handler(request)
    request[PRINCIPAL] = await request.config_dict[AUTH].authenticate(
        request.headers.get("Authorization"))
    return await handler(request)


async def _spc(request: web.Request) -> web.Response:
    return respond(service_provider_configs(request.config_dict[CONFIG], base_url(request)))


def create_scim11_app() -> web.Application:
    app = web.Application(middlewares=[scim11_errors, scim11_auth])
    app.add_routes(USERS.routes() + GROUPS.routes() + [
        web.post("/Bulk", bulk),
        web.get("/ServiceProviderConfigs", _spc),
    ])
    return app
