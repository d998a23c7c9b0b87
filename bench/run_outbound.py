"""The outbound provisioning benchmark, in one command.

    /work/venv/bin/python bench/run_outbound.py [--seconds 12] [--rate 200] [--high-rate 500]

For each SCIM target (``--targets``, default both, one after the other):

- ``sink``: a minimal aiohttp SCIM 2.0 sink in a process of its own (this file, ``sink``
  sub-command): ``GET /Users?filter=`` answers an empty ListResponse, ``POST /Users``
  201 with a new id, ``PUT`` 200; it notes the arrival time of every POST. It isolates
  the dispatcher: the target costs next to nothing.
- ``gateway``: a second ``gateway serve`` (one worker, its own SQLite database, the
  configuration of ``run.py``): more honest, and on this 2-core machine it competes
  with the source for CPU.

it starts two source gateways (``gateway serve``, one worker, SQLite PRIMARY, the
configuration of ``run.py``): ``connector``, with one non-blocking ``scim2`` connector
pointing at the target (``[outbound]`` otherwise default: the dispatcher in a process
of its own, whose CPU is counted with the gateway's), and ``none``, without any (it
writes no outbox rows, as in production without connectors). A load generator, in a
process of its own (``loadgen`` sub-command), then runs:

1. **open loop** at ``--rate`` (200/s) and at ``--high-rate`` (500/s): ``POST
   /scim2/Users`` of new users on a fixed schedule (not waiting for answers), in
   ``--rounds`` slices per gateway alternating connector / none (ABBA), ``--seconds``
   per gateway and rate in all. After each connector slice it waits until the slice's
   events were delivered (``--drain-seconds`` at most), so that no delivery work runs
   during the other gateway's slice. Inbound latency p50/p99 per gateway (from sending
   to the answer's last byte), and per event the precise lag: the source's
   ``meta.created`` (its commit) to the arrival of the POST at the sink, or to the
   target gateway's own ``meta.created`` for that user. Also the delivered rate
   (events / time from the slice's first to its last delivery), the backlog
   (created - delivered, at its highest), the drain tail after the slice, and the
   ``gateway_outbound_lag_seconds`` histogram of ``/metrics`` (bucket bounds).
2. **closed loop** (``--concurrency`` 16 clients, ``--closed-seconds`` per slice,
   2 rounds): the most each source takes, with and without the connector.
3. **burst**: ``--burst`` (5,000) users through ``POST /scim2/Bulk`` (1,000 per
   request) to the connector gateway, then how fast the dispatcher drains them.

Prints a table per target and the targets of the issue (measured / target,
MET/MISS): at least 500 events/s delivered to a SCIM target on loopback, while the
inbound latency rises by at most 20% over no connector; lag from commit to delivery
under 1 s p99 at 200 events/s. Everything goes to ``bench/results/<timestamp>-outbound/``
(gitignored): ``report.txt``, ``summary.json``, ``loadgen-<target>.json`` (raw), the
configurations and the logs. Every loop is bounded by count and time, the whole
run by ``--max-seconds``; only 127.0.0.1 is used. ``--profile PHASE`` (``rate``,
``high``, ``closed``, ``burst``) records the connector gateway and its dispatcher process
with py-spy during that phase. ``--dispatcher inline`` and ``--dispatcher-nice N`` set the
source's ``[outbound] dispatcher`` and ``dispatcher_nice``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from common import (  # noqa: E402
    SCIM_JSON,
    basic_auth,
    cleanup,
    fmt,
    mark,
    own_cpu,
    pct,
    process_tree,
    profile_summary,
    raw_samples,
    require_loopback,
    results_args,
    start_py_spy,
    stat_sum,
    stop_py_spy,
    tree_cpu,
)

from gateway.outbound.config import OutboundConfig  # noqa: E402

TARGETS = {"delivered_per_s": 500.0, "latency_ratio": 1.20, "lag_p99_s": 1.0,
           "lag_rate": 200.0}
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
PHASES = ("rate", "high", "closed", "burst")
SLOW = 0.1  # a request slower than this is noted with its time in the slice (raw data)


def tree_stat(pid: int | None, fields: tuple[int, ...], children: bool = True) -> int | None:
    """``stat_sum`` of a process and its living descendants (``gateway serve`` runs the
    outbound dispatcher as a child process), or of the process alone."""
    if not pid:
        return None
    return stat_sum(process_tree(pid) if children else [pid], fields)


def io_read(pid: int | None) -> int | None:
    """Bytes a process and its living descendants read from storage (``/proc/<pid>/io``)."""
    if not pid:
        return None
    total = None
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/io") as f:
                total = (total or 0) + int(next(x for x in f if x.startswith("read_bytes:"))
                                           .split()[1])
        except (OSError, StopIteration):
            pass
    return total


def cpu_of(pid: int | None, children: bool = True) -> float | None:
    """CPU seconds of a process and its descendants (or of the process alone)."""
    if not pid:
        return None
    return tree_cpu(process_tree(pid) if children else [pid])


def epoch(stamp: str) -> float:
    """A SCIM dateTime (``2026-01-01T00:00:00.123456Z``) as seconds since the epoch."""
    s = stamp.rstrip("Z")
    if "+" in s[10:]:
        s = s[:10] + s[10:].split("+")[0]
    fmt = "%Y-%m-%dT%H:%M:%S.%f" if "." in s else "%Y-%m-%dT%H:%M:%S"
    return dt.datetime.strptime(s[:26], fmt).replace(tzinfo=dt.UTC).timestamp()


# the sink (a process of its own) ---------------------------------------------------------------
def sink_main(argv: list[str]) -> int:
    import orjson
    from aiohttp import web

    p = argparse.ArgumentParser(description="minimal SCIM 2.0 sink (loopback)")
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args(argv)
    received: list[tuple[str, float]] = []
    counts = {"POST": 0, "GET": 0, "PUT": 0, "bad": 0}
    empty = orjson.dumps({"schemas": [LIST_SCHEMA], "totalResults": 0, "startIndex": 1,
                          "itemsPerPage": 0, "Resources": []})
    base = f"http://127.0.0.1:{args.port}/scim2/Users/"

    async def create(request: web.Request) -> web.Response:
        t = time.time()
        counts["POST"] += 1
        try:
            data = orjson.loads(await request.read())
            name = data["userName"]
            if USER_SCHEMA not in data.get("schemas", ()) or not isinstance(name, str):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            counts["bad"] += 1
            return web.Response(status=400, content_type=SCIM_JSON, body=orjson.dumps(
                {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "400",
                 "detail": "not a SCIM user"}))
        received.append((name, t))
        rid = uuid.uuid4().hex
        return web.Response(status=201, content_type=SCIM_JSON,
                            headers={"Location": base + rid},
                            body=orjson.dumps({**data, "id": rid, "meta": {
                                "resourceType": "User", "location": base + rid}}))

    async def create_group(request: web.Request) -> web.Response:
        counts["POST"] += 1  # the bootstrap administrator's group, if any: not counted
        data = orjson.loads(await request.read())
        return web.Response(status=201, content_type=SCIM_JSON,
                            body=orjson.dumps({**data, "id": uuid.uuid4().hex}))

    async def replace(request: web.Request) -> web.Response:
        counts["PUT"] += 1
        data = orjson.loads(await request.read())
        return web.Response(content_type=SCIM_JSON,
                            body=orjson.dumps({**data, "id": request.match_info["id"]}))

    async def listing(request: web.Request) -> web.Response:
        counts["GET"] += 1
        return web.Response(body=empty, content_type=SCIM_JSON)

    async def spc(request: web.Request) -> web.Response:
        return web.Response(body=b'{"schemas":["urn:ietf:params:scim:schemas:core:2.0:'
                                 b'ServiceProviderConfig"]}', content_type=SCIM_JSON)

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({**counts, "received": len(received)})

    async def dump(request: web.Request) -> web.Response:
        since = int(request.query.get("since", "0"))
        return web.Response(body=orjson.dumps({"received": received[since:]}),
                            content_type="application/json")

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(client_max_size=8 << 20)
    app.add_routes([web.post("/scim2/Users", create), web.put("/scim2/Users/{id}", replace),
                    web.get("/scim2/Users", listing), web.post("/scim2/Groups", create_group),
                    web.put("/scim2/Groups/{id}", replace), web.get("/scim2/Groups", listing),
                    web.get("/scim2/ServiceProviderConfig", spc),
                    web.get("/_stats", stats), web.get("/_dump", dump),
                    web.get("/health", health)])
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)
    return 0


# the load generator (a process of its own) -----------------------------------------------------
def parse_metrics(text: str) -> dict:
    """The outbound series of ``/metrics``: delivered (sum over outcomes), failures,
    queue by state, lag buckets (cumulative, by bound)."""
    out = {"delivered": 0, "failures": 0, "queue": {}, "lag": {}}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        name, _, value = line.rpartition(" ")
        try:
            v = float(value)
        except ValueError:
            continue
        if name.startswith("gateway_outbound_deliveries_total"):
            out["delivered"] += int(v)
        elif name.startswith("gateway_outbound_failures_total"):
            out["failures"] += int(v)
        elif name.startswith("gateway_outbound_queue{"):
            state = name.split('state="', 1)[1].split('"', 1)[0]
            out["queue"][state] = out["queue"].get(state, 0) + int(v)
        elif name.startswith("gateway_outbound_lag_seconds_bucket"):
            le = name.split('le="', 1)[1].split('"', 1)[0]
            out["lag"][le] = out["lag"].get(le, 0) + int(v)
    return out


def histogram_quantiles(before: dict, after: dict) -> dict:
    """p50/p99 of the lag histogram between two snapshots: the upper bound of the bucket
    holding the quantile ("<= X s"), as Prometheus' histogram_quantile bounds it."""
    bounds = sorted((b for b in after["lag"] if b != "+Inf"), key=float) + ["+Inf"]
    counts = [after["lag"].get(b, 0) - before["lag"].get(b, 0) for b in bounds]
    total = counts[-1] if counts else 0
    out = {"count": total}
    for q in (0.5, 0.99):
        out[f"p{int(q * 100)}_le_s"] = None
        if total:
            for b, c in zip(bounds, counts, strict=True):
                if c >= q * total:
                    out[f"p{int(q * 100)}_le_s"] = b
                    break
    return out


