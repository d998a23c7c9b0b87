"""What the benchmarks share (``run.py``, ``run_*.py``, ``loadgen.py``): one copy of each piece.

- **processes**: free ports, the gateway's environment, command and configuration
  (``write_config``), starting (``spawn``, ``serve_command``, ``baseline_command``,
  ``pinned`` to CPUs with taskset),
  waiting (``wait_http``), stopping (``stop``), a bounded child run (``run_child``),
  ``gateway import`` (``run_import``), the results folder (``results_dir``,
  ``results_args``), the temporary folder (``cleanup``), loopback-only URLs; a throw-away
  PostgreSQL database (``pg_create_database``, ``pg_drop_database``, ``pg_backends``);
- **/proc readers**: CPU seconds of a process (``cpu_seconds``), of a process and its
  descendants (``process_tree``, ``tree_cpu``, ``stat_sum``), of this process
  (``own_cpu``); RSS (``proc_status``, ``RssSampler``); the machine (``loadavg``,
  ``machine_load``, ``machine_busy``, ``machine_cpu``, ``process_cpu``, ``busiest_others``;
  some CPUs: ``cpu_list``, ``cores_busy``);
- **measuring**: ``percentile``/``pct``; many clients (the load generators): ``Phase``,
  ``Operation``/``PostOperation``, ``run_phase``, and interleaved slices
  ``Slices``/``measure``; one client, one request at a time (``run_scim.py``,
  ``run_ldap.py``): ``Loop``, ``Client``, ``LoopBench``, ``Failed``;
- **reports**: ``fmt``, ``mark``/``verdict`` (``[MET ]``...), ``columns`` (the aligned
  tables), ``save_report``;
- **py-spy**: ``start_py_spy``/``stop_py_spy``, ``raw_samples``, ``split_frame``,
  ``shares`` and the generic ``profile_summary``.

Only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import glob
import json
import math
import os
import random
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field

import aiohttp
import orjson

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
TICK = os.sysconf("SC_CLK_TCK")
SCIM_JSON = "application/scim+json"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


# processes ---------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gateway_command() -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), "gateway")
    if os.path.exists(script):
        return [script]
    return [sys.executable, "-m", "gateway.cli"]


def serve_args(config: str, port: int | None = None, *more: str) -> list[str]:
    """``serve --config CFG [--port P] [more]`` (without a port: the configuration's)."""
    return (["serve", "--config", config] + ([] if port is None else ["--port", str(port)])
            + list(more))


def serve_command(config: str, port: int | None = None, *more: str) -> list[str]:
    return gateway_command() + serve_args(config, port, *more)


def baseline_command(port: int) -> list[str]:
    """The bare aiohttp baseline (``baseline.py``)."""
    return [sys.executable, os.path.join(HERE, "baseline.py"), "--port", str(port)]


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("GATEWAY_")}
    # a known administrator, so that serve does not print a generated password
    env["GATEWAY_ADMIN_USER"] = "admin"
    env["GATEWAY_ADMIN_PASSWORD"] = secrets.token_urlsafe(18)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def write_config(path: str, db: str, port: int, extra: str = "", workers: int = 1,
                 url: str | None = None) -> None:
    """The benchmarks' gateway: SQLite PRIMARY ``db`` (or the database ``url``, e.g. a
    ``pg_create_database`` one), an API client ``bench`` with the plain secret ``secret``
    and ``*``, ``[auth] cache_seconds = 60``; ``extra`` (TOML) appended."""
    if url is None:
        url = f"sqlite+aiosqlite:///{os.path.abspath(db)}"
    with open(path, "w") as f:
        f.write(f"""# written by bench/run.py
[server]
host = "127.0.0.1"
port = {port}
workers = {workers}

[auth]
cache_seconds = 60

[userstores.PRIMARY]
url = "{url}"

[[clients]]
name = "bench"
secret = "secret"
permissions = ["*"]
""")
        f.write(extra)


def pinned(cmd: list[str], cpus: str | None) -> list[str]:
    """``cmd`` run with ``taskset -c cpus`` (taskset execs it: the process keeps its pid);
    ``cpus`` None or empty: not pinned."""
    if not cpus:
        return cmd
    if shutil.which("taskset") is None:
        raise SystemExit("taskset not found (util-linux): cannot pin to CPUs " + cpus)
    return ["taskset", "-c", cpus, *cmd]


