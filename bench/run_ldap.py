"""The LDAP user store benchmark (OpenLDAP, SCIM 2.0), in one command.

    /work/venv/bin/python bench/run_ldap.py [--users 100000] [--seconds 10]

1. starts a real ``slapd`` in a temporary folder with the tests' harness
   (``tests/ldap_server.py``, plus the ``sssvlv`` overlay, used only by the
   diagnostics) and loads ``--users`` inetOrgPersons (``uid=user0000001``...:
   cn, sn, givenName, mail, mobile) under ``ou=people`` and ``--groups``
   groupOfNames under ``ou=groups`` (every user in one group) with slapadd
   (``Slapd.bulk_load``); reads every user's entryUUID back (the SCIM ids);
2. starts the gateway (``gateway serve``, one worker) with a SQLite PRIMARY
   (it holds nothing but the bootstrap administrator) and a domain ``CORP`` of
   type ``ldap`` on that slapd, an API client with a plain secret and ``*``;
3. one client, one request at a time, every answer checked (a fast wrong
   answer is not a result): ``GET /Users/{id}`` (random users; also with
   ``excludedAttributes=groups``) and ``GET /Users?filter=userName eq
   "CORP/userN"`` (random N), each bounded by ``--requests`` and ``--seconds``;
   index pages (``domain=CORP&count=100``) at the start and deep
   (``startIndex=50001``);
4. lists the CORP users in pages of 100 with cursor paging (``cursor=``, then
   ``nextCursor``) until the end or ``--list-seconds``, checking that no user
   comes twice and that the users seen are exactly the first ones of the
   directory in id order (all of them when the listing ends); time per page,
   the gateway's and slapd's CPU per page, the gateway's RSS (``VmRSS``,
   ``VmHWM`` of ``/proc/<pid>/status``) before, during (sampled) and after;
   a listing cut by the time bound is extrapolated, and said so;
5. profiles a few cursor pages with py-spy (``--profile-pages``) and times
   the store's first step, walking the key (entryUUID) of every user, without
   the gateway: ``ldapsearch`` (the server and a C client), ldap3 as the store
   uses it, ldap3 with bigger LDAP pages, and the server-side sorted page that
   ``sssvlv`` would give;
6. prints a table per operation and the targets, and keeps everything in
   ``bench/results/<timestamp>-ldap-<N>/`` (gitignored).

Everything is bounded (requests, seconds, the whole run by ``--max-seconds``);
only 127.0.0.1 is used. Needs Debian's slapd and ldap-utils, as the tests do.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import collections
import contextlib
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import orjson

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))

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
    proc_status,
    process_cpu,
    raw_samples,
    results_args,
    results_dir,
    save_report,
    serve_command,
    shares,
    spawn,
    split_frame,
    start_py_spy,
    stop,
    stop_py_spy,
    verdict,
    wait_http,
)
from common import write_config as write_base_config  # noqa: E402
from generate_users import user_name  # noqa: E402
from ldap_server import (  # noqa: E402
    GROUPS_DN,
    MODULE_DIR,
    PEOPLE_DN,
    Slapd,
)

from userstores.ldap.vlv import (  # noqa: E402
    VLV_RESPONSE_OID,
    _tlvs,
    sort_control,
    vlv_control,
)

DOMAIN = "CORP"
PAGE = 100
TARGETS = {"lookup_p99_ms": 15.0, "full_list_seconds": 300.0, "list_rss_growth_mb": 50.0}
LDAPSEARCH = shutil.which("ldapsearch") or "/usr/bin/ldapsearch"


class Phase(Loop):
    """A measured loop, plus slapd's CPU (``Bench.watched``)."""

    @property
    def slapd_cpu(self) -> float | None:
        return self.other_cpu.get("slapd")

    def summary(self) -> dict:
        s = super().summary()
        n = len(self.latencies) + self.errors
        s["slapd_cpu_s"] = None if self.slapd_cpu is None else round(self.slapd_cpu, 2)
        s["gw_cpu_ms_per_req"] = (None if self.server_cpu is None or not n
                                  else round(1000 * self.server_cpu / n, 2))
        s["slapd_cpu_ms_per_req"] = (None if self.slapd_cpu is None or not n
                                     else round(1000 * self.slapd_cpu / n, 2))
        return s


class BenchSlapd(Slapd):
    """The tests' slapd, plus OpenLDAP's ``sssvlv`` overlay (server-side sorting, VLV)
    when the module is installed. Only the diagnostics send its controls; the gateway
    does not, and the overlay does nothing for a request without them."""

    sssvlv = (MODULE_DIR / "sssvlv.so").exists()

    def _config(self) -> str:
        text = super()._config()
        if not self.sssvlv or "overlay sssvlv" in text:  # the tests' slapd has it already
            return text
        text = text.replace("moduleload refint", "moduleload refint\nmoduleload sssvlv", 1)
        return text + "\noverlay sssvlv\nsssvlv-max 8\nsssvlv-maxkeys 2\n"

    @property
    def pid(self) -> int | None:
        try:
            return int((self.workdir / "slapd.pid").read_text().strip())
        except (OSError, ValueError):
            return None


# --- the directory ------------------------------------------------------------------------

def group_name(k: int) -> str:
    return f"bench-group-{k:02d}"


def users_ldif(users: int, groups: int) -> str:
    """``users`` inetOrgPersons, then ``groups`` groupOfNames (user i in group i % groups)."""
    parts = []
    for i in range(1, users + 1):
        u = user_name(i)
        parts.append(f"dn: uid={u},{PEOPLE_DN}\nobjectClass: inetOrgPerson\nuid: {u}\n"
                     f"cn: Given{i} Family{i}\nsn: Family{i}\ngivenName: Given{i}\n"
                     f"mail: {u}@example.com\nmobile: +1 555 {i:07d}\n\n")
    for k in range(groups):
        members = "".join(f"member: uid={user_name(i)},{PEOPLE_DN}\n"
                          for i in range(k if k else groups, users + 1, groups))
        parts.append(f"dn: cn={group_name(k)},{GROUPS_DN}\nobjectClass: groupOfNames\n"
                     f"cn: {group_name(k)}\n{members}\n")
    return "".join(parts)