class Gen:
    """The load generator's state: sessions, the run's users, metrics snapshots."""

    def __init__(self, args):
        import aiohttp

        self.args = args
        self.headers = {"Authorization": basic_auth(args.auth), "Accept": SCIM_JSON,
                        "Content-Type": SCIM_JSON}
        timeout = aiohttp.ClientTimeout(total=30)
        self.sessions = {
            name: aiohttp.ClientSession(
                base_url=url, headers=self.headers, timeout=timeout,
                connector=aiohttp.TCPConnector(limit=args.max_inflight + 4))
            for name, url in (("connector", args.connector), ("none", args.none))}
        self.target = aiohttp.ClientSession(
            headers=self.headers, timeout=aiohttp.ClientTimeout(total=120),
            connector=aiohttp.TCPConnector(limit=4))
        self.pids = {"connector": args.connector_pid, "none": args.none_pid,
                     "target": args.target_pid}
        self.counter = 0
        self.users: dict[str, dict] = {}  # userName -> created (source), phase, slice
        self.slices: list[dict] = []
        self.series: list[tuple] = []  # (time, outbox, pending, inflight, dead)
        self._db: sqlite3.Connection | None = None
        self.deadline = time.perf_counter() + args.max_seconds
        self.spy = None

    async def close(self) -> None:
        for s in self.sessions.values():
            await s.close()
        await self.target.close()

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    # users ---------------------------------------------------------------------------------
    def new_user(self, tag: str) -> tuple[str, bytes]:
        import orjson

        self.counter += 1
        name = f"ob{self.args.run_id}-{tag}-{self.counter:07d}"
        return name, orjson.dumps({
            "schemas": [USER_SCHEMA], "userName": name, "externalId": f"ext-{name}",
            "name": {"givenName": "Out", "familyName": f"Bound{self.counter}"},
            "emails": [{"value": f"{name}@example.com", "type": "work", "primary": True}],
            "active": True})

    async def post(self, gw: str, name: str, body: bytes, rec: dict) -> None:
        import aiohttp
        import orjson

        started = time.perf_counter()
        try:
            async with self.sessions[gw].post("/scim2/Users", data=body) as resp:
                data = await resp.read()
                status = resp.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            data, status = b"", f"{type(exc).__name__}: {exc}"
        elapsed = time.perf_counter() - started
        if status != 201:
            rec["errors"] += 1
            rec["first_error"] = rec["first_error"] or f"{status} {data[:300]!r}"
            return
        try:
            created = epoch(orjson.loads(data)["meta"]["created"])
        except (ValueError, KeyError, TypeError):
            rec["errors"] += 1
            rec["first_error"] = rec["first_error"] or f"201 without meta.created: {data[:300]!r}"
            return
        rec["latencies"].append(elapsed)
        if elapsed > SLOW:
            rec.setdefault("slow", []).append((round(time.time() - elapsed - rec["start"], 3),
                                               round(elapsed * 1000, 1)))
        if gw == "connector":
            self.users[name] = {"created": created, "slice": rec["index"]}

    # metrics -------------------------------------------------------------------------------
    async def metrics(self, gw: str = "connector") -> dict:
        async with self.sessions[gw].get("/metrics") as resp:
            text = await resp.text()
            if resp.status != 200:
                raise SystemExit(f"/metrics of {gw}: {resp.status} {text[:300]}")
        return parse_metrics(text)

    def _queue_now(self) -> dict:
        """The connector gateway's queue, read from its SQLite file by this process (a
        reader in WAL mode does not block the gateway's writer, and costs the gateway
        nothing, unlike /metrics, whose GROUP BY over every delivery runs in the gateway):
        outbox rows not fanned out yet, deliveries per state."""
        conn = self._db
        if conn is None:
            conn = self._db = sqlite3.connect(f"file:{self.args.connector_db}?mode=ro",
                                              uri=True, timeout=5, check_same_thread=False)
            root, ext = os.path.splitext(self.args.connector_db)  # the queue's file beside it
            conn.execute("ATTACH DATABASE ? AS q", (f"file:{root}-outbound{ext}?mode=ro",))
        out = {"outbox": conn.execute("SELECT count(*) FROM main.outbox").fetchone()[0]}
        for state in ("pending", "inflight", "dead"):  # index (state, id): cheap
            out[state] = conn.execute("SELECT count(*) FROM q.outbound_deliveries WHERE "
                                      "state = ?", (state,)).fetchone()[0]
        return out

    async def queue_now(self) -> dict:
        q = await asyncio.to_thread(self._queue_now)
        self.series.append((round(time.time(), 3), q["outbox"], q["pending"], q["inflight"],
                            q["dead"]))
        return q

    async def poller(self, interval: float, stop: asyncio.Event) -> None:
        """The backlog over time (``series``), from the database."""
        while not stop.is_set():
            try:
                await self.queue_now()
            except sqlite3.Error:
                pass  # a missed sample is only a gap
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
            except TimeoutError:
                pass

    async def drain(self, bound: float) -> tuple[float, dict]:
        """Wait until nothing is left to deliver (no outbox row, no pending or inflight
        delivery), or ``bound`` seconds; (seconds waited, the last counts). Every change
        waited for is committed (answered) before this is called."""
        started = time.perf_counter()
        end = started + max(0.0, min(bound, self.left()))
        while True:
            q = await self.queue_now()
            if not (q["outbox"] or q["pending"] or q["inflight"]) or time.perf_counter() > end:
                return time.perf_counter() - started, q
            await asyncio.sleep(0.05)

    # cpu -----------------------------------------------------------------------------------
    def cpu(self) -> dict:
        return {**{k: cpu_of(v) for k, v in self.pids.items()}, "loadgen": own_cpu(),
                "connector_http": cpu_of(self.pids["connector"], children=False)}

    def faults(self) -> dict:
        """What can stall a gateway besides its own work, so far: its major page faults
        and the bytes it read from storage (with its children: code or database pages
        the kernel had dropped), and the machine's iowait and steal (CPU time the VM's
        host gave to others) in ticks."""
        out = {}
        for k, v in self.pids.items():
            if k != "target":
                out[f"majflt {k}"], out[f"read_bytes {k}"] = tree_stat(v, (9,)), io_read(v)
        with open("/proc/stat") as f:
            cpu = f.readline().split()
        out["iowait"], out["steal"] = int(cpu[5]), int(cpu[8])
        return out

    @staticmethod
    def delta(a: dict, b: dict) -> dict:
        return {k: (None if a.get(k) is None or b.get(k) is None else round(b[k] - a[k], 3))
                for k in b}

    # phases --------------------------------------------------------------------------------
    def new_slice(self, phase: str, gw: str, **kw) -> dict:
        rec = {"index": len(self.slices), "phase": phase, "gateway": gw, "latencies": [],
               "errors": 0, "first_error": None, "faults0": self.faults(), **kw}
        self.slices.append(rec)
        return rec

    async def open_slice(self, phase: str, gw: str, rate: float, seconds: float,
                         record: bool = True) -> dict:
        """POST new users at ``rate`` per second for ``seconds``, on schedule."""
        n = max(1, int(rate * seconds))
        batch = [self.new_user(phase) for _ in range(n)]
        rec = self.new_slice(phase, gw, rate=rate, planned=n, record=record)
        tasks: set[asyncio.Task] = set()
        late = skipped = 0
        cpu0 = self.cpu()
        rec["start"] = time.time()
        start = time.perf_counter() + 0.005
        for i, (name, body) in enumerate(batch):
            at = start + i / rate
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            late = max(late, time.perf_counter() - at)
            if len(tasks) >= self.args.max_inflight:  # the server fell far behind
                skipped += 1
                continue
            t = asyncio.create_task(self.post(gw, name, body, rec))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        rec["end"] = time.time()
        rec["send_seconds"] = round(time.perf_counter() - start, 3)
        if tasks:
            await asyncio.wait(list(tasks), timeout=60)
        rec["answered"] = time.time()
        rec.update(sent=n - skipped, skipped=skipped, late_max_ms=round(late * 1000, 1))
        rec["errors"] += skipped
        if skipped:
            rec["first_error"] = rec["first_error"] or (
                f"{skipped} requests not sent: {self.args.max_inflight} already waiting")
        await self.after_slice(rec, cpu0)
        return rec

    async def closed_slice(self, gw: str, concurrency: int, seconds: float) -> dict:
        rec = self.new_slice("closed", gw, concurrency=concurrency, record=True)
        cpu0 = self.cpu()
        rec["start"] = time.time()
        end = time.perf_counter() + seconds
        count = {"n": 0}

        async def worker() -> None:
            while time.perf_counter() < end and count["n"] < self.args.closed_max:
                count["n"] += 1
                name, body = self.new_user("closed")
                await self.post(gw, name, body, rec)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        rec["end"] = rec["answered"] = time.time()
        rec["sent"] = count["n"]
        await self.after_slice(rec, cpu0)
        return rec

    async def after_slice(self, rec: dict, cpu0: dict) -> None:
        ok = len(rec["latencies"])
        rec["seconds"] = round(rec["end"] - rec["start"], 3)
        if rec["gateway"] == "connector":
            waited, q = await self.drain(self.args.drain_seconds)
            rec["drain_wait_s"] = round(waited, 2)
            rec["queue_after_drain"] = q
            rec["drain_timed_out"] = bool(q["outbox"] or q["pending"] or q["inflight"])
        rec["cpu"] = self.delta(cpu0, self.cpu())
        rec["stalls"] = self.delta(rec.pop("faults0"), self.faults())
        print(f"loadgen: {rec['phase']:6s} {rec['gateway']:9s} ok {ok} errors {rec['errors']} "
              f"p50 {pct(rec['latencies'], .5, 1000, 2)} ms p99 "
              f"{pct(rec['latencies'], .99, 1000, 2)} ms"
              + (f" drain {rec['drain_wait_s']}s" if "drain_wait_s" in rec else "")
              + " majflt {} read {} kB iowait {} steal {}".format(
                  rec["stalls"][f"majflt {rec['gateway']}"],
                  (rec["stalls"][f"read_bytes {rec['gateway']}"] or 0) // 1024,
                  rec["stalls"]["iowait"], rec["stalls"]["steal"])
              + (f" slow (s into the slice, ms): {rec['slow'][:3]}.. {len(rec['slow'])}"
                 if rec.get("slow") else ""),
              file=sys.stderr, flush=True)

    async def burst(self, n: int, batch: int) -> dict:
        import aiohttp
        import orjson

        bodies = []
        for first in range(0, n, batch):
            ops = []
            for k in range(first, min(n, first + batch)):
                name, body = self.new_user("burst")
                ops.append({"method": "POST", "path": "/Users", "bulkId": f"b{k}",
                            "data": orjson.loads(body)})
            bodies.append(orjson.dumps({"schemas": [BULK_REQUEST], "Operations": ops}))
        rec = self.new_slice("burst", "connector", planned=n, record=True, bulk=[])
        before = await self.metrics()
        cpu0 = self.cpu()
        rec["start"] = time.time()
        created = 0
        for body in bodies:
            if self.left() < 10:
                rec["first_error"] = rec["first_error"] or "time budget spent"
                break
            t0 = time.perf_counter()
            try:
                async with self.sessions["connector"].post("/scim2/Bulk", data=body) as resp:
                    data = await resp.read()
                    status = resp.status
            except (TimeoutError, aiohttp.ClientError) as exc:
                data, status = b"", f"{type(exc).__name__}: {exc}"
            rec["bulk"].append(round(time.perf_counter() - t0, 3))
            if status != 200:
                rec["errors"] += 1
                rec["first_error"] = rec["first_error"] or f"{status} {data[:300]!r}"
                continue
            results = orjson.loads(data).get("Operations") or []
            good = sum(1 for r in results if r.get("status") == "201")
            created += good
            if good != len(orjson.loads(body)["Operations"]):
                rec["errors"] += 1
                rec["first_error"] = rec["first_error"] or f"bulk: {good} of a batch created"
        rec["end"] = time.time()
        rec["created"] = created
        waited, q = await self.drain(self.args.burst_drain_seconds)
        m = await self.metrics()
        rec["answered"] = rec["end"]
        rec["drain_wait_s"] = round(waited, 2)
        rec["queue_after_drain"] = q
        rec["dead_total"] = q["dead"]
        rec["cpu"] = self.delta(cpu0, self.cpu())
        rec["seconds"] = round(rec["end"] - rec["start"], 3)
        print(f"loadgen: burst {created} users in {rec['seconds']}s, drained "
              f"{m['delivered'] - before['delivered']} after {waited:.1f}s more",
              file=sys.stderr, flush=True)
        return rec

    # where the events arrived ------------------------------------------------------------------
    async def arrivals(self) -> dict[str, float]:
        """userName -> when it reached the target (sink: the POST's arrival; gateway:
        the target's meta.created)."""
        import orjson

        out: dict[str, float] = {}
        if self.args.mode == "sink":
            async with self.target.get(self.args.target + "/_dump") as resp:
                for name, t in orjson.loads(await resp.read())["received"]:
                    out.setdefault(name, t)
            return out
        flt = urllib.parse.quote(f'userName sw "ob{self.args.run_id}-"')
        start = 1
        for _ in range(1000):  # pages of 1000: bounded
            url = (f"{self.args.target}/Users?filter={flt}&count=1000&startIndex={start}"
                   "&attributes=userName,meta.created")
            async with self.target.get(url) as resp:
                body = orjson.loads(await resp.read())
                if resp.status != 200:
                    raise SystemExit(f"reading the target's users: {resp.status} {body}")
            res = body.get("Resources") or []
            for r in res:
                out.setdefault(r["userName"], epoch(r["meta"]["created"]))
            start += len(res)
            if not res or start > body.get("totalResults", 0):
                break
        return out

    async def target_stats(self) -> dict | None:
        if self.args.mode != "sink":
            return None
        async with self.target.get(self.args.target + "/_stats") as resp:
            return await resp.json()


