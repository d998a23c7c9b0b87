"""Requests that cannot be parsed as HTTP: a clean error that echoes nothing of them.

aiohttp answers these itself, before any route or middleware runs, with a text
that quotes up to 100 bytes of the offending line (the start of an over-long
``Authorization`` header: a Base64 password), and logs the same quote with a
traceback. The gateway answers them instead with a SCIM Error JSON (the only
body it can give before it knows the protocol) and logs one line without any of
the request's bytes:

- a request line (method, URL) over ``REQUEST_LINE_BYTES``: 414;
- a header field over ``HEADER_FIELD_BYTES``: 431;
- a Content-Encoding aiohttp cannot decode (``br`` without brotli): 415;
- anything else that is not valid HTTP: 400.

The two limits differ by design: aiohttp's error says only which limit was
passed, and that tells the request line from a header. The answer is installed
in ``RequestHandler.handle_error``, the one place aiohttp answers such requests
(pinned aiohttp in the lock; ``tox -e latest`` runs the tests that prove it).
"""

from __future__ import annotations

import logging

import orjson
from aiohttp import web, web_protocol
from aiohttp.http_exceptions import ContentEncodingError, HttpProcessingError, LineTooLong

REQUEST_LINE_BYTES = 8190
HEADER_FIELD_BYTES = 8192
HANDLER_ARGS = {"max_line_size": REQUEST_LINE_BYTES, "max_field_size": HEADER_FIELD_BYTES}
SCIM_ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"

log = logging.getLogger("gateway.http")


def _refusal(exc: HttpProcessingError) -> tuple[int, str]:
    if isinstance(exc, ContentEncodingError):  # one aiohttp cannot decode here (br)
        return 415, "The Content-Encoding is not supported (gzip, deflate or none)"
    if isinstance(exc, LineTooLong):
        limit = exc.args[1] if len(exc.args) > 1 else None
        if str(limit) == str(HEADER_FIELD_BYTES):
            return 431, f"A header field is longer than {HEADER_FIELD_BYTES} bytes"
        return 414, f"The request line is longer than {REQUEST_LINE_BYTES} bytes"
    return 400, "The request is not valid HTTP"


def _answer(original):
    def handle_error(self, request, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError) or status >= 500:
            return original(self, request, status, exc, message)
        status, detail = _refusal(exc)
        log.info("refused a request from %s: %s (%s)", request.remote, detail,
                 type(exc).__name__)
        body = {"schemas": [SCIM_ERROR], "status": str(status), "detail": detail}
        if status == 400:
            body["scimType"] = "invalidSyntax"
        response = web.Response(status=status, body=orjson.dumps(body),
                                content_type="application/scim+json")
        response.force_close()
        return response

    handle_error.gateway = True
    return handle_error


def install() -> None:
    """Answer unparseable requests the gateway's way (once per process)."""
    handler = web_protocol.RequestHandler
    if not getattr(handler.handle_error, "gateway", False):
        handler.handle_error = _answer(handler.handle_error)
