"""SCIM 2.0 over HTTP: ``application/scim+json``, the RFC 7644 Error, the message schemas.

Reading bodies, ETags and the error middleware are shared with SCIM 1.1
(``gateway.scim_common.http``).
"""

from __future__ import annotations

from aiohttp import web

from ..scim_common import http as common
from ..scim_common.http import SCIM_JSON

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


def error_body(exc) -> dict:
    """An RFC 7644 §3.12 Error for a gateway error."""
    body = {"schemas": [ERROR], "status": str(exc.status), "detail": exc.detail}
    if exc.scim_type:
        body["scimType"] = exc.scim_type
    return body


def respond(body: dict | None, status: int = 200, *, etag: int | None = None,
            location: str | None = None) -> web.Response:
    return common.respond(body, status, content_type=SCIM_JSON, etag=etag, location=location)