def start_spy(pid: int, out: str, seconds: float):
    # the dispatcher is a child process
    return start_py_spy(pid, out, seconds, flags=["--subprocesses"])


def stop_spy(spy, out: str) -> None:
    if spy is None:
        return
    stop_py_spy(spy)
    if os.path.exists(out):
        with open(out.replace(".txt", "-summary.txt"), "w") as f:
            f.write(profile_summary(out, top=60) + "\n")
        with open(out.replace(".txt", "-breakdown.txt"), "w") as f:
            f.write(breakdown(out) + "\n")


# where the connector gateway's time goes: the first marker found in a sample's stack names
# its category (order matters: the more specific first)
CATEGORIES = (
    ("dispatcher: finish (UPDATE deliveries, remote ids, counters), writer thread",
     ("finish_many (gateway/outbound/queue.py", "add_counts (gateway/outbound/queue.py")),
    ("dispatcher: claim", ("claim (gateway/outbound/queue.py",)),
    ("dispatcher: fan-out (outbox -> deliveries)", ("fan_out_local (gateway/outbound",
                                                    "take_outbox (", "drain (gateway/outbound",
                                                    "enqueue (gateway/outbound",
                                                    "drop_outbox (gateway/outbound")),
    ("dispatcher: entity reads (a claim's users with their groups), reader thread",
     ("get_users (userstores/sql/users.py", "get_user (userstores/sql/users.py",
      "SQLUserStore.get_user")),
    ("connector: lookup GET before create (HTTP client)", ("ScimConnector.lookup",)),
    ("connector: POST/PUT (HTTP client)", ("ScimConnector.send",)),
    ("connector: building the body", ("outgoing (connectors/scim_body.py",
                                      "wire_name (connectors")),
    ("store writer: COMMIT and per-operation SAVEPOINTs of the group commit",
     ("do_commit", "savepoint", "Savepoint", "begin_nested")),
    ("dispatcher: other (_deliver, _change, metrics, _parse)", ("OutboundService.",
                                                                 "gateway/outbound/")),
    ("inbound: SCIM request handling (POST /Users, /Bulk), incl. its store writes",
     ("gateway/scim/", "gateway/scim_common/", "create_user", "insert_user", "_insert_users",
      "create_users", "RequestHandler._handle_request", "gateway/pipeline.py", "gateway/auth")),
    ("thread hand-offs (executor submit, loop wake-ups, future callbacks)",
     ("ThreadPoolExecutor.submit", "_write_to_self", "call_soon_threadsafe",
      "_read_from_self", "_chain_future")),
    ("event loop waiting in select (idle)", ("EpollSelector.select",)),
    ("HTTP server/client plumbing (aiohttp, sockets)", ("aiohttp/", "asyncio/selector_events")),
    ("SQLAlchemy/SQLite of a cut-off stack (caller not sampled)", ("sqlalchemy/",)),
)


