"""``gateway serve`` as an operator runs it: a worker killed with ``kill -9`` is logged and
started again, and SIGTERM lets a request already read finish before the process exits.

Everything runs on loopback through the real command (``python -m gateway.cli serve``).
The slow request is a SCIM create whose change goes to a *blocking* outbound connector:
the reply waits for the delivery, and the delivery's target (a small SCIM service in this
test) holds the POST until the test lets it go, so the request is in flight, for sure,
when the signal arrives."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from conftest import ADMIN_USER, basic
from test_cli import (
    Server,
    children,
    clean_env,
    cmdline,
    http,
    listening_inodes,
    socket_inodes,
    sqlite_url,
    write_config,
)

ADMIN_ENV = {"GATEWAY_ADMIN_USER": ADMIN_USER[0], "GATEWAY_ADMIN_PASSWORD": ADMIN_USER[1]}
AUTH = basic(*ADMIN_USER)
BOUND = 60  # seconds: a guard against a hang, no expectation of speed


def workers_of(server: Server) -> list[int]:
    return [p for p in children(server.proc.pid) if "spawn_main" in cmdline(p)]


def wait_for(what, timeout: float = BOUND, step: float = 0.05, message: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"waited {timeout} s in vain: {message}")


def admin_ready(server: Server, in_a_row: int = 8) -> None:
    """Wait until the bootstrap administrator (made once the server listens, by the first
    worker) may list users on every worker: ``in_a_row`` successes, each on a connection
    of its own (a worker that saw the account before its role learns of it within about
    a second)."""
    row = 0

    def ok() -> bool:
        nonlocal row
        row = row + 1 if http(server.port, "/scim2/Users?count=1", AUTH)[0] == 200 else 0
        return row >= in_a_row

    wait_for(ok, step=0.1, message=server.output())


# --- a killed worker comes back ---------------------------------------------------------------


def test_a_killed_worker_is_logged_and_started_again(tmp_path):
    cfg = write_config(tmp_path, {"PRIMARY": sqlite_url(tmp_path / "gw.db")})
    with Server(tmp_path, ["--config", str(cfg), "--workers", "2"], clean_env(**ADMIN_ENV),
                "killed") as server:
        admin_ready(server)
        before = workers_of(server)
        assert len(before) == 2, [cmdline(p) for p in children(server.proc.pid)]
        victim, survivor = before
        os.kill(victim, signal.SIGKILL)

        # the parent says which worker died and how, and that it starts it again
        log = wait_for(lambda: re.search(
            rf"worker (\d) \(process {victim}\) was killed by signal SIGKILL after [\d.]+ s; "
            r"starting it again in 0.5 s", server.output()), message=server.output())
        number = log.group(1)
        again = wait_for(lambda: re.search(
            rf"worker {number} started again as process (\d+)", server.output()),
            message=server.output())
        new = int(again.group(1))
        assert new not in (victim, survivor)
        # it listens on the port again (its own SO_REUSEPORT socket) ...
        wait_for(lambda: f"gateway: worker {new} listening on" in server.output(),
                 message=server.output())
        assert sorted(workers_of(server)) == sorted([survivor, new])
        assert socket_inodes(new) & listening_inodes(server.port)

        # ... and serves: new connections are spread over both workers; the access log
        # names the process of each line
        for i in range(24):
            status, body = http(server.port, "/scim2/Users", AUTH, "POST", {"userName": f"u{i}"})
            assert status == 201, body
        served_by = {int(m) for m in re.findall(
            r"^\S+ INFO (\d+) gateway\.access .* POST /scim2/Users ", server.output(), re.M)}
        assert {new, survivor} <= served_by, (served_by, new, survivor)
        status, body = http(server.port, "/scim2/Users?count=100", AUTH)
        assert status == 200 and body["totalResults"] == 25  # and the administrator

        # a second death of the same worker: logged again, the delay doubles
        os.kill(new, signal.SIGKILL)
        wait_for(lambda: re.search(
            rf"worker {number} \(process {new}\) was killed by signal SIGKILL after [\d.]+ s; "
            r"starting it again in 1 s", server.output()), message=server.output())
        wait_for(lambda: len(re.findall(r"^gateway: worker \d+ listening on",
                                        server.output(), re.M)) == 4,
                 message=server.output())
    assert server.proc.returncode == 0, server.output()
    assert "Traceback" not in server.output()


def gone(pid: int) -> bool:
    """The process has ended (no longer there, or a zombie nobody reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2:].split()[0] in ("Z", "X")


def test_workers_stop_when_their_supervisor_is_killed(tmp_path):
    """``kill -9`` of the command itself: its workers do not serve on unsupervised."""
    cfg = write_config(tmp_path, {"PRIMARY": sqlite_url(tmp_path / "gw.db")})
    with Server(tmp_path, ["--config", str(cfg), "--workers", "2"], clean_env(**ADMIN_ENV),
                "orphans") as server:
        workers = workers_of(server)
        assert len(workers) == 2
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(BOUND)
        wait_for(lambda: all(gone(p) for p in workers), message=server.output())
        wait_for(lambda: not listening_inodes(server.port), message=server.output())
    assert "finishing the requests in flight" in server.output()


