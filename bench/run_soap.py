"""The SOAP (WSO2 RemoteUserStoreManagerService) benchmark, in one command.

    /work/venv/bin/python bench/run_soap.py [--users 10000] [--seconds 8] [--concurrency 16]

1. writes ``--users`` synthetic users as JSON Lines (``user0000001``...; given
   and family name, a work e-mail, a mobile number) of which the first
   ``--password-users`` (16) have a password, and loads them with
   ``gateway import`` into a fresh SQLite database in a temporary folder (the
   passwords are hashed with the default, production argon2 cost; the other
   users have none, so the load takes seconds);
2. starts the gateway (``gateway serve``, ``--workers`` (1), the configuration
   of ``run.py``: an API client ``bench`` with a plain secret, ``[auth]
   cache_seconds = 60``, the default ``[passwords]`` cost) and the bare-aiohttp
   baseline (``baseline.py``: ``POST /services/{operation}`` reads the body and
   answers a constant SOAP 1.1 envelope of the size of the gateway's reply);
3. drives both from a load generator in a process of its own (this file,
   ``loadgen`` sub-command, built on ``common.py``'s phases): SOAP 1.1 envelopes of
   ``isExistingUser`` and ``getUserClaimValues`` for random existing users
   (``--bodies`` pre-built bodies), Basic auth of the API client; per
   operation a warm-up, a single-client phase (p50/p99) and a
   ``--concurrency`` phase (req/s) cut in ``--rounds`` (8) slices that
   alternate with the baseline's, so both see the same (shared, noisy) machine;
4. ``authenticate`` of the password users the same way, its reference being
   argon2 alone: ``PasswordHasher.verify`` with the configured cost in as many
   threads as the machine has cores, run by the load generator (nothing else
   running) in slices alternating with the gateway's. The operation verifies
   the given password every time; only the caller's own Basic credentials
   are cached;
5. prints the table and the targets (measured / target / MET or MISS, as
   ratios of the same run) and keeps everything in
   ``bench/results/<timestamp>-soap-<N>/`` (gitignored).

Every loop is bounded by a request count and by seconds, the whole run by
``--max-seconds``; only 127.0.0.1 is used. ``--profile OP`` records the
gateway with py-spy while OP is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from common import (  # noqa: E402
    Operation,
    Phase,
    PostOperation,
    Slices,
    basic_auth,
    columns,
    fmt,
    mark,
    measure,
    own_cpu,
    process_tree,
    require_loopback,
    run_phase,
    tree_cpu,
)
from generate_users import SCHEMA, external_id, user_name  # noqa: E402

TARGETS = {"isExistingUser": 0.25, "getUserClaimValues": 0.25, "authenticate": 0.90}
SERVICE = "RemoteUserStoreManagerService"
SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
WSO2_TNS = "http://service.ws.um.carbon.wso2.org"
OPERATIONS = ("isExistingUser", "getUserClaimValues", "authenticate")


# the users -----------------------------------------------------------------------------------
def mobile(i: int) -> str:
    return f"+1 555 {i:07d}"


def password(i: int) -> str:
    return f"bench-pw-{i:07d}"


def user_line(i: int, with_password: bool) -> str:
    n = user_name(i)
    pw = f',"password":"{password(i)}"' if with_password else ""
    return (f'{{"schemas":["{SCHEMA}"],"userName":"{n}","externalId":"{external_id(i)}",'
            f'"name":{{"givenName":"Given{i}","familyName":"Family{i}"}},'
            f'"emails":[{{"value":"{n}@example.com","type":"work","primary":true}}],'
            f'"phoneNumbers":[{{"value":"{mobile(i)}","type":"mobile"}}],'
            f'"active":true{pw}}}\n')


def write_users(path: str, users: int, with_passwords: int) -> int:
    size = 0
    with open(path, "w", encoding="ascii", buffering=1 << 20) as out:
        for i in range(1, users + 1):
            line = user_line(i, i <= with_passwords)
            size += len(line)
            out.write(line)
    return size


# SOAP requests ---------------------------------------------------------------------------------
def envelope(operation: str, **params: str) -> bytes:
    """A SOAP 1.1 request as soapUI / WSO2's try-it write it (``ser:`` prefix)."""
    inner = "".join(f"<ser:{k}>{v}</ser:{k}>" for k, v in params.items())
    return (f'<soapenv:Envelope xmlns:soapenv="{SOAP11_ENV}" xmlns:ser="{WSO2_TNS}">'
            f"<soapenv:Header/><soapenv:Body><ser:{operation}>{inner}</ser:{operation}>"
            "</soapenv:Body></soapenv:Envelope>").encode()