def breakdown(path: str) -> str:
    """The share of every sample of the profiled process (event loop and worker threads
    together) per category of CATEGORIES. SQLite's own C code releases the GIL; the
    Python around it (SQLAlchemy statement building and compilation) does not."""
    import collections

    counts: collections.Counter = collections.Counter()
    total = 0
    for raw, n in raw_samples(path):
        frames = [f for f in raw if not f.startswith("process ")]
        if not frames:
            continue
        inner = frames[-1]
        if inner.startswith(("_worker (concurrent", "wait (threading", "Condition.wait")):
            continue  # a worker thread waiting for work
        total += n
        stack = ";".join(frames)
        kind = ("loop" if frames[0].startswith(("<module> (gateway", "<module> (<string>"))
                else "worker")
        for name, markers in CATEGORIES:
            if any(m in stack for m in markers):
                counts[name] += n
                break
        else:
            counts[f"other ({kind} thread)"] += n
    if not total:
        return "(no samples)"
    lines = [f"{total} samples (event loop + busy worker threads); share per category:"]
    lines += [f"  {100 * v / total:5.1f}%  {k}" for k, v in counts.most_common()]
    return "\n".join(lines)


async def loadgen_async(args) -> dict:
    g = Gen(args)
    stop = asyncio.Event()
    poll = None
    try:
        await g.drain(args.drain_seconds)  # the bootstrap administrator's events
        poll = asyncio.create_task(g.poller(args.poll_seconds, stop))
        # warm-up: connections, caches, the first deliveries (not measured)
        for gw in ("connector", "none"):
            await g.open_slice("warmup", gw, args.rate or 100.0, args.warmup_seconds,
                               record=False)
        hist: dict[str, dict] = {}
        plan = [("rate", args.rate), ("high", args.high_rate)]
        for phase, rate in plan:
            if rate <= 0:
                continue
            per = args.seconds / args.rounds
            if g.left() < 2 * args.seconds + 20:
                print(f"loadgen: time budget spent, {phase} skipped", file=sys.stderr)
                continue
            spy = None
            out = os.path.join(args.outdir, f"profile-{args.mode}-{phase}.txt")
            if args.profile == phase:
                spy = start_spy(args.connector_pid, out, 4 * args.seconds + 60)
            before = await g.metrics()
            for r in range(args.rounds):
                order = ("connector", "none") if r % 2 == 0 else ("none", "connector")
                for gw in order:
                    await g.open_slice(phase, gw, rate, per)
            hist[phase] = histogram_quantiles(before, await g.metrics())
            stop_spy(spy, out)
        if args.closed_seconds > 0 and g.left() > 4 * args.closed_seconds + 30:
            out = os.path.join(args.outdir, f"profile-{args.mode}-closed.txt")
            spy = start_spy(args.connector_pid, out, 8 * args.closed_seconds + 60) \
                if args.profile == "closed" else None
            before = await g.metrics()
            for r in range(2):
                order = ("connector", "none") if r % 2 == 0 else ("none", "connector")
                for gw in order:
                    await g.closed_slice(gw, args.concurrency, args.closed_seconds)
            hist["closed"] = histogram_quantiles(before, await g.metrics())
            stop_spy(spy, out)
        if args.burst > 0 and g.left() > 30:
            out = os.path.join(args.outdir, f"profile-{args.mode}-burst.txt")
            spy = start_spy(args.connector_pid, out, args.burst_drain_seconds + 60) \
                if args.profile == "burst" else None
            before = await g.metrics()
            await g.burst(args.burst, args.batch)
            hist["burst"] = histogram_quantiles(before, await g.metrics())
            stop_spy(spy, out)
        stop.set()
        await poll
        poll = None
        final = await g.metrics()
        arrivals = await g.arrivals()
        return {"settings": {k: v for k, v in vars(args).items() if k != "auth"},
                "slices": [{k: v for k, v in s.items()} for s in g.slices],
                "users": g.users, "arrivals": arrivals, "histogram": hist,
                "series": g.series, "final_metrics": final,
                "target_stats": await g.target_stats()}
    finally:
        stop.set()
        if poll is not None:
            await poll
        await g.close()


