"""What every HTTP adapter reads the same way: bodies (bounded, decoded), integer
parameters, and the gateway's own address as its clients see it."""

from __future__ import annotations

import re

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from .errors import InvalidSyntax, InvalidValue, PayloadTooLarge, UnsupportedMediaType
from .keys import CONFIG, shared

MAX_INT = 2**63 - 1  # what an index, a count or a SQL integer can hold


def integer_param(value: str | int | None, name: str) -> int | None:
    """A request's integer parameter (None when absent); InvalidValue unless it is a
    whole number of at most 64 bits."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        text = str(value).strip()
        try:
            number = int(text) if len(text) <= 32 else None
        except ValueError:
            number = None
        if number is None:
            raise InvalidValue(f"'{name}' must be an integer, not {str(value)[:40]!r}")
    if not -MAX_INT <= number <= MAX_INT:
        raise InvalidValue(f"'{name}' must be an integer of at most 64 bits")
    return number


DECODED = frozenset({"", "identity", "gzip", "deflate"})  # what aiohttp decodes


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request body, decoded, read as it arrives: 413 past ``limit`` bytes (sent or
    decoded), 415 for a Content-Encoding the gateway does not decode, 400 for a body
    that does not decode as its Content-Encoding says."""
    coding = request.headers.get("Content-Encoding", "").strip().lower()
    if coding not in DECODED:
        raise UnsupportedMediaType(f"The Content-Encoding {coding[:40]!r} is not supported "
                                   "(gzip, deflate or none)")
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"The request body is larger than {limit} bytes")
    chunks, size = [], 0
    try:
        async for chunk in request.content.iter_chunked(65536):
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"The request body is larger than {limit} bytes")
            chunks.append(chunk)
    except RequestPayloadError:
        raise InvalidSyntax("The request body does not decode as its Content-Encoding "
                            f"({coding or 'none'}) says") from None
    return b"".join(chunks)


_HOST = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")


def public_base(request: web.Request) -> str:
    """The gateway's base URL in the links and addresses it writes (``meta.location``,
    a WSDL's ``soap:address``): ``[server] base_url`` when set, and only then; else the
    request's own scheme and ``Host`` (a ``Host`` that is no host name is not echoed), which
    behind a proxy of ``[server] trusted_proxies`` are the ones the client used
    (``gateway.forwarded`` hands the adapters a request that says so)."""
    configured = shared(request)[CONFIG].base_url
    if configured:
        return configured.rstrip("/")
    host = request.host if _HOST.match(request.host or "") else None
    if host is None:
        cfg = shared(request)[CONFIG]
        host = f"{cfg.host}:{cfg.port}"
    return f"{request.scheme}://{host}"
