"""Real peers for the outbound tests: a second gateway as the SCIM target, and a proxy in
front of it that counts what passes and can fail on purpose (down, 5xx, 429, slow, 4xx)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from conftest import ADMIN_CLIENT, test_config

from gateway.app import create_app
from gateway.config import StoreConfig


@dataclass
class FaultProxy:
    """Forwards to ``upstream``; ``mode`` says how to misbehave."""

    upstream: str
    mode: str = "pass"  # pass, down, 500, 503, 429, 400, 403, slow, malformed
    delay: float = 0.0
    seen: list[tuple[str, str, int]] = field(default_factory=list)  # (method, path, status)
    _session: aiohttp.ClientSession | None = None

    def count(self, method: str, prefix: str = "") -> int:
        """Requests the target accepted (2xx)."""
        return sum(1 for m, p, s in self.seen if m == method and p.startswith(prefix)
                   and 200 <= s < 300)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        mode = self.mode
        if mode == "down":
            request.transport.close()  # the peer hangs up: a connection error
            raise web.HTTPServiceUnavailable()
        if mode in ("500", "503", "400", "403"):
            self.seen.append((request.method, request.path, int(mode)))
            return web.json_response({"detail": f"injected {mode}"}, status=int(mode))
        if mode == "429":
            self.seen.append((request.method, request.path, 429))
            return web.json_response({"detail": "slow down"}, status=429,
                                     headers={"Retry-After": "1"})
        if mode == "slow" or self.delay:
            await asyncio.sleep(self.delay or 30)
        body = await request.read()
        async with self._session.request(
                request.method, self.upstream + request.path_qs, data=body or None,
                headers={k: v for k, v in request.headers.items()
                         if k.lower() in ("authorization", "content-type", "if-match",
                                          "accept")}) as resp:
            payload = await resp.read()
            self.seen.append((request.method, request.path, resp.status))
            if mode == "malformed" and resp.status < 300:
                return web.Response(body=b"{not json", status=resp.status,
                                    content_type="application/scim+json")
            return web.Response(body=payload, status=resp.status,
                                headers={k: v for k, v in resp.headers.items()
                                         if k.lower() in ("content-type", "etag", "location")})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)

        async def session(_app):
            self._session = aiohttp.ClientSession()
            yield
            await self._session.close()

        app.cleanup_ctx.append(session)
        return app


async def start_target(tmp_path, name: str = "target") -> TestServer:
    """A second gateway (its own SQLite) serving SCIM, as a downstream system."""
    cfg = test_config({"PRIMARY": StoreConfig("PRIMARY", f"sqlite:///{tmp_path / name}.db")})
    server = TestServer(create_app(cfg, bootstrap=False))
    await server.start_server()
    return server


async def start_proxy(upstream: str) -> tuple[FaultProxy, TestServer]:
    proxy = FaultProxy(upstream)
    server = TestServer(proxy.app())
    await server.start_server()
    return proxy, server


def target_auth() -> dict[str, str]:
    return {"auth": "basic", "username": ADMIN_CLIENT[0], "password": ADMIN_CLIENT[1]}
