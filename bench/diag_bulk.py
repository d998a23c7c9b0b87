"""Where the time of a SCIM bulk import goes, below HTTP (a diagnostic for run_scim.py).

    /work/venv/bin/python bench/diag_bulk.py --users 5000

On a fresh SQLite database each (the gateway's own runner: WAL, one writer
thread, ``BEGIN IMMEDIATE``), it creates the same users as ``run_scim.py``'s
bulk requests in four ways and prints users/s for each:

- ``validate only``: ``canonical()`` of every user (the pipeline's validation),
  no store;
- ``one transaction per user``: ``runner.write(create_user)`` per user, which
  is what ``POST /Bulk`` does today (one thread hop, BEGIN IMMEDIATE and
  COMMIT per operation);
- ``savepoint per user, one transaction per 1000``: one ``runner.write`` per
  bulk request running ``create_user`` for each operation inside a SAVEPOINT
  (``conn.begin_nested()``), so that a failing operation rolls back alone, as
  RFC 7644 §3.7 wants;
- ``loader (bulk_insert_users)``: ``gateway import``'s path, for reference.

It uses the product's functions, unchanged; nothing is served.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time

import orjson

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import generate_users  # noqa: E402


def users(first: int, count: int) -> list[dict]:
    return [orjson.loads(generate_users.line(i)) for i in range(first, first + count)]


async def main_async(args) -> list[tuple[str, float, int]]:
    from gateway.database.engine import make_runner
    from gateway.errors import Conflict
    from gateway.model.registry import DEFAULT
    from gateway.model.validate import canonical
    from userstores.sql import operations as ops

    rtype = DEFAULT.user
    out = []
    raw = users(1, args.users)

    t0 = time.perf_counter()
    canon = [canonical(rtype, dict(u))[0] for u in raw]
    out.append(("validate only (canonical)", time.perf_counter() - t0, len(canon)))

    def savepoints(conn, items):
        done = 0
        for data in items:
            try:
                with conn.begin_nested():
                    ops.create_user(conn, rtype, data, None)
                done += 1
            except Conflict:
                pass
        return done

    async def fresh(tmp: str, name: str):
        runner = make_runner(f"sqlite:///{os.path.join(tmp, name)}")
        await runner.write(ops.migrate, "PRIMARY")
        return runner

    with tempfile.TemporaryDirectory(prefix="gwdiag-") as tmp:
        runner = await fresh(tmp, "a.db")
        t0 = time.perf_counter()
        for data in canon:
            await runner.write(ops.create_user, rtype, dict(data), None)
        out.append(("one transaction per user (/Bulk today)", time.perf_counter() - t0,
                    len(canon)))
        await runner.close()

        runner = await fresh(tmp, "b.db")
        t0 = time.perf_counter()
        done = 0
        for i in range(0, len(canon), args.batch):
            done += await runner.write(savepoints, [dict(d) for d in canon[i:i + args.batch]])
        out.append((f"savepoint per user, one transaction per {args.batch}",
                    time.perf_counter() - t0, done))
        # the savepoint path keeps per-operation failure: a duplicate fails alone
        dup = [dict(canon[0]), generate_users_user(args.users + 1)]
        if await runner.write(savepoints, dup) != 1:
            raise SystemExit("savepoint check failed: expected 1 of 2 created")
        await runner.close()

        runner = await fresh(tmp, "c.db")
        t0 = time.perf_counter()
        done = 0
        for i in range(0, len(canon), args.batch):
            done += await runner.write(ops.bulk_insert_users, rtype,
                                       [(dict(d), None) for d in canon[i:i + args.batch]])
        out.append((f"loader bulk_insert_users, {args.batch} per transaction",
                    time.perf_counter() - t0, done))
        await runner.close()
    return out


def generate_users_user(i: int) -> dict:
    return orjson.loads(generate_users.line(i))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=5000)
    p.add_argument("--batch", type=int, default=1000)
    args = p.parse_args(argv)
    if not 0 < args.users <= 1_000_000:
        p.error("0 < --users <= 1,000,000")
    rows = asyncio.run(main_async(args))
    width = max(len(r[0]) for r in rows)
    print(f"{'path'.ljust(width)} | users  | seconds | users/s | ms/user")
    for name, secs, n in rows:
        print(f"{name.ljust(width)} | {n:6d} | {secs:7.2f} | {n / secs:7.0f} | "
              f"{secs * 1000 / n:7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
