"""Speed per core with an external load generator: the gateway against bare aiohttp, with wrk.

    /work/venv/bin/python bench/run_wrk.py [--users 10000] [--seconds 10] [--postgres URL]

1. generates ``--users`` synthetic users (``generate_users.py``) and loads them with
   ``gateway import`` into a fresh SQLite database in a temporary folder (``--postgres
   URL``: into a throw-away database on that PostgreSQL server, dropped at the end);
2. starts ``gateway serve`` (one worker, the configuration of ``run.py``: the API client
   ``bench`` with a plain secret and ``*``, ``[auth] cache_seconds = 60``) and the bare
   aiohttp app (``baseline.py``, fixed bodies on the same routes), both pinned with
   ``taskset`` to the same core (``--server-cpus``, 1); both stay up, one is measured at
   a time;
3. reads a sample of user ids through the API (``userName eq`` lookups of random users)
   and checks one answer of every scenario from each server (a fast wrong answer is not
   a result);
4. per scenario, bare then gateway: ``wrk`` pinned to the other core (``--client-cpus``,
   0), ``-t1 -c32 -d{seconds}s --latency`` with a Lua script of the scenario (written
   into the results folder), after a short unmeasured warm-up. Reads come first, then
   PATCH (changes ``displayName`` only), then POST (adds users), so that every read
   sees the same N users. Measured: req/s, p50 and p99 (wrk's latency distribution),
   the answers that were not 2xx (counted by the script; a run with any, or with socket
   errors, is invalid), and the server process's CPU (``/proc/<pid>/stat``) per request;
5. prints the table (share of bare by throughput and by CPU per request) and the
   targets of issue 20 (MET/MISS), and keeps ``report.txt``, ``summary.json``, the Lua
   scripts, wrk's outputs, the configuration and the logs in
   ``bench/results/<timestamp>-wrk-<N>/`` (gitignored).

Every step is bounded (the load, each wrk run, the whole run with ``--max-seconds``);
only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import generate_users  # noqa: E402
from common import (  # noqa: E402
    SCIM_JSON,
    TICK,
    baseline_command,
    basic_auth,
    busiest_others,
    clean_env,
    cleanup,
    columns,
    cores_busy,
    cpu_list,
    fmt,
    free_port,
    health,
    import_command,
    loadavg,
    machine_busy,
    machine_cpu,
    machine_load,
    mark,
    pg_backends,
    pg_create_database,
    pg_drop_database,
    pinned,
    proc_status,
    process_cpu,
    process_tree,
    require_loopback,
    results_args,
    results_dir,
    run_import,
    save_report,
    serve_command,
    spawn,
    stop,
    tree_cpu,
    wait_http,
    write_config,
)
from generate_users import SCHEMA, email, external_id, user_name  # noqa: E402

AUTH = "bench:secret"
SERVICE = "RemoteUserStoreManagerService"
SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
WSO2_TNS = "http://service.ws.um.carbon.wso2.org"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
P99_MS = 40.0  # every scenario, 32 connections
PAGES_PER_S = 600.0


@dataclass(frozen=True)
class Scenario:
    key: str
    name: str
    target: float | None  # share of bare (throughput) the issue asks for; None: pages/s
    content_type: str | None = None  # of the request body
    soap: str | None = None  # the SOAP operation


SCENARIOS = (  # the order they run in: reads first, then PATCH (displayName), then POST
    Scenario("get_id", "GET /Users/{id}", 0.35),
    Scenario("filter_username", 'GET ?filter=userName eq "…"', 0.30),
    Scenario("filter_externalid", 'GET ?filter=externalId eq "…"', 0.30),
    Scenario("filter_email", 'GET ?filter=emails.value eq "…"', 0.30),
    Scenario("page100", "GET ?startIndex=1&count=100", None),
    Scenario("soap_exists", "SOAP isExistingUser", 0.25,
             content_type="text/xml; charset=utf-8", soap="isExistingUser"),
    Scenario("soap_claims", "SOAP getUserClaimValues", 0.25,
             content_type="text/xml; charset=utf-8", soap="getUserClaimValues"),
    Scenario("patch", "PATCH replace displayName", 0.20, content_type=SCIM_JSON),
    Scenario("post", "POST /Users", 0.25, content_type=SCIM_JSON),
)
BY_KEY = {s.key: s for s in SCENARIOS}


# the Lua scripts ----------------------------------------------------------------------------------
def lua_str(text: str) -> str:
    """A Lua string literal (the values here are plain ASCII)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def envelope_lua(operation: str, extra: str = "") -> str:
    """Lua expression: the SOAP 1.1 request of ``run_soap.py`` for the user ``name``."""
    head = (f'<soapenv:Envelope xmlns:soapenv="{SOAP11_ENV}" xmlns:ser="{WSO2_TNS}">'
            f"<soapenv:Header/><soapenv:Body><ser:{operation}><ser:userName>")
    tail = (f"</ser:userName>{extra}</ser:{operation}></soapenv:Body></soapenv:Envelope>")
    return f"{lua_str(head)} .. name .. {lua_str(tail)}"


