"""SCIM over HTTP, both versions: reading bodies, writing JSON, ETags, errors, the caller.

What a version writes differently (its content type, its error body, its base URL)
stays in its own ``http`` module (``gateway.scim.http``, ``gateway.scim11.http``).
"""

from __future__ import annotations

import logging

import orjson
from aiohttp import web

from ..errors import (
    GatewayError,
    InvalidSyntax,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    VersionMismatch,
)
from ..http_input import public_base, read_body

SCIM_JSON = "application/scim+json"
SCIM2_PREFIX = "/scim2"  # where the SCIM 2.0 API is mounted

# the authenticated caller of a request
PRINCIPAL = web.RequestKey("principal", object)


def scim2_base_url(request: web.Request) -> str:
    """The public URL of the SCIM 2.0 API (``meta.location`` and ``$ref`` of its resources)."""
    return public_base(request) + SCIM2_PREFIX


def respond(body: dict | None, status: int = 200, *, content_type: str,
            etag: int | None = None, location: str | None = None) -> web.Response:
    headers = {}
    if etag is not None:
        headers["ETag"] = f'W/"{etag}"'
    if location is not None:
        headers["Location"] = location
    if body is None:
        return web.Response(status=status, headers=headers)
    return web.Response(body=orjson.dumps(body), status=status, content_type=content_type,
                        headers=headers)


async def read_json(request: web.Request, limit: int) -> dict:
    ctype = request.content_type
    if request.headers.get("Content-Type") and "json" not in ctype and ctype != "text/plain":
        raise UnsupportedMediaType(f"Send {SCIM_JSON} or application/json, not {ctype}")
    raw = await read_body(request, limit)
    if not raw.strip():
        raise InvalidSyntax("The request has no body")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidSyntax(f"The body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidSyntax("The body must be a JSON object")
    return body


def versions_of(header: str | None) -> frozenset[int] | None:
    """The versions an If-Match/If-None-Match header lists (RFC 7232: one entity tag or
    several, comma-separated, weak or strong); None for ``*`` or no header. Tags that
    are no version of ours are left out (they match nothing)."""
    if header is None or header.strip() == "*":
        return None
    found = set()
    for tag in header.split(","):
        text = tag.strip()
        if text.startswith("W/"):
            text = text[2:]
        text = text.strip().strip('"')
        if text.isdigit() and len(text) <= 18:
            found.add(int(text))
    return frozenset(found)


def version_of(header: str | None) -> int | None:
    """The one version an If-Match header names; None for ``*`` or no header;
    VersionMismatch when it names none of ours. Several (a list) are for
    :func:`expected_version`."""
    versions = versions_of(header)
    if versions is None:
        return None
    if len(versions) != 1:
        raise VersionMismatch(f"The resource does not have the version {header[:80]}")
    return next(iter(versions))


async def expected_version(header: str | None, current) -> int | None:
    """What a write must find (If-Match): None for none or ``*``; the one version named;
    of several, the current one (``await current()``) when it is among them, else 412."""
    versions = versions_of(header)
    if versions is None:
        return None
    if len(versions) == 1:
        return next(iter(versions))
    version = await current() if versions else None
    if version not in versions:
        raise VersionMismatch(f"The resource does not have any of the versions {header[:80]}")
    return version


def none_match(request, version: int) -> bool:
    """Whether the request's If-None-Match names this version (or ``*``): the client has
    it, and the answer is 304. An unparseable tag matches nothing."""
    header = request.headers.get("If-None-Match")
    if header is None:
        return False
    versions = versions_of(header)
    return versions is None or version in versions


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
