"""Query plans of the benchmarked lookups on a loaded SQLite database.

Compiles each SCIM filter the way the gateway does (``gateway.model.query``
then ``userstores.sql.filters``), renders the SQL with its values inlined,
and prints ``EXPLAIN QUERY PLAN`` and the time of the page query and of the
count query that a list request runs. Read-only: it opens the file with
``mode=ro``.

    python bench/explain.py --db /tmp/gwbench-.../users.db
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time

from sqlalchemy import func, select
from sqlalchemy.dialects import sqlite as sqlite_dialect

from gateway.model.parsing import parse_filter
from gateway.model.schema import USER
from userstores.sql import tables as t
from userstores.sql.filters import FilterCompiler

FILTERS = (
    'userName eq "user0000042"',
    'externalId eq "ext-0000042"',
    'emails.value eq "user0000042@example.com"',
    'userName sw "user00012"',
)


def _compiler() -> FilterCompiler:
    try:
        return FilterCompiler(USER)  # takes the resource type ...
    except (AttributeError, TypeError):
        return FilterCompiler("User")  # ... or, in older versions, its name


def statements(filt: str, limit: int = 100) -> dict[str, str]:
    where = _compiler().compile(parse_filter(USER, filt))
    page = select(t.users).where(where).order_by(t.users.c.seq.asc()).offset(0).limit(limit)
    count = select(func.count()).select_from(t.users).where(where)
    opts = {"dialect": sqlite_dialect.dialect(), "compile_kwargs": {"literal_binds": True}}
    return {"page": str(page.compile(**opts)), "count": str(count.compile(**opts))}


def explain(db: str, filters=FILTERS, out=sys.stdout) -> list[dict]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.execute("PRAGMA case_sensitive_like=ON")  # as the gateway's connections
    report = []
    try:
        for filt in filters:
            for kind, sql in statements(filt).items():
                plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql)]
                started = time.perf_counter()
                rows = conn.execute(sql).fetchall()
                ms = (time.perf_counter() - started) * 1000
                report.append({"filter": filt, "query": kind, "ms": round(ms, 3),
                               "rows": len(rows), "plan": plan, "sql": sql})
                print(f"{filt} [{kind}] {ms:.2f} ms, {len(rows)} row(s)", file=out)
                for line in plan:
                    print(f"    {line}", file=out)
    finally:
        conn.close()
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", required=True)
    p.add_argument("--sql", action="store_true", help="print the SQL too")
    p.add_argument("filters", nargs="*", help="SCIM filters (default: the benchmarked ones)")
    args = p.parse_args(argv)
    report = explain(args.db, args.filters or FILTERS)
    if args.sql:
        for r in report:
            print(f"-- {r['filter']} [{r['query']}]\n{r['sql']};\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