def request_for(operation: str, i: int, credential: str | None = None) -> bytes:
    if operation == "isExistingUser":
        return envelope(operation, userName=user_name(i))
    if operation == "getUserClaimValues":
        return envelope(operation, userName=user_name(i), profileName="default")
    return envelope(operation, userName=user_name(i),
                    credential=password(i) if credential is None else credential)


def reply_ok(operation: str, i: int, data: bytes) -> bool:
    """The gateway's answer is the right one for user ``i`` (not just a 200)."""
    if operation == "getUserClaimValues":
        return (f">{mobile(i)}<".encode() in data and f">Given{i}<".encode() in data
                and f">Family{i}<".encode() in data)
    return f"{operation}Response".encode() in data and b">true</" in data


# the load generator (a process of its own) ------------------------------------------------------
class HashAlone:
    """argon2 ``PasswordHasher.verify`` alone, with the gateway's configured cost
    (built as ``gateway/passwords.py`` builds it), in N threads: argon2-cffi
    releases the GIL, so N threads use N cores."""

    def __init__(self, config: str, threads: int):
        from argon2 import PasswordHasher, Type

        from gateway.settings import load

        self.cfg = load(config).passwords
        self.threads = threads
        self.hasher = PasswordHasher(time_cost=self.cfg.time_cost,
                                     memory_cost=self.cfg.memory_cost_kib,
                                     parallelism=self.cfg.parallelism, type=Type.ID)
        self.secret = password(1)
        self.stored = self.hasher.hash(self.secret)
        self.hasher.verify(self.stored, self.secret)

    def run(self, seconds: float, max_verifies: int) -> tuple[Phase, float]:
        """(the phase: verifies, seconds; the CPU it took). Blocks the caller."""
        counts = [0] * self.threads
        end = time.perf_counter() + seconds

        def work(k: int) -> None:
            while time.perf_counter() < end and sum(counts) < max_verifies:
                self.hasher.verify(self.stored, self.secret)
                counts[k] += 1

        threads = [threading.Thread(target=work, args=(k,)) for k in range(self.threads)]
        cpu0, t0 = own_cpu(), time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=seconds + 60)
        phase = Phase(self.threads)
        phase.seconds = time.perf_counter() - t0
        phase.requests = sum(counts)
        return phase, own_cpu() - cpu0

    def facts(self) -> dict:
        return {"threads": self.threads, "time_cost": self.cfg.time_cost,
                "memory_cost_kib": self.cfg.memory_cost_kib,
                "parallelism": self.cfg.parallelism}


async def check_replies(session, url: str, headers: dict, operation: str, users: int,
                        password_users: int) -> dict:
    """Before anything is timed: the gateway answers each kind of request correctly."""
    async def post(body: bytes) -> tuple[int, bytes]:
        async with session.post(url, data=body, headers=headers) as resp:
            return resp.status, await resp.read()

    facts = {}
    i = users if operation != "authenticate" else password_users
    status, data = await post(request_for(operation, i))
    if status != 200 or not reply_ok(operation, i, data):
        raise SystemExit(f"check failed: {operation} of {user_name(i)}: {status} {data[:800]!r}")
    facts["reply_bytes"] = len(data)
    if operation == "isExistingUser":  # a user that does not exist is not one that does
        status, data = await post(envelope(operation, userName="nosuchuser-bench"))
        if status != 200 or b">false</" not in data:
            raise SystemExit(f"check failed: isExistingUser of an unknown user: {status} "
                             f"{data[:800]!r}")
    if operation == "authenticate":  # a wrong password fails, and so does a user without one
        for body, what in ((request_for(operation, 1, "wrong-password"), "a wrong password"),
                           (request_for(operation, password_users + 1, "x"),
                            "a user without password")):
            status, data = await post(body)
            if status != 200 or b">false</" not in data:
                raise SystemExit(f"check failed: authenticate with {what}: {status} "
                                 f"{data[:800]!r}")
    return facts