def spawn(cmd: list[str], log: str, env: dict[str, str], cwd: str) -> subprocess.Popen:
    """A server in a process of its own, its output (both streams) into ``log``."""
    with open(log, "w") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)


def health(port: int) -> str:
    return f"http://127.0.0.1:{port}/health"


def wait_http(url: str, proc: subprocess.Popen, seconds: float, log: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: the server exited with {proc.returncode}; see {log}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - http://127.0.0.1
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {seconds:.0f}s; see {log}")


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def run_child(cmd: list[str], env: dict[str, str], timeout: float,
              what: str = "the load generator") -> None:
    """Run a helper process (a load generator, a setup) to its end, within ``timeout``."""
    try:
        subprocess.run(cmd, check=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SystemExit(f"{what} overran its time bound") from None
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"{what} failed ({exc.returncode})") from None


def import_command(jsonl: str, config: str, batch: int | None = None) -> list[str]:
    return (gateway_command() + ["import", jsonl, "--config", config]
            + (["--batch", str(batch)] if batch else []))


def run_import(cmd: list[str], log: str, env: dict[str, str], cwd: str,
               timeout: float) -> tuple[float, str]:
    """Run ``gateway import`` (``import_command``): (wall seconds, what it printed)."""
    t0 = time.perf_counter()
    with open(log, "w") as out:
        try:
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                  cwd=cwd, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SystemExit(f"the load took more than {timeout}s; see {log}") from None
    seconds = time.perf_counter() - t0
    with open(log) as f:
        text = f.read().strip()
    if proc.returncode != 0:
        raise SystemExit(f"the load failed ({proc.returncode}): {text[-2000:]}")
    return seconds, text


def results_dir(root: str, name: str) -> tuple[str, str]:
    """(the run's time stamp, ``root/<stamp>-<name>/``, made)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    outdir = os.path.join(root, f"{stamp}-{name}")
    os.makedirs(outdir, exist_ok=True)
    return stamp, outdir


def results_args(p: argparse.ArgumentParser, keep: str) -> None:
    """``--keep`` (help: ``keep``) and ``--results``, the last options of a benchmark."""
    p.add_argument("--keep", action="store_true", help=keep)
    p.add_argument("--results", default=RESULTS)


def cleanup(workdir: str, keep: bool) -> None:
    if keep:
        print(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


def require_loopback(p: argparse.ArgumentParser, *urls: str) -> None:
    for url in urls:
        if urllib.parse.urlsplit(url).hostname not in LOOPBACK:
            p.error(f"loopback targets only, not {url}")


def pg_create_database(url: str, prefix: str = "gwbench") -> str:
    """A throw-away database ``<prefix>_<random>`` on the PostgreSQL server of ``url``
    (``postgresql://user@127.0.0.1:5432/postgres``, a loopback server): the gateway's store
    URL of it (``postgresql+asyncpg://...``). ``pg_drop_database`` removes it."""
    import asyncpg
    from sqlalchemy.engine import make_url

    admin = make_url(url).set(drivername="postgresql")
    name = f"{prefix}_{secrets.token_hex(6)}"

    async def create() -> None:
        conn = await asyncpg.connect(admin.render_as_string(hide_password=False), timeout=10)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return admin.set(drivername="postgresql+asyncpg", database=name).render_as_string(
        hide_password=False)


def pg_drop_database(store_url: str) -> None:
    """Drop a ``pg_create_database`` database (its connections are ended)."""
    import asyncpg
    from sqlalchemy.engine import make_url

    db = make_url(store_url).set(drivername="postgresql")

    async def drop() -> None:
        conn = await asyncpg.connect(db.set(database="postgres").render_as_string(
            hide_password=False), timeout=10)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{db.database}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


def pg_backends(store_url: str) -> list[int]:
    """The pids of the PostgreSQL server processes connected to the database of
    ``store_url`` (the server runs on this machine: their CPU is in ``/proc``)."""
    import asyncpg
    from sqlalchemy.engine import make_url

    db = make_url(store_url).set(drivername="postgresql")

    async def pids() -> list[int]:
        conn = await asyncpg.connect(db.set(database="postgres").render_as_string(
            hide_password=False), timeout=10)
        try:
            rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1",
                                    db.database)
        finally:
            await conn.close()
        return [r["pid"] for r in rows]

    return asyncio.run(pids())


def basic_auth(credentials: str) -> str:
    """``name:secret`` as an HTTP Basic ``Authorization`` value."""
    return "Basic " + base64.b64encode(credentials.encode()).decode()


# /proc readers -----------------------------------------------------------------------------------
def stat_sum(pids: Iterable[int], fields: tuple[int, ...]) -> int | None:
    """The sum of ``/proc/<pid>/stat`` fields (indexes after the command name: 9 majflt,
    11 utime, 12 stime) over the processes still there (None: none is)."""
    total, seen = 0, False
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                values = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seen = True
        total += sum(int(values[i]) for i in fields)
    return total if seen else None


def cpu_seconds(pid: int | None) -> float | None:
    """CPU seconds (user + system) of one process (None: no pid, or gone)."""
    return tree_cpu([pid]) if pid else None


def tree_cpu(pids: Iterable[int]) -> float | None:
    """CPU seconds (user + system) of these processes together."""
    ticks = stat_sum(pids, (11, 12))
    return None if ticks is None else ticks / TICK


def process_tree(pid: int) -> list[int]:
    """``pid`` and its living descendants (``gateway serve --workers N`` spawns N; the
    outbound dispatcher runs as a child process)."""
    out = [pid]
    for p in out:  # grows as it goes
        for kids in glob.glob(f"/proc/{p}/task/*/children"):
            try:
                with open(kids) as f:
                    out += [int(c) for c in f.read().split()]
            except OSError:
                pass
    return out


def own_cpu() -> float:
    """CPU seconds of this process (all its threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS / VmHWM of a process, in MB (empty once it is gone)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, value = line.split(":", 1)
                    out[key] = int(value.split()[0]) / 1024
    except OSError:
        pass
    return out


class RssSampler(threading.Thread):
    def __init__(self, pid: int, interval: float = 0.25):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_sampled = 0.0
        self.last: dict[str, float] = {}
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            status = proc_status(self.pid)
            if not status:
                return
            self.last = status
            self.peak_sampled = max(self.peak_sampled, status.get("VmRSS", 0.0))

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)


def loadavg() -> list[str]:
    """The machine's load averages (1, 5, 15 minutes), as written."""
    with open("/proc/loadavg") as f:
        return f.read().split()[:3]


def machine_load(before: list[str]) -> str:
    """``machine (N cores): load average before A, after B`` (``before``: ``loadavg()``)."""
    return (f"machine ({os.cpu_count()} cores): load average before {' '.join(before)}, "
            f"after {' '.join(loadavg())}")


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def cpu_list(spec: str | None) -> list[int]:
    """The CPUs of a ``taskset -c`` list (``"1"``, ``"0-1"``, ``"1,3"``; empty: none)."""
    out: list[int] = []
    for part in (spec or "").split(","):
        if part.strip():
            first, _, last = part.partition("-")
            out += range(int(first), int(last or first) + 1)
    return out


def cores_busy(cpus: Iterable[int]) -> tuple[int, int]:
    """(busy, total) jiffies of these CPUs together, from /proc/stat's ``cpuN`` lines."""
    want = {f"cpu{c}" for c in cpus}
    busy = total = 0
    with open("/proc/stat") as f:
        for line in f:
            name, *values = line.split()
            if name in want:
                fields = [int(x) for x in values]
                total += sum(fields)
                busy += sum(fields) - fields[3] - fields[4]
    return busy, total


def machine_cpu(busy0: tuple[int, int], busy1: tuple[int, int]) -> tuple[float, float]:
    """Between two ``machine_busy()``: (CPU seconds all CPUs were busy, wall seconds)."""
    return ((busy1[0] - busy0[0]) / TICK,
            (busy1[1] - busy0[1]) / TICK / (os.cpu_count() or 1))


def process_cpu() -> dict[int, tuple[float, str]]:
    """CPU seconds (user + system) and command line of every process."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        out[int(name)] = ((int(fields[11]) + int(fields[12])) / TICK, cmd or f"[{fields[0]}]")
    return out


def busiest_others(before: dict, after: dict, own: set[int], top: int = 8) -> list[str]:
    """The other processes that used the most CPU between two ``process_cpu()``."""
    rows = []
    for pid, (cpu, cmd) in after.items():
        if pid in own:
            continue
        used = cpu - before.get(pid, (0.0, ""))[0]
        if used >= 0.5:
            rows.append((used, pid, cmd[:110]))
    return [f"  {used:7.1f}s  pid {pid}  {cmd}" for used, pid, cmd in sorted(rows)[-top:][::-1]]


# measuring: statistics ---------------------------------------------------------------------------
def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def pct(values: list[float], q: float, scale: float = 1.0, nd: int = 3) -> float | None:
    """The ``q`` percentile of unsorted ``values``, times ``scale``, rounded."""
    if not values:
        return None
    return round(percentile(sorted(values), q) * scale, nd)


# measuring: many clients (the load generators) ---------------------------------------------------
@dataclass
class Phase:
    """One phase of a load generator: ``concurrency`` clients, bounded by requests and time."""

    concurrency: int
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    server_cpu: float | None = None
    first_error: str | None = None

    def summary(self) -> dict:
        lat = sorted(self.latencies)
        return {
            "concurrency": self.concurrency,
            "requests": self.requests,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            "p50_ms": None if not lat else round(percentile(lat, 0.50) * 1000, 3),
            "p99_ms": None if not lat else round(percentile(lat, 0.99) * 1000, 3),
            "req_per_s": round(self.requests / self.seconds, 1) if self.seconds else None,
            "server_cpu_s": None if self.server_cpu is None else round(self.server_cpu, 3),
            "server_cpu_ms_per_req": (None if self.server_cpu is None or not self.requests
                                      else round(self.server_cpu * 1000 / self.requests, 3)),
            "first_error": self.first_error,
        }


class Operation:
    """One kind of request: ``make(rng)`` gives (method, url, body, expected status)."""

    def __init__(self, name: str, target: str, session: aiohttp.ClientSession, make):
        self.name, self.target, self.session, self.make = name, target, session, make

    async def once(self, rng: random.Random, phase: Phase) -> None:
        method, url, body, expected = self.make(rng)
        started = time.perf_counter()
        try:
            async with self.session.request(method, url, data=body) as resp:
                await resp.read()
                status = resp.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            status = f"{type(exc).__name__}: {exc}"
        elapsed = time.perf_counter() - started
        phase.requests += 1
        if status != expected:
            phase.errors += 1
            if phase.first_error is None:
                phase.first_error = f"{method} {url}: {status}"
        else:
            phase.latencies.append(elapsed)


class PostOperation(Operation):
    """``POST url`` with ``headers``: ``make(rng)`` gives (body, what the answer is checked
    against) or None (nothing left to send: no request); an answer must be 200 and pass
    ``ok(that, data)``."""

    def __init__(self, name, target, session, url, headers, make, ok):
        super().__init__(name, target, session, make)
        self.url, self.headers, self.ok = url, headers, ok

    async def once(self, rng: random.Random, phase: Phase) -> None:
        item = self.make(rng)
        if item is None:
            return
        body, expect = item
        started = time.perf_counter()
        try:
            async with self.session.post(self.url, data=body, headers=self.headers) as resp:
                data = await resp.read()
                status = resp.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            data, status = b"", f"{type(exc).__name__}: {exc}"
        elapsed = time.perf_counter() - started
        phase.requests += 1
        if status != 200 or not self.ok(expect, data):
            phase.errors += 1
            if phase.first_error is None:
                phase.first_error = f"{self.name} ({self.target}): {status} {data[:300]!r}"
        else:
            phase.latencies.append(elapsed)


async def run_phase(op: Operation, concurrency: int, max_requests: int, max_seconds: float,
                    seed: int, pid: int | None) -> Phase:
    phase = Phase(concurrency)
    issued = 0
    deadline = time.perf_counter() + max_seconds

    async def worker(n: int) -> None:
        nonlocal issued
        rng = random.Random(seed * 1000 + n)
        while issued < max_requests and time.perf_counter() < deadline:
            issued += 1
            await op.once(rng, phase)

    cpu0 = cpu_seconds(pid)
    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    phase.seconds = time.perf_counter() - started
    cpu1 = cpu_seconds(pid)
    if cpu0 is not None and cpu1 is not None:
        phase.server_cpu = cpu1 - cpu0
    return phase


class Slices:
    """The slices of one interleaved measurement, added up."""

    def __init__(self, concurrency: int):
        self.phase = Phase(concurrency)
        self.phase.server_cpu = 0.0
        self.client_cpu = 0.0
        self.rates: list[float] = []

    def add(self, phase: Phase, server_cpu: float | None, client_cpu: float) -> None:
        p = self.phase
        p.requests += phase.requests
        p.errors += phase.errors
        p.seconds += phase.seconds
        p.latencies += phase.latencies
        p.first_error = p.first_error or phase.first_error
        if server_cpu is None or p.server_cpu is None:
            p.server_cpu = None
        else:
            p.server_cpu += server_cpu
        self.client_cpu += client_cpu
        self.rates.append(round(phase.requests / phase.seconds, 1) if phase.seconds else 0.0)

    def summary(self) -> dict:
        out = self.phase.summary()
        out["client_cpu_ms_per_req"] = (round(self.client_cpu * 1000 / self.phase.requests, 3)
                                        if self.phase.requests else None)
        out["slices_req_per_s"] = self.rates
        return out


async def measure(op: Operation, concurrency: int, requests: int, seconds: float, seed: int,
                  pids: list[int], into: Slices) -> None:
    """One phase (or slice) of ``run_phase``, with the server's and this process's CPU."""
    cpu0, own0 = tree_cpu(pids), own_cpu()
    phase = await run_phase(op, concurrency, requests, seconds, seed, None)
    cpu1, own1 = tree_cpu(pids), own_cpu()
    into.add(phase, None if cpu0 is None or cpu1 is None else cpu1 - cpu0, own1 - own0)


# measuring: one client, one request at a time ----------------------------------------------------
class Failed(Exception):
    """A check failed: the benchmark stops (a fast wrong answer is not a result)."""


class Loop:
    """One measured loop: per-request latencies, wall time, server CPU."""

    def __init__(self, name: str, unit: str = "req"):
        self.name, self.unit = name, unit
        self.latencies: list[float] = []
        self.errors = 0
        self.first_error: str | None = None
        self.seconds = 0.0
        self.server_cpu: float | None = None
        self.other_cpu: dict[str, float] = {}  # of LoopBench.watched() processes
        self.note = ""
        self.limited = False  # stopped by the time bound before its count
        self.items: int | None = None  # what the rate counts, when not the requests
        self.rss_mb: float | None = None  # the gateway's RSS after the loop

    def error(self, text: str) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = text[:500]

    def summary(self) -> dict:
        lat = sorted(self.latencies)
        done = len(self.latencies) + self.errors
        return {
            "operation": self.name, "requests": done, "errors": self.errors,
            "p50_ms": None if not lat else round(percentile(lat, 0.50) * 1000, 2),
            "p99_ms": None if not lat else round(percentile(lat, 0.99) * 1000, 2),
            "max_ms": None if not lat else round(lat[-1] * 1000, 2),
            "seconds": round(self.seconds, 3),
            "rate": (None if not self.seconds else round(
                (len(self.latencies) if self.items is None else self.items)
                / self.seconds, 1)),
            "unit": self.unit,
            "server_cpu_s": None if self.server_cpu is None else round(self.server_cpu, 2),
            "rss_mb": None if self.rss_mb is None else round(self.rss_mb, 1),
            "stopped_by_time_bound": self.limited, "first_error": self.first_error,
            "note": self.note,
        }


class Client:
    """One aiohttp client of the gateway's SCIM API (Basic auth), with the server's pid."""

    def __init__(self, base: str, auth: str, timeout: float, pid: int):
        self.base = base.rstrip("/")
        self.pid = pid
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=2),
            timeout=aiohttp.ClientTimeout(total=timeout),
            headers={"Authorization": basic_auth(auth), "Accept": SCIM_JSON,
                     "Content-Type": SCIM_JSON})

    async def call(self, method: str, path: str, body: bytes | None = None
                   ) -> tuple[int | str, bytes, float]:
        """(status, body, seconds from sending to the last byte of the answer)."""
        started = time.perf_counter()
        try:
            async with self.session.request(method, self.base + path, data=body) as resp:
                data = await resp.read()
                status: int | str = resp.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            data, status = b"", f"{type(exc).__name__}: {exc}"
        return status, data, time.perf_counter() - started

    async def json(self, method: str, path: str, body=None, expect: int = 200) -> dict:
        raw = None if body is None else orjson.dumps(body)
        status, data, _ = await self.call(method, path, raw)
        if status != expect:
            raise Failed(f"{method} {path}: {status} (expected {expect}): {data[:500]!r}")
        return orjson.loads(data) if data else {}

    async def close(self) -> None:
        await self.session.close()


class LoopBench:
    """Loops of one ``Client``, measured one after the other (``measure``), each within its
    own bound and the whole run's (``--max-seconds``)."""

    show_rate = True  # the rate in the line printed after each loop
    profile: str | None = None  # the loop key to record with py-spy (--profile)
    profile_rate = 200

    def __init__(self, args, client: Client, outdir: str):
        self.args, self.c, self.outdir = args, client, outdir
        self.phases: list[Loop] = []
        self.facts: dict = {}
        self.deadline = time.perf_counter() + args.max_seconds

    def bound(self, seconds: float | None = None) -> float:
        """The end of the next loop: its own bound (default ``--phase-seconds``), within the
        whole run's."""
        if seconds is None:
            seconds = self.args.phase_seconds
        return min(self.deadline, time.perf_counter() + seconds)

    def watched(self) -> dict[str, int | None]:
        """Other processes whose CPU each loop records (``Loop.other_cpu``), by name."""
        return {}

    @contextlib.contextmanager
    def measure(self, phase: Loop, key: str | None = None, quiet: bool = False):
        """Wall time, server CPU (and ``watched()``'s), the server's RSS after; py-spy on it
        when ``key`` is ``self.profile``."""
        spy = None
        if key is not None and key == self.profile:
            # blocking (py-spy pauses the server at each sample), bounded by the loop's bound
            spy = start_py_spy(self.c.pid, os.path.join(self.outdir, f"profile-{key}.txt"),
                               int(self.args.phase_seconds) + 30, rate=self.profile_rate,
                               nonblocking=False)
        others = self.watched()
        cpu0 = cpu_seconds(self.c.pid)
        others0 = {name: cpu_seconds(pid) for name, pid in others.items()}
        started = time.perf_counter()
        try:
            yield phase
        finally:
            phase.seconds = time.perf_counter() - started
            cpu1 = cpu_seconds(self.c.pid)
            if cpu0 is not None and cpu1 is not None:
                phase.server_cpu = cpu1 - cpu0
            for name, pid in others.items():
                c0, c1 = others0[name], cpu_seconds(pid)
                if c0 is not None and c1 is not None:
                    phase.other_cpu[name] = c1 - c0
            phase.rss_mb = proc_status(self.c.pid).get("VmRSS")
            self.phases.append(phase)
            s = phase.summary()
            if not quiet:
                rate = f"{s['rate']} {phase.unit}/s, " if self.show_rate else ""
                print(f"  {phase.name}: {s['requests']} requests, p50 {s['p50_ms']} ms, "
                      f"p99 {s['p99_ms']} ms, {s['seconds']:.1f}s, {rate}"
                      f"errors {phase.errors}", flush=True)
            stop_py_spy(spy)


# reports -----------------------------------------------------------------------------------------
def fmt(value, digits=2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def mark(ok: bool | None) -> str:
    return "n/a " if ok is None else ("MET " if ok else "MISS")


def verdict(ok: bool | None, text: str) -> str:
    """A target's line: ``  [MET ] text`` (``MISS``, ``n/a ``)."""
    return f"  [{mark(ok)}] {text}"


def columns(header: tuple | list, rows: list, left: Iterable[int] = (0, 1)) -> str:
    """A table of aligned columns (`` | ``), a rule under the header; the columns ``left``
    (indexes; -1: the last) left-aligned, the others right-aligned."""
    n = len(header)
    lefts = {i % n for i in left}
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(n)]
    lines = [" | ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)),
             "-+-".join("-" * w for w in widths)]
    for r in rows:
        lines.append(" | ".join(str(v).ljust(w) if i in lefts else str(v).rjust(w)
                                for i, (v, w) in enumerate(zip(r, widths, strict=True))))
    return "\n".join(lines)


def save_report(outdir: str, lines: list[str], summary: dict | None = None) -> None:
    """Print the report and keep it in ``outdir`` (``report.txt``), with the figures behind
    it (``summary.json``) when given."""
    report = "\n".join(lines)
    print("\n" + report, flush=True)
    with open(os.path.join(outdir, "report.txt"), "w") as f:
        f.write(report + "\n")
    if summary is not None:
        with open(os.path.join(outdir, "summary.json"), "w") as f:
            json.dump(summary, f, indent=2, default=str)


# py-spy ------------------------------------------------------------------------------------------
def start_py_spy(pid: int, out: str, seconds: float, rate: int = 100, nonblocking: bool = True,
                 flags: Iterable[str] = (), file=None) -> subprocess.Popen | None:
    """``py-spy record -f raw`` of ``pid`` into ``out`` (None, said on ``file``: no py-spy).
    ``nonblocking``: the server is not paused at each sample (``--native`` needs the pauses);
    ``flags``: more options (``--subprocesses``, ``--idle``, ``--gil``...)."""
    exe = shutil.which("py-spy", path=os.path.dirname(sys.executable) + os.pathsep
                       + os.environ.get("PATH", ""))
    if exe is None:
        print("py-spy not found (pip install py-spy): no profile", file=file or sys.stdout,
              flush=True)
        return None
    cmd = ([exe, "record", "-p", str(pid), "-f", "raw", "-o", out, "-r", str(rate),
            "-d", str(int(seconds))] + (["--nonblocking"] if nonblocking else []) + list(flags))
    spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    time.sleep(1.5)  # let it attach
    return spy


def stop_py_spy(spy: subprocess.Popen | None) -> None:
    """SIGINT: py-spy writes what it has and exits."""
    if spy is None:
        return
    spy.send_signal(signal.SIGINT)
    try:
        spy.wait(timeout=60)
    except subprocess.TimeoutExpired:
        spy.kill()


def raw_samples(path: str):
    """The samples of a py-spy raw profile (``-f raw``): (frames, outermost first; count)
    per line. A sample without any frame is ``[""]``."""
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if count.isdigit():
                yield stack.split(";"), int(count)


def split_frame(fr: str) -> tuple[str, str]:
    """A py-spy frame ``'Class.func (path/file.py:12)'`` -> ``('Class.func',
    'path/file.py')``; one without a place -> ``(fr, '')``."""
    func, _, rest = fr.partition(" (")
    return func, rest.rstrip(")").rsplit(":", 1)[0]


def shares(counter: collections.Counter, total: int, top: int | None = None,
           name=str) -> list[str]:
    """``  12.3%  name`` lines of a Counter of samples, most first."""
    return [f"  {100 * v / total:5.1f}%  {name(k)}" for k, v in counter.most_common(top)]


def profile_summary(path: str, top: int = 45) -> str:
    """What a py-spy raw profile says: the share of samples per thread kind, and of the
    event-loop thread's samples, the share under each function (inclusive) and in it."""
    threads: collections.Counter = collections.Counter()
    inclusive: collections.Counter = collections.Counter()
    own: collections.Counter = collections.Counter()
    total = loop = 0
    for raw, n in raw_samples(path):
        frames = [re.sub(r":\d+\)$", ")", fr) for fr in raw]
        total += n
        if not frames[0].startswith("<module> (gateway"):  # a worker thread
            threads[frames[-1]] += n
            continue
        loop += n
        for fr in set(frames):
            inclusive[fr] += n
        own[frames[-1]] += n
    if not total:
        return "(no samples)"
    lines = [f"{total} samples, {loop} of the event-loop thread ({100 * loop / total:.0f}%)",
             "other threads, by innermost frame (% of all samples; threads waiting on their "
             "queue count as busy):"]
    lines += shares(threads, total, 8)
    lines.append("event-loop thread, inclusive (% of its samples):")
    lines += shares(inclusive, loop, top)
    lines.append("event-loop thread, self:")
    lines += shares(own, loop, 20)
    return "\n".join(lines)
