"""What failed logins cost the gateway, with and without throttling (issue 14).

Two gateways from this environment, one worker each, SQLite, default password
hashing (argon2id, 19 MiB, t=2):

- ``unthrottled``: ``[security]`` buckets so large and lockout off that every bad
  attempt is checked against its argon2 hash, as before throttling existed;
- ``default``: the shipped ``[security]`` settings.

Each gets the same ``--attempts`` bad HTTP Basic logins (``GET /scim2/Me``): half
a wrong password for an existing user, half unknown names, ``--concurrency`` at a
time, from one address. The figure is the server process's CPU time for them
(``/proc/<pid>/stat``), and its ratio (default / unthrottled); the target is
below 5%. Half-way through the flood, the right password of a user that was not
attacked is timed on each, sent from another address (127.0.0.2): it must not
wait behind the flood.

    python bench/run_bad_logins.py --attempts 1000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time

import aiohttp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (  # noqa: E402
    basic_auth,
    clean_env,
    cpu_seconds,
    free_port,
    serve_command,
    spawn,
    stop,
    wait_http,
    write_config,
)

UNTHROTTLED = """
[security]
lockout_attempts = 0
account_burst = 1000000
address_burst = 1000000
"""


def basic(name: str, password: str) -> dict[str, str]:
    return {"Authorization": basic_auth(f"{name}:{password}")}


def start(workdir: str, label: str, extra: str, env) -> tuple[subprocess.Popen, str]:
    port = free_port()
    config = os.path.join(workdir, f"{label}.toml")
    write_config(config, os.path.join(workdir, label + ".db"), port, extra)
    log = os.path.join(workdir, f"{label}.log")
    proc = spawn(serve_command(config), log, env, workdir)  # the port: the configuration's
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/health", proc, 120, log)
    return proc, base


async def flood(base: str, attempts: int, concurrency: int
                ) -> tuple[dict[int, int], float, float]:
    statuses: dict[int, int] = {}
    queue = list(range(attempts))
    started = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        async with session.post(base + "/scim2/Users", json={
                "userName": "victim", "password": "Victim-pw-1"},
                headers=basic("bench", "secret")) as resp:
            assert resp.status == 201, await resp.text()
        async with session.post(base + "/scim2/Users", json={
                "userName": "bystander", "password": "Bystander-pw-1"},
                headers=basic("bench", "secret")) as resp:
            assert resp.status == 201, await resp.text()

        async def worker() -> None:
            while queue:
                i = queue.pop()
                name = "victim" if i % 2 else f"nobody{i}"
                async with session.get(base + "/scim2/Me",
                                       headers=basic(name, f"wrong-{i}")) as resp:
                    await resp.read()
                    statuses[resp.status] = statuses.get(resp.status, 0) + 1

        async def bystander() -> float:
            while len(queue) > attempts // 2:  # noqa: ASYNC110 - half-way through the flood
                await asyncio.sleep(0.01)
            return await real_login(base)

        *_, login_ms = await asyncio.gather(*(worker() for _ in range(concurrency)),
                                            bystander())
    return statuses, time.monotonic() - started, login_ms


async def real_login(base: str) -> float:
    """A login with the right password, from another address (127.0.0.2), timed."""
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.monotonic()
        async with session.get(base + "/scim2/Me",
                               headers=basic("bystander", "Bystander-pw-1")) as resp:
            await resp.read()
            assert resp.status == 200, resp.status
            return (time.monotonic() - started) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attempts", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    env = clean_env()
    rows = []
    with tempfile.TemporaryDirectory(prefix="gw-badlogins-") as workdir:
        for label, extra in (("unthrottled", UNTHROTTLED), ("default", "")):
            proc, base = start(workdir, label, extra, env)
            try:
                before = cpu_seconds(proc.pid)
                statuses, wall, login_ms = asyncio.run(
                    flood(base, args.attempts, args.concurrency))
                cpu = cpu_seconds(proc.pid) - before
            finally:
                stop(proc)
            rows.append((label, cpu, wall, statuses, login_ms))
    print(f"\n{args.attempts} bad Basic logins, {args.concurrency} at a time\n")
    print(f"{'gateway':<12} {'server CPU s':>12} {'wall s':>8} {'login ms':>9}  statuses "
          "(login: a real one, during the flood)")
    for label, cpu, wall, statuses, login_ms in rows:
        print(f"{label:<12} {cpu:>12.2f} {wall:>8.2f} {login_ms:>9.1f}  "
              f"{dict(sorted(statuses.items()))}")
    ratio = rows[1][1] / rows[0][1] if rows[0][1] else float("nan")
    print(f"\nCPU of the default gateway / unthrottled: {ratio:.1%} (target < 5%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