async def loadgen_async(args) -> dict:
    import aiohttp

    deadline = time.perf_counter() + args.max_seconds
    token = basic_auth(args.auth)
    timeout = aiohttp.ClientTimeout(total=60)

    def session():
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=args.concurrency + 1), timeout=timeout)

    def left(bound: float) -> float:
        return max(0.5, min(bound, deadline - time.perf_counter()))

    gw, bl = session(), session()
    gw_pids = process_tree(args.gateway_pid) if args.gateway_pid else []
    bl_pids = [args.baseline_pid] if args.baseline_pid else []
    results: dict = {"operations": [], "settings": {k: v for k, v in vars(args).items()
                                                     if k != "auth"}}
    rounds = max(1, args.rounds)
    try:
        for index, name in enumerate(args.ops.split(",")):
            if deadline - time.perf_counter() < 2:
                print(f"loadgen: time budget spent, skipping {name}", file=sys.stderr)
                continue
            headers = {"Authorization": token,
                       "Content-Type": "text/xml; charset=utf-8",
                       "SOAPAction": f'"urn:{name}"'}
            pool = (range(1, args.password_users + 1) if name == "authenticate"
                    else range(1, args.users + 1))
            rng = random.Random(args.seed + index)
            picked = rng.sample(pool, min(args.bodies, len(pool)))
            bodies = [(request_for(name, i), i) for i in picked]
            facts = await check_replies(gw, args.gateway, headers, name, args.users,
                                        args.password_users)
            gateway = PostOperation(name, "gateway", gw, args.gateway, headers,
                                    lambda r, b=bodies: r.choice(b),
                                    lambda i, data, n=name: reply_ok(n, i, data))
            if name == "authenticate":
                reference = HashAlone(args.config, args.hash_threads)
                facts.update(reference.facts())
            else:
                async with bl.post(f"{args.baseline}/{name}", data=bodies[0][0],
                                   headers=headers) as resp:
                    facts["baseline_reply_bytes"] = len(await resp.read())
                reference = PostOperation(name, "baseline", bl, f"{args.baseline}/{name}",
                                          headers, lambda r, b=bodies: r.choice(b),
                                          lambda i, data, n=name: f"{n}Response".encode() in data)
            http = [op for op in (reference, gateway) if isinstance(op, Operation)]
            seed = args.seed + index * 7919
            single = {}
            for op in http:  # warm-up, then one client: latency
                await run_phase(op, 1, args.warmup, left(3.0), seed, None)
                single[op.target] = Slices(1)
                await measure(op, 1, args.requests_single, left(args.seconds), seed + 1,
                              gw_pids if op is gateway else bl_pids, single[op.target])
            # throughput: reference and gateway alternate, in `rounds` slices each, so that
            # both see the same (shared, noisy) machine
            target_of = {id(gateway): "gateway",
                         id(reference): "argon2" if name == "authenticate" else "baseline"}
            conc = {target_of[id(op)]: Slices(args.hash_threads if isinstance(op, HashAlone)
                                              else args.concurrency)
                    for op in (reference, gateway)}
            for r in range(rounds):
                for op in (reference, gateway):
                    slot = conc[target_of[id(op)]]
                    bound = left(args.seconds / rounds)
                    if isinstance(op, HashAlone):
                        phase, cpu = op.run(bound, max(1, args.requests_concurrent // rounds))
                        slot.add(phase, None, cpu)
                    else:
                        await measure(op, args.concurrency,
                                      max(1, args.requests_concurrent // rounds), bound,
                                      seed + 2 + r, gw_pids if op is gateway else bl_pids,
                                      slot)
            for target, slot in conc.items():
                s = single[target].summary() if target in single else None
                c = slot.summary()
                results["operations"].append({"operation": name, "target": target,
                                              "single": s, "concurrent": c, **facts})
                print(f"loadgen: {target:8s} {name:20s} "
                      + (f"c=1 p50 {s['p50_ms']} ms p99 {s['p99_ms']} ms | " if s else "")
                      + f"c={c['concurrency']} {c['req_per_s']} req/s "
                      f"(slices {c['slices_req_per_s']}) errors "
                      f"{(s['errors'] if s else 0) + c['errors']}", file=sys.stderr, flush=True)
    finally:
        await gw.close()
        await bl.close()
    return results


def loadgen_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="run_soap.py loadgen",
                                description="SOAP load generator (loopback only)")
    p.add_argument("--gateway", required=True, help="the service URL, http://127.0.0.1:P/"
                   f"services/{SERVICE}")
    p.add_argument("--baseline", required=True, help="http://127.0.0.1:P/services")
    p.add_argument("--config", required=True, help="the gateway's configuration (its "
                   "[passwords] cost, for the argon2-alone reference)")
    p.add_argument("--ops", default="isExistingUser,getUserClaimValues")
    p.add_argument("--auth", default="bench:secret")
    p.add_argument("--users", type=int, required=True)
    p.add_argument("--password-users", type=int, required=True)
    p.add_argument("--bodies", type=int, default=256)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--hash-threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--requests-single", type=int, default=2000)
    p.add_argument("--requests-concurrent", type=int, default=20000)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--max-seconds", type=float, default=300.0)
    p.add_argument("--gateway-pid", type=int)
    p.add_argument("--baseline-pid", type=int)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    require_loopback(p, args.gateway, args.baseline)
    unknown = set(args.ops.split(",")) - set(OPERATIONS)
    if unknown:
        p.error(f"unknown operations {sorted(unknown)}")
    results = asyncio.run(loadgen_async(args))
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    return 0


# the report ---------------------------------------------------------------------------------------
def table(ops: list[dict], concurrency: int) -> tuple[str, dict]:
    refs = {o["operation"]: o for o in ops if o["target"] != "gateway"}
    header = ("operation", "target", "req c=1", "p50 ms", "p99 ms", "req c=N", "req/s",
              "vs ref", "cpu ms/req", "cpu vs ref", "client cpu ms/req", "reply B", "errors",
              "slices req/s")
    rows, ratios = [], {}
    for o in ops:
        s, c = o["single"] or {}, o["concurrent"]
        ratio = cpu_ratio = None
        ref = refs.get(o["operation"])
        if o["target"] == "gateway" and ref:
            r = ref["concurrent"]
            # argon2 alone: its CPU per verify is what the server would spend per request
            r_cpu = r["client_cpu_ms_per_req"] if ref["target"] == "argon2" \
                else r["server_cpu_ms_per_req"]
            if c["req_per_s"] and r["req_per_s"]:
                ratio = c["req_per_s"] / r["req_per_s"]
            if c["server_cpu_ms_per_req"] and r_cpu:
                cpu_ratio = r_cpu / c["server_cpu_ms_per_req"]
            slices = [g / x if x else None for g, x in zip(
                c.get("slices_req_per_s", []), r.get("slices_req_per_s", []), strict=False)]
            ratios[o["operation"]] = {"throughput": ratio, "cpu": cpu_ratio,
                                      "slices": slices, "reference": ref["target"],
                                      "reference_req_per_s": r["req_per_s"],
                                      "reference_cpu_ms_per_req": r_cpu}
        target = (f"argon2 alone, {c['concurrency']} threads" if o["target"] == "argon2"
                  else o["target"])
        conc = f"{c['requests']} c={c['concurrency']}" if o["target"] != "argon2" \
            else f"{c['requests']} verifies"
        cpu = c["server_cpu_ms_per_req"] if o["target"] != "argon2" else c[
            "client_cpu_ms_per_req"]
        reply = (o.get("reply_bytes") if o["target"] == "gateway"
                 else o.get("baseline_reply_bytes"))
        rows.append((o["operation"], target, fmt(s.get("requests")), fmt(s.get("p50_ms")),
                     fmt(s.get("p99_ms")), conc, fmt(c["req_per_s"], 0),
                     "-" if ratio is None else f"{ratio:.0%}", fmt(cpu, 3),
                     "-" if cpu_ratio is None else f"{cpu_ratio:.0%}",
                     "-" if o["target"] == "argon2" else fmt(c.get("client_cpu_ms_per_req"), 3),
                     fmt(reply), fmt(s.get("errors", 0) + c["errors"]),
                     " ".join(f"{x:.0f}" for x in c.get("slices_req_per_s", []))))
    return columns(header, rows, left=(0, 1, -1)), ratios


def targets(ops: list[dict], ratios: dict) -> tuple[list[str], dict]:
    out, verdict = [], {}
    gw = {o["operation"]: o for o in ops if o["target"] == "gateway"}
    for name in OPERATIONS:
        if name not in gw:
            continue
        r = ratios.get(name, {})
        t = r.get("throughput")
        o = gw[name]
        errors = (o["single"]["errors"] if o["single"] else 0) + o["concurrent"]["errors"]
        ok = None if t is None else (t >= TARGETS[name] and errors == 0)
        verdict[name] = {"measured": None if t is None else round(t, 4),
                         "target": TARGETS[name], "met": ok, "errors": errors,
                         "by_cpu": None if r.get("cpu") is None else round(r["cpu"], 4)}
        ref = ("argon2 verify alone" if r.get("reference") == "argon2"
               else "the bare aiohttp handler")
        out.append(f"  [{mark(ok)}] {name}: {o['concurrent']['req_per_s']} req/s vs {ref} "
                   f"{r.get('reference_req_per_s')}/s: measured "
                   f"{'-' if t is None else f'{t:.0%}'} / target >= {TARGETS[name]:.0%}"
                   f" (by CPU per request: "
                   f"{'-' if r.get('cpu') is None else format(r['cpu'], '.0%')})"
                   + ("" if not errors else f"; {errors} errors"))
        if r.get("slices"):
            out.append("         slice by slice: " + " ".join(
                "-" if x is None else f"{x:.0%}" for x in r["slices"]))
    auth, r = gw.get("authenticate"), ratios.get("authenticate", {})
    if auth and r.get("reference_cpu_ms_per_req"):
        cpu, h = auth["concurrent"]["server_cpu_ms_per_req"], r["reference_cpu_ms_per_req"]
        out.append(f"         each authenticate verified a password: gateway CPU {cpu} "
                   f"ms/request, argon2 alone {h} ms/verify"
                   + ("" if cpu is None or cpu >= 0.9 * h else "  <-- LESS: a cache helped?"))
    return out, verdict


# the orchestration --------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["loadgen"]:
        return loadgen_main(argv[1:])

    from common import (
        RssSampler,
        baseline_command,
        busiest_others,
        clean_env,
        cleanup,
        free_port,
        health,
        import_command,
        loadavg,
        machine_busy,
        machine_cpu,
        machine_load,
        proc_status,
        process_cpu,
        profile_summary,
        results_args,
        results_dir,
        run_child,
        run_import,
        save_report,
        serve_command,
        spawn,
        start_py_spy,
        stop,
        stop_py_spy,
        wait_http,
        write_config,
    )

    p = argparse.ArgumentParser(description="SOAP (WSO2 RemoteUserStoreManagerService) "
                                            "benchmark (see bench/README.md)")
    p.add_argument("--users", type=int, default=10_000, help="users to load")
    p.add_argument("--password-users", type=int, default=16,
                   help="of which the first K have a password (for authenticate)")
    p.add_argument("--seconds", type=float, default=8.0,
                   help="bound of each phase (a throughput phase: of its slices together)")
    p.add_argument("--rounds", type=int, default=8,
                   help="slices of each throughput phase, reference and gateway alternating")
    p.add_argument("--concurrency", type=int, default=16, help="clients in the throughput phase")
    p.add_argument("--workers", type=int, default=1, help="gateway serve --workers")
    p.add_argument("--requests-single", type=int, default=2000)
    p.add_argument("--requests-concurrent", type=int, default=20000)
    p.add_argument("--bodies", type=int, default=256, help="pre-built request bodies per "
                                                           "operation (random users)")
    p.add_argument("--hash-threads", type=int, default=os.cpu_count() or 1,
                   help="threads of the argon2-alone measurement (default: the cores)")
    p.add_argument("--only", help="comma-separated operations to run (default: all)")
    p.add_argument("--profile", choices=OPERATIONS,
                   help="record the gateway with py-spy while this operation is measured")
    p.add_argument("--load-timeout", type=float, default=600.0)
    p.add_argument("--max-seconds", type=float, default=600.0, help="bound of the load phases")
    results_args(p, keep="keep the temporary folder and its db")
    args = p.parse_args(argv)
    if not 1 <= args.password_users < args.users or args.users > 9_999_999:
        p.error("1 <= --password-users < --users <= 9,999,999")
    ops = args.only.split(",") if args.only else list(OPERATIONS)
    if set(ops) - set(OPERATIONS):
        p.error(f"--only: operations are {', '.join(OPERATIONS)}")

    run_started = time.perf_counter()
    _, outdir = results_dir(args.results, f"soap-{args.users}")
    workdir = tempfile.mkdtemp(prefix="gwbench-soap-")
    db = os.path.join(workdir, "users.db")
    env = clean_env()
    gw_port, bl_port = free_port(), free_port()
    config = os.path.join(outdir, "gateway.toml")
    write_config(config, db, gw_port, workers=args.workers)  # default [passwords]
    gateway = baseline = sampler = None
    load_before = loadavg()
    try:
        # 1. load
        jsonl = os.path.join(workdir, "users.jsonl")
        size = write_users(jsonl, args.users, args.password_users)
        cmd = import_command(jsonl, config)
        print(f"loading {args.users} users ({size / 1e6:.1f} MB, {args.password_users} with a "
              f"password): {' '.join(cmd)}", flush=True)
        load_seconds, imported = run_import(cmd, os.path.join(outdir, "import.log"), env,
                                            workdir, args.load_timeout)
        print(f"loaded in {load_seconds:.1f}s: {imported}", flush=True)
        os.unlink(jsonl)

        # 2. servers
        gw_log, bl_log = os.path.join(outdir, "gateway.log"), os.path.join(outdir, "baseline.log")
        gateway = spawn(serve_command(config, gw_port, "--workers", str(args.workers)), gw_log,
                        env, workdir)
        baseline = spawn(baseline_command(bl_port), bl_log, env, workdir)
        wait_http(health(gw_port), gateway, 120, gw_log)
        wait_http(health(bl_port), baseline, 60, bl_log)
        time.sleep(0.5 if args.workers == 1 else 3)  # let every worker come up
        gw_pids = process_tree(gateway.pid)
        ready = sum(proc_status(pid).get("VmRSS", 0) for pid in gw_pids)
        print(f"gateway pid {gateway.pid} ({len(gw_pids)} processes) on :{gw_port} "
              f"(RSS {ready:.1f} MB), baseline pid {baseline.pid} on :{bl_port}", flush=True)
        sampler = RssSampler(gateway.pid if args.workers == 1 else gw_pids[-1])
        sampler.start()
        busy0, procs0, own0 = machine_busy(), process_cpu(), own_cpu()
        gw_cpu0 = tree_cpu(gw_pids) or 0.0
        deadline = time.perf_counter() + args.max_seconds

        def loadgen(op: str) -> list[dict]:
            raw = os.path.join(outdir, f"loadgen-{op}.json")
            remaining = deadline - time.perf_counter()
            if remaining < 5:
                print(f"time budget (--max-seconds) spent: {op} skipped", flush=True)
                return []
            cmd = [sys.executable, os.path.abspath(__file__), "loadgen",
                   "--gateway", f"http://127.0.0.1:{gw_port}/services/{SERVICE}",
                   "--baseline", f"http://127.0.0.1:{bl_port}/services", "--ops", op,
                   "--users", str(args.users), "--password-users", str(args.password_users),
                   "--bodies", str(args.bodies), "--concurrency", str(args.concurrency),
                   "--seconds", str(args.seconds), "--rounds", str(args.rounds),
                   "--config", config, "--hash-threads", str(args.hash_threads),
                   "--requests-single", str(args.requests_single),
                   "--requests-concurrent", str(args.requests_concurrent),
                   "--max-seconds", str(remaining), "--gateway-pid", str(gateway.pid),
                   "--baseline-pid", str(baseline.pid), "--out", raw]
            spy = None
            if args.profile == op:
                spy = start_py_spy(gateway.pid, os.path.join(outdir, f"profile-{op}.txt"),
                                   remaining + 30,
                                   flags=["--subprocesses"] if args.workers > 1 else [])
            try:
                run_child(cmd, env, remaining + 120)
            finally:
                if spy is not None:
                    stop_py_spy(spy)
                    profile = os.path.join(outdir, f"profile-{op}.txt")
                    if os.path.exists(profile):
                        with open(profile.replace(".txt", "-summary.txt"), "w") as f:
                            f.write(profile_summary(profile) + "\n")
            with open(raw) as f:
                return json.load(f)["operations"]

        # 3-5. load
        results: list[dict] = []
        for op in ops:
            results += loadgen(op)
        busy1 = machine_busy()
        gw_cpu = (tree_cpu(gw_pids) or 0.0) - gw_cpu0
        others = busiest_others(procs0, process_cpu(),
                                {os.getpid(), *process_tree(gateway.pid), baseline.pid})
        sampler.stop()
        end = {"VmRSS": sum(proc_status(pid).get("VmRSS", 0) for pid in gw_pids),
               "VmHWM": sum(proc_status(pid).get("VmHWM", 0) for pid in gw_pids)}
        alive = gateway.poll() is None
        stop(gateway)
        stop(baseline)

        # 6. report
        text, ratios = table(results, args.concurrency)
        target_lines, verdict = targets(results, ratios)
        argon2 = next((o for o in results if o["target"] == "argon2"), {})
        cost = (f"argon2id t={argon2['time_cost']} m={argon2['memory_cost_kib']} KiB "
                f"p={argon2['parallelism']}" if argon2 else "argon2 not measured")
        machine, wall = machine_cpu(busy0, busy1)
        lines = [
            f"SOAP benchmark: {args.users} users ({args.password_users} with a password, "
            f"{cost}), SQLite, {args.workers} worker(s); reference: a bare aiohttp handler "
            f"(1 process, constant SOAP 1.1 reply), for authenticate argon2 verify alone",
            f"single client for p50/p99 ({args.requests_single} requests or {args.seconds:.0f}s);"
            f" {args.concurrency} concurrent clients for req/s ({args.requests_concurrent} "
            f"requests or {args.seconds:.0f}s, in {args.rounds} slices alternating with the "
            f"reference's: 'slices req/s'); cpu = server CPU per request in the concurrent "
            f"phase (argon2 alone: its CPU per verify); 'cpu vs ref' = reference cpu/req / "
            f"gateway cpu/req"
            + ("" if not args.profile else f"; PROFILED ({args.profile}): py-spy slows the "
               "gateway, these numbers are not for the targets"),
            "", text, "", "targets (measured / target, ratios of this run):", *target_lines,
            "",
            f"gateway RSS: ready {ready:.1f} MB, peak (VmHWM) {end['VmHWM']:.1f} MB, end "
            f"{end['VmRSS']:.1f} MB; still running at the end: {alive}",
            f"{machine_load(load_before)}; during the "
            f"measurements ({wall:.0f}s) all CPUs were busy {machine:.0f}s, of which the "
            f"gateway {gw_cpu:.0f}s; the rest: this benchmark's load generator (argon2 alone "
            f"included) and baseline, and the machine's other users",
            "busiest other processes still running (CPU seconds during the measurements):",
            *(others or ["  (none over 0.5s)"]),
            "", f"load: {load_seconds:.1f}s ({imported}); whole run "
                f"{time.perf_counter() - run_started:.0f}s",
            f"results: {outdir}",
        ]
        errors = [f"  {o['target']} {o['operation']}: "
                  f"{(o['single'] or {}).get('first_error') or o['concurrent']['first_error']}"
                  for o in results if (o["single"] or {}).get("first_error")
                  or o["concurrent"]["first_error"]]
        if errors:
            lines[-2:-2] = ["first error of each operation that had errors:", *errors]
        save_report(outdir, lines, {
            "settings": vars(args), "operations": results, "ratios": ratios,
            "targets": verdict, "rss_mb": {"ready": ready, **end},
            "load_seconds": load_seconds, "own_cpu_s": own_cpu() - own0})
        return 0
    finally:
        if sampler is not None:
            sampler.stop()
        stop(gateway)
        stop(baseline)
        cleanup(workdir, args.keep)


if __name__ == "__main__":
    sys.exit(main())
