"""What the gateway knows about the request it is serving: its id, the caller's address
and the protocol, for the audit trail (and logs).

A middleware of the root application sets :data:`REQUEST` for every request. The id is
the caller's ``X-Request-Id`` when it is a short token (so a client's or a proxy's id
follows the request through), else a new random one; either way it is sent back in
``X-Request-Id``. Work done outside a request (the dispatcher, ``gateway import``)
sees None.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar
from dataclasses import dataclass

from aiohttp import web

HEADER = "X-Request-Id"
_VALID_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,64}")
# path prefixes of the applications, and the protocol each speaks
PROTOCOLS = (("/scim2/", "scim2"), ("/wso2/scim/", "scim11"), ("/services/", "soap"),
             ("/jit/", "jit"), ("/admin/", "admin"))


@dataclass(frozen=True)
class RequestInfo:
    id: str
    address: str | None
    protocol: str


REQUEST: ContextVar[RequestInfo | None] = ContextVar("request", default=None)


def protocol_of(path: str) -> str:
    for prefix, protocol in PROTOCOLS:
        if path.startswith(prefix):
            return protocol
    return "http"


def request_id_of(request: web.Request) -> str:
    given = request.headers.get(HEADER, "")
    return given if _VALID_ID.fullmatch(given) else uuid.uuid4().hex


@web.middleware
async def request_context(request: web.Request, handler):
    info = RequestInfo(request_id_of(request), request.remote, protocol_of(request.path))
    token = REQUEST.set(info)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers[HEADER] = info.id
        raise
    finally:
        REQUEST.reset(token)
    if not response.prepared:
        response.headers[HEADER] = info.id
    return response