def request_lua(s: Scenario, tag: str) -> str:
    """The Lua ``request()`` of a scenario (``users``, ``ids``, ``tid`` are defined)."""
    pick = 'local name = "user" .. string.format("%07d", math.random(users))\n'
    if s.key == "get_id":
        return ('function request()\n'
                '  return wrk.format("GET", "/scim2/Users/" .. ids[math.random(#ids)])\nend\n')
    if s.key.startswith("filter_"):
        value = {"filter_username": ('userName', 'name'),
                 "filter_externalid": ('externalId',
                                       '"ext-" .. string.format("%07d", math.random(users))'),
                 "filter_email": ('emails.value', 'name .. "%40example.com"')}[s.key]
        return ("function request()\n  " + pick.replace("\n", "\n  ")
                + f'return wrk.format("GET", "/scim2/Users?filter={value[0]}%20eq%20%22" .. '
                f'{value[1]} .. "%22")\nend\n')
    if s.key == "page100":
        return ('local req = nil\nfunction request()\n'
                '  if req == nil then req = wrk.format("GET", '
                '"/scim2/Users?startIndex=1&count=100") end\n  return req\nend\n')
    if s.soap:
        extra = "<ser:profileName>default</ser:profileName>" if s.soap == "getUserClaimValues" \
            else ""
        return ("function request()\n  " + pick.replace("\n", "\n  ")
                + f'return wrk.format("POST", "/services/{SERVICE}", nil, '
                f"{envelope_lua(s.soap, extra)})\nend\n")
    if s.key == "patch":
        head = ('{"schemas":["' + PATCH_OP + '"],"Operations":[{"op":"replace",'
                '"path":"displayName","value":"Display ')
        tail = '"}]}'
        return ('function request()\n  counter = counter + 1\n'
                '  return wrk.format("PATCH", "/scim2/Users/" .. ids[math.random(#ids)], nil, '
                f'{lua_str(head)} .. tid .. "-" .. counter .. {lua_str(tail)})\nend\n')
    if s.key == "post":
        head = '{"schemas":["' + SCHEMA + '"],"userName":"'
        return ('function request()\n  counter = counter + 1\n'
                f'  local name = {lua_str(tag)} .. run .. "-" .. tid .. "-" .. counter .. "-" .. '
                'math.random(1000000000)\n'
                f'  return wrk.format("POST", "/scim2/Users", nil, {lua_str(head)} .. name .. '
                + lua_str('","name":{"givenName":"Wrk","familyName":"Bench"},"emails":[{"value":"')
                + ' .. name .. ' + lua_str('@example.com","type":"work","primary":true}],'
                                           '"active":true}') + ")\nend\n")
    raise ValueError(s.key)


LUA_COMMON = r"""
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  -- args[1]: the run's label (warm-up and measured runs must not create the same names)
  run = args[1] or "run"
  local salt = 0
  for k = 1, #run do salt = salt + k * string.byte(run, k) end
  math.randomseed(SEED + 7919 * (tid or 0) + 104729 * salt)
  counter = 0
  non2xx = 0
  first_bad = ""
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if non2xx == 1 then
      first_bad = status .. " " .. string.gsub(string.sub(body or "", 1, 300), "%s", " ")
    end
  end
end

function done(summary, latency, requests)
  local bad, first = 0, ""
  for _, t in ipairs(threads) do
    bad = bad + (t:get("non2xx") or 0)
    local f = t:get("first_bad")
    if first == "" and f then first = f end
  end
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {\"requests\":%d,\"duration_us\":%d,\"bytes\":%d,\"non2xx\":%d," ..
    "\"connect\":%d,\"read\":%d,\"write\":%d,\"status\":%d,\"timeout\":%d," ..
    "\"p50_us\":%d,\"p99_us\":%d,\"max_us\":%d}\n",
    summary.requests, summary.duration, summary.bytes, bad, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(99), latency.max))
  io.write("WRKFIRSTBAD " .. first .. "\n")
end
"""