def test_a_start_that_fails_is_not_retried(tmp_path):
    """A worker that cannot start at all (the port is taken) ends the command with 1,
    instead of being started again forever."""
    import socket

    cfg = write_config(tmp_path, {"PRIMARY": sqlite_url(tmp_path / "gw.db")})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        import subprocess
        import sys

        result = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "serve", "--config", str(cfg), "--port",
             str(port), "--workers", "2"], cwd=tmp_path, env=clean_env(**ADMIN_ENV),
            capture_output=True, text=True, timeout=BOUND * 2)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "before it listened: the gateway could not start" in result.stderr
    assert "starting it again" not in result.stderr


# --- SIGTERM drains what was read ------------------------------------------------------------


class HoldingTarget:
    """A SCIM 2.0 service provider that answers at once, except a POST of ``slow``, which it
    holds until ``release()``."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()
        self.gate = asyncio.Event()
        self.users: dict[str, dict] = {}
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> HoldingTarget:
        app = web.Application()
        app.router.add_route("*", "/scim2/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/scim2"
        return self

    async def stop(self) -> None:
        self.gate.set()
        if self.runner is not None:
            await self.runner.cleanup()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        scim = "application/scim+json"
        if request.method == "GET":
            return web.json_response(
                {"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                 "totalResults": 0, "Resources": []}, content_type=scim)
        if request.method == "DELETE":
            return web.Response(status=204)
        body = await request.json()
        if request.method == "POST":
            if body.get("userName") == "slow":
                self.arrived.set()
                await self.gate.wait()
            uid = f"t{len(self.users) + 1}"
            self.users[uid] = body
            return web.json_response({**body, "id": uid}, status=201, content_type=scim)
        return web.json_response({**body, "id": request.match_info["tail"].split("/")[-1]},
                                 content_type=scim)


def drain_config(tmp_path: Path, target_url: str) -> Path:
    return write_config(tmp_path, {"PRIMARY": sqlite_url(tmp_path / "gw.db")}, f"""
[server]
shutdown_grace_seconds = 30

[outbound]
# no dispatcher at all: the worker that serves the request makes the blocking delivery
# itself (with one in each worker, the other worker's could claim it)
dispatcher = "external"
blocking_timeout_seconds = 60

[[outbound.connectors]]
name = "slow-target"
type = "scim2"
url = "{target_url}"
auth = "none"
blocking = true
provision_groups = false
""")


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_lets_a_request_in_flight_finish(tmp_path, workers):
    target = await HoldingTarget().start()
    try:
        cfg = drain_config(tmp_path, target.url)
        server = Server(tmp_path, ["--config", str(cfg), "--workers", str(workers)],
                        clean_env(**ADMIN_ENV), f"drain{workers}")
        await asyncio.to_thread(server.__enter__)
        try:
            await asyncio.to_thread(admin_ready, server)
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=BOUND)) as s:
                async def create():
                    async with s.post(f"http://127.0.0.1:{server.port}/scim2/Users",
                                      data=json.dumps({"userName": "slow"}),
                                      headers={**AUTH,
                                               "Content-Type": "application/scim+json"}) as r:
                        return r.status, await r.json()

                call = asyncio.create_task(create())
                # the gateway read the request and is delivering it to the target
                arrived = asyncio.create_task(target.arrived.wait())
                await asyncio.wait([call, arrived], timeout=BOUND,
                                   return_when=asyncio.FIRST_COMPLETED)
                assert target.arrived.is_set(), (
                    call.result() if call.done() else "no answer", server.output())
                server.proc.send_signal(signal.SIGTERM)
                # it stops listening at once, the request still in flight ...
                deadline = time.monotonic() + BOUND
                while listening_inodes(server.port):
                    assert time.monotonic() < deadline, server.output()
                    await asyncio.sleep(0.05)
                await asyncio.sleep(1.0)  # a request slower than the stop
                assert not call.done()
                assert server.proc.poll() is None
                # ... which gets its answer once the target gives it
                target.gate.set()
                status, body = await asyncio.wait_for(call, BOUND)
                assert status == 201, body
                assert body["userName"] == "slow"
            code = await asyncio.to_thread(server.proc.wait, BOUND)
        finally:
            await asyncio.to_thread(server.stop)
    finally:
        await target.stop()
    output = server.output()
    assert code == 0, output
    assert "finishing the requests in flight" in output
    assert re.search(r'POST /scim2/Users 201 ', output), output
    assert "Traceback" not in output
    assert list(target.users.values())[-1]["userName"] == "slow"
