"""SCIM 1.1 over HTTP: ``application/json`` bodies, the ``Errors`` error format, the base URL.

Request bodies are read, and ETags parsed, by ``gateway.scim_common.http`` (the same
rules as SCIM 2.0); only what SCIM 1.1 writes differently is here.
"""

from __future__ import annotations

from aiohttp import web

from ..errors import GatewayError, Unauthorized
from ..http_input import public_base
from ..scim_common import http as common

PREFIX = "/wso2/scim"  # where WSO2 Identity Server serves SCIM 1.1
JSON = "application/json"


def error_body(exc: GatewayError) -> dict:
    """``{"Errors": [{"description": ..., "code": "404"}]}`` (charon 1.x, scim-api-01 §3.9)."""
    return {"Errors": [{"description": exc.detail, "code": str(exc.status)}]}


def respond(body: dict | None, status: int = 200, *, etag: int | None = None,
            location: str | None = None) -> web.Response:
    return common.respond(body, status, content_type=JSON, etag=etag, location=location)


def error_response(exc: GatewayError) -> web.Response:
    response = respond(error_body(exc), exc.status)
    if isinstance(exc, Unauthorized):
        response.headers["WWW-Authenticate"] = 'Basic realm="gateway", Bearer realm="gateway"'
    return response


def base_url(request: web.Request) -> str:
    return public_base(request) + PREFIX