def write_lua(path: str, s: Scenario, users: int, ids: list[str], tag: str,
              seed: int) -> None:
    headers = {"Authorization": basic_auth(AUTH), "Accept": SCIM_JSON}
    if s.content_type:
        headers["Content-Type"] = s.content_type
    if s.soap:
        headers["Accept"] = "text/xml"
        headers["SOAPAction"] = f'"urn:{s.soap}"'
    lines = [f"-- written by bench/run_wrk.py: {s.name}", f"SEED = {seed}",
             f"users = {users}"]
    lines += [f"wrk.headers[{lua_str(k)}] = {lua_str(v)}" for k, v in headers.items()]
    if s.key in ("get_id", "patch"):
        lines.append("ids = {" + ",".join(lua_str(i) for i in ids) + "}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n" + LUA_COMMON + "\n" + request_lua(s, tag))


# wrk ----------------------------------------------------------------------------------------------
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def parse_wrk(text: str) -> dict:
    """What wrk printed: requests, req/s, p50/p99 (ms, from ``--latency``), errors, and the
    script's ``WRKJSON`` line (non-2xx answers)."""
    out: dict = {}
    for q, value, unit in re.findall(r"^\s*(50|75|90|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$", text,
                                     re.M):
        out[f"p{q}_ms"] = round(float(value) * UNITS[unit], 3)
    m = re.search(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", text, re.M)
    if m:
        out["requests"] = int(m.group(1))
        out["seconds"] = round(float(m.group(2)) * UNITS[m.group(3)] / 1e3, 3)
    m = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    if m:
        out["req_per_s"] = float(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["wrk_status_errors"] = int(m.group(1)) if m else 0
    m = re.search(r"^WRKJSON (\{.*\})$", text, re.M)
    if m:
        script = json.loads(m.group(1))
        out["script"] = script
        out["non2xx"] = script["non2xx"]
        out["max_ms"] = round(script["max_us"] / 1e3, 3)
    m = re.search(r"^WRKFIRSTBAD (.*)$", text, re.M)
    if m and m.group(1).strip():
        out["first_bad"] = m.group(1).strip()
    return out


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_wrk(args, wrk: str, lua: str, port: int, seconds: float, label: str,
            log: str | None) -> tuple[dict, float]:
    """One wrk run (pinned to ``--client-cpus``; ``label`` goes to the script's ``init``):
    (parsed output, wrk's CPU seconds)."""
    cmd = pinned([wrk, f"-t{args.threads}", f"-c{args.connections}",
                  f"-d{max(1, round(seconds))}s", "--timeout", f"{args.timeout}s", "--latency",
                  "-s", lua, f"http://127.0.0.1:{port}", "--", label], args.client_cpus)
    cpu0 = children_cpu()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        raise SystemExit(f"wrk overran its time bound: {' '.join(cmd)}") from None
    cpu = children_cpu() - cpu0
    if log:
        with open(log, "w") as f:
            f.write("$ " + " ".join(cmd) + "\n" + proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"wrk failed ({proc.returncode}): {proc.stderr[-1000:]}")
    return parse_wrk(proc.stdout), cpu


# talking to the servers (checks and the id sample) ------------------------------------------------
class Http:
    """One keep-alive connection to 127.0.0.1:port, Basic auth of the bench client."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.auth = basic_auth(AUTH)

    def call(self, method: str, path: str, body: bytes | None = None,
             headers: dict | None = None) -> tuple[int, bytes]:
        h = {"Authorization": self.auth, "Accept": SCIM_JSON}
        if body is not None:
            h["Content-Type"] = SCIM_JSON
        h.update(headers or {})
        self.conn.request(method, path, body=body, headers=h)
        resp = self.conn.getresponse()
        return resp.status, resp.read()

    def close(self) -> None:
        self.conn.close()


def filter_path(attr: str, value: str) -> str:
    return "/scim2/Users?filter=" + urllib.parse.quote(f'{attr} eq "{value}"', safe="")


def sample_ids(port: int, users: int, count: int, seed: int) -> list[str]:
    """The ids of ``count`` random users, found with ``userName eq`` (each must be there)."""
    c = Http(port)
    try:
        picked = random.Random(seed).sample(range(1, users + 1), min(count, users))
        ids = []
        for i in picked:
            status, data = c.call("GET", filter_path("userName", user_name(i)))
            found = json.loads(data) if status == 200 else {}
            if found.get("totalResults") != 1:
                raise SystemExit(f"sampling: userName eq {user_name(i)}: {status} {data[:300]!r}")
            ids.append(found["Resources"][0]["id"])
        return ids
    finally:
        c.close()


def soap_body(operation: str, name: str) -> bytes:
    extra = "<ser:profileName>default</ser:profileName>" if operation == "getUserClaimValues" \
        else ""
    return (f'<soapenv:Envelope xmlns:soapenv="{SOAP11_ENV}" xmlns:ser="{WSO2_TNS}">'
            f"<soapenv:Header/><soapenv:Body><ser:{operation}><ser:userName>{name}"
            f"</ser:userName>{extra}</ser:{operation}></soapenv:Body></soapenv:Envelope>"
            ).encode()


def check(s: Scenario, port: int, users: int, ids: list[str], bare: bool) -> bytes:
    """One request of the scenario, as the Lua script sends it; the answer must be right
    (for bare: its status and shape). Returns the answer's body."""
    c = Http(port)
    i = users  # the last user: a filter must find it among N
    try:
        if s.key == "get_id":
            status, data = c.call("GET", f"/scim2/Users/{ids[0]}")
            ok = status == 200 and (bare or json.loads(data).get("id") == ids[0])
        elif s.key.startswith("filter_"):
            attr, value = {"filter_username": ("userName", user_name(i)),
                           "filter_externalid": ("externalId", external_id(i)),
                           "filter_email": ("emails.value", email(i))}[s.key]
            status, data = c.call("GET", filter_path(attr, value))
            doc = json.loads(data) if status == 200 else {}
            ok = status == 200 and doc.get("totalResults") == 1 and (
                bare or doc["Resources"][0]["userName"] == user_name(i))
        elif s.key == "page100":
            status, data = c.call("GET", "/scim2/Users?startIndex=1&count=100")
            doc = json.loads(data) if status == 200 else {}
            ok = status == 200 and len(doc.get("Resources", ())) == 100
        elif s.soap:
            name = user_name(i)
            status, data = c.call("POST", f"/services/{SERVICE}", soap_body(s.soap, name),
                                  {"Content-Type": "text/xml; charset=utf-8",
                                   "Accept": "text/xml", "SOAPAction": f'"urn:{s.soap}"'})
            want = (b">true</" if s.soap == "isExistingUser"
                    else f">Given{i}<".encode() if not bare else b"ClaimDTO")
            ok = status == 200 and f"{s.soap}Response".encode() in data and (
                want in data or (bare and b"claimUri" in data))
        elif s.key == "patch":
            body = json.dumps({"schemas": [PATCH_OP], "Operations": [
                {"op": "replace", "path": "displayName", "value": "Display check"}]}).encode()
            status, data = c.call("PATCH", f"/scim2/Users/{ids[-1]}", body)
            ok = status == 200 and (bare or json.loads(data).get("displayName") == "Display check")
        elif s.key == "post":
            name = f"wrk-check-{'bare' if bare else 'gw'}-{random.getrandbits(32)}"
            body = json.dumps({"schemas": [SCHEMA], "userName": name,
                               "name": {"givenName": "Wrk", "familyName": "Bench"},
                               "emails": [{"value": f"{name}@example.com", "type": "work",
                                           "primary": True}], "active": True}).encode()
            status, data = c.call("POST", "/scim2/Users", body)
            ok = status == 201 and (bare or json.loads(data).get("userName") == name)
        else:
            raise ValueError(s.key)
    finally:
        c.close()
    if not ok:
        raise SystemExit(f"check failed: {s.name} on {'bare' if bare else 'the gateway'}: "
                         f"{status} {data[:500]!r}")
    return data


def measure_run(args, wrk: str, lua: str, port: int, proc: subprocess.Popen, pids: list[int],
                label: str, log: str, store_url: str | None, server_cores: list[int]) -> dict:
    """One measured wrk run against one server: wrk's figures, the server's CPU per request
    (and its PostgreSQL backends' when ``store_url``), what else ran on the servers' core."""
    db0 = {pid: tree_cpu([pid]) for pid in pg_backends(store_url)} if store_url else {}
    core0 = cores_busy(server_cores)
    cpu0 = tree_cpu(pids)
    out, client_cpu = run_wrk(args, wrk, lua, port, args.seconds / args.rounds, label, log)
    cpu1 = tree_cpu(pids)
    core1 = cores_busy(server_cores)
    db_cpu = None
    if store_url:  # the backends there after the run (one that started during it: all its CPU)
        backends = pg_backends(store_url)
        db_cpu = sum((tree_cpu([pid]) or 0.0) - (db0.get(pid) or 0.0) for pid in backends)
    if proc.poll() is not None:
        raise SystemExit(f"a server exited ({proc.returncode}) during {log}")
    n = out.get("requests")
    out["server_cpu_s"] = None if cpu0 is None or cpu1 is None else round(cpu1 - cpu0, 3)
    out["cpu_us_per_req"] = per_request(out["server_cpu_s"], n)
    if store_url:
        out["db_backends"] = len(backends)
        out["db_cpu_s"] = None if db_cpu is None else round(db_cpu, 3)
        out["db_cpu_us_per_req"] = per_request(db_cpu, n)
    # what else the servers' core(s) ran meanwhile (other processes, interrupts not charged
    # to the server): the noise of this run
    if out.get("seconds") and out["server_cpu_s"] is not None and server_cores:
        others = (core1[0] - core0[0]) / TICK - out["server_cpu_s"] - (db_cpu or 0.0)
        out["others_on_server_cores"] = round(max(0.0, others) / out["seconds"]
                                              / len(server_cores), 3)
    out["wrk_cpu_s"] = round(client_cpu, 3)
    out["wrk_busy"] = round(client_cpu / out["seconds"], 2) if out.get("seconds") else None
    return out


def combine(runs: list[dict]) -> dict:
    """The rounds of one server in one scenario together: counts and CPU added up (req/s and
    CPU per request over all of them); p50 the median of the rounds', p99 and max the
    highest round's."""
    if len(runs) == 1:
        return runs[0]

    def total(key: str) -> float | None:
        values = [r.get(key) for r in runs]
        return None if any(v is None for v in values) else sum(values)

    n, seconds, cpu = total("requests"), total("seconds"), total("server_cpu_s")
    p50s = sorted(r["p50_ms"] for r in runs if r.get("p50_ms") is not None)
    out = {"rounds": runs, "requests": n, "seconds": seconds,
           "req_per_s": round(n / seconds, 1) if n and seconds else None,
           "p50_ms": p50s[len(p50s) // 2] if p50s else None,
           "p99_ms": max((r["p99_ms"] for r in runs if r.get("p99_ms") is not None),
                         default=None),
           "max_ms": max((r["max_ms"] for r in runs if r.get("max_ms") is not None),
                         default=None),
           "non2xx": total("non2xx"), "socket_errors": total("socket_errors") or 0,
           "server_cpu_s": cpu, "cpu_us_per_req": per_request(cpu, n),
           "first_bad": next((r["first_bad"] for r in runs if r.get("first_bad")), None)}
    if all("db_cpu_s" in r for r in runs):
        out["db_cpu_us_per_req"] = per_request(total("db_cpu_s"), n)
    noise = [r.get("others_on_server_cores") for r in runs]
    if seconds and None not in noise:
        out["others_on_server_cores"] = round(
            sum(x * r["seconds"] for x, r in zip(noise, runs, strict=True)) / seconds, 3)
    return out


# the report ---------------------------------------------------------------------------------------
def share(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def pcent(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}" if x >= 0.095 else f"{x:.1%}"


def per_request(cpu: float | None, requests: int | None) -> float | None:
    """CPU microseconds per request."""
    return None if cpu is None or not requests else round(cpu * 1e6 / requests, 1)


def table(results: list[dict], postgres: bool) -> str:
    header = ["scenario", "bare req/s", "gateway req/s", "share of bare", "share by CPU",
              "p50 ms", "p99 ms", "bare cpu us/req", "gw cpu us/req"]
    if postgres:
        header.append("pg cpu us/req")
    header += ["non-2xx", "reply B gw/bare", "noise b/g", "valid"]
    rows = []
    for r in results:
        b, g = r["bare"], r["gateway"]
        row = [r["name"], fmt(b.get("req_per_s"), 0), fmt(g.get("req_per_s"), 0),
               pcent(r["share"]), pcent(r["share_cpu"]), fmt(g.get("p50_ms"), 2),
               fmt(g.get("p99_ms"), 2), fmt(b.get("cpu_us_per_req"), 0),
               fmt(g.get("cpu_us_per_req"), 0)]
        if postgres:
            row.append(fmt(g.get("db_cpu_us_per_req"), 0))
        bad = g.get("non2xx", 0) + b.get("non2xx", 0)
        errs = g.get("socket_errors", 0) + b.get("socket_errors", 0)
        row += [fmt(bad) + (f" (+{errs} socket)" if errs else ""),
                f"{r['reply_bytes']['gateway']}/{r['reply_bytes']['bare']}",
                f"{pcent(b.get('others_on_server_cores'))}/"
                f"{pcent(g.get('others_on_server_cores'))}",
                "yes" if r["valid"] else "INVALID"]
        rows.append(row)
    return columns(header, rows, left=(0, -1))


def targets(results: list[dict], connections: int) -> tuple[list[str], dict]:
    out, verdicts = [], {}

    def line(key: str, ok: bool | None, text: str) -> None:
        verdicts[key] = ok
        out.append(f"  [{mark(ok)}] {text}")

    by = {r["key"]: r for r in results}
    for s in SCENARIOS:
        r = by.get(s.key)
        if r is None:
            line(s.key, None, f"{s.name}: not measured")
            continue
        why = "" if r["valid"] else "  (INVALID run: " + r["invalid"] + ")"
        if s.target is not None:
            t = r["share"]
            ok = None if t is None else (t >= s.target and r["valid"])
            line(s.key, ok, f"{s.name}: {pcent(t)} of bare (target >= {s.target:.0%}; by CPU "
                 f"per request {pcent(r['share_cpu'])}){why}")
        else:
            rate = r["gateway"].get("req_per_s")
            ok = None if rate is None else (rate >= PAGES_PER_S and r["valid"])
            line(s.key, ok, f"{s.name}: {fmt(rate, 0)} pages/s (target >= {PAGES_PER_S:.0f}; "
                 f"bare {fmt(r['bare'].get('req_per_s'), 0)}/s){why}")
    worst = [(r["gateway"].get("p99_ms"), r["name"]) for r in results
             if r["gateway"].get("p99_ms") is not None]
    if worst:
        p99, name = max(worst)
        over = [n for v, n in worst if v >= P99_MS]
        line("p99", p99 < P99_MS, f"p99 under {connections} connections: at most "
             f"{p99:.2f} ms ({name}); target < {P99_MS:.0f} ms for every scenario"
             + (f"; over: {', '.join(over)}" if over else ""))
    return out, verdicts


# the orchestration --------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="the gateway against bare aiohttp with wrk "
                                            "(see bench/README.md)")
    p.add_argument("--users", type=int, default=10_000, help="users to generate and load")
    p.add_argument("--seconds", type=float, default=10.0, help="wrk -d of each measured run")
    p.add_argument("--rounds", type=int, default=1,
                   help="cut each measurement in N wrk runs of seconds/N, bare and gateway "
                        "alternating (both then see the same moments of a shared machine)")
    p.add_argument("--warmup", type=float, default=1.0,
                   help="an unmeasured wrk run before each measured one (0: none)")
    p.add_argument("--connections", type=int, default=32, help="wrk -c")
    p.add_argument("--threads", type=int, default=1, help="wrk -t")
    p.add_argument("--timeout", type=int, default=2, help="wrk --timeout, seconds")
    p.add_argument("--server-cpus", default="1", help="taskset -c of both servers ('': none)")
    p.add_argument("--client-cpus", default="0", help="taskset -c of wrk ('': none)")
    p.add_argument("--samples", type=int, default=1000,
                   help="user ids read first, for GET by id and PATCH")
    p.add_argument("--only", help="comma-separated scenario keys (default: all): "
                   + ",".join(BY_KEY))
    p.add_argument("--postgres", metavar="URL",
                   help="run the gateway on a throw-away database of this PostgreSQL server "
                        "(postgresql://postgres@127.0.0.1:5432/postgres); dropped at the end")
    p.add_argument("--extra-config", help="a TOML file appended to the gateway's configuration")
    p.add_argument("--batch", type=int, help="gateway import --batch")
    p.add_argument("--load-timeout", type=float, default=900.0)
    p.add_argument("--max-seconds", type=float, default=900.0,
                   help="bound of the whole run (scenarios that would pass it are skipped)")
    p.add_argument("--seed", type=int, default=1)
    results_args(p, keep="keep the temporary folder (and the PostgreSQL database)")
    args = p.parse_args(argv)
    keys = args.only.split(",") if args.only else list(BY_KEY)
    if set(keys) - set(BY_KEY):
        p.error(f"--only: scenarios are {', '.join(BY_KEY)}")
    scenarios = [s for s in SCENARIOS if s.key in keys]
    if args.postgres:
        require_loopback(p, args.postgres)
    if not 1 <= args.users <= 9_999_999:
        p.error("1 <= --users <= 9,999,999")
    if args.rounds < 1 or args.seconds / args.rounds < 1:
        p.error("--rounds: at least 1, and runs of at least 1 second (--seconds / --rounds)")
    server_cores = cpu_list(args.server_cpus)
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk not found: apt-get install wrk (the Debian package)")

    started = time.perf_counter()
    deadline = started + args.max_seconds
    backend = "PostgreSQL" if args.postgres else "SQLite"
    stamp, outdir = results_dir(args.results,
                                f"wrk-{'pg-' if args.postgres else ''}{args.users}")
    workdir = tempfile.mkdtemp(prefix="gwbench-wrk-")
    db = os.path.join(workdir, "users.db")
    env = clean_env()
    gw_port, bl_port = free_port(), free_port()
    config = os.path.join(outdir, "gateway.toml")
    extra = ""
    if args.extra_config:
        with open(args.extra_config) as f:
            extra = "\n" + f.read()
    store_url = None
    gateway = baseline = None
    load_before = loadavg()
    try:
        if args.postgres:
            store_url = pg_create_database(args.postgres)
            print(f"PostgreSQL: throw-away database {store_url.rsplit('/', 1)[1]}", flush=True)
        write_config(config, db, gw_port, extra, url=store_url)

        # 1. load
        jsonl = os.path.join(workdir, "users.jsonl")
        size = generate_users.generate(jsonl, args.users)
        cmd = import_command(jsonl, config, args.batch)
        print(f"loading {args.users} users ({size / 1e6:.1f} MB) into {backend}: "
              f"{' '.join(cmd)}", flush=True)
        load_seconds, imported = run_import(cmd, os.path.join(outdir, "import.log"), env,
                                            workdir, min(args.load_timeout,
                                                         max(10.0, deadline - time.perf_counter())))
        os.unlink(jsonl)
        print(f"loaded in {load_seconds:.1f}s: {imported}", flush=True)

        # 2. servers, pinned to the same core
        gw_log, bl_log = os.path.join(outdir, "gateway.log"), os.path.join(outdir, "baseline.log")
        gateway = spawn(pinned(serve_command(config, gw_port), args.server_cpus), gw_log, env,
                        workdir)
        baseline = spawn(pinned(baseline_command(bl_port), args.server_cpus), bl_log, env,
                         workdir)
        wait_http(health(gw_port), gateway, 120, gw_log)
        wait_http(health(bl_port), baseline, 60, bl_log)
        gw_pids = process_tree(gateway.pid)
        print(f"gateway pid {gateway.pid} on :{gw_port} (RSS "
              f"{fmt(proc_status(gateway.pid).get('VmRSS'), 1)} MB), baseline pid "
              f"{baseline.pid} on :{bl_port}; both on CPU {args.server_cpus or 'any'}, wrk on "
              f"CPU {args.client_cpus or 'any'}", flush=True)

        # 3. the sample of ids, and one checked answer of each scenario from each server
        t0 = time.perf_counter()
        ids = sample_ids(gw_port, args.users, args.samples, args.seed)
        print(f"sampled {len(ids)} user ids in {time.perf_counter() - t0:.1f}s", flush=True)
        replies: dict = {}
        for s in scenarios:
            replies[s.key] = {}
            for target, port in (("bare", bl_port), ("gateway", gw_port)):
                data = check(s, port, args.users, ids, target == "bare")
                replies[s.key][target] = len(data)
                with open(os.path.join(outdir, f"reply-{s.key}-{target}.txt"), "wb") as f:
                    f.write(data)

        # 4. the scenarios
        busy0, procs0 = machine_busy(), process_cpu()
        results = []
        for index, s in enumerate(scenarios):
            need = 2 * (args.seconds + args.warmup) + 5 + 3 * args.rounds
            if time.perf_counter() + need > deadline:
                print(f"time bound (--max-seconds {args.max_seconds:.0f}): skipping {s.name} "
                      "and what follows", flush=True)
                break
            lua = os.path.join(outdir, f"{s.key}.lua")
            write_lua(lua, s, args.users, ids, f"wrk-{stamp}-{index}-", args.seed + index)
            row: dict = {"key": s.key, "name": s.name, "reply_bytes": replies[s.key]}
            servers = {"bare": (bl_port, baseline, [baseline.pid]),
                       "gateway": (gw_port, gateway, gw_pids)}
            if args.warmup > 0:
                for target, (port, _, _) in servers.items():
                    run_wrk(args, wrk, lua, port, args.warmup, f"warm{target[0]}", None)
            runs: dict[str, list[dict]] = {"bare": [], "gateway": []}
            for r in range(args.rounds):  # bare and gateway alternate, round by round
                for target, (port, proc, pids) in servers.items():
                    log = os.path.join(outdir, f"wrk-{s.key}-{target}"
                                       + (f"-{r + 1}" if args.rounds > 1 else "") + ".txt")
                    out = measure_run(args, wrk, lua, port, proc, pids, f"{target[0]}{r}",
                                      log, store_url if target == "gateway" else None,
                                      server_cores)
                    runs[target].append(out)
                    print(f"  {s.name:32s} {target:8s} {fmt(out.get('req_per_s'), 0):>7s} req/s"
                          f"  p50 {fmt(out.get('p50_ms'))} ms  p99 {fmt(out.get('p99_ms'))} ms  "
                          f"cpu {fmt(out['cpu_us_per_req'], 0)} us/req  non-2xx "
                          f"{out.get('non2xx', '?')}  socket errors {out['socket_errors']}  "
                          f"wrk busy {fmt(out['wrk_busy'])}  others on server core "
                          f"{pcent(out.get('others_on_server_cores'))}"
                          + (f"  first: {out['first_bad'][:200]}" if out.get("first_bad")
                             else ""), flush=True)
            for target, outs in runs.items():
                row[target] = combine(outs)
            b, g = row["bare"], row["gateway"]
            problems = [f"{t}: {o.get('non2xx', 'unknown')} non-2xx, {o['socket_errors']} "
                        "socket errors" for t, o in (("bare", b), ("gateway", g))
                        if o.get("non2xx") != 0 or o["socket_errors"]]
            row["valid"] = not problems
            row["invalid"] = "; ".join(problems)
            row["share"] = share(g.get("req_per_s"), b.get("req_per_s"))
            row["share_cpu"] = share(b.get("cpu_us_per_req"), g.get("cpu_us_per_req"))
            results.append(row)
        used, wall = machine_cpu(busy0, machine_busy())
        others = busiest_others(procs0, process_cpu(),
                                {os.getpid(), gateway.pid, baseline.pid, *gw_pids})
        rss = proc_status(gateway.pid)

        # 5. the report
        target_lines, verdicts = targets(results, args.connections)
        lines = [
            f"gateway vs bare aiohttp with wrk: {args.users} users, {backend}, 1 worker; "
            f"wrk -t{args.threads} -c{args.connections} -d{args.seconds:.0f}s "
            + (f"in {args.rounds} alternating runs " if args.rounds > 1 else "")
            + f"(warm-up {args.warmup:.0f}s) on CPU {args.client_cpus or 'any'}, servers on CPU "
            f"{args.server_cpus or 'any'}",
            "(share of bare = gateway req/s / bare req/s; share by CPU = bare CPU per request / "
            "gateway CPU per request (server process, /proc); p50/p99: the gateway's, from "
            "wrk --latency; noise b/g: what other processes used of the servers' core "
            "during the bare / gateway run"
            + ("; pg cpu: the PostgreSQL backends of the gateway's database, not in the share"
               if store_url else "") + ")",
            "", table(results, bool(store_url)), "",
            "targets of issue 20 (reported, not asserted):", *target_lines, "",
            f"gateway RSS at the end {fmt(rss.get('VmRSS'), 1)} MB (peak "
            f"{fmt(rss.get('VmHWM'), 1)} MB); wrk's own core use per run in summary.json "
            "(wrk_busy: CPU seconds per second)",
            machine_load(load_before),
            f"the machine's CPUs were busy {used:.1f} of {wall * (os.cpu_count() or 1):.1f} "
            "CPU-seconds during the scenarios; other processes that used the most:",
            *(others or ["  (none over 0.5 s)"]),
            "", f"results: {outdir}",
        ]
        save_report(outdir, lines, {
            "users": args.users, "backend": backend, "settings": {
                k: v for k, v in vars(args).items() if k != "postgres"},
            "load_seconds": round(load_seconds, 2), "importer_says": imported,
            "scenarios": results, "targets": verdicts, "rss_mb": rss,
            "seconds": round(time.perf_counter() - started, 1)})
        return 0 if all(r["valid"] for r in results) else 1
    finally:
        stop(gateway)
        stop(baseline)
        if store_url and not args.keep:
            try:
                pg_drop_database(store_url)
            except Exception as exc:  # noqa: BLE001 - say it, do not hide the run's result
                print(f"could not drop {store_url}: {exc}", file=sys.stderr)
        elif store_url:
            print(f"kept the PostgreSQL database {store_url}")
        cleanup(workdir, args.keep)


if __name__ == "__main__":
    sys.exit(main())
