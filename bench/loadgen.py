"""The load generator: an aiohttp client, in a process of its own.

For each operation it runs a short warm-up, then a single-client phase
(concurrency 1: p50/p99 latency) and a concurrent phase (``--concurrency``
clients: throughput), each bounded by a request count and by seconds. When
given the servers' process ids it also reads their CPU time (user + system,
from ``/proc/<pid>/stat``) around each concurrent phase, so the cost per
request can be compared even when this client is the bottleneck.

It writes one JSON document (the results) to ``--out`` (or stdout). Normally
``bench/run.py`` starts it; it talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
import urllib.parse

import aiohttp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (  # noqa: E402
    SCIM_JSON,
    Operation,
    basic_auth,
    require_loopback,
    run_phase,
)
from generate_users import email, external_id, user_name  # noqa: E402


async def sample_ids(session: aiohttp.ClientSession, base: str, users: int, count: int,
                     seed: int, deadline: float) -> dict[int, str]:
    """Ids of ``count`` random existing users, found with ``userName eq`` lookups."""
    rng = random.Random(seed)
    wanted = rng.sample(range(1, users + 1), min(count, users))
    found: dict[int, str] = {}
    queue = list(wanted)

    async def worker() -> None:
        while queue and time.perf_counter() < deadline:
            i = queue.pop()
            params = {"filter": f'userName eq "{user_name(i)}"'}
            async with session.get(f"{base}/Users", params=params) as resp:
                body = await resp.json(content_type=None)
                if resp.status != 200:
                    raise SystemExit(f"id sampling failed: {resp.status} {body}")
            if body.get("totalResults") != 1:
                raise SystemExit(f"{user_name(i)}: expected one user, got {body}")
            found[i] = body["Resources"][0]["id"]

    await asyncio.gather(*(worker() for _ in range(8)))
    if not found:
        raise SystemExit("id sampling found no user (is the database loaded?)")
    return found


async def check(session: aiohttp.ClientSession, url: str, expect_total: int | None,
                expect_name: str | None) -> None:
    """One request whose body is checked, so a fast wrong answer cannot pass for a result."""
    async with session.get(url) as resp:
        body = await resp.json(content_type=None)
        if resp.status != 200:
            raise SystemExit(f"check failed: GET {url}: {resp.status} {body}")
    if expect_total is not None and body.get("totalResults") != expect_total:
        raise SystemExit(f"check failed: GET {url}: totalResults {body.get('totalResults')} "
                         f"!= {expect_total}")
    if expect_name is not None:
        names = [r.get("userName") for r in body.get("Resources", [body])]
        if expect_name not in names:
            raise SystemExit(f"check failed: GET {url}: {expect_name} not in {names[:5]}")


def new_user(run_id: str, n: int) -> bytes:
    name = f"bench-{run_id}-{n:07d}"
    return json.dumps({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": name, "externalId": f"ext-{name}",
        "name": {"givenName": "Bench", "familyName": f"User{n}"},
        "emails": [{"value": f"{name}@example.com", "type": "work", "primary": True}],
        "active": True,
    }, separators=(",", ":")).encode()


async def main_async(args) -> dict:
    overall_deadline = time.perf_counter() + args.max_total_seconds
    timeout = aiohttp.ClientTimeout(total=30)
    headers = {"Authorization": basic_auth(args.auth), "Accept": SCIM_JSON}
    gw = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=args.concurrency + 1), timeout=timeout,
        headers=headers)
    bl = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=args.concurrency + 1), timeout=timeout,
        headers={"Accept": SCIM_JSON})
    results: dict = {"operations": [], "settings": vars(args).copy()}
    results["settings"].pop("auth", None)
    try:
        g, b = args.gateway.rstrip("/"), args.baseline.rstrip("/")
        t0 = time.perf_counter()
        ids = await sample_ids(gw, g, args.users, args.samples, args.seed, overall_deadline)
        results["sampled_ids"] = len(ids)
        results["sampling_seconds"] = round(time.perf_counter() - t0, 2)
        id_list = list(ids.values())
        users = args.users

        def q(filt: str) -> str:
            return f"{g}/Users?filter={urllib.parse.quote(filt)}"

        # correctness checks of every request kind before timing anything
        some_i, some_id = next(iter(ids.items()))
        await check(gw, f"{g}/Users/{some_id}", None, user_name(some_i))
        await check(gw, q(f'userName eq "{user_name(some_i)}"'), 1, user_name(some_i))
        await check(gw, q(f'externalId eq "{external_id(some_i)}"'), 1, user_name(some_i))
        await check(gw, q(f'emails.value eq "{email(some_i)}"'), 1, user_name(some_i))
        sw_total = max(0, min(users, 1299) - 1200 + 1)
        await check(gw, q(f'userName sw "{args.prefix}"'),
                    sw_total if args.prefix == "user00012" else None, None)

        counter = {"n": 0}

        def post_body() -> bytes:
            counter["n"] += 1
            return new_user(args.run_id, counter["n"])

        ctype = {"Content-Type": SCIM_JSON}
        gw.headers.update(ctype)
        bl.headers.update(ctype)
        ops = [
            Operation("GET /Users/{id}", "baseline", bl,
                      lambda r: ("GET", f"{b}/Users/{r.choice(id_list)}", None, 200)),
            Operation("GET /Users/{id}", "gateway", gw,
                      lambda r: ("GET", f"{g}/Users/{r.choice(id_list)}", None, 200)),
            Operation("filter userName eq", "gateway", gw,
                      lambda r: ("GET", q(f'userName eq "{user_name(r.randint(1, users))}"'),
                                 None, 200)),
            Operation("filter externalId eq", "gateway", gw,
                      lambda r: ("GET", q(f'externalId eq "{external_id(r.randint(1, users))}"'),
                                 None, 200)),
            Operation("filter emails.value eq", "gateway", gw,
                      lambda r: ("GET", q(f'emails.value eq "{email(r.randint(1, users))}"'),
                                 None, 200)),
            Operation(f'filter userName sw "{args.prefix}"', "gateway", gw,
                      lambda r: ("GET", q(f'userName sw "{args.prefix}"'), None, 200)),
            Operation("POST /Users", "baseline", bl,
                      lambda r: ("POST", f"{b}/Users", post_body(), 201)),
            Operation("POST /Users", "gateway", gw,
                      lambda r: ("POST", f"{g}/Users", post_body(), 201)),
        ]
        only = set(args.only.split(",")) if args.only else None
        for index, op in enumerate(ops):
            if only and not any(o in op.name for o in only):
                continue
            remaining = overall_deadline - time.perf_counter()
            if remaining < 1:
                print(f"loadgen: time budget spent, skipping {op.target} {op.name}",
                      file=sys.stderr)
                continue
            pid = args.gateway_pid if op.target == "gateway" else args.baseline_pid
            seed = args.seed + index * 7919
            await run_phase(op, 1, args.warmup, min(remaining, 10), seed, None)
            single = await run_phase(op, 1, args.requests_single,
                                     min(args.seconds, remaining), seed + 1, pid)
            remaining = overall_deadline - time.perf_counter()
            conc = await run_phase(op, args.concurrency, args.requests_concurrent,
                                   max(0.5, min(args.seconds, remaining)), seed + 2, pid)
            entry = {"operation": op.name, "target": op.target,
                     "single": single.summary(), "concurrent": conc.summary()}
            results["operations"].append(entry)
            s, c = entry["single"], entry["concurrent"]
            print(f"loadgen: {op.target:8s} {op.name:32s} c=1 p50 {s['p50_ms']} ms "
                  f"p99 {s['p99_ms']} ms | c={args.concurrency} {c['req_per_s']} req/s "
                  f"errors {s['errors'] + c['errors']}", file=sys.stderr, flush=True)
    finally:
        await gw.close()
        await bl.close()
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="SCIM load generator (loopback only)")
    p.add_argument("--gateway", required=True, help="gateway SCIM base, http://127.0.0.1:P/scim2")
    p.add_argument("--baseline", required=True, help="baseline base, http://127.0.0.1:P/scim2")
    p.add_argument("--auth", default="bench:secret", help="API client name:secret")
    p.add_argument("--users", type=int, required=True, help="users loaded (user0000001..N)")
    p.add_argument("--samples", type=int, default=500, help="ids to fetch for GET by id")
    p.add_argument("--prefix", default="user00012", help="the userName sw prefix")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--warmup", type=int, default=50, help="requests before each measurement")
    p.add_argument("--requests-single", type=int, default=2000)
    p.add_argument("--requests-concurrent", type=int, default=20000)
    p.add_argument("--seconds", type=float, default=8.0, help="bound of each phase")
    p.add_argument("--max-total-seconds", type=float, default=600.0)
    p.add_argument("--gateway-pid", type=int)
    p.add_argument("--baseline-pid", type=int)
    p.add_argument("--run-id", default=f"{os.getpid()}-{int(time.time())}")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--only", help="comma-separated substrings of operation names to run")
    p.add_argument("--out", help="write the JSON results here (default: stdout)")
    args = p.parse_args(argv)
    require_loopback(p, args.gateway, args.baseline)
    results = asyncio.run(main_async(args))
    text = json.dumps(results, indent=2)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
