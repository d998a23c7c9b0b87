"""The gateway benchmark, end to end, in one command.

    /work/venv/bin/python bench/run.py --users 1000000

1. generates N synthetic users (``generate_users.py``) and loads them with the
   documented loader ``gateway import FILE --config CFG`` into a fresh SQLite
   database in a temporary folder, timing the load (``--db PATH`` re-uses a
   loaded database, or loads into PATH and keeps it, so later runs skip it);
2. starts the gateway (``gateway serve``, one worker, SQLite, an API client
   with a plain secret, ``[auth] cache_seconds = 60``) and the bare-aiohttp
   baseline (``baseline.py``), each in its own process;
3. runs the load generator (``loadgen.py``, a third process) against both,
   sampling the gateway's RSS (``/proc/<pid>/status``) meanwhile;
4. prints the table and the targets, and keeps everything in
   ``bench/results/<timestamp>-<N>/`` (gitignored): configuration, server
   logs, raw JSON, the report, and the query plans of the lookups.

Every step is bounded in time; only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import generate_users  # noqa: E402
from common import (  # noqa: E402
    RESULTS,
    RssSampler,
    baseline_command,
    clean_env,
    columns,
    fmt,
    free_port,
    health,
    import_command,
    proc_status,
    results_dir,
    run_child,
    run_import,
    save_report,
    serve_command,
    spawn,
    stop,
    verdict,
    wait_http,
    write_config,
)

TARGETS = {
    "lookup_p99_ms": 10.0,
    "get_ratio": 0.35,
    "post_ratio": 0.20,
    "rss_mb": 300.0,
    "load_seconds": 600.0,
}
LOOKUPS = ("GET /Users/{id}", "filter userName eq", "filter externalId eq",
           "filter emails.value eq", "filter userName sw")


def loaded_users(db: str) -> int | None:
    """How many users of the synthetic set a database holds (None: not a gateway db)."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        row = conn.execute(
            "SELECT count(*) FROM users WHERE user_name_ci >= 'user0000000' "
            "AND user_name_ci < 'user9999999z'").fetchone()
        return row[0]
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def schema_mismatch(db: str) -> str | None:
    """Why a loaded database does not fit the gateway's current tables (None: it fits)."""
    from userstores.sql import tables

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        for table in tables.metadata.sorted_tables:
            have = {row[1] for row in conn.execute(f'PRAGMA table_info("{table.name}")')}
            want = {c.name for c in table.columns}
            if want - have:
                return f"table {table.name} lacks {', '.join(sorted(want - have))}"
    finally:
        conn.close()
    return None


