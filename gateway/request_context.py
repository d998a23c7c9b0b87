"""What the gateway knows about the request it is serving: its id, the caller's address
and the protocol, for the audit trail (and logs).

A middleware of the root application sets :data:`REQUEST` for every request (and keeps
it on the request, ``INFO``, for the access log written after the reply). The id is
the caller's ``X-Request-Id`` when it is a short token (so a client's or a proxy's id
follows the request through), else a new random one; either way it is sent back in
``X-Request-Id``; the request and its time are counted (``gateway.metrics``). Work done
outside a request (the dispatcher, ``gateway import``) sees None. Every log line
written while a request is served carries its id (``gateway.config.logs``).

``AccessLog`` writes one line per request: method, path (query values that may hold a
secret masked), status, duration, bytes sent, the authenticated principal's name (never
a credential) and the request id.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from time import perf_counter
from urllib.parse import quote

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from . import metrics
from .redact import MASK

HEADER = "X-Request-Id"
_VALID_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,64}")
# path prefixes of the applications, and the protocol each speaks
PROTOCOLS = (("/scim2/", "scim2"), ("/wso2/scim/", "scim11"), ("/services/", "soap"),
             ("/jit/", "jit"), ("/admin/", "admin"))


@dataclass
class RequestInfo:
    id: str
    address: str | None
    protocol: str
    # the authenticated caller's name, once known (the authenticator says it): the access
    # log shows it; never a credential
    principal: str | None = None


def authenticated(name: str) -> None:
    """The request being served is made by ``name`` (called by the authenticator)."""
    info = REQUEST.get()
    if info is not None:
        info.principal = name


REQUEST: ContextVar[RequestInfo | None] = ContextVar("request", default=None)
INFO = web.RequestKey("request_info", RequestInfo)


def protocol_of(path: str) -> str:
    for prefix, protocol in PROTOCOLS:
        if path.startswith(prefix):
            return protocol
    return "http"


# a new id: this process's random prefix and a counter, unique across processes and
# restarts without a system call per request (os.urandom, behind uuid4, gives up the GIL,
# which a busy loop then waits to get back from a thread of the SQLite pool)
_PREFIX = uuid.uuid4().hex[:16]
_COUNTER = itertools.count(1)


def _new_prefix() -> None:  # a forked child is a process of its own
    global _PREFIX, _COUNTER
    _PREFIX, _COUNTER = uuid.uuid4().hex[:16], itertools.count(1)


os.register_at_fork(after_in_child=_new_prefix)


def new_request_id() -> str:
    return f"{_PREFIX}{next(_COUNTER):016x}"


def request_id_of(request: web.Request) -> str:
    given = request.headers.get(HEADER, "")
    return given if given and _VALID_ID.fullmatch(given) else new_request_id()


@web.middleware
async def request_context(request: web.Request, handler):
    info = RequestInfo(request_id_of(request), request.remote, protocol_of(request.path))
    request[INFO] = info
    token = REQUEST.set(info)
    start = perf_counter()
    status = 500  # what aiohttp answers for an exception that is not an HTTP one
    try:
        response = await handler(request)
        status = response.status
    except web.HTTPException as exc:
        status = exc.status
        exc.headers[HEADER] = info.id
        raise
    except asyncio.CancelledError:  # the client went away
        status = 499
        raise
    finally:
        REQUEST.reset(token)
        metrics.request_done(info.protocol, request.method, status, perf_counter() - start)
    if not response.prepared:
        response.headers[HEADER] = info.id
    return response


# --- the access log ------------------------------------------------------------------------

# query parameters whose values are logged as they are (paging, sorting, projection);
# every other value (a filter, an OAuth code or state, anything unknown) is masked
PLAIN_QUERY = frozenset({"count", "startindex", "sortby", "sortorder", "attributes",
                         "excludedattributes", "wsdl", "xsd",  # SCIM, SOAP
                         "limit", "state", "connector", "before"})  # the admin API
_PLAIN_TEXT = re.compile(r"[\w.,:*-]*")  # shown as it is; anything else percent-encoded


def logged_query(request: web.BaseRequest) -> str:
    """The query string as the access log shows it: names, and the values of
    ``PLAIN_QUERY`` only (a filter may compare a password; an OAuth callback carries a
    code)."""
    parts = []
    for key, value in request.query.items():
        name = key if _PLAIN_TEXT.fullmatch(key) else quote(key, safe="")
        if not value:
            parts.append(name)
        elif key.lower() not in PLAIN_QUERY:
            parts.append(f"{name}={MASK}")
        else:
            parts.append(f"{name}={value if _PLAIN_TEXT.fullmatch(value) else quote(value)}")
    return "&".join(parts)


class AccessLog(AbstractAccessLogger):
    """One line per request on its logger (``gateway.access``, INFO), with the fields as
    ``extra`` (the JSON format shows each); the principal is the name the authenticator
    gave the request (``authenticated``), whatever the protocol."""

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        info = request.get(INFO)
        query = logged_query(request) if request.query_string else None
        principal = info.principal if info else None
        duration_ms = round(time * 1000, 2)
        size = response.body_length
        path = request.rel_url.raw_path  # as sent: a %0A stays %0A, not a new line
        # the record made here, not by Logger.info: one line per request, without the
        # look for the caller's frame that Logger.info makes
        record = logging.LogRecord(
            self.logger.name, logging.INFO, __file__, 0, "%s %s%s %s %.1fms %dB %s",
            (request.method, path, f"?{query}" if query else "", response.status,
             duration_ms, size, principal or "-"), None)
        record.__dict__.update(
            method=request.method, path=path, query=query, status=response.status,
            duration_ms=duration_ms, bytes=size, principal=principal,
            remote=info.address if info else request.remote,
            protocol=info.protocol if info else protocol_of(path),
            request_id=info.id if info else None)
        self.logger.handle(record)
