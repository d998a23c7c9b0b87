"""Real peers for the outbound tests: a second gateway as the SCIM target, a proxy in
front of it that counts what passes and can fail on purpose (down, 5xx, 429, slow, 4xx),
and ``ScimTarget``: a small SCIM 2.0 service provider that runs as a process of its own
(``python tests/outbound_peers.py scim-target``), so that a test can freeze it
(SIGSTOP/SIGCONT), and that can keep names non-unique (RFC 7643 makes no Group's
``displayName`` unique) and apply a change and then drop the connection unanswered."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer


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
    from conftest import test_config

    from gateway.app import create_app
    from gateway.config import StoreConfig

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
    from conftest import ADMIN_CLIENT

    return {"auth": "basic", "username": ADMIN_CLIENT[0], "password": ADMIN_CLIENT[1]}


# a SCIM target of its own ---------------------------------------------------------------------
SCIM2_JSON = "application/scim+json"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
_EQ = re.compile(r'^\s*(\w+)\s+eq\s+"((?:[^"\\]|\\.)*)"\s*$', re.I)
NAMES = {"Users": "userName", "Groups": "displayName"}


@dataclass
class ScimTarget:
    """A SCIM 2.0 service provider in memory under ``/scim2``: Users and Groups, POST,
    GET (one, or a list filtered by ``attr eq "value"``), PUT, PATCH (``replace``, and
    ``members``), DELETE. ``unique_users``/``unique_groups``: whether a second resource
    of the same name is refused with 409 (RFC 7644 §3.3) or accepted.

    Controlled by the test over ``/_control`` (JSON): ``drop`` maps ``"METHOD /Users"``
    (or ``/Groups``) to how many such requests are applied and then left unanswered
    (the connection is closed); ``delay`` is seconds every SCIM request waits first.
    ``GET /_state`` is everything it holds and every request it saw."""

    unique_users: bool = True
    unique_groups: bool = False
    external_id_filter: bool = True  # False: a filter on externalId is refused (400)
    resources: dict[str, dict[str, dict]] = field(
        default_factory=lambda: {"Users": {}, "Groups": {}})
    drop: dict[str, int] = field(default_factory=dict)
    delay: float = 0.0
    log: list[list] = field(default_factory=list)  # [method, path, query, status, name]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/_state", self.state)
        app.router.add_post("/_control", self.control)
        app.router.add_get("/scim2/ServiceProviderConfig", self.spc)
        app.router.add_route("*", "/scim2/{rt:Users|Groups}", self.collection)
        app.router.add_route("*", "/scim2/{rt:Users|Groups}/{id}", self.one)
        return app

    async def state(self, _request: web.Request) -> web.Response:
        return web.json_response({**{rt: list(v.values()) for rt, v in self.resources.items()},
                                  "log": self.log})

    async def control(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.drop.update(body.get("drop", {}))
        self.delay = float(body.get("delay", self.delay))
        return web.json_response({"drop": self.drop, "delay": self.delay})

    async def spc(self, request: web.Request) -> web.Response:
        self.log.append([request.method, request.path, "", 200, None])
        return _reply({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:"
                                   "ServiceProviderConfig"],
                       "patch": {"supported": True}, "filter": {"supported": True,
                                                                "maxResults": 1000}})

    async def _begin(self, request: web.Request) -> tuple[dict | None, list]:
        entry = [request.method, request.path, request.query_string, None, None]
        self.log.append(entry)
        if self.delay:
            await asyncio.sleep(self.delay)
        body = None
        if request.method in ("POST", "PUT", "PATCH"):
            body = json.loads(await request.read() or b"null")
            if isinstance(body, dict):
                entry[4] = body.get("userName") or body.get("displayName")
        return body, entry

    def _end(self, request: web.Request, entry: list, resp: web.Response) -> web.Response:
        key = f"{request.method} /{request.match_info['rt']}"
        if self.drop.get(key, 0) > 0 and resp.status < 300:
            self.drop[key] -= 1
            entry[3] = "dropped"
            request.transport.close()  # applied, never answered
            raise web.HTTPServiceUnavailable()
        entry[3] = resp.status
        return resp

    def _clash(self, rt: str, resource: dict, own_id: str | None = None) -> bool:
        unique = self.unique_users if rt == "Users" else self.unique_groups
        name = str(resource.get(NAMES[rt], "")).casefold()
        return unique and any(str(r.get(NAMES[rt], "")).casefold() == name
                              and r["id"] != own_id for r in self.resources[rt].values())

    async def collection(self, request: web.Request) -> web.Response:
        body, entry = await self._begin(request)
        rt = request.match_info["rt"]
        if request.method == "GET":
            return self._end(request, entry, self._list(rt, request.query.get("filter")))
        if request.method != "POST" or not isinstance(body, dict):
            return self._end(request, entry, _error(405, "not here"))
        if self._clash(rt, body):
            return self._end(request, entry, _error(409, "exists", "uniqueness"))
        rid = uuid.uuid4().hex
        resource = {**{k: v for k, v in body.items() if k not in ("id", "meta")}, "id": rid,
                    "meta": {"resourceType": rt[:-1], "location": f"/scim2/{rt}/{rid}"}}
        resource.pop("password", None)
        self.resources[rt][rid] = resource
        return self._end(request, entry, _reply(resource, 201,
                                                Location=f"/scim2/{rt}/{rid}"))

    def _list(self, rt: str, filter_: str | None) -> web.Response:
        found = list(self.resources[rt].values())
        if filter_:
            m = _EQ.match(filter_)
            if m is None:
                return _error(400, f"unsupported filter {filter_}", "invalidFilter")
            attr, value = m.group(1), json.loads(f'"{m.group(2)}"')
            if attr.lower() == "externalid" and not self.external_id_filter:
                return _error(400, "externalId cannot be filtered on", "invalidFilter")
            exact = attr.lower() in ("externalid", "id")
            found = [r for r in found if isinstance(_get(r, attr), str) and (
                _get(r, attr) == value if exact
                else _get(r, attr).casefold() == value.casefold())]
        return _reply({"schemas": [LIST], "totalResults": len(found), "startIndex": 1,
                       "itemsPerPage": len(found), "Resources": found})

    async def one(self, request: web.Request) -> web.Response:
        body, entry = await self._begin(request)
        rt, rid = request.match_info["rt"], request.match_info["id"]
        current = self.resources[rt].get(rid)
        if current is None:
            return self._end(request, entry, _error(404, "no such resource"))
        if request.method == "GET":
            return self._end(request, entry, _reply(current))
        if request.method == "DELETE":
            del self.resources[rt][rid]
            return self._end(request, entry, web.Response(status=204))
        if not isinstance(body, dict):
            return self._end(request, entry, _error(400, "no body"))
        if request.method == "PATCH":
            new = dict(current)
            for op in body.get("Operations", []):
                if op.get("path") == "members":
                    new["members"] = op.get("value", []) if op["op"] != "remove" else []
                elif not op.get("path") and isinstance(op.get("value"), dict):
                    new.update(op["value"])
        elif request.method == "PUT":
            new = {**{k: v for k, v in body.items() if k not in ("id", "meta", "password")},
                   "id": rid, "meta": current["meta"]}
        else:
            return self._end(request, entry, _error(405, "not here"))
        if self._clash(rt, new, rid):
            return self._end(request, entry, _error(409, "exists", "uniqueness"))
        self.resources[rt][rid] = new
        return self._end(request, entry, _reply(new))


def _get(resource: dict, attr: str):
    return next((v for k, v in resource.items() if k.lower() == attr.lower()), None)


def _reply(body: dict, status: int = 200, **headers) -> web.Response:
    return web.Response(body=json.dumps(body), status=status, content_type=SCIM2_JSON,
                        headers=headers)


def _error(status: int, detail: str, scim_type: str | None = None) -> web.Response:
    body = {"schemas": [ERROR], "status": str(status), "detail": detail}
    if scim_type:
        body["scimType"] = scim_type
    return _reply(body, status)


class ScimTargetProcess:
    """``ScimTarget`` in a process of its own on 127.0.0.1 (a free port it picks):
    ``freeze``/``thaw`` stop and continue it (SIGSTOP/SIGCONT), ``stop`` ends it."""

    START_SECONDS = 60

    def __init__(self, workdir: Path, *, unique_groups: bool = False,
                 unique_users: bool = True, external_id_filter: bool = True):
        self.workdir = workdir
        self.args = [sys.executable, str(Path(__file__).resolve()), "scim-target"]
        if unique_groups:
            self.args.append("--unique-groups")
        if not unique_users:
            self.args.append("--non-unique-users")
        if not external_id_filter:
            self.args.append("--no-external-id-filter")
        self.out = workdir / "scim-target.out"
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ScimTargetProcess:
        with open(self.out, "wb") as out:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + self.START_SECONDS
        while self.port is None:
            m = re.search(rb"listening on (\d+)", self.out.read_bytes())
            if m:
                self.port = int(m.group(1))
            elif self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"the SCIM target did not start: {self.out.read_text()}")
            else:
                time.sleep(0.05)
        return self

    def freeze(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.proc.wait(10)

    async def _call(self, method: str, path: str, body=None):
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s, \
                s.request(method, self.url + path, json=body) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json(content_type=None)

    async def state(self) -> dict:
        return await self._call("GET", "/_state")

    async def control(self, **settings) -> dict:
        return await self._call("POST", "/_control", settings)


def _serve_scim_target(argv: list[str]) -> None:
    target = ScimTarget(unique_groups="--unique-groups" in argv,
                        unique_users="--non-unique-users" not in argv,
                        external_id_filter="--no-external-id-filter" not in argv)

    async def main() -> None:
        runner = web.AppRunner(target.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001 - the port it got
        print(f"scim target pid {os.getpid()} listening on {port}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


if __name__ == "__main__":
    if sys.argv[1:2] != ["scim-target"]:
        raise SystemExit("usage: outbound_peers.py scim-target [--unique-groups] "
                         "[--non-unique-users] [--no-external-id-filter]")
    _serve_scim_target(sys.argv[2:])
