"""The client's address, scheme and host as a trusted reverse proxy forwarded them.

Behind a proxy the peer of every connection is the proxy, and the request's scheme and
``Host`` are the ones the proxy used, not the client's. When the peer is one of
``[server] trusted_proxies`` (CIDRs), the middleware :func:`middleware` reads what the
proxy says: ``Forwarded`` (RFC 7239) when the request has it, else ``X-Forwarded-For``,
``X-Forwarded-Proto``, ``X-Forwarded-Host`` (and ``X-Forwarded-Port``), and hands the
rest of the chain a clone of the request whose ``remote``, ``scheme`` and ``host`` are the
client's. It runs right after ``gateway.request_context``'s middleware (whose
``RequestInfo.address``, used by the audit trail, throttling and the access log, it
corrects too), so every adapter and ``gateway.http_input.public_base`` (``meta.location``,
SOAP addresses) see the corrected values. From any other peer the headers are ignored: a
client cannot choose the address it is throttled and audited by.

The client is found from the right of the chain: each proxy appends the address it got
the request from, so the entries are walked from the last (written by the trusted peer)
leftwards while they name trusted proxies; the first one that does not is the client.
Its proxy's scheme and host are the ones the client used. A value that does not parse
(an obfuscated ``for=_hidden``, a scheme other than http/https, a host that is no host
name) is not believed; what was found up to it is kept.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from aiohttp import web

from .request_context import INFO

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address

_HOST = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")
_PORT = re.compile(r"^[0-9]{1,5}$")
# one element of Forwarded: pairs token=value, value a token or a quoted string
_PAIR = re.compile(r'\s*([A-Za-z0-9!#$%&\'*+.^_`|~-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;,"\s]*)\s*')
MAX_HOPS = 32  # entries looked at; a longer chain is cut from the left


@dataclass(frozen=True)
class Hop:
    """What one proxy says: the address it got the request from, and the scheme and host
    the request came to it with (None: not said)."""

    address: str | None
    proto: str | None = None
    host: str | None = None


def parse_address(text: str | None) -> Address | None:
    """An address as a ``for=`` or ``X-Forwarded-For`` entry gives it (``1.2.3.4``,
    ``1.2.3.4:5678``, ``[2001:db8::1]:80``, ``2001:db8::1``); None if it is none (``unknown``,
    an obfuscated ``_name``)."""
    if not text:
        return None
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        text = text[1:end] if end > 0 else ""
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.split(":", 1)[0]
    try:
        address = ip_address(text)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def trusted(address: Address | None, networks: Sequence[Network]) -> bool:
    return address is not None and any(address in net for net in networks)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def forwarded_hops(header: str) -> list[Hop] | None:
    """The elements of a ``Forwarded`` header, left to right; None when it does not parse
    (then it is not believed at all)."""
    hops = []
    for element in _split_elements(header):
        pairs: dict[str, str] = {}
        for part in _split(element, ";"):
            if not part.strip():
                continue
            m = _PAIR.fullmatch(part)
            if m is None:
                return None
            pairs[m.group(1).lower()] = _unquote(m.group(2))
        hops.append(Hop(pairs.get("for"), pairs.get("proto"), pairs.get("host")))
    return hops


def _split(text: str, sep: str) -> list[str]:
    """``text`` split at ``sep`` outside quoted strings."""
    parts, current, quoted, escaped = [], [], False, False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == sep and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


def _split_elements(header: str) -> list[str]:
    return [e for e in _split(header, ",") if e.strip()]


def x_forwarded_hops(headers) -> list[Hop]:
    """``X-Forwarded-For`` (one entry per proxy) with ``-Proto``, ``-Host`` and ``-Port``:
    a list of values as long as ``-For`` goes entry by entry, else the last value (the
    nearest proxy's) is that of the last hop."""
    def values(name: str) -> list[str]:
        return [v.strip() for v in ",".join(headers.getall(name, [])).split(",") if v.strip()]

    fors = values("X-Forwarded-For")
    protos, hosts, ports = (values("X-Forwarded-Proto"), values("X-Forwarded-Host"),
                            values("X-Forwarded-Port"))
    if not fors:
        fors = [""]  # proto/host without an address: the peer's own hop

    def at(items: list[str], i: int) -> str | None:
        if len(items) == len(fors):
            return items[i]
        return items[-1] if items and i == len(fors) - 1 else None

    hops = []
    for i, address in enumerate(fors):
        host, port = at(hosts, i), at(ports, i)
        if host and port and _PORT.match(port) and not re.search(r":[0-9]+$", host):
            host = f"{host}:{port}"
        hops.append(Hop(address or None, at(protos, i), host))
    return hops


@dataclass(frozen=True)
class Client:
    address: str
    scheme: str | None
    host: str | None


def client_of(peer: Address, hops: list[Hop], networks: Sequence[Network]) -> Client:
    """Who the client is, given a trusted ``peer`` and the chain its proxies describe."""
    hops = hops[-MAX_HOPS:]
    address: Address = peer
    chosen = len(hops)  # the index of the hop whose proxy talked to the client
    for i in range(len(hops) - 1, -1, -1):
        found = parse_address(hops[i].address)
        chosen = i  # this hop's proxy is trusted: its scheme and host count
        if found is None:  # no address said, or not one: the client is not known better
            break
        address = found
        if not trusted(found, networks):
            break
    scheme = host = None
    for hop in hops[chosen:]:  # the client's proxy first, then the ones nearer to us
        if scheme is None and hop.proto and hop.proto.lower() in ("http", "https"):
            scheme = hop.proto.lower()
        if host is None and hop.host and _HOST.match(hop.host):
            host = hop.host
    return Client(str(address), scheme, host)


def middleware(networks: Sequence[Network]):
    """The middleware that believes the proxies in ``networks`` (an empty list: nobody;
    ``gateway.app`` then installs none)."""
    networks = tuple(networks)

    @web.middleware
    async def forwarded(request: web.Request, handler):
        peer = parse_address(request.remote)
        if not trusted(peer, networks):
            return await handler(request)
        header = request.headers.get("Forwarded")
        hops = forwarded_hops(header) if header is not None else None
        if hops is None:
            if header is not None:  # a Forwarded that does not parse: believe nothing
                return await handler(request)
            if not any(h in request.headers for h in ("X-Forwarded-For", "X-Forwarded-Proto",
                                                      "X-Forwarded-Host")):
                return await handler(request)
            hops = x_forwarded_hops(request.headers)
        client = client_of(peer, hops, networks)
        changes: dict[str, str] = {}
        if client.address != request.remote:
            changes["remote"] = client.address
        if client.scheme and client.scheme != request.scheme:
            changes["scheme"] = client.scheme
        if client.host and client.host != request.host:
            changes["host"] = client.host
        if not changes:
            return await handler(request)
        info = request.get(INFO)
        if info is not None:  # the audit trail's, the throttle's and the access log's
            info.address = client.address
        return await handler(request.clone(**changes))

    return forwarded
