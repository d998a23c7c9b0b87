"""Real ``gateway serve`` processes for the crash tests, and a proxy that can hold creates.

``GatewayProcess`` runs the gateway exactly as an operator does (``python -m gateway.cli
serve --config … --port …``) with its output in files; it is killed with ``SIGKILL`` or
stopped with ``SIGTERM`` by its process id, and always stopped by ``cleanup()``.

``HoldingProxy`` is the ``FaultProxy`` of ``outbound_peers`` that also logs every
exchange with the entity name it is about, and can hold POSTs at a gate: the gateway's
create is then in flight, the test kills the gateway, and the held creates are either
forwarded to the target (the create happened, its answer was lost) or dropped (it never
arrived). Each exchange runs in its own task, shielded from the client going away, as a
real server keeps working on a request whose client died.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web
from conftest import ADMIN, ADMIN_CLIENT, ADMIN_USER
from outbound_peers import FaultProxy

GATEWAY = [sys.executable, "-m", "gateway.cli"]
# start-up waits for the process's own word that it listens (one line per worker); this
# bound only stops a hang, it is no expectation of speed on a busy machine
STARTUP_GUARD_SECONDS = 240
LISTENING = re.compile(rb"^gateway: worker \d+ listening on ", re.MULTILINE)
STOP_SECONDS = 20
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=10)
FAST_PASSWORDS = {"time_cost": 1, "memory_cost_kib": 8, "parallelism": 1}
DROPPED = -1  # the status logged for a held request the proxy never forwarded


def wait_listening(proc: subprocess.Popen, out: Path, workers: int, output: Callable[[], str],
                   label: str = "gateway") -> None:
    """Wait until each of ``workers`` workers of ``proc`` has said in ``out`` that it listens;
    AssertionError (with the output) when the process ends first."""
    deadline = time.monotonic() + STARTUP_GUARD_SECONDS
    while len(LISTENING.findall(out.read_bytes())) < workers:
        if proc.poll() is not None:
            raise AssertionError(f"{label} exited with {proc.returncode}:\n{output()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{label} not listening after {STARTUP_GUARD_SECONDS} s "
                                 f"(hung?):\n{output()}")
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without gateway settings or proxies, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith("GATEWAY") and k.lower() not in (
               "http_proxy", "https_proxy", "all_proxy")}
    env.update(PYTHONUNBUFFERED="1", GATEWAY_ADMIN_USER=ADMIN_USER[0],
               GATEWAY_ADMIN_PASSWORD=ADMIN_USER[1])
    env.update(extra)
    return env


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string for what the tests write
    raise TypeError(f"no TOML for {value!r}")


def write_config(path: Path, store_url: str, connector_url: str, *, outbound: dict,
                 connector: dict | None = None) -> Path:
    """A gateway configuration: PRIMARY on ``store_url`` (the queue in the same database),
    the tests' admin API client, and one SCIM 2.0 connector ``downstream``."""
    lines = ["[passwords]", *(f"{k} = {_toml(v)}" for k, v in FAST_PASSWORDS.items()), "",
             "[userstores.PRIMARY]", f"url = {_toml(store_url)}", "",
             "[[clients]]", f"name = {_toml(ADMIN_CLIENT[0])}",
             f"secret = {_toml(ADMIN_CLIENT[1])}", 'permissions = ["*"]', "",
             "[outbound]", *(f"{k} = {_toml(v)}" for k, v in outbound.items()), "",
             "[[outbound.connectors]]"]
    conn = {"name": "downstream", "type": "scim2", "url": connector_url, "auth": "basic",
            "username": ADMIN_CLIENT[0], "password": ADMIN_CLIENT[1],
            **(connector or {})}
    lines += [f"{k} = {_toml(v)}" for k, v in conn.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class GatewayProcess:
    """One ``gateway serve`` process on a free port."""

    def __init__(self, config: Path, workdir: Path, label: str):
        self.config = config
        self.workdir = workdir
        self.label = label
        self.port = free_port()
        self.out = workdir / f"{label}.out"
        self.err = workdir / f"{label}.err"
        self.proc: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _spawn(self) -> None:
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(
                [*GATEWAY, "serve", "--config", str(self.config), "--port", str(self.port)],
                cwd=self.workdir, env=clean_env(), stdout=out, stderr=err,
                stdin=subprocess.DEVNULL, start_new_session=True)

    async def start(self) -> GatewayProcess:
        await asyncio.to_thread(self._spawn)
        try:
            await self._wait_up()
        except BaseException:
            self.cleanup()
            raise
        return self

    async def _wait_up(self) -> None:
        await asyncio.to_thread(wait_listening, self.proc, self.out, 1, self.output, self.label)
        async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session:
            async with session.get(self.base + "/health") as resp:
                assert resp.status == 200, (await resp.text(), self.output())

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def kill9(self) -> int:
        """``kill -9`` the process (by its id); its exit status."""
        self.proc.send_signal(signal.SIGKILL)
        return await asyncio.to_thread(self.proc.wait, STOP_SECONDS)

    async def terminate(self) -> int:
        """``SIGTERM`` and wait (bounded) for the process to end; its exit status."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.to_thread(self.proc.wait, STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.cleanup()
            raise AssertionError(f"{self.label} did not stop within {STOP_SECONDS} s of "
                                 f"SIGTERM:\n{self.output()}") from None

    def cleanup(self) -> None:
        """Make sure the process is gone (SIGKILL to it, then to its own session)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # the session this process leads
            self.proc.wait(timeout=5)

    def output(self, tail: int = 6000) -> str:
        text = ""
        for f in (self.out, self.err):
            with contextlib.suppress(OSError):
                text += f.read_text(errors="replace")
        return text[-tail:]

    # HTTP ------------------------------------------------------------------------------------
    async def call(self, method: str, path: str, body=None, auth=ADMIN):
        """One request: (status, parsed JSON or text)."""
        headers = dict(auth or {})
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/scim+json"
        async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session, session.request(
                method, self.base + path, data=data, headers=headers) as resp:
            raw = await resp.read()
            if "json" in resp.content_type and raw:
                return resp.status, json.loads(raw)
            return resp.status, raw.decode(errors="replace")

    async def events(self) -> list[dict]:
        status, body = await self.call("GET", "/admin/outbound/events?limit=1000")
        assert status == 200, body
        assert body["next"] is None, "more deliveries than one page"
        return body["events"]

    async def delivered_total(self) -> int:
        """Deliveries made (``gateway_outbound_deliveries_total``, summed over outcomes)."""
        status, text = await self.call("GET", "/metrics")
        assert status == 200, text
        return sum(int(m) for m in re.findall(
            r'^gateway_outbound_deliveries_total\{connector="downstream",[^}]*\} (\d+)$',
            text, re.M))


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (``gateway serve`` runs its dispatcher in a child)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for children in Path(f"/proc/{p}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo += [int(c) for c in children.read_text().split()]
    return out


def socket_ports(pid: int) -> set[int]:
    """Local TCP ports of the sockets process ``pid`` and its descendants hold open (from
    /proc)."""
    inodes = set()
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{p}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            next(f)
            for line in f:
                cols = line.split()
                if cols[9] in inodes:
                    ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


# the proxy -------------------------------------------------------------------------------------
@dataclass
class Exchange:
    method: str
    path: str
    name: str | None  # the userName/displayName the request is about
    client_port: int | None
    status: int | None = None  # None while it runs; DROPPED: held, then never forwarded
    held: bool = False
    at: float = field(default_factory=time.monotonic)  # when it arrived


_FILTER_NAME = re.compile(r'^\s*\w+\s+eq\s+"((?:[^"\\]|\\.)*)"\s*$', re.I)


def _name_of(request: web.Request, body: bytes) -> str | None:
    if request.method == "GET":
        m = _FILTER_NAME.match(request.query.get("filter", ""))
        return json.loads(f'"{m.group(1)}"') if m else None
    try:
        doc = json.loads(body) if body else None
    except ValueError:
        return None
    if isinstance(doc, dict):
        return doc.get("userName") or doc.get("displayName")
    return None


@dataclass
class HoldingProxy(FaultProxy):
    """``FaultProxy`` + an exchange log + a gate that holds POSTs while ``hold`` is set."""

    hold: bool = False
    hold_only: set[str] | None = None  # hold the POSTs of these names only (None: all)
    drop: Callable[[str | None], bool] = lambda _name: False  # held and not forwarded
    log: list[Exchange] = field(default_factory=list)
    _gate: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: set = field(default_factory=set)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()  # cached: FaultProxy.handle reads it again
        peer = request.transport.get_extra_info("peername") if request.transport else None
        ex = Exchange(request.method, request.path, _name_of(request, body),
                      peer[1] if peer else None)
        self.log.append(ex)
        task = asyncio.create_task(self._exchange(request, ex))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(task)  # the exchange goes on if the client goes away

    async def _exchange(self, request: web.Request, ex: Exchange) -> web.StreamResponse:
        if self.hold and request.method == "POST" and (
                self.hold_only is None or ex.name in self.hold_only):
            ex.held = True
            await self._gate.wait()
            if self.drop(ex.name):
                ex.status = DROPPED
                return web.json_response({"detail": "dropped"}, status=503)
        try:
            resp = await super().handle(request)
        except web.HTTPException as exc:
            ex.status = exc.status
            raise
        except BaseException:
            ex.status = 599
            raise
        ex.status = resp.status
        return resp

    def held(self) -> list[Exchange]:
        return [e for e in self.log if e.held and e.status is None]

    def release(self) -> None:
        """Stop holding: held POSTs go on (forwarded, or dropped as ``drop`` says)."""
        self.hold = False
        self._gate.set()

    async def idle(self, timeout: float = 15.0) -> None:  # noqa: ASYNC109
        """Wait until no exchange is running any more."""
        deadline = time.monotonic() + timeout
        while self._tasks:
            if time.monotonic() > deadline:
                raise AssertionError(f"the proxy still has {len(self._tasks)} exchange(s) "
                                     f"running after {timeout} s")
            await asyncio.sleep(0.02)
