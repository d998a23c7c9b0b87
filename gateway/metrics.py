"""The gateway's own metrics (HTTP requests, authentication, user store calls, the
process), kept in memory and written in the Prometheus text format (0.0.4).

Cheap to record: each metric is a plain dict in this process, updated by the event
loop's thread (no lock: nothing else records), a counter a ``dict.get`` and a store, a
histogram one ``bisect`` and three list updates.

With ``gateway serve --workers N`` every worker counts its own requests, so that
whichever worker answers ``GET /metrics`` reports the sum over all of them:

- ``gateway serve`` makes a directory for the run (``run_directory``: under
  ``$XDG_RUNTIME_DIR`` when there is one, else the temporary folder) and names it to the
  workers in the environment (``GATEWAY_METRICS_DIR``); it removes it when it stops;
- each worker writes a snapshot of its values there every second, when it stops, and
  before it answers a scrape (``snapshots``): ``w-<pid>-<start>.json``, replaced
  atomically (``os.replace``);
- the worker that answers adds up the snapshots of every other worker and its own live
  values (``collect``). The snapshot of a worker that died stays in the sum (its
  replacement writes a file of its own), so a counter never goes backwards; its process
  metrics are dropped (they describe a process that is gone).

A single process (``--workers 1``, the tests' applications) writes nothing and reports
its own values.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import tempfile
import time
from bisect import bisect_left
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

ENV = "GATEWAY_METRICS_DIR"
SNAPSHOT_SECONDS = 1.0

HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                30.0)
STORE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                 0.5, 1.0, 2.5, 5.0)

# HTTP methods counted by name; any other is "other" (a client must not make new series)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_CLASSES = ("0xx", "1xx", "2xx", "3xx", "4xx", "5xx")
AUTH_OUTCOMES = ("success", "failure", "throttled", "locked")


class Family:
    """One metric: its name, type, help, label names, and this process's values by label
    values (a counter: a number; a histogram: the count per bucket, +Inf last, then the
    sum)."""

    __slots__ = ("buckets", "help", "kind", "labels", "name", "values")

    def __init__(self, name: str, kind: str, help: str, labels: tuple[str, ...],
                 buckets: tuple[float, ...] = ()):
        self.name, self.kind, self.help, self.labels = name, kind, help, labels
        self.buckets = buckets
        self.values: dict[tuple[str, ...], object] = {}


HTTP_REQUESTS = Family("gateway_http_requests_total", "counter",
                       "HTTP requests served, by protocol, method and status class",
                       ("protocol", "method", "status"))
HTTP_DURATION = Family("gateway_http_request_duration_seconds", "histogram",
                       "Time to handle an HTTP request, by protocol",
                       ("protocol",), HTTP_BUCKETS)
AUTH = Family("gateway_auth_total", "counter",
              "Authentication decisions, by scheme (basic, bearer, digest, none) and outcome "
              "(success, failure, throttled, locked)", ("scheme", "outcome"))
STORE_DURATION = Family("gateway_userstore_operation_duration_seconds", "histogram",
                        "Time of a user store call, by domain and operation",
                        ("domain", "operation"), STORE_BUCKETS)
STORE_ERRORS = Family("gateway_userstore_errors_total", "counter",
                      "User store calls that raised, by domain, operation and error",
                      ("domain", "operation", "error"))
FAMILIES = (HTTP_REQUESTS, HTTP_DURATION, AUTH, STORE_DURATION, STORE_ERRORS)
_BY_NAME = {f.name: f for f in FAMILIES}


# --- recording (the hot path) ------------------------------------------------------------------


def _observe(family: Family, key: tuple[str, ...], seconds: float) -> None:
    values = family.values
    row = values.get(key)
    if row is None:
        row = values[key] = [0] * (len(family.buckets) + 1) + [0.0]
    row[bisect_left(family.buckets, seconds)] += 1
    row[-1] += seconds


def request_done(protocol: str, method: str, status: int, seconds: float) -> None:
    """One HTTP request served (the request context middleware calls it)."""
    if method not in METHODS:
        method = "other"
    status_class = _CLASSES[status // 100] if 0 <= status < 600 else "other"
    values = HTTP_REQUESTS.values
    key = (protocol, method, status_class)
    values[key] = values.get(key, 0) + 1
    _observe(HTTP_DURATION, (protocol,), seconds)


def authenticated(scheme: str, outcome: str) -> None:
    """One authentication decision (the authenticator calls it)."""
    values = AUTH.values
    key = (scheme, outcome)
    values[key] = values.get(key, 0) + 1


def timed(method, domain: str, operation: str):
    """``method`` (a coroutine function: a user store's call), timed and its errors
    counted under ``domain`` and ``operation``."""
    key = (domain, operation)

    async def call(*args, **kwargs):
        start = time.perf_counter()
        try:
            return await method(*args, **kwargs)
        except Exception as exc:
            errors = STORE_ERRORS.values
            ekey = (domain, operation, type(exc).__name__)
            errors[ekey] = errors.get(ekey, 0) + 1
            raise
        finally:
            _observe(STORE_DURATION, key, time.perf_counter() - start)

    call.__wrapped__ = method
    call.__name__ = getattr(method, "__name__", operation)
    return call


# --- the process (from /proc: Linux) -----------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _stat(pid: int | str = "self") -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (field 3 first), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read().decode()
    except OSError:
        return None
    return text[text.rfind(")") + 2:].split()


def _boot_time() -> float:
    try:
        with open("/proc/stat", "rb") as f:
            for line in f:
                if line.startswith(b"btime "):
                    return float(line.split()[1])
    except OSError:
        pass
    return 0.0


def process_stats() -> dict[str, float]:
    """This process's resident and virtual memory, CPU seconds, open and maximum file
    descriptors and start time (seconds since the epoch); {} where /proc is missing."""
    fields = _stat()
    if fields is None:
        return {}
    stats = {"cpu_seconds_total": (int(fields[11]) + int(fields[12])) / _TICKS,
             "virtual_memory_bytes": float(fields[20]),
             "resident_memory_bytes": float(int(fields[21]) * _PAGE),
             "start_time_seconds": _boot_time() + int(fields[19]) / _TICKS}
    with contextlib.suppress(OSError):
        stats["open_fds"] = float(len(os.listdir("/proc/self/fd")))
    with contextlib.suppress(ImportError, OSError, ValueError):
        import resource

        stats["max_fds"] = float(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    return stats


PROCESS_HELP = {
    "cpu_seconds_total": ("counter", "User and system CPU time spent, in seconds"),
    "virtual_memory_bytes": ("gauge", "Virtual memory size, in bytes"),
    "resident_memory_bytes": ("gauge", "Resident memory size, in bytes"),
    "start_time_seconds": ("gauge", "Start time of the process since the epoch, in seconds"),
    "open_fds": ("gauge", "Open file descriptors"),
    "max_fds": ("gauge", "Maximum number of open file descriptors"),
}


def _started(pid: int | str = "self") -> str | None:
    """The process's start time in clock ticks since boot: with the pid, it names one
    process (a pid may be used again)."""
    fields = _stat(pid)
    return fields[19] if fields is not None else None


# --- snapshots (one file per worker) ---------------------------------------------------------


def snapshot() -> dict:
    return {"pid": os.getpid(), "started": _started(), "process": process_stats(),
            "metrics": {f.name: [[list(k), v] for k, v in f.values.items()]
                        for f in FAMILIES}}


class Snapshots:
    """This worker's file in the run's directory, and the other workers' files."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.path = directory / f"w-{os.getpid()}-{_started() or time.time_ns()}.json"

    def write(self) -> None:
        tmp = self.directory / f".{self.path.name}.tmp"
        tmp.write_text(json.dumps(snapshot()), encoding="utf-8")
        os.replace(tmp, self.path)

    def others(self) -> Iterator[dict]:
        for path in self.directory.glob("w-*.json"):
            if path == self.path:
                continue
            try:
                yield json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):  # gone, or being written for the first time
                continue