def directory_ids(slapd: Slapd, timeout: float) -> tuple[dict[str, str], float]:
    """uid -> id (the entryUUID as the store renders it) of every user; seconds taken."""
    import ldap3

    conn = slapd.connection(timeout=timeout)
    started = time.perf_counter()
    try:
        out = {}
        for e in conn.extend.standard.paged_search(
                PEOPLE_DN, "(objectClass=inetOrgPerson)", ldap3.SUBTREE,
                attributes=["uid", "entryUUID"], paged_size=1000, generator=True):
            if e.get("type") == "searchResEntry":
                a = e["attributes"]  # no schema (get_info=NONE): values come as lists
                uid, uuid = (v[0] if isinstance(v, list) else v
                             for v in (a["uid"], a["entryUUID"]))
                out[str(uid)] = str(uuid).lower()
        return out, time.perf_counter() - started
    finally:
        conn.unbind()


# --- the gateway ----------------------------------------------------------------------------

def write_config(path: str, db: str, port: int, slapd: Slapd, page_size: int) -> None:
    """The configuration of run.py (``common.write_config``: SQLite PRIMARY, the bench client)
    and the LDAP domain."""
    write_base_config(path, db, port, f"""
[userstores.{DOMAIN}]
type = "ldap"
url = "{slapd.url}"
bind_dn = "{slapd.bind_dn}"
bind_password = "{slapd.password}"
users_base = "{PEOPLE_DN}"
groups_base = "{GROUPS_DN}"
page_size = {page_size}
""")


def q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


