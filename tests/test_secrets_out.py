"""Secrets never leave in replies or logs: connector URLs, over-long credentials, requests
that are not valid HTTP."""

from __future__ import annotations

import base64
import logging
import socket
from dataclasses import replace

from conftest import ADMIN

from connectors.config import ConnectorConfig
from gateway.app import create_app
from gateway.outbound.config import OutboundConfig
from gateway.redact import text

SECRET = "Conn3ctor-Passw0rd"


def test_redact_masks_url_passwords_and_secret_parameters():
    assert text(f"http://svc:{SECRET}@host:8080/scim2") == "http://svc:***@host:8080/scim2"
    assert text(f"down: cannot reach https://a:{SECRET}@h/x?token=abc&x=1") == (
        "down: cannot reach https://a:***@h/x?token=***&x=1")
    assert text("http://host/scim2?api_key=k&Password=p") == (
        "http://host/scim2?api_key=***&Password=***")
    assert text("http://user@host/") == "http://user@host/"
    assert text(None) is None


async def test_connector_urls_are_shown_without_their_password(aiohttp_client, make_config,
                                                               admin_env):
    url = f"http://svc:{SECRET}@127.0.0.1:9/scim2?token={SECRET}"
    cfg = replace(await make_config(), outbound=OutboundConfig(
        poll_interval_ms=20, connectors=(ConnectorConfig(name="down", type="scim2", url=url,
                                                         timeout_seconds=0.5),)))
    client = await aiohttp_client(create_app(cfg))
    resp = await client.get("/admin/outbound/connectors", headers=ADMIN)
    raw = await resp.text()
    assert resp.status == 200, raw
    assert SECRET not in raw
    (shown,) = (await resp.json())["connectors"]
    assert shown["url"] == "http://svc:***@127.0.0.1:9/scim2?token=***"


def raw_exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


async def test_over_long_credentials_are_a_clean_431_echoing_nothing(gateway, caplog):
    caplog.set_level(logging.DEBUG)
    credentials = base64.b64encode(f"root:{SECRET * 600}".encode()).decode()
    port = gateway.server.port
    reply = await _in_thread(raw_exchange, port, (
        f"GET /scim2/Users HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {credentials}\r\n\r\n"
    ).encode())
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.") and b" 431 " in head.split(b"\r\n")[0], head
    assert b"application/scim+json" in head
    assert b'"status":"431"' in body
    assert credentials[6:40].encode() not in reply
    logged = "\n".join(r.getMessage() + str(r.exc_info or "") for r in caplog.records)
    assert credentials[6:40] not in logged and SECRET not in logged


async def test_over_long_request_line_and_broken_headers(gateway, caplog):
    caplog.set_level(logging.DEBUG)
    port = gateway.server.port
    marker = "Q7marker"
    reply = await _in_thread(raw_exchange, port, (
        f"GET /scim2/Users?filter={marker * 2000} HTTP/1.1\r\nHost: x\r\n\r\n").encode())
    assert b" 414 " in reply.split(b"\r\n")[0] and b'"status":"414"' in reply, reply[:300]
    assert marker.encode() not in reply
    reply = await _in_thread(raw_exchange, port, (
        f"GET /scim2/Users HTTP/1.1\r\nHost: x\r\nBad{marker}\x01: x\r\n\r\n").encode())
    assert b" 400 " in reply.split(b"\r\n")[0] and b'"scimType":"invalidSyntax"' in reply
    assert marker.encode() not in reply
    logged = "\n".join(r.getMessage() + str(r.exc_info or "") for r in caplog.records)
    assert marker not in logged
    # the gateway still serves
    resp = await gateway.get("/health")
    assert resp.status == 200


async def _in_thread(fn, *args):
    import asyncio

    return await asyncio.to_thread(fn, *args)