SNAPSHOTS: Snapshots | None = None


async def snapshots(_app=None) -> AsyncIterator[None]:
    """While the application runs: this worker's snapshot every second and when it stops,
    when ``gateway serve`` named a directory (``GATEWAY_METRICS_DIR``); else nothing (an
    ``aiohttp`` cleanup context)."""
    global SNAPSHOTS
    where = os.environ.get(ENV)
    if not where or not os.path.isdir(where):  # noqa: ASYNC240 - once, at start
        yield
        return
    SNAPSHOTS = mine = Snapshots(Path(where))

    async def every_second() -> None:
        while True:
            with contextlib.suppress(OSError):
                mine.write()
            await asyncio.sleep(SNAPSHOT_SECONDS)

    task = asyncio.get_running_loop().create_task(every_second())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with contextlib.suppress(OSError):
            mine.write()
        SNAPSHOTS = None


@contextlib.contextmanager
def run_directory() -> Iterator[Path]:
    """``gateway serve``'s directory for the workers' snapshots, named to the processes
    it starts (``GATEWAY_METRICS_DIR``), removed at the end."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = runtime if runtime and os.path.isdir(runtime) and os.access(runtime, os.W_OK) \
        else None
    path = Path(tempfile.mkdtemp(prefix="gateway-metrics-", dir=base))
    previous = os.environ.get(ENV)
    os.environ[ENV] = str(path)
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = previous
        shutil.rmtree(path, ignore_errors=True)


# --- the text format ---------------------------------------------------------------------------


def escape(value: str) -> str:
    """A label value as the text format writes it: backslash, double quote and new line
    escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def labels(names, values) -> str:
    return ",".join(f'{n}="{escape(str(v))}"' for n, v in zip(names, values, strict=True))