class Bench(LoopBench):
    show_rate = False

    def __init__(self, args, client: Client, slapd: BenchSlapd, ids: dict[str, str],
                 outdir: str):
        self.slapd = slapd
        self.ids = ids  # uid -> id
        self.names = {v: k for k, v in ids.items()}  # id -> uid
        self.sorted_ids = sorted(ids.values())  # the store's order without sortBy
        self.uids = list(ids)
        self.rand = random.Random(args.seed)
        self.listing: dict = {}
        self.per_page: list[dict] = []
        super().__init__(args, client, outdir)  # the run's bound starts here

    def watched(self) -> dict[str, int | None]:
        return {"slapd": self.slapd.pid}

    # checks -----------------------------------------------------------------------------
    def check_user(self, body: dict, uid: str, with_groups: bool) -> str | None:
        """What is wrong with a user resource (None: nothing)."""
        if body.get("id") != self.ids[uid]:
            return f"id {body.get('id')!r}, expected {self.ids[uid]!r}"
        if body.get("userName") != f"{DOMAIN}/{uid}":
            return f"userName {body.get('userName')!r}, expected {DOMAIN}/{uid}"
        i = int(uid[4:])
        if body.get("name", {}).get("givenName") != f"Given{i}":
            return f"name {body.get('name')!r}"
        groups = [g.get("display") for g in body.get("groups", [])]
        want = [f"{DOMAIN}/{group_name(i % self.args.groups)}"] if self.args.groups else []
        if with_groups and groups != want:
            return f"groups {groups}, expected {want}"
        if not with_groups and "groups" in body:
            return "groups sent with excludedAttributes=groups"
        return None

    async def checks(self) -> None:
        uid = self.uids[len(self.uids) // 2]
        body = await self.c.json("GET", f"/Users/{self.ids[uid]}")
        if (wrong := self.check_user(body, uid, True)) is not None:
            raise Failed(f"GET /Users/{{id}}: {wrong}")
        body = await self.c.json("GET", "/Users?filter=" + q(f'userName eq "{DOMAIN}/{uid}"'))
        if body.get("totalResults") != 1 or len(body.get("Resources", [])) != 1:
            raise Failed(f"userName eq: {body.get('totalResults')} results, expected 1")
        if (wrong := self.check_user(body["Resources"][0], uid, True)) is not None:
            raise Failed(f"userName eq: {wrong}")
        body = await self.c.json("GET", f"/Users?domain={DOMAIN}&count=0")
        if body.get("totalResults") != len(self.ids):
            raise Failed(f"domain={DOMAIN}&count=0: totalResults {body.get('totalResults')}, "
                         f"the directory has {len(self.ids)} users")
        body = await self.c.json("GET", "/Users?filter=" + q('userName eq "nobody"'))
        if body.get("totalResults") != 0:
            raise Failed("userName eq an unknown name found something")

    # 1. lookups -------------------------------------------------------------------------
    async def lookups(self, name: str, make, check, requests: int | None = None) -> Phase:
        """Warm-up, then one request at a time until ``requests`` or ``--seconds``."""
        a = self.args
        for _ in range(a.warmup):
            path, _uid = make()
            await self.c.call("GET", path)
        phase = Phase(name)
        end = self.bound(a.seconds)
        with self.measure(phase):
            for _ in range(requests or a.requests):
                if time.perf_counter() > end:
                    phase.limited = True
                    break
                path, uid = make()
                status, data, dt = await self.c.call("GET", path)
                if status != 200:
                    phase.error(f"GET {path}: {status} {data[:300]!r}")
                    continue
                wrong = check(orjson.loads(data), uid)
                if wrong:
                    phase.error(f"GET {path}: {wrong}")
                    continue
                phase.latencies.append(dt)
        return phase

    async def run_lookups(self) -> None:
        def by_id(excluded: bool):
            def make():
                uid = self.rand.choice(self.uids)
                path = f"/Users/{self.ids[uid]}"
                return (path + "?excludedAttributes=groups" if excluded else path), uid
            return make

        def by_name():
            uid = self.rand.choice(self.uids)
            return "/Users?filter=" + q(f'userName eq "{DOMAIN}/{uid}"'), uid

        def one(body, uid):
            if body.get("totalResults") != 1 or len(body.get("Resources", [])) != 1:
                return f"{body.get('totalResults')} results"
            return self.check_user(body["Resources"][0], uid, True)

        await self.lookups("GET /Users/{id}", by_id(False),
                           lambda b, u: self.check_user(b, u, True))
        await self.lookups('GET /Users?filter=userName eq "CORP/userN"', by_name, one)
        await self.lookups("GET /Users/{id}?excludedAttributes=groups", by_id(True),
                           lambda b, u: self.check_user(b, u, False))

    # 2. index pages ---------------------------------------------------------------------
    def check_page(self, body: dict, first: int) -> str | None:
        """An index page starting at ``first`` (1-based) or a cursor page (first=None)."""
        n = len(self.sorted_ids)
        if body.get("totalResults") != n:
            return f"totalResults {body.get('totalResults')}, expected {n}"
        got = [r.get("id") for r in body.get("Resources", [])]
        want = self.sorted_ids[first - 1:first - 1 + PAGE]
        if got != want:
            return (f"{len(got)} resources, not users {first}..{first + len(want) - 1} "
                    f"of the directory in id order")
        for r in body["Resources"]:
            if r.get("userName") != f"{DOMAIN}/{self.names[r['id']]}":
                return f"{r.get('id')}: userName {r.get('userName')!r}"
        return None

    async def index_pages(self) -> None:
        a = self.args
        n = len(self.sorted_ids)
        deep = min(50_001, max(1, n - PAGE + 1))
        plans = [("index pages startIndex=1,101,201 (first pages)",
                  [1, PAGE + 1, 2 * PAGE + 1] * a.index_reps),
                 (f"index page startIndex={deep} (deep)", [deep] * (a.index_reps + 1))]
        for name, starts in plans:
            phase = Phase(name)
            end = self.bound(max(a.seconds, a.list_seconds / 4))
            with self.measure(phase):
                for start in starts:
                    if time.perf_counter() > end:
                        phase.limited = True
                        break
                    path = f"/Users?domain={DOMAIN}&count={PAGE}&startIndex={start}"
                    status, data, dt = await self.c.call("GET", path)
                    if status != 200:
                        phase.error(f"GET {path}: {status} {data[:300]!r}")
                        continue
                    if (wrong := self.check_page(orjson.loads(data), start)) is not None:
                        phase.error(f"GET {path}: {wrong}")
                        continue
                    phase.latencies.append(dt)

    # 3. cursor listing ------------------------------------------------------------------
    async def cursor_pages(self, phase: Phase, max_pages: int, seconds: float,
                           record: bool) -> dict:
        """Cursor pages from the start; checks each page; per-page numbers when record."""
        n = len(self.sorted_ids)
        seen: list[str] = []
        seen_set: set[str] = set()
        dup = 0
        per_page: list[dict] = []
        cursor = ""
        end = self.bound(seconds)
        complete = False
        sampler = RssSampler(self.c.pid, 0.1) if record else None
        if sampler:
            sampler.start()
        try:
            for _ in range(max_pages):
                if time.perf_counter() > end:
                    phase.limited = True
                    break
                path = f"/Users?domain={DOMAIN}&count={PAGE}&cursor={q(cursor)}"
                g0, s0 = cpu_seconds(self.c.pid), cpu_seconds(self.slapd.pid)
                status, data, dt = await self.c.call("GET", path)
                g1, s1 = cpu_seconds(self.c.pid), cpu_seconds(self.slapd.pid)
                if status != 200:
                    phase.error(f"page {len(per_page) + 1}: {status} {data[:300]!r}")
                    break  # no cursor to go on with
                body = orjson.loads(data)
                ids = [r.get("id") for r in body.get("Resources", [])]
                wrong = None
                if body.get("totalResults") != n:
                    wrong = f"totalResults {body.get('totalResults')}, expected {n}"
                for r in body.get("Resources", []):
                    if r.get("userName") != f"{DOMAIN}/{self.names.get(r.get('id'), '?')}":
                        wrong = f"{r.get('id')}: userName {r.get('userName')!r}"
                for i in ids:
                    if i in seen_set:
                        dup += 1
                    seen_set.add(i)
                seen += ids
                if wrong:
                    phase.error(f"page {len(per_page) + 1}: {wrong}")
                else:
                    phase.latencies.append(dt)
                per_page.append({"ms": round(dt * 1000, 2), "users": len(ids),
                                 "gw_cpu_ms": None if g0 is None or g1 is None
                                 else round(1000 * (g1 - g0), 1),
                                 "slapd_cpu_ms": None if s0 is None or s1 is None
                                 else round(1000 * (s1 - s0), 1),
                                 "rss_mb": proc_status(self.c.pid).get("VmRSS")})
                cursor = body.get("nextCursor")
                if not cursor:
                    complete = True
                    break
        finally:
            if sampler:
                sampler.stop()
        prefix_ok = seen == self.sorted_ids[:len(seen)]
        return {"pages": len(per_page), "users_seen": len(seen), "distinct": len(seen_set),
                "duplicates": dup, "complete": complete,
                "in_id_order_without_gaps": prefix_ok,
                "all_exactly_once": complete and dup == 0 and seen == self.sorted_ids,
                "per_page": per_page,
                "rss_sampled_peak": sampler.peak_sampled if sampler else None}

    async def list_all(self) -> None:
        a = self.args
        n = len(self.sorted_ids)
        before = proc_status(self.c.pid)
        phase = Phase(f"cursor pages (domain={DOMAIN}&count={PAGE})", "pages")
        with self.measure(phase):
            res = await self.cursor_pages(phase, a.list_pages or (n // PAGE + 2),
                                          a.list_seconds, True)
        after = proc_status(self.c.pid)
        phase.items = res["pages"]
        pages_total = math.ceil(n / PAGE) if n else 1
        ms = [p["ms"] for p in res["per_page"]]
        k = max(1, min(10, len(ms) // 4))
        rss = [p["rss_mb"] for p in res["per_page"] if p["rss_mb"] is not None]
        growth = None
        if len(ms) >= 8:  # least-squares slope of page time against page number
            xs = range(len(ms))
            mx, my = (len(ms) - 1) / 2, sum(ms) / len(ms)
            sxx = sum((x - mx) ** 2 for x in xs)
            growth = sum((x - mx) * (y - my) for x, y in zip(xs, ms, strict=True)) / sxx
        self.listing = {
            **{key: v for key, v in res.items() if key != "per_page"},
            "pages_total": pages_total, "seconds": round(phase.seconds, 2),
            "pages_per_s": round(res["pages"] / phase.seconds, 3) if phase.seconds else None,
            "estimated_full_seconds": (round(phase.seconds * pages_total / res["pages"], 1)
                                       if res["pages"] else None),
            "first_pages_mean_ms": round(sum(ms[:k]) / k, 1) if ms else None,
            "last_pages_mean_ms": round(sum(ms[-k:]) / k, 1) if ms else None,
            "mean_pages": k,
            "trend_ms_per_10_pages": None if growth is None else round(10 * growth, 1),
            "gw_cpu_ms_per_page": (round(1000 * phase.server_cpu / res["pages"], 1)
                                   if phase.server_cpu is not None and res["pages"] else None),
            "slapd_cpu_ms_per_page": (round(1000 * phase.slapd_cpu / res["pages"], 1)
                                      if phase.slapd_cpu is not None and res["pages"]
                                      else None),
            "rss_before": before, "rss_after": after,
            "rss_during_min": min(rss) if rss else None,
            "rss_during_max": max(rss) if rss else None,
        }
        self.per_page = res["per_page"]

    async def profile(self) -> str | None:
        """py-spy on the gateway during ``--profile-pages`` cursor pages (not measured);
        the path of its raw output."""
        a = self.args
        if not a.profile_pages:
            return None
        out = os.path.join(self.outdir, "profile-cursor-pages.txt")
        # --idle: a thread blocked in recv() waiting for slapd is sampled too (py-spy leaves
        # such samples out by default)
        spy = start_py_spy(self.c.pid, out, a.list_seconds + 60, rate=200, flags=["--idle"])
        if spy is None:
            return None
        phase = Phase("cursor pages under py-spy (not for the targets)", "pages")
        try:
            with self.measure(phase):
                res = await self.cursor_pages(phase, a.profile_pages, a.list_seconds, False)
            phase.items = res["pages"]
        finally:
            stop_py_spy(spy)
        return out


_IDLE = ("_worker (concurrent/futures/thread.py", "wait (threading.py", "select (selectors.py",
         "get (queue.py", "_wait_for_tstate_lock")
_PLUMBING = ("(threading.py", "(futures/thread.py", "_apply (ldap/directory.py",
             "Directory._call (ldap/directory.py")
# where an LDAP worker sample is, first match wins (frames as _frame() writes them)
_BUCKETS = [
    ("key walk (paged search of every match's id)", "paged_search_generator ("),
    ("the page's users' groups (a search per user)", "Entries.user_record ("),
    ("reading the page's entries (searches of 100 ids)", "Connection.search ("),
]
_WALK_PARTS = [
    ("decoding the answers (ldap3, pure Python)", ("decode_response_fast (",
                                                   "decode_message_fast (",
                                                   "search_result_entry_response_to_dict_fast (")),
    ("waiting for slapd (receiving: recv())", ("SyncStrategy.receiving (",)),
    ("encoding and sending the requests", ("BaseStrategy.sending (", "BaseStrategy.send (")),
]


def _frame(fr: str) -> str:
    """``func (path/to/file.py:123)`` -> ``func (folder/file.py)``."""
    func, path = split_frame(fr)
    if not path:
        return fr
    return f"{func} ({'/'.join(path.split('/')[-2:])})"


def profile_summary(path: str, top: int = 30) -> str:
    """What a py-spy raw profile (``--idle``) of the gateway says about list requests:
    the LDAP worker threads' samples split by step, then by function (inclusive, self)."""
    incl: collections.Counter = collections.Counter()
    own: collections.Counter = collections.Counter()
    buckets: collections.Counter = collections.Counter()
    walk: collections.Counter = collections.Counter()
    loop_incl: collections.Counter = collections.Counter()
    total = idle = ldap = loop = 0
    for raw, n in raw_samples(path):
        total += n
        if any(p in raw[-1] for p in _IDLE):
            idle += n
            continue
        frames = [_frame(fr) for fr in raw]
        if any("userstores/ldap" in fr or "ldap3/" in fr for fr in raw):
            ldap += n
            for fr in set(frames):
                if not any(p in fr for p in _PLUMBING):
                    incl[fr] += n
            own[frames[-1]] += n
            name = next((b for b, mark in _BUCKETS if any(mark in fr for fr in frames)),
                        "the store's own Python (sorting, filtering keys, records)")
            buckets[name] += n
            if name == _BUCKETS[0][0]:
                inner = frames[-1]
                part = next((p for p, marks in _WALK_PARTS
                             if any(m in fr for fr in frames for m in marks)
                             and (p != _WALK_PARTS[1][0] or marks[0] in inner)),
                            "other ldap3 and the store's loop over the entries")
                walk[part] += n
        elif "gateway" in raw[0]:
            loop += n
            for fr in set(frames):
                loop_incl[fr] += n
    if not total:
        return "(no samples)"
    busy = total - idle
    ld = max(1, ldap)
    lines = [f"{total} samples (200 Hz, every thread, --idle); idle {idle} (workers waiting "
             f"for work, the event loop in select); the other {busy}: LDAP worker threads "
             f"{ldap} ({100 * ldap / max(1, busy):.0f}%), event loop {loop} "
             f"({100 * loop / max(1, busy):.0f}%)",
             "LDAP worker threads, by step (% of their samples):"]
    for name, v in buckets.most_common():
        lines.append(f"  {100 * v / ld:5.1f}%  {name}")
        if name == _BUCKETS[0][0]:
            lines += [f"        {line}" for line in shares(walk, ld)]
    lines.append("LDAP worker threads, inclusive (thread plumbing left out):")
    lines += shares(incl, ld, top)
    lines.append("LDAP worker threads, self:")
    lines += shares(own, ld, 15)
    lines.append("event loop (busy samples), inclusive:")
    lines += shares(loop_incl, max(1, loop), 12)
    return "\n".join(lines)


# --- diagnostics: the key walk without the gateway ----------------------------------------

def _first(value):
    return value[0] if isinstance(value, list) else value


# the list-view controls: the BER writing and reading of the store's own module
sss_control = sort_control


def vlv_response(result: dict) -> tuple[int, int, int, bytes] | None:
    """(targetPosition, contentCount, result code, contextID) of a VLV response control."""
    control = (result.get("controls") or {}).get(VLV_RESPONSE_OID)
    if not control:
        return None
    raw = control["value"]
    if isinstance(raw, dict):  # should ldap3 ever decode it
        return None
    (_, seq), = list(_tlvs(bytes(raw)))
    items = [v for _, v in _tlvs(seq)]
    number = [int.from_bytes(v, "big", signed=True) for v in items[:3]]
    return number[0], number[1], number[2], (items[3] if len(items) > 3 else b"")


def diagnostics(slapd: BenchSlapd, sorted_ids: list[str], timeout: float) -> list[dict]:
    """Time the store's first step (every match's entryUUID, paged) by other means."""
    import ldap3

    out = []
    flt = "(objectClass=inetOrgPerson)"

    def timed(name: str, fn, note: str = "") -> None:
        s0, c0 = cpu_seconds(slapd.pid), time.process_time()
        started = time.perf_counter()
        override: dict = {}  # what fn measured itself (a part of its work)
        try:
            count, extra, *rest = fn()
            override = rest[0] if rest else {}
            error = None
        except Exception as exc:  # noqa: BLE001 - a diagnostic: report it and go on
            count, extra, error = None, "", f"{type(exc).__name__}: {str(exc)[:300]}"
        wall = time.perf_counter() - started
        s1, c1 = cpu_seconds(slapd.pid), time.process_time()
        row = {"what": name, "entries": count, "seconds": round(wall, 3),
               "slapd_cpu_s": None if s0 is None or s1 is None else round(s1 - s0, 3),
               "client_cpu_s": round(c1 - c0, 3), "note": (extra or note), "error": error}
        row.update(override)
        out.append(row)
        print(f"  {name}: {count} entries, {row['seconds']:.2f}s"
              + (f" ({error})" if error else ""), flush=True)

    def ldapsearch(*extra: str, size: int | None = None) -> tuple[int, list[str]]:
        cmd = [LDAPSEARCH, "-x", "-LLL", "-o", "ldif-wrap=no", "-H", slapd.url,
               "-D", slapd.bind_dn, "-w", slapd.password, "-b", PEOPLE_DN, *extra]
        if size is not None:
            cmd += ["-z", str(size)]
        done = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
        # 0 success, 4 sizeLimitExceeded (asked for)
        if done.returncode not in (0, 4):
            raise RuntimeError(f"ldapsearch {done.returncode}: "
                               f"{done.stderr.decode(errors='replace')[:300]}")
        lines = done.stdout.decode().splitlines()
        uuids = [ln.split(": ", 1)[1] for ln in lines if ln.startswith("entryUUID: ")]
        return len(uuids), uuids

    def cli_walk():
        count, _ = ldapsearch("-E", "pr=500/noprompt", flt, "entryUUID")
        return count, "C client (libldap), paged 500: the server's share and a fast parser"

    def ldap3_walk(page: int):
        def run():
            conn = slapd.connection(timeout=timeout)
            try:
                n = 0
                for e in conn.extend.standard.paged_search(
                        PEOPLE_DN, flt, ldap3.SUBTREE, attributes=["entryUUID"],
                        paged_size=page, generator=True):
                    if e.get("type") == "searchResEntry":
                        n += 1
                return n, ""
            finally:
                conn.unbind()
        return run

    timed("ldapsearch: entryUUID of every user (paged 500)", cli_walk)
    timed("ldap3 paged_search: entryUUID of every user (paged 500, as the store)",
          ldap3_walk(500))
    timed("ldap3 paged_search: entryUUID of every user (paged 5000)", ldap3_walk(5000))
    if slapd.sssvlv and len(sorted_ids) > 2 * PAGE:
        mid = sorted_ids[len(sorted_ids) // 2]
        want = sorted_ids[len(sorted_ids) // 2 + 1:len(sorted_ids) // 2 + 1 + PAGE + 1]

        def sss_page():
            count, uuids = ldapsearch(
                "-E", "!sss=entryUUID", f"(&{flt}(entryUUID>={mid})(!(entryUUID={mid})))",
                "entryUUID", size=PAGE + 1)
            ok = [u.lower() for u in uuids] == want
            return count, ("next 101 after a position, sorted by slapd (sssvlv); "
                           f"the right users: {ok}")

        timed("ldapsearch + server-side sort: one cursor page (entryUUID > x, 101)", sss_page)

        def vlv(offset: int | None, value: str | None, again: bool):
            """One VLV window of 100 with ldap3 (sorted by entryUUID; the count from the
            server); with ``again``, then the next window on the same connection with the
            context the first returned (sssvlv keeps its sort), which alone is timed."""
            def run():
                conn = slapd.connection(timeout=timeout)
                try:
                    context, measured, target = None, {}, offset
                    for round_ in (1, 2) if again else (1,):
                        if round_ == 2:
                            target += PAGE
                            t0, c0 = time.perf_counter(), cpu_seconds(slapd.pid)
                        conn.search(PEOPLE_DN, flt, ldap3.SUBTREE, attributes=["entryUUID"],
                                    controls=[sss_control("entryUUID"),
                                              vlv_control(PAGE - 1, target, value, context)])
                        if round_ == 2:
                            c1 = cpu_seconds(slapd.pid)
                            measured = {"seconds": round(time.perf_counter() - t0, 3),
                                        "slapd_cpu_s": None if c0 is None or c1 is None
                                        else round(c1 - c0, 3), "client_cpu_s": None}
                        got = [str(_first(e["attributes"]["entryUUID"])).lower()
                               for e in conn.response if e.get("type") == "searchResEntry"]
                        resp = vlv_response(conn.result)
                        if resp is None:
                            raise RuntimeError(f"no VLV response: {conn.result}")
                        context = resp[3] or None
                    first = (target - 1 if value is None
                             else bisect.bisect_left(sorted_ids, value))
                    ok = got == sorted_ids[first:first + PAGE]
                    return len(got), (f"position {resp[0]}, contentCount {resp[1]} (the "
                                      f"total, free), result {resp[2]}; the right users: {ok}"
                                      + ("; timed: the second window alone" if again else "")
                                      ), measured
                finally:
                    conn.unbind()
            return run

        deep = min(50_001, len(sorted_ids) - PAGE + 1)
        timed(f"ldap3 + sss + VLV byOffset {deep}: one index page, new sort",
              vlv(deep, None, False))
        timed("ldap3 + sss + VLV >= x: one cursor page, new sort", vlv(None, mid, False))
        before = max(1, deep - PAGE)
        timed(f"ldap3 + sss + VLV byOffset {before + PAGE}: the next window, same connection "
              f"and context", vlv(before, None, True))
    return out


# --- report -------------------------------------------------------------------------------

def table(phases: list[dict]) -> str:
    header = ("operation", "requests", "p50 ms", "p99 ms", "max ms", "total s", "rate",
              "gw cpu ms/req", "slapd cpu ms/req", "RSS MB", "errors")
    rows = []
    for p in phases:
        rate = "-" if p["rate"] is None else f"{p['rate']:.1f} {p['unit']}/s"
        rows.append((p["operation"], fmt(p["requests"]), fmt(p["p50_ms"]), fmt(p["p99_ms"]),
                     fmt(p["max_ms"]), fmt(p["seconds"]), rate, fmt(p["gw_cpu_ms_per_req"], 1),
                     fmt(p["slapd_cpu_ms_per_req"], 1), fmt(p["rss_mb"], 0),
                     fmt(p["errors"]) + (" (time bound)" if p["stopped_by_time_bound"] else "")))
    return columns(header, rows, left=(0,))


def listing_lines(args, li: dict, users: int) -> list[str]:
    if not li:
        return ["cursor listing: not run"]
    b, a = li["rss_before"], li["rss_after"]
    lines = [
        f"cursor listing of {DOMAIN} (count={PAGE}): {li['pages']} of {li['pages_total']} pages"
        f", {li['users_seen']} users in {li['seconds']:.1f}s ({fmt(li['pages_per_s'], 3)} "
        f"pages/s)" + ("" if li["complete"] else
                      f"; STOPPED by --list-seconds {args.list_seconds:.0f}"
                      + (" / --list-pages" if args.list_pages else "")),
    ]
    if not li["complete"] and li["estimated_full_seconds"] is not None:
        lines.append(f"  a full listing of {users} users, EXTRAPOLATED from these pages: "
                     f"~{li['estimated_full_seconds']:.0f}s "
                     f"(~{li['estimated_full_seconds'] / 60:.1f} min)")
    lines += [
        f"  users seen: {li['users_seen']}, distinct {li['distinct']}, duplicates "
        f"{li['duplicates']}; the users seen are the directory's first {li['users_seen']} in id "
        f"order, none skipped: {li['in_id_order_without_gaps']}; every user exactly once: "
        + (str(li["all_exactly_once"]) if li["complete"] else "not checked (listing cut)"),
        f"  time per page: mean of the first {li['mean_pages']} {fmt(li['first_pages_mean_ms'], 1)}"
        f" ms, of the last {li['mean_pages']} {fmt(li['last_pages_mean_ms'], 1)} ms; trend "
        f"(least squares) {fmt(li['trend_ms_per_10_pages'], 1)} ms per 10 pages (compare the "
        f"index pages: first and deep)",
        f"  CPU per page: gateway {fmt(li['gw_cpu_ms_per_page'], 1)} ms, slapd "
        f"{fmt(li['slapd_cpu_ms_per_page'], 1)} ms",
        f"  gateway RSS: before VmRSS {fmt(b.get('VmRSS'), 1)} MB (VmHWM "
        f"{fmt(b.get('VmHWM'), 1)}); during (after each page) {fmt(li['rss_during_min'], 1)}"
        f"..{fmt(li['rss_during_max'], 1)} MB, sampled every 0.1 s peak "
        f"{fmt(li['rss_sampled_peak'], 1)} MB; after VmRSS {fmt(a.get('VmRSS'), 1)} MB "
        f"(VmHWM {fmt(a.get('VmHWM'), 1)})",
    ]
    return lines


def targets(phases: dict[str, dict], li: dict, users: int) -> list[str]:
    out = []

    def line(ok: bool | None, text: str) -> None:
        out.append(verdict(ok, text))

    t = TARGETS["lookup_p99_ms"]
    for name in ("GET /Users/{id}", 'GET /Users?filter=userName eq "CORP/userN"'):
        p = phases.get(name)
        if p is None:
            line(None, f"{name}: not measured")
            continue
        ok = None if p["p99_ms"] is None else (p["p99_ms"] < t and p["errors"] == 0)
        line(ok, f"{name}: p99 {fmt(p['p99_ms'])} ms (p50 {fmt(p['p50_ms'])}), target < {t:.0f}"
                 f" ms, single client, {users} users; errors {p['errors']}")
    if li:
        if li["complete"]:
            line(li["all_exactly_once"], f"listing all {users} users in pages of {PAGE}: every "
                 f"user exactly once: {li['all_exactly_once']} ({li['seconds']:.0f}s)")
        else:
            line(None, f"listing all {users} users in pages of {PAGE}: cut after "
                 f"{li['pages']} pages; those were right (no duplicate, no gap): "
                 f"{li['in_id_order_without_gaps'] and li['duplicates'] == 0}")
        est = li["seconds"] if li["complete"] else li["estimated_full_seconds"]
        full = TARGETS["full_list_seconds"]
        line(None if est is None else est < full,
             f"the full listing {'took' if li['complete'] else 'would take (extrapolated)'} "
             f"{fmt(est, 0)}s; 'streams' read as: all of it within {full:.0f}s (the issue "
             f"gives no number)")
        b, a = li["rss_before"].get("VmRSS"), li["rss_during_max"]
        peak = max(a or 0, li["rss_sampled_peak"] or 0)
        grew = None if b is None or not peak else peak - b
        line(None if grew is None else grew < TARGETS["list_rss_growth_mb"],
             f"without loading the directory into memory: RSS {fmt(b, 1)} MB before, up to "
             f"{fmt(peak, 1)} MB during (+{fmt(grew, 1)} MB; read as: under "
             f"+{TARGETS['list_rss_growth_mb']:.0f} MB), {fmt(li['rss_after'].get('VmRSS'), 1)} "
             f"MB after; VmHWM {fmt(li['rss_after'].get('VmHWM'), 1)} MB")
    return out


def diag_lines(rows: list[dict]) -> list[str]:
    lines = []
    for r in rows:
        lines.append(f"  {r['what']}: {fmt(r['entries'])} entries in {r['seconds']:.2f}s "
                     f"(slapd cpu {fmt(r['slapd_cpu_s'])}s"
                     + ("" if r["client_cpu_s"] is None else f", client cpu {r['client_cpu_s']}s")
                     + ")"
                     + (f" - {r['note']}" if r["note"] else "")
                     + (f" ERROR {r['error']}" if r["error"] else ""))
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="LDAP user store benchmark (see bench/README.md)")
    p.add_argument("--users", type=int, default=100_000, help="users in the directory")
    p.add_argument("--groups", type=int, default=10,
                   help="groupOfNames; user i is a member of group i %% groups")
    p.add_argument("--seconds", type=float, default=10.0, help="bound of each lookup phase")
    p.add_argument("--requests", type=int, default=2000, help="bound of each lookup phase")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--index-reps", type=int, default=1,
                   help="rounds of the first index pages (the deep page: one more)")
    p.add_argument("--list-seconds", type=float, default=240.0,
                   help="bound of the cursor listing (then extrapolated)")
    p.add_argument("--list-pages", type=int, default=0, help="bound of the listing (0: all)")
    p.add_argument("--profile-pages", type=int, default=3,
                   help="cursor pages recorded with py-spy (0: no profile)")
    p.add_argument("--page-size", type=int, default=500,
                   help="the store's LDAP paged-results size (its page_size key)")
    p.add_argument("--no-diagnostics", action="store_true",
                   help="skip timing the key walk without the gateway")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--max-seconds", type=float, default=900.0, help="bound of the measuring")
    p.add_argument("--timeout", type=float, default=120.0, help="bound of one request")
    p.add_argument("--load-timeout", type=float, default=1200.0, help="bound of slapadd")
    results_args(p, keep="keep the temporary folder")
    args = p.parse_args(argv)
    if not 1 <= args.users <= 9_999_999 or not 0 <= args.groups <= args.users:
        p.error("1 <= --users <= 9,999,999; 0 <= --groups <= --users")

    _, outdir = results_dir(args.results, f"ldap-{args.users}")
    workdir = tempfile.mkdtemp(prefix="gwbench-ldap-")
    slapd = BenchSlapd(Path(workdir) / "slapd", start_timeout=60, stop_timeout=30)
    gateway = None
    load_before = loadavg()
    busy0, procs0, own0 = machine_busy(), process_cpu(), os.times()
    facts: dict = {}
    try:
        # 1. the directory
        slapd.start()
        print(f"slapd on {slapd.url} (sssvlv: {slapd.sssvlv}), {workdir}", flush=True)
        started = time.perf_counter()
        text = users_ldif(args.users, args.groups)
        facts["ldif_seconds"] = round(time.perf_counter() - started, 2)
        facts["ldif_mb"] = round(len(text) / 1e6, 1)
        print(f"1. slapadd {args.users} users and {args.groups} groups "
              f"({facts['ldif_mb']} MB of LDIF)", flush=True)
        started = time.perf_counter()
        slapd.bulk_load(text, timeout=args.load_timeout)
        del text
        facts["load_seconds"] = round(time.perf_counter() - started, 2)
        facts["load_ms_per_entry"] = round(1000 * facts["load_seconds"]
                                           / (args.users + args.groups), 3)
        ids, facts["ids_seconds"] = directory_ids(slapd, args.timeout)
        if len(ids) != args.users:
            raise Failed(f"the directory has {len(ids)} users, {args.users} were loaded")
        db_mb = sum(f.stat().st_blocks * 512 for f in slapd.data_dir.iterdir()) / 1e6  # sparse
        facts["mdb_mb"] = round(db_mb, 1)
        print(f"   loaded in {facts['load_seconds']}s ({facts['load_ms_per_entry']} ms/entry; "
              f"data.mdb {db_mb:.0f} MB); ids read back in {facts['ids_seconds']:.1f}s",
              flush=True)

        # 2. the gateway
        env = clean_env()
        port = free_port()
        config = os.path.join(outdir, "gateway.toml")
        write_config(config, os.path.join(workdir, "primary.db"), port, slapd, args.page_size)
        log = os.path.join(outdir, "gateway.log")
        gateway = spawn(serve_command(config, port), log, env, workdir)
        wait_http(health(port), gateway, 120, log)
        ready = proc_status(gateway.pid)
        print(f"2. gateway pid {gateway.pid} on :{port} (RSS {fmt(ready.get('VmRSS'), 1)} MB),"
              f" slapd pid {slapd.pid}", flush=True)

        async def go() -> tuple[Bench, list[dict], str | None, str | None]:
            client = Client(f"http://127.0.0.1:{port}/scim2", "bench:secret", args.timeout,
                            gateway.pid)
            bench = Bench(args, client, slapd, ids, outdir)
            diag, prof = [], None
            try:
                await bench.checks()
                print("3. lookups, one client", flush=True)
                await bench.run_lookups()
                print("4. index pages", flush=True)
                await bench.index_pages()
                print(f"5. cursor listing (bound {args.list_seconds:.0f}s)", flush=True)
                await bench.list_all()
                if args.profile_pages:
                    print(f"6. py-spy on {args.profile_pages} cursor pages", flush=True)
                    prof = await bench.profile()
                if not args.no_diagnostics:
                    print("7. the key walk without the gateway", flush=True)
                    diag = await asyncio.to_thread(diagnostics, slapd, bench.sorted_ids,
                                                   args.timeout)
            except Failed as exc:
                return bench, diag, prof, str(exc)
            finally:
                await client.close()
            return bench, diag, prof, None

        bench, diag, prof, failure = asyncio.run(go())
        with open(os.path.join(outdir, "cursor-pages.json"), "w") as f:
            json.dump(bench.per_page, f)
        if prof is not None and os.path.exists(prof):
            prof = profile_summary(prof)
            with open(os.path.join(outdir, "profile-cursor-pages-summary.txt"), "w") as f:
                f.write(prof + "\n")
        else:
            prof = None
        end = proc_status(gateway.pid)
        busy1 = machine_busy()
        gw_cpu = cpu_seconds(gateway.pid) or 0.0
        sl_cpu = cpu_seconds(slapd.pid) or 0.0
        own = os.times()
        own_cpu = (own.user + own.system) - (own0.user + own0.system)
        kids = ((own.children_user + own.children_system)  # slapadd, ldapsearch, py-spy
                - (own0.children_user + own0.children_system))
        machine, wall = machine_cpu(busy0, busy1)
        others = busiest_others(procs0, process_cpu(), {os.getpid(), gateway.pid, slapd.pid})
        stop(gateway)

        phases = [ph.summary() for ph in bench.phases]
        by_name = {ph["operation"]: ph for ph in phases}
        lines = [
            f"LDAP benchmark: {args.users} inetOrgPersons + {args.groups} groupOfNames in "
            f"OpenLDAP (slapd mdb, loopback), domain {DOMAIN}; gateway 1 worker, one client, "
            f"sequential requests (each answer checked)",
            f"load: slapadd {facts['load_seconds']}s ({facts['load_ms_per_entry']} ms/entry), "
            f"LDIF built in {facts['ldif_seconds']}s ({facts['ldif_mb']} MB), data.mdb "
            f"{facts['mdb_mb']} MB; lookup phases bounded by {args.requests} requests and "
            f"{args.seconds:.0f}s; latency = send to last byte; cpu = process CPU during the "
            f"phase / requests",
            "", table(phases), "",
            *listing_lines(args, bench.listing, args.users), "",
            "targets (reported, not asserted):",
            *targets(by_name, bench.listing, args.users), "",
        ]
        if diag:
            lines += ["the key walk without the gateway (every user's entryUUID, as the store's "
                      "first step of every list request):", *diag_lines(diag), ""]
        if prof:
            lines += ["py-spy of the gateway during cursor pages (full: "
                      "profile-cursor-pages-summary.txt):",
                      *prof.splitlines()[:40], ""]
        lines += [
            f"gateway RSS: ready {fmt(ready.get('VmRSS'), 1)} MB, peak (VmHWM) "
            f"{fmt(end.get('VmHWM'), 1)} MB, end {fmt(end.get('VmRSS'), 1)} MB",
            f"{machine_load(load_before)}; over {wall:.0f}s all "
            f"CPUs were busy {machine:.0f}s, of which gateway {gw_cpu:.0f}s, slapd "
            f"{sl_cpu:.0f}s (since its last start), this process {own_cpu:.0f}s and its "
            f"tools (slapadd, ldapsearch, py-spy) {kids:.0f}s, other processes "
            f"~{max(0.0, machine - gw_cpu - sl_cpu - own_cpu - kids):.0f}s (when they are "
            f"many, the latencies above measure the machine, not the gateway)",
            "other processes using CPU during the run (CPU seconds):", *others,
            "", f"results: {outdir}",
        ]
        errors = [f"  {ph['operation']}: {ph['first_error']}" for ph in phases
                  if ph["first_error"]]
        if errors:
            lines[-2:-2] = ["first error of each phase that had errors:", *errors]
        if failure:
            lines.insert(0, f"FAILED: {failure}")
        save_report(outdir, lines, {"settings": vars(args), "facts": facts, "phases": phases,
                                    "listing": bench.listing, "diagnostics": diag,
                                    "rss": {"ready": ready, **end}})
        return 0 if failure is None else 1
    finally:
        stop(gateway)
        slapd.stop()
        with contextlib.suppress(OSError):
            shutil.copy(slapd.log_path, os.path.join(outdir, "slapd.log"))
        cleanup(workdir, args.keep)


if __name__ == "__main__":
    sys.exit(main())