def loadgen_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description="outbound benchmark load generator (loopback)")
    p.add_argument("--mode", choices=("sink", "gateway"), required=True)
    p.add_argument("--connector", required=True, help="http://127.0.0.1:P of the source with "
                                                      "the connector")
    p.add_argument("--none", required=True, help="... of the source without connector")
    p.add_argument("--target", required=True, help="the sink's base, or the target's /scim2")
    p.add_argument("--auth", default="bench:secret")
    p.add_argument("--connector-pid", type=int)
    p.add_argument("--none-pid", type=int)
    p.add_argument("--target-pid", type=int)
    p.add_argument("--connector-db", required=True, help="the connector gateway's SQLite file")
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument("--high-rate", type=float, default=500.0)
    p.add_argument("--seconds", type=float, default=16.0)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--warmup-seconds", type=float, default=2.0)
    p.add_argument("--drain-seconds", type=float, default=20.0)
    p.add_argument("--closed-seconds", type=float, default=3.0)
    p.add_argument("--closed-max", type=int, default=20000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--max-inflight", type=int, default=512)
    p.add_argument("--burst", type=int, default=5000)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--burst-drain-seconds", type=float, default=60.0)
    p.add_argument("--poll-seconds", type=float, default=0.5)
    p.add_argument("--max-seconds", type=float, default=200.0)
    p.add_argument("--profile", choices=PHASES)
    p.add_argument("--outdir", default=".")
    p.add_argument("--run-id", default=f"{int(time.time()) % 100000}")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    require_loopback(p, args.connector, args.none, args.target)
    results = asyncio.run(loadgen_async(args))
    with open(args.out, "w") as f:
        json.dump(results, f)
    return 0


# analysis ---------------------------------------------------------------------------------------
def analyse(raw: dict) -> dict:
    """Per phase and gateway: latency, lag, delivered rate, backlog, CPU, from the raw run."""
    users, arrivals = raw["users"], raw["arrivals"]
    by_slice: dict[int, list[tuple[float, float | None]]] = {}
    for name, u in users.items():
        by_slice.setdefault(u["slice"], []).append((u["created"], arrivals.get(name)))
    burst_names = [n for n in arrivals if "-burst-" in n]
    phases: dict[tuple[str, str], dict] = {}
    for s in raw["slices"]:
        if not s.get("record") or s["phase"] == "burst":
            continue
        key = (s["phase"], s["gateway"])
        a = phases.setdefault(key, {"phase": s["phase"], "gateway": s["gateway"],
                                    "latencies": [], "ok": 0, "errors": 0, "seconds": 0.0,
                                    "lags": [], "missing": 0, "spans": [], "tails": [],
                                    "backlog_max": 0, "cpu": {}, "first_error": None,
                                    "slice_p50_ms": [], "late_max_ms": 0.0,
                                    "rate": s.get("rate"), "concurrency": s.get("concurrency"),
                                    "drain_timeouts": 0, "skipped": 0})
        a["latencies"] += s["latencies"]
        a["ok"] += len(s["latencies"])
        a["errors"] += s["errors"]
        a["seconds"] += s["seconds"]
        a["first_error"] = a["first_error"] or s["first_error"]
        a["late_max_ms"] = max(a["late_max_ms"], s.get("late_max_ms") or 0.0)
        a["drain_timeouts"] += int(bool(s.get("drain_timed_out")))
        a["skipped"] += s.get("skipped") or 0
        a["slice_p50_ms"].append(pct(s["latencies"], 0.5, 1000, 2))
        for k, v in s["cpu"].items():
            if v is not None:
                a["cpu"][k] = a["cpu"].get(k, 0.0) + v
        if s["gateway"] != "connector":
            continue
        events = by_slice.get(s["index"], [])
        got = sorted(t for _, t in events if t is not None)
        a["missing"] += sum(1 for _, t in events if t is None)
        a["lags"] += [t - c for c, t in events if t is not None]
        if len(got) > 1:
            a["spans"].append((len(got) - 1, got[-1] - got[0]))
            a["tails"].append(got[-1] - s["end"])
        # the backlog: created and not yet delivered, at its highest
        marks = sorted([(c, 1) for c, _ in events] + [(t, -1) for _, t in events
                                                     if t is not None])
        level = high = 0
        for _, d in marks:
            level += d
            high = max(high, level)
        a["backlog_max"] = max(a["backlog_max"], high)
    out = []
    for a in phases.values():
        lat = a.pop("latencies")
        lags = a.pop("lags")
        spans = a.pop("spans")
        tails = a.pop("tails")
        n_del = sum(n for n, _ in spans)
        t_del = sum(t for _, t in spans)
        a.update({
            "req_per_s": round(a["ok"] / a["seconds"], 1) if a["seconds"] else None,
            "p50_ms": pct(lat, 0.5, 1000, 2), "p99_ms": pct(lat, 0.99, 1000, 2),
            "lag_p50_s": pct(lags, 0.5), "lag_p99_s": pct(lags, 0.99),
            "lag_max_s": round(max(lags), 3) if lags else None, "lag_n": len(lags),
            "delivered_per_s": round(n_del / t_del, 1) if t_del > 0 else None,
            "tail_max_s": round(max(tails), 3) if tails else None,
            "cpu_ms_per_req": {k: round(v * 1000 / a["ok"], 3) for k, v in a["cpu"].items()}
            if a["ok"] else {},
        })
        out.append(a)
    burst = next((s for s in raw["slices"] if s["phase"] == "burst"), None)
    if burst is not None:
        times = sorted(arrivals[n] for n in burst_names)
        after = [t for t in times if t > burst["end"]]
        peak = 0
        j = 0
        for i, t in enumerate(times):  # the most deliveries within one second
            while times[j] < t - 1.0:
                j += 1
            peak = max(peak, i - j + 1)
        burst = {
            "created": burst.get("created"), "errors": burst["errors"],
            "first_error": burst["first_error"], "bulk_seconds": burst["seconds"],
            "bulk_requests_s": burst["bulk"],
            "delivered": len(times),
            "delivered_during_bulk": len(times) - len(after),
            "all_delivered_after_s": round(times[-1] - burst["start"], 2) if times else None,
            "overall_per_s": (round(len(times) / (times[-1] - burst["start"]), 1)
                              if len(times) > 1 else None),
            "drain_after_bulk_per_s": (round(len(after) / (after[-1] - burst["end"]), 1)
                                       if len(after) > 1 else None),
            "steady_per_s": (round((len(times) - 1) / (times[-1] - times[0]), 1)
                             if len(times) > 1 else None),
            "peak_1s": peak, "dead": burst.get("dead_total"),
            "cpu": burst["cpu"],
            "cpu_ms_per_event": {k: round(v * 1000 / len(times), 3)
                                 for k, v in burst["cpu"].items()
                                 if v is not None and times},
        }
        c = burst["cpu_ms_per_event"].get("connector")
        # one process runs Python on one core at a time (the GIL): its CPU per event
        # bounds its rate even on an idle machine
        burst["cpu_ceiling_per_s"] = round(1000 / c, 1) if c else None
    return {"phases": out, "burst": burst, "histogram": raw["histogram"],
            "final_metrics": raw["final_metrics"], "target_stats": raw.get("target_stats")}


def table(mode: str, an: dict) -> tuple[list[str], dict]:
    """The rows of one target, and the ratios (connector / none) per phase."""
    head = ("phase | gateway | ok | errors | req/s | p50 ms | p99 ms | vs none p50 | "
            "vs none p99 | delivered/s | max backlog | tail s | lag p50 s | lag p99 s | "
            "lag max s | lag hist p99 | src cpu ms/req | target cpu ms/req")
    rows = [head, "-" * len(head)]
    ratios = {}
    names = {"rate": "open {r:g}/s", "high": "open {r:g}/s", "closed": "closed c={c}"}
    by = {(p["phase"], p["gateway"]): p for p in an["phases"]}
    for phase in ("rate", "high", "closed"):
        con, none = by.get((phase, "connector")), by.get((phase, "none"))
        if con is None or none is None:
            continue
        r50 = round(con["p50_ms"] / none["p50_ms"], 3) if con["p50_ms"] and none["p50_ms"] \
            else None
        r99 = round(con["p99_ms"] / none["p99_ms"], 3) if con["p99_ms"] and none["p99_ms"] \
            else None
        ratios[phase] = {"p50": r50, "p99": r99, "rate": con["rate"],
                         "req_per_s": (con["req_per_s"], none["req_per_s"]),
                         "slice_p50_ms": (con["slice_p50_ms"], none["slice_p50_ms"])}
        label = names[phase].format(r=con["rate"] or 0, c=con["concurrency"])
        hist = an["histogram"].get(phase, {})
        for p, rr in ((con, (r50, r99)), (none, (None, None))):
            cpu = p["cpu_ms_per_req"]
            rows.append(" | ".join([
                label, p["gateway"], str(p["ok"]), str(p["errors"]), fmt(p["req_per_s"], 1),
                fmt(p["p50_ms"]), fmt(p["p99_ms"]), fmt(rr[0]), fmt(rr[1]),
                fmt(p.get("delivered_per_s"), 1) if p["gateway"] == "connector" else "-",
                str(p["backlog_max"]) if p["gateway"] == "connector" else "-",
                fmt(p.get("tail_max_s"), 3) if p["gateway"] == "connector" else "-",
                fmt(p.get("lag_p50_s"), 3), fmt(p.get("lag_p99_s"), 3),
                fmt(p.get("lag_max_s"), 3),
                ("<= " + hist["p99_le_s"] if hist.get("p99_le_s") else "-")
                if p["gateway"] == "connector" else "-",
                fmt(cpu.get(p["gateway"]), 3),
                fmt(cpu.get("target"), 3) if p["gateway"] == "connector" else "-"]))
    b = an["burst"]
    if b:
        rows.append(
            f"burst: {b['created']} users by POST /Bulk in {b['bulk_seconds']:.2f}s "
            f"({len(b['bulk_requests_s'])} requests); delivered {b['delivered']} "
            f"({b['delivered_during_bulk']} while the bulk ran), all after "
            f"{fmt(b['all_delivered_after_s'])}s: {fmt(b['overall_per_s'], 1)} events/s from "
            f"the first bulk request, {fmt(b['drain_after_bulk_per_s'], 1)}/s after the bulk "
            f"ended, {fmt(b['steady_per_s'], 1)}/s first to last delivery, peak "
            f"{b['peak_1s']} in 1 s; not delivered when the wait ended "
            f"{(b['created'] or 0) - b['delivered']}; dead {b['dead']}; errors {b['errors']}; "
            "CPU ms/event: "
            + ", ".join(f"{k} {v}" for k, v in b["cpu_ms_per_event"].items())
            + f"; the connector gateway's CPU per event allows at most "
              f"{fmt(b['cpu_ceiling_per_s'], 1)} events/s on one core")
    return rows, ratios


def verdicts(mode: str, an: dict, ratios: dict, args) -> tuple[list[str], dict]:
    by = {(p["phase"], p["gateway"]): p for p in an["phases"]}
    lines, out = [], {}

    def line(key: str, text: str, measured, target, ok: bool | None) -> None:
        state = mark(ok).strip()
        out[key] = {"measured": measured, "target": target, "verdict": state}
        lines.append(f"  [{mode}] {text}: {fmt(measured, 3)} / {target} {state}")

    def latency(phase: str, key: str, label: str) -> None:
        con, none = by.get((phase, "connector")), by.get((phase, "none"))
        if con is None or none is None:
            return
        r = ratios.get(phase, {})
        saturated = bool(none["skipped"] or none["errors"]
                         or (none["req_per_s"] or 0) < 0.95 * con["rate"])
        if saturated:
            lines.append(f"  [{mode}] the source WITHOUT connector did not take "
                         f"{con['rate']:g}/s either ({none['req_per_s']} req/s, "
                         f"{none['errors']} errors): latencies at that rate are queueing, "
                         "their ratio is no measure of the connector's cost")
        if con["drain_timeouts"]:
            lines.append(f"  [{mode}] {con['drain_timeouts']} connector slice(s) at "
                         f"{con['rate']:g}/s not drained within --drain-seconds: deliveries "
                         "ran on into the no-connector slices and slowed them, so the ratio "
                         "is too low (a MISS stands, a MET would not)")
        for q in ("p50", "p99"):
            v = r.get(q)
            ok = None if v is None or saturated else v <= TARGETS["latency_ratio"]
            if ok and con["drain_timeouts"]:
                ok = None
            line(f"{key}_latency_ratio_{q}", f"{label}inbound {q} with/without connector at "
                 f"{con['rate']:g}/s (<=)", v, TARGETS["latency_ratio"], ok)

    b = an["burst"]
    cap = b["drain_after_bulk_per_s"] if b else None
    line("burst_drain_per_s", "delivery capacity, burst of "
         f"{b['created'] if b else 0} drained after the bulk (events/s >=)",
         cap, TARGETS["delivered_per_s"],
         None if cap is None else cap >= TARGETS["delivered_per_s"])
    high = by.get(("high", "connector"))
    if high is not None:
        kept = high.get("delivered_per_s") or 0.0
        came = min(high["rate"], high["req_per_s"] or 0.0)
        pace = kept >= 0.99 * came and (high.get("tail_max_s") or 0) < 1.0 \
            and not high["missing"]
        ok = (True if pace and kept >= 0.99 * TARGETS["delivered_per_s"]
              else False if not pace else None)  # kept pace with less than 500/s coming in
        line("high_delivered_per_s", f"delivered/s while {high['rate']:g}/s are sent "
             f"({high['req_per_s']}/s accepted; first to last delivery of each slice, >=)",
             high.get("delivered_per_s"), TARGETS["delivered_per_s"], ok)
        latency("high", "high", "")
    rate = by.get(("rate", "connector"))
    if rate is not None:
        latency("rate", "rate", "(also) ")
        line("lag_p99_s", f"lag commit -> delivery p99 at {rate['rate']:g}/s (s, <)",
             rate.get("lag_p99_s"), TARGETS["lag_p99_s"],
             None if rate.get("lag_p99_s") is None else rate["lag_p99_s"] < 1.0
             and not rate["missing"])
    return lines, out


# the orchestration -----------------------------------------------------------------------------
def outbound_section(target_url: str, mode: str, args) -> str:
    auth = ('auth = "none"' if mode == "sink"
            else 'auth = "basic"\nusername = "bench"\npassword = "secret"')
    extra = ""
    if args.outbound_concurrency:
        extra += f"concurrency = {args.outbound_concurrency}\n"
    if args.poll_ms:
        extra += f"poll_interval_ms = {args.poll_ms}\n"
    if args.dispatcher:
        extra += f'dispatcher = "{args.dispatcher}"\n'
    if args.dispatcher_nice is not None:
        extra += f"dispatcher_nice = {args.dispatcher_nice}\n"
    return f"""
[outbound]
{extra}
[[outbound.connectors]]
name = "bench"
type = "scim2"
url = "{target_url}"
{auth}
blocking = false
timeout_seconds = 10
"""


def run_target(mode: str, args, outdir: str, env: dict, deadline: float) -> dict | None:
    from common import (
        free_port,
        health,
        run_child,
        serve_command,
        spawn,
        stop,
        wait_http,
        write_config,
    )

    workdir = tempfile.mkdtemp(prefix=f"gwbench-outbound-{mode}-")
    procs: dict[str, subprocess.Popen] = {}
    logs = {}
    try:
        ports = {k: free_port() for k in ("target", "connector", "none")}

        def start(name: str, cmd: list[str]) -> None:
            logs[name] = os.path.join(outdir, f"{mode}-{name}.log")
            procs[name] = spawn(cmd, logs[name], env, workdir)

        if mode == "sink":
            nice = ["nice", "-n", str(args.target_nice)] if args.target_nice else []
            start("target", [*nice, sys.executable, os.path.abspath(__file__), "sink",
                             "--port", str(ports["target"])])
            target_base = f"http://127.0.0.1:{ports['target']}"
            target_url = target_base + "/scim2"
            loadgen_target = target_base
        else:
            cfg = os.path.join(outdir, f"{mode}-target.toml")
            write_config(cfg, os.path.join(workdir, "target.db"), ports["target"])
            start("target", serve_command(cfg, ports["target"]))
            target_url = loadgen_target = f"http://127.0.0.1:{ports['target']}/scim2"
        for name in ("connector", "none"):
            cfg = os.path.join(outdir, f"{mode}-{name}.toml")
            write_config(cfg, os.path.join(workdir, f"{name}.db"), ports[name],
                         outbound_section(target_url, mode, args) if name == "connector" else "")
            start(name, serve_command(cfg, ports[name]))
        for name in ("target", "connector", "none"):
            wait_http(health(ports[name]), procs[name], 120, logs[name])
        raw_path = os.path.join(outdir, f"loadgen-{mode}.json")
        budget = deadline - time.perf_counter() - 15
        if budget < 60:
            print(f"time budget (--max-seconds) spent: target {mode} skipped", flush=True)
            return None
        cmd = [sys.executable, os.path.abspath(__file__), "loadgen", "--mode", mode,
               "--connector", f"http://127.0.0.1:{ports['connector']}",
               "--none", f"http://127.0.0.1:{ports['none']}", "--target", loadgen_target,
               "--connector-pid", str(procs["connector"].pid),
               "--none-pid", str(procs["none"].pid), "--target-pid", str(procs["target"].pid),
               "--connector-db", os.path.join(workdir, "connector.db"),
               "--rate", str(args.rate), "--high-rate", str(args.high_rate),
               "--seconds", str(args.seconds), "--rounds", str(args.rounds),
               "--closed-seconds", str(args.closed_seconds),
               "--concurrency", str(args.concurrency), "--burst", str(args.burst),
               "--drain-seconds", str(args.drain_seconds),
               "--burst-drain-seconds", str(args.burst_drain_seconds),
               "--max-seconds", str(budget), "--outdir", outdir, "--out", raw_path]
        if args.profile:
            cmd += ["--profile", args.profile]
        print(f"[{mode}] target pid {procs['target'].pid} :{ports['target']}, source with "
              f"connector pid {procs['connector'].pid} :{ports['connector']}, without pid "
              f"{procs['none'].pid} :{ports['none']}", flush=True)
        run_child(cmd, env, budget + 60)
        alive = {k: p.poll() is None for k, p in procs.items()}
        with open(raw_path) as f:
            raw = json.load(f)
        an = analyse(raw)
        an["alive_at_end"] = alive
        with open(logs["connector"]) as f:
            log = f.read()
        an["connector_log_warnings"] = sum(1 for ln in log.splitlines()
                                           if "WARNING" in ln or "ERROR" in ln
                                           or "Traceback" in ln)
        return an
    finally:
        for p in procs.values():
            stop(p)
        cleanup(workdir, args.keep)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sink"]:
        return sink_main(argv[1:])
    if argv[:1] == ["loadgen"]:
        return loadgen_main(argv[1:])
    from common import (
        busiest_others,
        clean_env,
        loadavg,
        machine_busy,
        machine_cpu,
        machine_load,
        process_cpu,
        results_dir,
        save_report,
    )

    p = argparse.ArgumentParser(description="outbound provisioning benchmark "
                                            "(see bench/README.md)")
    p.add_argument("--targets", default="sink,gateway",
                   help="SCIM targets to measure, in order: sink, gateway (default both)")
    p.add_argument("--rate", type=float, default=200.0,
                   help="open-loop inbound rate of the lag target (events/s)")
    p.add_argument("--high-rate", type=float, default=500.0,
                   help="open-loop inbound rate of the throughput target (0: skip)")
    p.add_argument("--seconds", type=float, default=12.0,
                   help="per gateway and rate, cut in --rounds slices")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--closed-seconds", type=float, default=3.0,
                   help="per closed-loop slice (2 per gateway; 0: skip)")
    p.add_argument("--concurrency", type=int, default=16, help="closed-loop clients")
    p.add_argument("--burst", type=int, default=5000, help="users in the /Bulk burst (0: skip)")
    p.add_argument("--drain-seconds", type=float, default=12.0,
                   help="bound of the wait for a slice's deliveries")
    p.add_argument("--burst-drain-seconds", type=float, default=45.0)
    p.add_argument("--outbound-concurrency", type=int,
                   help="[outbound] concurrency of the source (default: the product's)")
    p.add_argument("--poll-ms", type=int, help="[outbound] poll_interval_ms (default: product)")
    p.add_argument("--dispatcher", choices=("process", "inline", "external"),
                   help="[outbound] dispatcher of the source (default: the product's, process)")
    p.add_argument("--target-nice", type=int, default=0,
                   help="run the sink target at this nice level (it shares the 2 cores with "
                   "the source; a real target is elsewhere)")
    p.add_argument("--dispatcher-nice", type=int,
                   help="[outbound] dispatcher_nice of the source (default: the product's)")
    p.add_argument("--profile", choices=PHASES,
                   help="py-spy the connector gateway during this phase (numbers not for "
                        "the targets)")
    p.add_argument("--max-seconds", type=float, default=420.0, help="bound of the whole run")
    results_args(p, keep="keep the temporary folders")
    args = p.parse_args(argv)
    modes = [m.strip() for m in args.targets.split(",") if m.strip()]
    if not modes or set(modes) - {"sink", "gateway"}:
        p.error("--targets: sink, gateway")

    started = time.perf_counter()
    deadline = started + args.max_seconds
    _, outdir = results_dir(args.results, "outbound")
    env = clean_env()
    load_before = loadavg()
    busy0, procs0 = machine_busy(), process_cpu()
    results, lines, verdict = {}, [], {}
    for k, mode in enumerate(modes):
        share = (deadline - time.perf_counter()) / (len(modes) - k)
        an = run_target(mode, args, outdir, env, time.perf_counter() + share)
        if an is None:
            continue
        results[mode] = an
    busy1 = machine_busy()
    others = busiest_others(procs0, process_cpu(), {os.getpid()})

    lines.append(
        f"Outbound benchmark: source gateway (1 worker, SQLite) with one non-blocking scim2 "
        f"connector vs the same without connector, alternating slices ({args.rounds} per "
        f"gateway and rate, {args.seconds:g}s per gateway and rate); open-loop POST /Users of "
        f"new users; lag = source meta.created -> arrival at the target")
    lines.append("targets: sink = minimal aiohttp SCIM sink (the dispatcher alone); gateway = "
                 "a second `gateway serve` (SQLite) as the target, on the same 2 cores")
    lines.append(f"source's dispatcher: {args.dispatcher or 'process'} (the product's default "
                 f"unless set), dispatcher_nice "
                 f"{args.dispatcher_nice or OutboundConfig().dispatcher_nice}; CPU of the "
                 f"connector gateway = its process and the dispatcher process together")
    if args.profile:
        lines.append(f"PROFILED ({args.profile}): py-spy slows the gateway; these numbers are "
                     "not for the targets")
    for mode, an in results.items():
        rows, ratios = table(mode, an)
        v_lines, v = verdicts(mode, an, ratios, args)
        verdict[mode] = v
        an["ratios"] = ratios
        lines += ["", f"== target: {mode} ==", *rows]
        for phase, r in ratios.items():
            lines.append(f"  {phase}: p50 per slice (ms), connector {r['slice_p50_ms'][0]} / "
                         f"none {r['slice_p50_ms'][1]}")
        errs = [f"  {p['phase']} {p['gateway']}: {p['first_error']}" for p in an["phases"]
                if p["first_error"]]
        if an["burst"] and an["burst"]["first_error"]:
            errs.append(f"  burst: {an['burst']['first_error']}")
        missing = sum(p.get("missing", 0) for p in an["phases"])
        lines.append(f"  never arrived at the target: {missing}; connector-gateway log "
                     f"warnings/errors: {an['connector_log_warnings']}; processes alive at "
                     f"the end: {an['alive_at_end']}; target stats: {an['target_stats']}")
        if errs:
            lines += ["  first errors:", *errs]
        lines += ["targets (measured / target):", *v_lines]
    machine, wall = machine_cpu(busy0, busy1)
    lines += [
        "",
        "columns: req/s = inbound 201s per second of slice; vs none = connector / none "
        "(latency ratio, same run, alternating slices); delivered/s = events of a slice / "
        "time from its first to its last delivery (summed over slices); max backlog = "
        "created at the source and not yet at the target, at its highest; tail = last "
        "delivery of a slice after its last request was sent; lag = meta.created at the "
        "source -> POST arrival at the sink / meta.created at the target gateway (p50/p99/max"
        " over every event); lag hist p99 = bucket bound of /metrics "
        "gateway_outbound_lag_seconds; cpu ms/req = CPU of that process per inbound request "
        "(connector gateway: including the drain after its slice)",
        f"{machine_load(load_before)}; all CPUs busy "
        f"{machine:.0f}s of {wall:.0f}s wall",
        "busiest other processes (CPU seconds during the run):",
        *(others or ["  (none over 0.5s)"]),
        f"whole run {time.perf_counter() - started:.0f}s; results: {outdir}",
    ]
    save_report(outdir, lines, {"settings": vars(args), "targets": verdict,
                                "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