def _number(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def _bound(bound: float) -> str:
    return f"{bound:g}"


def _add(total: dict, family: Family, key: tuple, value) -> None:
    if family.kind == "histogram":
        row = total.get(key)
        if row is None:
            total[key] = list(value)
        elif len(row) == len(value):
            for i, v in enumerate(value):
                row[i] += v
    else:
        total[key] = total.get(key, 0) + value


def collect() -> tuple[dict[str, dict[tuple, object]], dict[int, dict[str, float]]]:
    """The metrics summed over this process and every worker of the run (live or dead),
    and the process metrics of each process alive, by pid."""
    mine = SNAPSHOTS
    if mine is not None:  # what this scrape reports is on disk before it is reported
        with contextlib.suppress(OSError):
            mine.write()
    totals: dict[str, dict[tuple, object]] = {f.name: {} for f in FAMILIES}
    for family in FAMILIES:
        for key, value in family.values.items():
            _add(totals[family.name], family, key, value)
    processes = {os.getpid(): process_stats()}
    for other in (mine.others() if mine is not None else ()):
        for name, rows in other.get("metrics", {}).items():
            family = _BY_NAME.get(name)
            if family is None:
                continue
            for key, value in rows:
                _add(totals[name], family, tuple(key), value)
        pid, started = other.get("pid"), other.get("started")
        if isinstance(pid, int) and started is not None and _started(pid) == started:
            processes[pid] = other.get("process") or {}
    return totals, processes


def exposition() -> list[str]:
    """The lines of the gateway's metrics (all workers) and of its processes."""
    totals, processes = collect()
    lines: list[str] = []
    for family in FAMILIES:
        lines += [f"# HELP {family.name} {family.help}", f"# TYPE {family.name} {family.kind}"]
        for key, value in sorted(totals[family.name].items()):
            text = labels(family.labels, key)
            if family.kind != "histogram":
                lines.append(f"{family.name}{{{text}}} {_number(value)}")
                continue
            running = 0
            for bound, count in zip((*map(_bound, family.buckets), "+Inf"), value[:-1],
                                    strict=True):
                running += count
                lines.append(f'{family.name}_bucket{{{text},le="{bound}"}} {running}')
            lines.append(f"{family.name}_sum{{{text}}} {_number(value[-1])}")
            lines.append(f"{family.name}_count{{{text}}} {running}")
    for stat, (kind, help_text) in PROCESS_HELP.items():
        name = f"process_{stat}"
        lines += [f"# HELP {name} {help_text} (each gateway process, by pid)",
                  f"# TYPE {name} {kind}"]
        for pid, stats in sorted(processes.items()):
            if stat in stats:
                lines.append(f'{name}{{pid="{pid}"}} {_number(stats[stat])}')
    return lines
