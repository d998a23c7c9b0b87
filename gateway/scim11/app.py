"""The SCIM 1.1 sub-application, mounted at ``/wso2/scim`` (WSO2 Identity Server's path).

Authentication and permissions are those of ``/scim2`` (HTTP Basic for API clients
and store users, bearer JWTs); every error, ours or aiohttp's, is a SCIM 1.1
``{"Errors": [{"description": ..., "code": ...}]}`` body with the matching status.
"""

from __future__ import annotations

import logging

from aiohttp import web

from ..keys import AUTH, CONFIG, shared
from ..scim_common.http import PRINCIPAL, error_middleware
from .bulk import bulk
from .discovery import service_provider_configs
from .http import PREFIX, base_url, error_response, respond
from .resources import GROUPS, USERS

log = logging.getLogger("gateway.scim11")

# readable without credentials (it describes, it holds no data)
PUBLIC = ("/ServiceProviderConfigs",)


scim11_errors = error_middleware(error_response, log)


@web.middleware
async def scim11_auth(request: web.Request, handler):
    rel = request.path[len(PREFIX):] if request.path.startswith(PREFIX) else request.path
    if request.method == "GET" and rel in PUBLIC:
        return await handler(request)
    request[PRINCIPAL] = await shared(request)[AUTH].authenticate_request(request)
    return await handler(request)


async def _spc(request: web.Request) -> web.Response:
    return respond(service_provider_configs(shared(request)[CONFIG], base_url(request)))


def create_scim11_app() -> web.Application:
    app = web.Application(middlewares=[scim11_errors, scim11_auth])
    app.add_routes(USERS.routes() + GROUPS.routes() + [
        web.post("/Bulk", bulk),
        web.get("/ServiceProviderConfigs", _spc),
    ])
    return app
