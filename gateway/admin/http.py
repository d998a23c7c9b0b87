"""What every admin route shares: the ``admin_errors`` middleware (it authenticates the
caller, requires the ``admin`` permission, ``*`` has it, and answers every error as
JSON), the caller it leaves on the request, and JSON replies."""

from __future__ import annotations

from aiohttp import web

from ..errors import GatewayError
from ..http_json import json_response
from ..keys import AUTH, shared

PERMISSION = "admin"
CALLER = web.RequestKey("caller", object)  # the authenticated principal


@web.middleware
async def admin_errors(request: web.Request, handler):
    try:
        caller = await shared(request)[AUTH].authenticate_request(request)
        caller.require(PERMISSION)
        request[CALLER] = caller
        return await handler(request)
    except GatewayError as exc:
        response = json_response({"status": exc.status, "error": exc.detail}, exc.status)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Basic realm="gateway"'
        return response
    except web.HTTPException as exc:  # no such route (404), method not allowed (405)
        if exc.status < 400:
            raise
        response = json_response({"status": exc.status, "error": exc.reason}, exc.status)
        for name in ("Allow",):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response
