"""SCIM 2.0 bulk import and large-group benchmark, in one command.

    /work/venv/bin/python bench/run_scim.py --users 100000

Starts the gateway (``gateway serve``, one worker, a fresh SQLite database in a
temporary folder, the same configuration as ``run.py``) and drives it from
this process with one aiohttp client, sequential requests:

1. ``POST /Users``, one user per request (``--singles``, 2,000): the
   single-POST rate, measured in the same run as
2. ``POST /Bulk``: ``--users`` users (100,000) in requests of ``--batch``
   (1,000) POST operations, each with a bulkId. Every response is checked:
   200, one result per operation, each ``"status": "201"`` with a location.
   Then ``GET /Users?filter=userName sw "user"&count=0`` must say
   ``totalResults`` = ``--users``.
3. A group of ``--users`` members: ``POST /Groups`` with no member, then
   ``PATCH`` ``add`` operations of ``--member-chunk`` (10,000) members each
   (the bulk users). A small group (``--small-members``, 10) for contrast.
4. ``PATCH /Groups/{id}`` adding one member (a single-POST user, not yet a
   member) and removing one (``members[value eq "<id>"]``, a bulk user),
   alternating, ``--patches`` (200) times each, on the big group and then on
   the small one; each must answer 204.
5. ``GET /Groups/{id}?excludedAttributes=members`` of the big and the small
   group (``--gets``, 200, each) and ``GET /Groups/{id}`` of the small group;
   then the full big group once, whose member list is checked (size, one
   added member present, one removed member absent).

Prints a table (latency p50/p99/max per request, total seconds, rate, server
CPU) and the targets, and keeps everything in ``bench/results/<timestamp>-
scim-<N>/`` (gitignored). Every loop is bounded by its count and by
``--phase-seconds``; the whole run by ``--max-seconds``. Only 127.0.0.1 is
used. ``--profile PHASE`` records the gateway with py-spy during one phase
(``single``, ``bulk``, ``fill``, ``patch``, ``get``, ``getfull``) into the results folder.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import urllib.parse

import orjson

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import generate_users  # noqa: E402
from common import (  # noqa: E402
    Client,
    Failed,
    Loop,
    LoopBench,
    RssSampler,
    busiest_others,
    clean_env,
    cleanup,
    columns,
    cpu_seconds,
    fmt,
    free_port,
    health,
    loadavg,
    machine_busy,
    machine_cpu,
    machine_load,
    own_cpu,
    proc_status,
    process_cpu,
    results_args,
    results_dir,
    save_report,
    serve_command,
    spawn,
    stop,
    verdict,
    wait_http,
    write_config,
)

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
TARGETS = {"bulk_seconds_100k": 60.0, "patch_p99_ms": 50.0}


class Bench(LoopBench):
    def __init__(self, args, client: Client, outdir: str):
        super().__init__(args, client, outdir)
        self.profile = args.profile

    # 1. single POST -------------------------------------------------------------------
    async def single_posts(self) -> list[str]:
        a = self.args
        for n in range(a.warmup):
            await self.c.json("POST", "/Users", user(f"warm{n:07d}"), expect=201)
        ids: list[str] = []
        phase = Loop("POST /Users (1 user per request)", "users")
        end = self.bound()
        with self.measure(phase, "single"):
            for n in range(a.singles):
                if time.perf_counter() > end:
                    phase.limited = True
                    break
                body = orjson.dumps(user(f"single{n:07d}"))
                status, data, dt = await self.c.call("POST", "/Users", body)
                if status != 201:
                    phase.error(f"POST /Users: {status} {data[:300]!r}")
                    continue
                phase.latencies.append(dt)
                ids.append(orjson.loads(data)["id"])
        return ids

    # 2. bulk import ---------------------------------------------------------------------
    async def bulk_import(self) -> list[str]:
        a = self.args
        started = time.perf_counter()
        bodies = [bulk_body(i, min(a.batch, a.users - i + 1))
                  for i in range(1, a.users + 1, a.batch)]
        self.facts["bulk_build_seconds"] = round(time.perf_counter() - started, 2)
        self.facts["bulk_request_kb"] = round(len(bodies[0]) / 1024, 1)
        ids: list[str] = []
        phase = Loop(f"POST /Bulk ({a.batch} POST /Users per request)", "users")
        end = min(self.deadline, time.perf_counter() + a.bulk_seconds)
        bad_ops = 0
        with self.measure(phase, "bulk"):
            for k, body in enumerate(bodies):
                if time.perf_counter() > end:
                    phase.limited = True
                    break
                first = 1 + k * a.batch
                count = min(a.batch, a.users - first + 1)
                status, data, dt = await self.c.call("POST", "/Bulk", body)
                if status != 200:
                    bad_ops += count
                    phase.error(f"POST /Bulk #{k}: {status} {data[:300]!r}")
                    continue
                ops = orjson.loads(data).get("Operations") or []
                got = {}
                for op in ops:
                    if op.get("status") == "201" and op.get("location"):
                        got[op.get("bulkId")] = op["location"].rsplit("/", 1)[1]
                wanted = [f"u{i}" for i in range(first, first + count)]
                missing = [b for b in wanted if b not in got]
                if len(ops) != count or missing:
                    bad_ops += len(missing) + abs(len(ops) - count)
                    sample = next((op for op in ops if op.get("status") != "201"), None)
                    phase.error(f"POST /Bulk #{k}: {len(ops)} results for {count} operations, "
                                f"{len(missing)} without 201; e.g. {sample}")
                    continue
                phase.latencies.append(dt)
                ids.extend(got[b] for b in wanted)
            phase.items = len(ids)  # the rate counts users
        self.facts["bulk_users_created"] = len(ids)
        self.facts["bulk_operations_not_201"] = bad_ops
        self.facts["bulk_seconds"] = round(phase.seconds, 2)
        self.facts["bulk_users_per_s"] = (round(len(ids) / phase.seconds, 1)
                                          if phase.seconds else None)
        # every imported user exists, and no other one of that name
        q = urllib.parse.quote('userName sw "user"')
        body = await self.c.json("GET", f"/Users?filter={q}&count=0")
        self.facts["users_sw_user_total"] = body.get("totalResults")
        body = await self.c.json("GET", "/Users?count=0")
        self.facts["users_total"] = body.get("totalResults")
        return ids

    # 3. groups ------------------------------------------------------------------------------
    async def fill_group(self, members: list[str]) -> str:
        a = self.args
        group = await self.c.json("POST", "/Groups",
                                  {"schemas": [GROUP], "displayName": "bench-big"}, expect=201)
        gid = group["id"]
        phase = Loop(f"PATCH /Groups add {a.member_chunk} members (fill)", "members")
        end = min(self.deadline, time.perf_counter() + a.bulk_seconds)
        added = 0
        with self.measure(phase, "fill"):
            for i in range(0, len(members), a.member_chunk):
                if time.perf_counter() > end:
                    phase.limited = True
                    break
                chunk = members[i:i + a.member_chunk]
                body = orjson.dumps(patch([{"op": "add", "path": "members",
                                            "value": [{"value": m} for m in chunk]}]))
                status, data, dt = await self.c.call("PATCH", f"/Groups/{gid}", body)
                if status != 204:
                    phase.error(f"PATCH add {len(chunk)}: {status} {data[:300]!r}")
                    continue
                phase.latencies.append(dt)
                added += len(chunk)
            phase.items = added  # the rate counts members
        phase.note = f"{added} members in {len(phase.latencies)} requests"
        self.facts["big_group_members_added"] = added
        self.facts["fill_request_kb"] = round(len(orjson.dumps(patch([{
            "op": "add", "path": "members",
            "value": [{"value": m} for m in members[:a.member_chunk]]}]))) / 1024, 1)
        return gid

    async def small_group(self, members: list[str]) -> str:
        group = await self.c.json("POST", "/Groups", {
            "schemas": [GROUP], "displayName": "bench-small",
            "members": [{"value": m} for m in members]}, expect=201)
        if len(group.get("members", [])) != len(members):
            raise Failed(f"small group: {len(group.get('members', []))} members, "
                         f"not {len(members)}")
        return group["id"]

    # 4. PATCH one member ------------------------------------------------------------------------
    async def patch_one(self, label: str, gid: str, adds: list[str], removes: list[str]) -> None:
        add = Loop(f"PATCH {label} add 1 member")
        rem = Loop(f"PATCH {label} remove 1 member")
        end = self.bound()
        with self.measure(add, "patch"):  # both phases' wall time and CPU, together
            for a_id, r_id in zip(adds, removes, strict=True):
                if time.perf_counter() > end:
                    add.limited = rem.limited = True
                    break
                for phase, body in (
                        (add, patch([{"op": "add", "path": "members",
                                      "value": [{"value": a_id}]}])),
                        (rem, patch([{"op": "remove",
                                      "path": f'members[value eq "{r_id}"]'}]))):
                    status, data, dt = await self.c.call("PATCH", f"/Groups/{gid}",
                                                         orjson.dumps(body))
                    if status != 204:
                        phase.error(f"{phase.name}: {status} {data[:300]!r}")
                    else:
                        phase.latencies.append(dt)
        # add and remove alternate: each phase has half the wall time and the CPU
        rem.seconds = add.seconds = add.seconds / 2
        rem.rss_mb = add.rss_mb
        if add.server_cpu is not None:
            rem.server_cpu = add.server_cpu = add.server_cpu / 2
        self.phases.append(rem)
        add.note = rem.note = "alternating add/remove; time and cpu split evenly"

    # 5. GET ----------------------------------------------------------------------------
    async def get_groups(self, targets: list[tuple[str, str, str, bool]], count: int) -> None:
        """GET each (label, id, query, members expected) in turn, ``count`` rounds."""
        phases = [Loop(f"GET /Groups/{{id}}{query} ({label})") for label, _, query, _ in targets]
        end = self.bound()
        cpu = [0.0] * len(targets)
        with self.measure(Loop("GET rounds"), "get", quiet=True) as whole:
            for _ in range(count):
                if time.perf_counter() > end:
                    for ph in phases:
                        ph.limited = True
                    break
                for k, (phase, (_, gid, query, expect_members)) in enumerate(
                        zip(phases, targets, strict=True)):
                    c0 = cpu_seconds(self.c.pid)
                    status, data, dt = await self.c.call("GET", f"/Groups/{gid}{query}")
                    c1 = cpu_seconds(self.c.pid)
                    if c0 is not None and c1 is not None:
                        cpu[k] += c1 - c0
                    phase.seconds += dt
                    if status != 200:
                        phase.error(f"GET: {status} {data[:300]!r}")
                    elif (b'"members"' in data) != expect_members:
                        phase.error(f"GET {query}: members "
                                    f"{'missing' if expect_members else 'sent'}")
                    else:
                        phase.latencies.append(dt)
        self.phases.remove(whole)
        for phase, used in zip(phases, cpu, strict=True):
            phase.server_cpu, phase.rss_mb = used, whole.rss_mb
            phase.note = "interleaved with the other GETs; total s = sum of latencies"
            self.phases.append(phase)

    async def get_full_big(self, gid: str, added: str, removed: str) -> None:
        phase = Loop("GET /Groups/{id} (big, all members, once)")
        with self.measure(phase, "getfull"):
            status, data, dt = await self.c.call("GET", f"/Groups/{gid}")
            if status == 200:
                phase.latencies.append(dt)
            else:
                phase.error(f"GET: {status} {data[:300]!r}")
        if status != 200:
            return
        members = {m["value"] for m in orjson.loads(data).get("members", [])}
        phase.note = f"{len(data) / 1e6:.1f} MB, {len(members)} members"
        self.facts["big_group_members"] = len(members)
        self.facts["big_group_get_mb"] = round(len(data) / 1e6, 2)
        self.facts["added_member_present"] = added in members
        self.facts["removed_member_absent"] = removed not in members

    async def run(self) -> None:
        a = self.args
        print(f"1. single POST /Users x {a.singles}", flush=True)
        singles = await self.single_posts()
        print(f"2. POST /Bulk: {a.users} users, {a.batch} per request", flush=True)
        imported = await self.bulk_import()
        if len(imported) < a.users:
            raise Failed(f"the bulk import created {len(imported)} users of {a.users}")
        print(f"3. a group of {len(imported)} members, {a.member_chunk} per PATCH", flush=True)
        big = await self.fill_group(imported)
        small = await self.small_group(imported[-a.small_members:])
        n = min(a.patches, len(singles) // 2, len(imported) - a.small_members)
        if n < 1:
            raise Failed("not enough single-POST users to add (--singles >= 2)")
        self.facts["patches"] = n
        print(f"4. PATCH add/remove 1 member x {n} (big group, then small)", flush=True)
        await self.patch_one("big group", big, singles[:n], imported[:n])
        await self.patch_one("small group", small, singles[n:2 * n], singles[n:2 * n])
        print(f"5. GET /Groups/{{id}} x {a.gets}", flush=True)
        excl = "?excludedAttributes=members"
        await self.get_groups([("big", big, excl, False), ("small", small, excl, False),
                               ("small", small, "", True)], a.gets)
        await self.get_full_big(big, singles[0], imported[0])


def user(name: str) -> dict:
    return {"schemas": [generate_users.SCHEMA], "userName": name, "externalId": f"ext-{name}",
            "name": {"givenName": "Bench", "familyName": name},
            "emails": [{"value": f"{name}@example.com", "type": "work", "primary": True}],
            "active": True}


def bulk_body(first: int, count: int) -> bytes:
    """A BulkRequest of users ``first``..``first+count-1`` (generate_users' users)."""
    ops = ",".join(f'{{"method":"POST","path":"/Users","bulkId":"u{i}",'
                   f'"data":{generate_users.line(i).rstrip()}}}'
                   for i in range(first, first + count))
    return f'{{"schemas":["{BULK_REQUEST}"],"Operations":[{ops}]}}'.encode()


def patch(operations: list[dict]) -> dict:
    return {"schemas": [PATCH_OP], "Operations": operations}


def table(phases: list[dict]) -> str:
    header = ("operation", "requests", "p50 ms", "p99 ms", "max ms", "total s", "rate",
              "server cpu s", "RSS MB", "errors")
    rows = []
    for p in phases:
        rate = "-" if p["rate"] is None else f"{p['rate']:.0f} {p['unit']}/s"
        rows.append((p["operation"], fmt(p["requests"]), fmt(p["p50_ms"]), fmt(p["p99_ms"]),
                     fmt(p["max_ms"]), fmt(p["seconds"]), rate, fmt(p["server_cpu_s"]),
                     fmt(p["rss_mb"], 0),
                     fmt(p["errors"]) + (" (time bound)" if p["stopped_by_time_bound"] else "")))
    return columns(header, rows, left=(0,))


def targets(args, phases: dict[str, dict], facts: dict) -> list[str]:
    out = []

    def line(ok: bool | None, text: str) -> None:
        out.append(verdict(ok, text))

    secs, ups = facts.get("bulk_seconds"), facts.get("bulk_users_per_s")
    scaled = TARGETS["bulk_seconds_100k"] * args.users / 100_000
    line(None if secs is None else secs < scaled
         and facts.get("bulk_users_created") == args.users,
         f"bulk import: {fmt(secs, 1)} s for {facts.get('bulk_users_created')} users "
         f"({fmt(ups, 0)} users/s); target < {TARGETS['bulk_seconds_100k']:.0f} s for 100,000"
         + ("" if args.users == 100_000 else f" (= {scaled:.1f} s for {args.users})"))
    single = next((p for p in phases.values() if p["operation"].startswith("POST /Users")), None)
    if single and single["rate"] and ups:
        out.append(f"         bulk users/s / single-POST users/s = {ups:.0f} / "
                   f"{single['rate']:.0f} = {ups / single['rate']:.1f}x")
    ok = (facts.get("bulk_operations_not_201") == 0
          and facts.get("bulk_users_created") == args.users)
    line(ok, f"every bulk operation answered 201: {facts.get('bulk_operations_not_201')} "
             f"did not (or were in a request that failed)")
    total = facts.get("users_sw_user_total")
    line(total == args.users, f'GET /Users?filter=userName sw "user"&count=0: totalResults '
         f"{total} (expected {args.users}); all users: {facts.get('users_total')}")
    for p in phases.values():
        if p["operation"].startswith("PATCH") and "1 member" in p["operation"]:
            if "big" not in p["operation"]:
                continue
            line(None if p["p99_ms"] is None else p["p99_ms"] < TARGETS["patch_p99_ms"],
                 f"{p['operation']} ({facts.get('big_group_members_added')} members): "
                 f"p50 {fmt(p['p50_ms'])} ms, p99 {fmt(p['p99_ms'])} ms "
                 f"(target < {TARGETS['patch_p99_ms']:.0f} ms)")
    big = next((p for p in phases.values() if "excludedAttributes" in p["operation"]
                and "(big)" in p["operation"]), None)
    small = next((p for p in phases.values() if "excludedAttributes" in p["operation"]
                  and "(small)" in p["operation"]), None)
    if big and small and big["p50_ms"] and small["p50_ms"]:
        ratio = big["p50_ms"] / small["p50_ms"]
        line(ratio < 1.5 and big["errors"] == 0,
             f"GET ?excludedAttributes=members: big group p50 {big['p50_ms']:.2f} ms, "
             f"small group {small['p50_ms']:.2f} ms ({ratio:.2f}x; 'as fast as a small group' "
             f"read as < 1.5x)")
    members = facts.get("big_group_members")
    line(members == args.users and facts.get("added_member_present")
         and facts.get("removed_member_absent"),
         f"full GET of the big group: {members} members (expected {args.users}), "
         f"{fmt(facts.get('big_group_get_mb'))} MB; a PATCH-added member present: "
         f"{facts.get('added_member_present')}, a removed one absent: "
         f"{facts.get('removed_member_absent')}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="SCIM bulk and large-group benchmark "
                                            "(see bench/README.md)")
    p.add_argument("--users", type=int, default=100_000, help="users to import with /Bulk")
    p.add_argument("--batch", type=int, default=1000, help="POST operations per bulk request")
    p.add_argument("--singles", type=int, default=2000, help="single POST /Users requests")
    p.add_argument("--warmup", type=int, default=20, help="POST /Users before measuring")
    p.add_argument("--member-chunk", type=int, default=10_000,
                   help="members per PATCH when filling the big group")
    p.add_argument("--small-members", type=int, default=10)
    p.add_argument("--patches", type=int, default=200, help="PATCH add (and remove) repeats")
    p.add_argument("--gets", type=int, default=200, help="GET repeats")
    p.add_argument("--phase-seconds", type=float, default=120.0,
                   help="bound of each measured loop (the bulk import and the fill: "
                        "--bulk-seconds)")
    p.add_argument("--bulk-seconds", type=float, default=900.0)
    p.add_argument("--max-seconds", type=float, default=2400.0, help="bound of the whole run")
    p.add_argument("--timeout", type=float, default=300.0, help="bound of one request")
    p.add_argument("--profile", choices=("single", "bulk", "fill", "patch", "get", "getfull"),
                   help="py-spy the gateway during this phase (raw stacks in the results)")
    results_args(p, keep="keep the temporary folder and its db")
    args = p.parse_args(argv)
    if args.users < args.small_members + 1 or args.batch < 1 or args.member_chunk < 1:
        p.error("--users must exceed --small-members; --batch, --member-chunk >= 1")
    if args.users > 9_999_999:
        p.error("at most 9,999,999 users")

    _, outdir = results_dir(args.results, f"scim-{args.users}")
    workdir = tempfile.mkdtemp(prefix="gwbench-scim-")
    db = os.path.join(workdir, "users.db")
    env = clean_env()
    port = free_port()
    config = os.path.join(outdir, "gateway.toml")
    write_config(config, db, port)
    gateway = sampler = None
    load_before = loadavg()
    busy0 = machine_busy()
    own_cpu0 = own_cpu()
    procs0 = process_cpu()
    try:
        log = os.path.join(outdir, "gateway.log")
        gateway = spawn(serve_command(config, port), log, env, workdir)
        wait_http(health(port), gateway, 120, log)
        ready = proc_status(gateway.pid).get("VmRSS")
        print(f"gateway pid {gateway.pid} on :{port} (RSS {fmt(ready, 1)} MB), db {db}",
              flush=True)
        sampler = RssSampler(gateway.pid)
        sampler.start()

        async def go() -> tuple[Bench, str | None]:
            client = Client(f"http://127.0.0.1:{port}/scim2", "bench:secret", args.timeout,
                            gateway.pid)
            bench = Bench(args, client, outdir)
            try:
                await bench.run()
            except Failed as exc:  # report what was measured, and why it stopped
                return bench, str(exc)
            finally:
                await client.close()
            return bench, None

        bench, failure = asyncio.run(go())
        sampler.stop()
        end = proc_status(gateway.pid)
        busy1 = machine_busy()
        gw_cpu = cpu_seconds(gateway.pid) or 0.0
        client_cpu = own_cpu() - own_cpu0
        machine, wall = machine_cpu(busy0, busy1)
        others = busiest_others(procs0, process_cpu(), {os.getpid(), gateway.pid})
        stop(gateway)

        phases = [ph.summary() for ph in bench.phases]
        by_name = {ph["operation"]: ph for ph in phases}
        text = table(phases)
        lines = [
            f"SCIM benchmark: {args.users} users via /Bulk ({args.batch} per request), "
            f"SQLite, 1 worker, one client, sequential requests",
            f"(each loop bounded by its count and {args.phase_seconds:.0f}s; the import and "
            f"the fill by {args.bulk_seconds:.0f}s; latency = send to last byte of the "
            f"answer; server cpu = gateway process CPU during the loop)",
            "", text, "", "targets (reported, not asserted):",
            *targets(args, by_name, bench.facts), "",
            f"gateway RSS: ready {fmt(ready, 1)} MB, peak (VmHWM) {fmt(end.get('VmHWM'), 1)} MB,"
            f" end {fmt(end.get('VmRSS'), 1)} MB",
            f"{machine_load(load_before)}; over {wall:.0f}s all CPUs "
            f"were busy {machine:.0f}s, of which gateway {gw_cpu:.0f}s, this client "
            f"{client_cpu:.0f}s, other processes ~{max(0.0, machine - gw_cpu - client_cpu):.0f}s",
            "other processes using CPU during the run (CPU seconds during the run):", *others,
            "", f"results: {outdir}",
        ]
        errors = [f"  {ph['operation']}: {ph['first_error']}" for ph in phases
                  if ph["first_error"]]
        if errors:
            lines[-2:-2] = ["first error of each loop that had errors:", *errors]
        if failure:
            lines.insert(0, f"FAILED: {failure}")
        save_report(outdir, lines, {"settings": vars(args), "phases": phases,
                                    "facts": bench.facts, "rss": {"ready": ready, **end},
                                    "db": db})
        return 0 if failure is None else 1
    finally:
        if sampler is not None:
            sampler.stop()
        stop(gateway)
        cleanup(workdir, args.keep)


if __name__ == "__main__":
    sys.exit(main())