def load(args, workdir: str, db: str, config: str, outdir: str, env) -> dict:
    jsonl = os.path.join(workdir, "users.jsonl")
    t0 = time.perf_counter()
    size = generate_users.generate(jsonl, args.users)
    gen_s = time.perf_counter() - t0
    print(f"generated {args.users} users ({size / 1e6:.0f} MB) in {gen_s:.1f}s", flush=True)
    cmd = import_command(jsonl, config, args.batch)
    print(f"loading: {' '.join(cmd)}", flush=True)
    seconds, text = run_import(cmd, os.path.join(outdir, "import.log"), env, workdir,
                               args.load_timeout)
    os.unlink(jsonl)
    print(f"loaded in {seconds:.1f}s wall ({args.users / seconds:.0f} users/s): {text}",
          flush=True)
    info = {"users": args.users, "generate_seconds": round(gen_s, 2),
            "load_seconds": round(seconds, 2), "users_per_second": round(args.users / seconds),
            "importer_says": text, "db_mb": round(os.path.getsize(db) / 1e6, 1),
            "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    with open(db + ".load.json", "w") as f:  # read back by runs that re-use the database
        json.dump(info, f, indent=2)
    return info


def table(results: dict, concurrency: int) -> tuple[str, dict]:
    ops = results["operations"]
    base = {o["operation"]: o for o in ops if o["target"] == "baseline"}
    header = ("operation", "target", "req c=1", "p50 ms", "p99 ms", f"req c={concurrency}",
              "req/s", "vs base", "cpu ms/req", "cpu vs base", "errors")
    rows, ratios = [], {}
    for o in ops:
        s, c = o["single"], o["concurrent"]
        ratio = cpu_ratio = None
        b = base.get(o["operation"])
        if o["target"] == "gateway" and b:
            if c["req_per_s"] and b["concurrent"]["req_per_s"]:
                ratio = c["req_per_s"] / b["concurrent"]["req_per_s"]
            if c["server_cpu_ms_per_req"] and b["concurrent"]["server_cpu_ms_per_req"]:
                cpu_ratio = b["concurrent"]["server_cpu_ms_per_req"] / c["server_cpu_ms_per_req"]
            ratios[o["operation"]] = {"throughput": ratio, "cpu": cpu_ratio}
        rows.append((o["operation"], o["target"], fmt(s["requests"]), fmt(s["p50_ms"]),
                     fmt(s["p99_ms"]), fmt(c["requests"]), fmt(c["req_per_s"], 0),
                     "-" if ratio is None else f"{ratio:.0%}",
                     fmt(c["server_cpu_ms_per_req"], 3),
                     "-" if cpu_ratio is None else f"{cpu_ratio:.0%}",
                     fmt(s["errors"] + c["errors"])))
    return columns(header, rows, left=(0, 1)), ratios


def targets(results: dict, ratios: dict, rss: dict, load_info: dict | None,
            earlier: dict | None = None) -> list[str]:
    out = []

    def line(ok: bool | None, text: str) -> None:
        out.append(verdict(ok, text))

    for o in results["operations"]:
        if o["target"] == "gateway" and o["operation"].startswith(LOOKUPS):
            p99 = o["single"]["p99_ms"]
            line(None if p99 is None else p99 < TARGETS["lookup_p99_ms"],
                 f"{o['operation']}: p99 {fmt(p99)} ms single client "
                 f"(target < {TARGETS['lookup_p99_ms']:.0f} ms)")
    for op, key in (("GET /Users/{id}", "get_ratio"), ("POST /Users", "post_ratio")):
        r = ratios.get(op, {})
        t = r.get("throughput")
        cpu = r.get("cpu")
        line(None if t is None else t >= TARGETS[key],
             f"{op}: throughput {'-' if t is None else f'{t:.0%}'} of the baseline "
             f"(target >= {TARGETS[key]:.0%}; by server CPU per request: "
             f"{'-' if cpu is None else f'{cpu:.0%}'})")
    hwm = rss.get("gateway_VmHWM_mb")
    line(None if hwm is None else hwm < TARGETS["rss_mb"],
         f"gateway RSS: peak (VmHWM) {fmt(hwm, 1)} MB, at the end (VmRSS) "
         f"{fmt(rss.get('gateway_VmRSS_end_mb'), 1)} MB, before the load "
         f"{fmt(rss.get('gateway_VmRSS_ready_mb'), 1)} MB (target < {TARGETS['rss_mb']:.0f} MB)")
    if load_info:
        s = load_info["load_seconds"]
        line(s < TARGETS["load_seconds"],
             f"load: {s:.1f}s for {results['settings']['users']} users "
             f"({load_info['users_per_second']}/s; target < {TARGETS['load_seconds']:.0f}s "
             f"for 1,000,000)")
    else:
        line(None, "load: skipped (re-used database)" + (
            "" if not earlier else f"; it was loaded on {earlier['when']} in "
            f"{earlier['load_seconds']:.1f}s ({earlier['users_per_second']}/s)"))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="gateway benchmark (see bench/README.md)")
    p.add_argument("--users", type=int, required=True, help="users to generate and load")
    p.add_argument("--db", help="SQLite file to re-use (loaded when missing, and then kept)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder and its db")
    p.add_argument("--batch", type=int, help="gateway import --batch (default: the loader's)")
    p.add_argument("--load-timeout", type=float, default=1800.0)
    p.add_argument("--load-only", action="store_true", help="stop after loading")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--seconds", type=float, default=8.0, help="bound of each phase")
    p.add_argument("--requests-single", type=int, default=2000)
    p.add_argument("--requests-concurrent", type=int, default=20000)
    p.add_argument("--samples", type=int, default=500, help="ids to sample for GET by id")
    p.add_argument("--max-load-seconds", type=float, default=600.0,
                   help="bound of the whole load generation")
    p.add_argument("--only", help="loadgen --only: operations to run (substrings)")
    p.add_argument("--results", default=RESULTS)
    p.add_argument("--extra-config", help="a TOML file appended to the gateway's configuration "
                   "(e.g. [audit] enabled = false, to compare)")
    args = p.parse_args(argv)

    stamp, outdir = results_dir(args.results, str(args.users))
    workdir = tempfile.mkdtemp(prefix="gwbench-")
    db = os.path.abspath(args.db) if args.db else os.path.join(workdir, "users.db")
    os.makedirs(os.path.dirname(db), exist_ok=True)
    env = clean_env()
    gw_port, bl_port = free_port(), free_port()
    config = os.path.join(outdir, "gateway.toml")
    extra = ""
    if args.extra_config:
        with open(args.extra_config) as f:
            extra = "\n" + f.read()
    write_config(config, db, gw_port, extra)
    summary: dict = {"users": args.users, "db": db, "results": outdir}
    gateway = baseline = None
    sampler = None
    try:
        load_info = None
        existing = loaded_users(db) if os.path.exists(db) else None
        if args.db and os.path.exists(db):
            if existing is None or existing < args.users:
                raise SystemExit(f"{db} holds {existing} synthetic users, not {args.users}: "
                                 "give another --db, or remove it to load it again")
            mismatch = schema_mismatch(db)
            if mismatch:
                raise SystemExit(f"{db} was loaded by an older gateway ({mismatch}): "
                                 "remove it to load it again")
            print(f"re-using {db} ({existing} synthetic users; load skipped)", flush=True)
            with contextlib.suppress(OSError, ValueError):
                with open(db + ".load.json") as f:
                    summary["earlier_load"] = json.load(f)
        else:
            load_info = load(args, workdir, db, config, outdir, env)
        summary["load"] = load_info
        if args.load_only:
            print(json.dumps(summary, indent=2))
            return 0

        gw_log = os.path.join(outdir, "gateway.log")
        bl_log = os.path.join(outdir, "baseline.log")
        gateway = spawn(serve_command(config, gw_port), gw_log, env, workdir)
        baseline = spawn(baseline_command(bl_port), bl_log, env, workdir)
        wait_http(health(gw_port), gateway, 120, gw_log)
        wait_http(health(bl_port), baseline, 60, bl_log)
        rss = {"gateway_VmRSS_ready_mb": proc_status(gateway.pid).get("VmRSS"),
               "baseline_VmRSS_ready_mb": proc_status(baseline.pid).get("VmRSS")}
        ready = fmt(rss["gateway_VmRSS_ready_mb"], 1)
        print(f"gateway pid {gateway.pid} on :{gw_port} (RSS {ready} MB), "
              f"baseline pid {baseline.pid} on :{bl_port}", flush=True)
        sampler = RssSampler(gateway.pid)
        sampler.start()

        raw = os.path.join(outdir, "loadgen.json")
        cmd = [sys.executable, os.path.join(HERE, "loadgen.py"),
               "--gateway", f"http://127.0.0.1:{gw_port}/scim2",
               "--baseline", f"http://127.0.0.1:{bl_port}/scim2",
               "--auth", "bench:secret", "--users", str(args.users),
               "--samples", str(args.samples), "--concurrency", str(args.concurrency),
               "--seconds", str(args.seconds), "--requests-single", str(args.requests_single),
               "--requests-concurrent", str(args.requests_concurrent),
               "--max-total-seconds", str(args.max_load_seconds),
               "--gateway-pid", str(gateway.pid), "--baseline-pid", str(baseline.pid),
               "--run-id", stamp, "--out", raw]
        if args.only:
            cmd += ["--only", args.only]
        run_child(cmd, env, args.max_load_seconds + 180)
        sampler.stop()
        end = proc_status(gateway.pid)
        rss.update({
            "gateway_VmHWM_mb": end.get("VmHWM"),
            "gateway_VmRSS_end_mb": end.get("VmRSS"),
            "gateway_VmRSS_peak_sampled_mb": round(sampler.peak_sampled, 1),
            "baseline_VmHWM_mb": proc_status(baseline.pid).get("VmHWM"),
        })
        with open(raw) as f:
            results = json.load(f)
        stop(gateway)
        stop(baseline)

        text, ratios = table(results, args.concurrency)
        lines = [
            f"gateway benchmark: {args.users} users, SQLite, 1 worker; single client for "
            f"p50/p99, {args.concurrency} concurrent clients for req/s",
            f"(each phase bounded by {args.requests_single}/{args.requests_concurrent} requests "
            f"and {args.seconds:.0f}s; cpu = server process CPU per request in the "
            f"concurrent phase; 'cpu vs base' = baseline cpu/req divided by gateway cpu/req)",
            "", text, "", "targets (reported, not asserted):",
            *targets(results, ratios, rss, load_info, summary.get("earlier_load")),
            "", f"results: {outdir}",
        ]
        summary.update({"rss": rss, "ratios": ratios, "loadgen": results})
        save_report(outdir, lines, summary)
        try:
            import explain

            with open(os.path.join(outdir, "explain.txt"), "w") as f:
                explain.explain(db, out=f)
        except Exception as exc:  # noqa: BLE001 - diagnostics only
            print(f"(query plans not written: {exc})")
        return 0
    finally:
        if sampler is not None:
            sampler.stop()
        stop(gateway)
        stop(baseline)
        if args.keep or args.db:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(workdir, "users.jsonl"))
            if args.keep:
                print(f"kept {workdir} (re-use the database with --db {db})")
            if args.db and workdir != os.path.dirname(db):
                shutil.rmtree(workdir, ignore_errors=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
