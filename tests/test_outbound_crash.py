"""Outbound provisioning across crashes and across processes, with real ``gateway serve``
processes: a ``kill -9`` mid-delivery, a restart with deliveries waiting, two processes
sharing one PostgreSQL database. The target is a second gateway (in this process) behind
a proxy that logs every exchange and can hold creates in flight; nothing is mocked.

What must hold every time: the target ends with every user exactly once, each created by
exactly one successful POST (a re-delivery after a crash is a lookup and an update, not a
second create), and no delivery is dead or left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import signal
import subprocess
import time
from collections import Counter

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from conftest import ADMIN, ADMIN_USER, BACKENDS
from gateway_process import (
    DROPPED,
    GATEWAY,
    GatewayProcess,
    HoldingProxy,
    clean_env,
    process_tree,
    socket_ports,
    write_config,
)
from outbound_peers import start_target

USERS = "/scim2/Users"
GROUPS = "/scim2/Groups"
ROOT = ADMIN_USER[0]  # the bootstrap administrator: provisioned like any user
UNFINISHED = ("pending", "inflight")
PG_ONLY = [b for b in BACKENDS if b == "postgres"]  # GATEWAY_TEST_BACKENDS decides

OUTBOUND = {"poll_interval_ms": 50, "concurrency": 32, "lease_seconds": 4.0,
            "max_attempts": 1000, "backoff_base_seconds": 0.05, "backoff_max_seconds": 0.5,
            "blocking_timeout_seconds": 60.0}


# plumbing ----------------------------------------------------------------------------------------
async def eventually(check, what: str, timeout: float = 20.0, diag=None):  # noqa: ASYNC109
    """Wait (bounded) until ``check()`` (sync or async) is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            extra = diag() if diag else ""
            raise AssertionError(f"not true after {timeout} s: {what}\n{extra}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def peers(tmp_path):
    """The SCIM target (a gateway on its own SQLite) and the holding proxy in front of it."""
    target = await start_target(tmp_path)
    proxy = HoldingProxy(str(target.make_url("")).rstrip("/"))
    proxy_server = TestServer(proxy.app())
    await proxy_server.start_server()
    yield target, proxy, proxy_server
    proxy.release()  # nothing stays held at teardown
    with contextlib.suppress(AssertionError):
        await proxy.idle(5)
    await proxy_server.close()
    await target.close()


@pytest.fixture
async def launch(tmp_path, store_url, peers):
    """Start ``gateway serve`` processes on one PRIMARY database (the queue in it too),
    provisioning through the proxy; every one is stopped at the end, whatever happened."""
    _target, _proxy, proxy_server = peers
    store = await store_url("primary")
    connector_url = str(proxy_server.make_url("/scim2"))
    procs: list[GatewayProcess] = []

    async def start(label: str, connector: dict | None = None, **outbound) -> GatewayProcess:
        cfg = write_config(tmp_path / f"{label}.toml", store, connector_url,
                           outbound={**OUTBOUND, **outbound},
                           connector={"timeout_seconds": 30.0, **(connector or {})})
        # the bootstrap administrator (ROOT) and its role go out too, as every user does
        cfg.write_text(cfg.read_text(encoding="utf-8")
                       + "\n[auth]\nprovision_bootstrap_admin = true\n", encoding="utf-8")
        proc = GatewayProcess(cfg, tmp_path, label)
        procs.append(proc)
        return await proc.start()

    start.procs = procs
    start.store = store
    try:
        yield start
    finally:
        for proc in procs:
            proc.cleanup()


def outputs(procs) -> str:
    return "\n".join(f"--- {p.label} (pid {p.proc.pid if p.proc else '-'}):\n{p.output(3000)}"
                     for p in procs)


async def create_users(gateways: list[GatewayProcess], names: list[str]) -> dict[str, str]:
    """Create users over SCIM, alternating between the gateways; name -> local id."""
    ids = {}
    for i, name in enumerate(names):
        gw = gateways[i % len(gateways)]
        status, body = await gw.call("POST", USERS, {
            "userName": name, "name": {"givenName": name.title(), "familyName": "Crash"},
            "emails": [{"value": f"{name}@example.org", "type": "work"}]})
        assert status == 201, (status, body)
        ids[name] = body["id"]
    return ids


async def user_id(gw: GatewayProcess, name: str) -> str:
    status, body = await gw.call("GET", f'{USERS}?filter=userName%20eq%20%22{name}%22')
    assert status == 200 and body["totalResults"] == 1, (status, body)
    return body["Resources"][0]["id"]


async def target_resources(target, path: str) -> list[dict]:
    """Everything the target holds at ``path`` (asked directly, not through the proxy)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session, \
            session.get(target.make_url(f"{path}?count=1000"), headers=ADMIN) as resp:
        assert resp.status == 200
        body = await resp.json(content_type=None)
    assert body["totalResults"] == len(body.get("Resources", [])), "more than one page"
    return body.get("Resources", [])


async def target_user_names(target) -> Counter:
    return Counter(u["userName"] for u in await target_resources(target, USERS))


async def wait_delivered(gw: GatewayProcess, ids: dict[str, str], procs,
                         timeout: float = 40.0) -> list[dict]:  # noqa: ASYNC109
    """Wait until every delivery ended and each of ``ids`` was delivered; the rows.
    A dead delivery fails at once."""
    last: list[dict] = []

    async def check():
        nonlocal last
        last = await gw.events()
        dead = [r for r in last if r["state"] == "dead"]
        assert not dead, f"dead deliveries: {dead}"
        if any(r["state"] in UNFINISHED for r in last):
            return None
        done = {r["entity_id"] for r in last if r["state"] == "done"}
        return last if set(ids.values()) <= done else None

    def diag():
        states = Counter(r["state"] for r in last)
        errors = {r["last_error"] for r in last if r["last_error"]}
        return f"states {dict(states)}, errors {sorted(errors)[:5]}\n{outputs(procs)}"

    return await eventually(check, "every delivery finished", timeout, diag)


def successful_creates(proxy: HoldingProxy, path: str = USERS) -> Counter:
    return Counter(e.name for e in proxy.log
                   if e.method == "POST" and e.path == path and e.status and
                   200 <= e.status < 300)


def assert_each_once(counter: Counter, expected: set[str], what: str) -> None:
    assert set(counter) == expected, f"{what}: missing {expected - set(counter)}, " \
                                     f"unexpected {set(counter) - expected}"
    twice = {n: c for n, c in counter.items() if c != 1}
    assert not twice, f"{what}: more than once: {twice}"


async def assert_mapped(gw: GatewayProcess, target, ids: dict[str, str], rows) -> None:
    """Each user's delivery is done and recorded the id the target gave it."""
    remote = {u["userName"]: u["id"] for u in await target_resources(target, USERS)}
    by_entity: dict[str, list[dict]] = {}
    for r in rows:
        by_entity.setdefault(r["entity_id"], []).append(r)
    for name, local in ids.items():
        mine = by_entity[local]
        assert len(mine) == 1, f"{name}: {len(mine)} deliveries queued for one change: {mine}"
        assert mine[0]["state"] == "done", mine
        assert mine[0]["remote_id"] == remote[name], (name, mine[0], remote[name])


# kill -9 mid-delivery -------------------------------------------------------------------------
N_CRASH = 20


async def test_kill9_mid_delivery_loses_and_duplicates_nothing(peers, launch):
    """Every create is in flight when the gateway is killed; half of them reached the
    target (their answers were lost), half never did. The restarted gateway, on the same
    database, finishes all of them: the first half by lookup and update, the rest by one
    create each."""
    target, proxy, _ = peers
    names = [f"crash{i:02d}" for i in range(N_CRASH)]
    lost_request = set(names[1::2])  # held, then dropped: never reached the target
    lost_answer = set(names[0::2]) | {ROOT}  # held, then forwarded: created, answer lost
    proxy.hold = True
    proxy.drop = lambda name: name in lost_request

    first = await launch("first")
    ids = await create_users([first], names)
    await eventually(lambda: {e.name for e in proxy.held() if e.path == USERS}
                     >= set(names) | {ROOT}, "every user's create held in flight",
                     diag=lambda: outputs(launch.procs))
    states = Counter(r["state"] for r in await first.events())
    assert states["inflight"] > 0, states  # claimed, leased, mid-delivery
    assert states["done"] == 0, states  # not one create has come back yet

    assert await first.kill9() == -signal.SIGKILL
    proxy.release()
    await proxy.idle()
    assert {e.name for e in proxy.log if e.status == DROPPED} >= lost_request
    # the forwarded creates happened at the target; the gateway never heard of them
    assert_each_once(await target_user_names(target), lost_answer, "target before restart")

    mark = len(proxy.log)
    second = await launch("restarted")
    rows = await wait_delivered(second, ids, launch.procs)

    assert_each_once(await target_user_names(target), set(names) | {ROOT}, "target users")
    assert_each_once(successful_creates(proxy), set(names) | {ROOT}, "successful POSTs")
    assert [g["displayName"] for g in await target_resources(target, GROUPS)] == ["admin"]
    assert_each_once(successful_creates(proxy, GROUPS), {"admin"}, "group POSTs")
    after = proxy.log[mark:]
    # a re-delivery of a create that did happen is refused by the target (409), then
    # looked up and updated: never a second user
    again = [e.name for e in after if e.method == "POST" and e.path == USERS
             and e.name in lost_answer and e.status != 409]
    assert not again, f"created a second time after the restart: {again}"
    updated = {e.name for e in after if e.method == "PUT" and e.path.startswith(USERS + "/")
               and e.status == 200}
    assert updated >= lost_answer, f"not updated after the restart: {lost_answer - updated}"
    # a create that never arrived is made once, by the restarted gateway
    assert_each_once(Counter(e.name for e in after if e.method == "POST" and e.path == USERS
                             and e.status != 409), lost_request, "POSTs after the restart")
    assert all(r["state"] in ("done", "skipped") for r in rows), Counter(
        r["state"] for r in rows)
    await assert_mapped(second, target, ids, rows)


# a plain restart ------------------------------------------------------------------------------
N_RESTART = 10


async def test_sigterm_restart_with_target_down_delivers_everything_once(peers, launch):
    """The target is down; deliveries wait and retry. The gateway is stopped (SIGTERM)
    and started again; once the target is back every change arrives exactly once, from
    the same queued deliveries (their attempts carry over)."""
    target, proxy, _ = peers
    names = [f"restart{i:02d}" for i in range(N_RESTART)]
    proxy.mode = "down"
    first = await launch("first")
    ids = await create_users([first], names)

    async def all_retrying():
        rows = {r["entity_id"]: r for r in await first.events()}
        mine = [rows.get(i) for i in ids.values()]
        return all(r and r["state"] in UNFINISHED and r["attempts"] >= 2 and r["last_error"]
                   for r in mine)
    await eventually(all_retrying, "every delivery failed at least twice",
                     diag=lambda: outputs(launch.procs))
    assert await first.terminate() == 0, outputs(launch.procs)
    assert not await target_user_names(target)

    proxy.mode = "pass"
    second = await launch("second")
    rows = await wait_delivered(second, ids, launch.procs)
    assert_each_once(await target_user_names(target), set(names) | {ROOT}, "target users")
    assert_each_once(successful_creates(proxy), set(names) | {ROOT}, "successful POSTs")
    await assert_mapped(second, target, ids, rows)
    attempts = {r["entity_id"]: r["attempts"] for r in rows}
    assert all(attempts[i] >= 3 for i in ids.values()), attempts  # the same rows, resumed


# several processes on one PostgreSQL ----------------------------------------------------------
N_SHARED = 40
CONCURRENCY = 4


@pytest.mark.parametrize("backend", PG_ONLY)
async def test_two_processes_share_the_queue_each_delivery_claimed_once(peers, launch):
    """Two gateways on one PostgreSQL database, changes made through both. Each first
    gets a create held in flight while a backlog builds; released together, they then
    claim from the same backlog at the same moments, round after round. Both deliver,
    and every delivery is claimed and sent by exactly one of them."""
    target, proxy, _ = peers
    a = await launch("a", concurrency=CONCURRENCY, lease_seconds=30.0)
    b = await launch("b", concurrency=CONCURRENCY, lease_seconds=30.0)
    await wait_delivered(a, {ROOT: await user_id(a, ROOT)}, launch.procs)  # it went out
    proxy.hold = True
    proxy.delay = 0.05  # each round takes a while: the two keep claiming side by side
    names = [f"shared{i:02d}" for i in range(N_SHARED)]
    ids = await create_users([a, b], names)

    def holders():
        ports = {"a": socket_ports(a.pid), "b": socket_ports(b.pid)}
        return {who for e in proxy.held() for who, mine in ports.items()
                if e.client_port in mine} == {"a", "b"}
    await eventually(holders, "a create of each process held in flight",
                     diag=lambda: outputs(launch.procs))
    held = Counter(e.name for e in proxy.held())
    assert all(c == 1 for c in held.values()), held  # one claim per delivery so far
    proxy.release()
    rows = await wait_delivered(a, ids, launch.procs)
    proxy.delay = 0.0

    assert_each_once(await target_user_names(target), set(names) | {ROOT}, "target users")
    assert_each_once(successful_creates(proxy), set(names) | {ROOT}, "successful POSTs")
    posts = Counter(e.name for e in proxy.log if e.method == "POST" and e.path == USERS
                    and e.name in ids)
    lookups = Counter(e.name for e in proxy.log if e.method == "GET" and e.path == USERS
                      and e.name in ids)
    assert_each_once(posts, set(names), "POSTs sent")  # sent once, not only accepted once
    assert not lookups, f"a first create needs no lookup: {lookups}"
    await assert_mapped(a, target, ids, rows)
    by_entity = {r["entity_id"]: r for r in rows}
    assert all(by_entity[i]["attempts"] == 1 for i in ids.values()), \
        [by_entity[i] for i in ids.values() if by_entity[i]["attempts"] != 1]
    assert rows == await b.events()  # one queue, the same from either process

    done = sum(1 for r in rows if r["state"] == "done")
    by_owner = Counter(r["owner"] for r in rows if r["state"] == "done")
    assert len(by_owner) == 2, by_owner  # both processes delivered
    # the counters are the queue's, the same whichever process is asked
    assert await a.delivered_total() == await b.delivered_total() == done


@pytest.mark.parametrize("backend", PG_ONLY)
async def test_a_killed_process_leaves_its_claims_to_the_other(peers, launch):
    """Of two gateways on one PostgreSQL database, one is killed (-9) while its creates are
    in flight. The other, never restarted, takes those claims once their lease runs out:
    everything arrives, once."""
    target, proxy, _ = peers
    names = [f"orphan{i:02d}" for i in range(12)]
    lost_request = set(names[1::2])
    proxy.hold = True
    proxy.drop = lambda name: name in lost_request
    a = await launch("a")
    b = await launch("b")
    ids = await create_users([a], names)
    await eventually(lambda: {e.name for e in proxy.held() if e.path == USERS} >= set(names),
                     "every user's create held in flight",
                     diag=lambda: outputs(launch.procs))
    a_ports = socket_ports(a.pid)
    held_by_a = {e.name for e in proxy.held() if e.client_port in a_ports}
    assert held_by_a & set(names), "the process to kill has no create in flight"

    assert await a.kill9() == -signal.SIGKILL
    proxy.release()
    rows = await wait_delivered(b, ids, launch.procs)
    assert b.alive()

    assert_each_once(await target_user_names(target), set(names) | {ROOT}, "target users")
    assert_each_once(successful_creates(proxy), set(names) | {ROOT}, "successful POSTs")
    await assert_mapped(b, target, ids, rows)


# a slow delivery and the others ----------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS[:1])
async def test_one_slow_delivery_does_not_hold_up_the_others(peers, launch):
    """``concurrency`` is deliveries in flight per process, and different entities go in
    parallel (docs/outbound.md): a create the target is slow to answer must not stop the
    process delivering other users meanwhile."""
    target, proxy, _ = peers
    gw = await launch("a", lease_seconds=30.0)  # a delivery may take 15 s before it gives up
    await wait_delivered(gw, {ROOT: await user_id(gw, ROOT)}, launch.procs)
    proxy.hold = True
    proxy.hold_only = {"slowpoke"}
    await create_users([gw], ["slowpoke"])
    await eventually(proxy.held, "the slow create in flight")
    names = [f"quick{i}" for i in range(5)]
    await create_users([gw], names)

    async def delivered():
        return set(names) <= set(await target_user_names(target))
    try:
        await eventually(delivered, "the other users delivered meanwhile", timeout=6)
    finally:
        proxy.release()


# the dispatcher process -------------------------------------------------------------------------
def owner_pid(row: dict) -> int:
    """The process id in a delivery's owner (``host:pid:random``)."""
    return int(row["owner"].split(":")[-2])


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie is gone too
    except OSError:
        return True


async def test_the_dispatcher_is_a_process_of_its_own(peers, launch, tmp_path):
    """``gateway serve`` delivers from a child process (not its HTTP worker), keeps a
    SQLite PRIMARY's queue in a file beside it, and stops that child with itself."""
    target, _proxy, _ = peers
    gw = await launch("a")
    ids = await create_users([gw], ["proc1", "proc2"])
    rows = await wait_delivered(gw, ids, launch.procs)
    delivered_by = {owner_pid(r) for r in rows if r["entity_id"] in ids.values()}
    assert len(delivered_by) == 1, rows
    (dispatcher,) = delivered_by
    assert dispatcher != gw.pid and dispatcher in process_tree(gw.pid)
    assert {"proc1", "proc2"} <= set(await target_user_names(target))
    if launch.store.startswith("sqlite"):
        assert (tmp_path / "primary-outbound.db").exists()
    assert await gw.terminate() == 0
    await eventually(lambda: gone(dispatcher), "the dispatcher stopped with gateway serve",
                     timeout=10)


async def test_a_dead_dispatcher_is_started_again(peers, launch):
    target, _proxy, _ = peers
    gw = await launch("a")
    ids = await create_users([gw], ["before"])
    rows = await wait_delivered(gw, ids, launch.procs)
    first = owner_pid(next(r for r in rows if r["entity_id"] == ids["before"]))
    os.kill(first, signal.SIGKILL)
    await eventually(lambda: gone(first), "the dispatcher died", timeout=10)
    more = await create_users([gw], ["after"])
    rows = await wait_delivered(gw, more, launch.procs)
    second = owner_pid(next(r for r in rows if r["entity_id"] == more["after"]))
    assert second != first and second in process_tree(gw.pid)
    assert_each_once(await target_user_names(target), {ROOT, "before", "after"},
                     "target users")
    assert "starting it again" in gw.output(tail=2**31)  # all of it, not the access log tail


async def test_a_killed_gateway_takes_its_dispatcher_with_it(peers, launch):
    gw = await launch("a")
    ids = await create_users([gw], ["victim"])
    rows = await wait_delivered(gw, ids, launch.procs)
    dispatcher = owner_pid(next(r for r in rows if r["entity_id"] == ids["victim"]))
    assert await gw.kill9() == -signal.SIGKILL
    await eventually(lambda: gone(dispatcher), "the dispatcher died with gateway serve",
                     timeout=10)


async def test_blocking_deliveries_are_made_by_the_worker_of_the_request(peers, launch):
    """With the dispatcher in its own process, a blocking connector's delivery is made by
    the HTTP worker itself: the user is at the target when the reply comes."""
    target, _proxy, _ = peers
    gw = await launch("a", connector={"blocking": True})
    ids = await create_users([gw], ["waited"])
    assert "waited" in await target_user_names(target)
    rows = await wait_delivered(gw, ids, launch.procs)
    (row,) = [r for r in rows if r["entity_id"] == ids["waited"]]
    assert row["state"] == "done" and owner_pid(row) == gw.pid


async def test_an_external_dispatcher_delivers_what_serve_only_queued(peers, launch, tmp_path):
    """``dispatcher = "external"``: ``gateway serve`` queues and never delivers;
    ``gateway dispatch`` with the same configuration does."""
    target, _proxy, _ = peers
    gw = await launch("a", dispatcher="external")
    assert process_tree(gw.pid) == [gw.pid]  # no dispatcher child
    ids = await create_users([gw], ["queued"])
    await asyncio.sleep(1.0)  # 20 of its poll intervals: nothing is delivered
    rows = await gw.events()  # still in the outbox (no fan-out either), or pending
    assert {r["state"] for r in rows if r["entity_id"] == ids["queued"]} <= {"pending"}, rows
    assert "queued" not in await target_user_names(target)
    def spawn() -> subprocess.Popen:
        with open(tmp_path / "dispatch.out", "wb") as out:
            return subprocess.Popen(
                [*GATEWAY, "dispatch", "--config", str(gw.config)], cwd=tmp_path,
                env=clean_env(), stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
    proc = await asyncio.to_thread(spawn)
    try:
        rows = await wait_delivered(gw, ids, launch.procs)
        assert owner_pid(next(r for r in rows if r["entity_id"] == ids["queued"])) == proc.pid
        assert_each_once(await target_user_names(target), {ROOT, "queued"}, "target users")
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
