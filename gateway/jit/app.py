"""``POST /jit/{provider}``: a federated login handed over by the application that got it.

Body (JSON): ``{"id_token": "<JWT>"}`` for an OIDC provider, or
``{"saml_response": "<Base64 of the SAML Response or Assertion>"}`` for a
SAML one; plus, where the provider's mode asks for them, ``"username"``,
``"password"`` or ``"consent": true``. The caller authenticates as for SCIM
and needs the ``jit`` permission. The reply: ``{"result": "created" |
"updated" | "unchanged", "user": <the SCIM 2.0 user>}`` (201 when created).
Every refusal is a JSON error with its status: 400 (a malformed request),
401 (the login cannot be trusted: signature, issuer, audience, time, replay),
403 (no consent, no permission), 404 (no such provider), 409 (a local user of
that name is not this login's).
"""

from __future__ import annotations

import orjson
from aiohttp import web

from ..errors import GatewayError, InvalidSyntax
from ..http_input import read_body
from ..http_json import json_response
from ..keys import AUTH, JIT, PIPELINE, shared
from ..scim_common.http import scim2_base_url
from ..scim_common.render import resource_json

MAX_BODY = 512 * 1024


@web.middleware
async def jit_errors(request: web.Request, handler):
    try:
        return await handler(request)
    except GatewayError as exc:
        response = json_response({"status": exc.status, "error": exc.detail}, exc.status)
        if exc.status == 401 and "Authorization" not in request.headers:
            response.headers["WWW-Authenticate"] = 'Basic realm="gateway"'
        return response


async def login(request: web.Request) -> web.Response:
    caller = await shared(request)[AUTH].authenticate_request(request)
    raw = await read_body(request, MAX_BODY)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidSyntax("The body is not JSON") from None
    if not isinstance(body, dict):
        raise InvalidSyntax("The body is a JSON object")
    entity, result = await shared(request)[JIT].login(
        caller, request.match_info["provider"], body)
    user = resource_json(entity, shared(request)[PIPELINE].schemas.user,
                         scim2_base_url(request))
    return json_response({"result": result, "user": user}, 201 if result == "created" else 200)


def create_jit_app() -> web.Application:
    app = web.Application(middlewares=[jit_errors])
    app.router.add_post("/{provider}", login)
    return app
