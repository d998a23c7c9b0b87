"""Deliveries whose outcome is unknown, targets that keep no names unique, and blocking
deadlines, with real ``gateway serve`` processes and a real SCIM target process
(``outbound_peers.ScimTarget``: Group names not unique, as RFC 7643 allows; frozen with
SIGSTOP/SIGCONT; or applying a change and then dropping the connection unanswered).

After each test the target holds exactly what the connector's selection says: nothing
missing, nothing twice, nothing left behind (a "phantom": an account created at the
target by a create whose answer never came back, and never removed).
"""

from __future__ import annotations

import asyncio
import inspect
import re
import signal
import subprocess
import time
from collections import Counter

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from conftest import ADMIN, ADMIN_USER
from gateway_process import (
    DROPPED,
    GATEWAY,
    GatewayProcess,
    HoldingProxy,
    clean_env,
    write_config,
)
from outbound_peers import ScimTargetProcess

USERS = "/scim2/Users"
GROUPS = "/scim2/Groups"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
# the bootstrap administrator and its role: provisioned or not ([auth]
# provision_bootstrap_admin), they are left out of what the tests compare
BOOTSTRAP = {ADMIN_USER[0], "admin"}
UNFINISHED = ("pending", "inflight")
STAFF = 'title eq "staff"'  # the rule of the rule-based connector

OUTBOUND = {"poll_interval_ms": 50, "concurrency": 16, "lease_seconds": 4.0,
            "max_attempts": 1000, "backoff_base_seconds": 0.1, "backoff_max_seconds": 0.5,
            "blocking_timeout_seconds": 60.0}


# plumbing ----------------------------------------------------------------------------------------
async def eventually(check, what: str, timeout: float = 30.0, diag=None):  # noqa: ASYNC109
    """Wait (bounded) until ``check()`` (sync or async) is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout} s: {what}\n{diag() if diag else ''}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def target(tmp_path):
    """The SCIM target process: neither userName nor displayName unique."""
    proc = ScimTargetProcess(tmp_path, unique_users=False)
    await asyncio.to_thread(proc.start)
    yield proc
    proc.stop()


@pytest.fixture
async def launch(tmp_path, store_url):
    """Start ``gateway serve`` processes on one PRIMARY database, provisioning to ``url``;
    every one is stopped at the end, whatever happened."""
    store = await store_url("primary")
    procs: list[GatewayProcess] = []

    async def start(label: str, url: str, connector: dict | None = None,
                    **outbound) -> GatewayProcess:
        cfg = write_config(tmp_path / f"{label}.toml", store, url,
                           outbound={**OUTBOUND, **outbound},
                           connector={"timeout_seconds": 1.5, **(connector or {})})
        proc = GatewayProcess(cfg, tmp_path, label)
        procs.append(proc)
        return await proc.start()

    start.procs = procs
    try:
        yield start
    finally:
        for proc in procs:
            proc.cleanup()


def outputs(procs) -> str:
    return "\n".join(f"--- {p.label}:\n{p.output(3000)}" for p in procs)


async def backlog(gw: GatewayProcess) -> dict[str, int]:
    """The connector's backlog: deliveries per unfinished state, and ``outbox``: changes
    not fanned out yet."""
    status, body = await gw.call("GET", "/admin/outbound/connectors")
    assert status == 200, body
    return body["connectors"][0]["backlog"]


async def settled(gw: GatewayProcess, procs, timeout: float = 40.0) -> list[dict]:  # noqa: ASYNC109
    """Wait until no change waits (in an outbox or as a delivery) or is in flight; the
    deliveries. None may be dead."""
    last: list[dict] = []

    async def check() -> bool:
        nonlocal last
        if await backlog(gw):
            return False
        last = await gw.events()
        dead = [r for r in last if r["state"] == "dead"]
        assert not dead, f"dead deliveries: {dead}"
        return not any(r["state"] in UNFINISHED for r in last)

    def diag():
        return f"{Counter(r['state'] for r in last)}\n{last[:6]}\n{outputs(procs)}"

    await eventually(check, "every delivery ended", timeout, diag)
    return last


def names(state: dict, rt: str) -> Counter:
    """The names the target holds (each as often as it holds it), but the bootstrap's."""
    key = "userName" if rt == "Users" else "displayName"
    return Counter(r[key] for r in state[rt] if r[key] not in BOOTSTRAP)


def posts(state: dict, rt: str, name: str) -> int:
    """POSTs of ``name`` the target received (answered or not)."""
    return sum(1 for method, path, _q, _status, who in state["log"]
               if method == "POST" and path == f"/scim2/{rt}" and who == name)


async def create_user(gw: GatewayProcess, name: str, **attrs) -> str:
    status, body = await gw.call("POST", USERS, {"userName": name, **attrs})
    assert status == 201, (status, body)
    return body["id"]


async def rows_of(gw: GatewayProcess, entity_id: str) -> list[dict]:
    return sorted((r for r in await gw.events() if r["entity_id"] == entity_id),
                  key=lambda r: r["id"])


# 1 and 2: a frozen target, names not unique ------------------------------------------------------
async def test_group_created_while_the_target_is_frozen_exists_once(target, launch):
    """The target is frozen (SIGSTOP) while a group's create is sent: the gateway times
    out, again and again. A retry must not POST again (the first POST is in the target's
    socket and is applied when it wakes; a group's displayName is not unique there): it
    looks the group up (by the externalId it sent) and finds it once the target is back."""
    gw = await launch("gw", target.url + "/scim2")
    await settled(gw, launch.procs)  # the bootstrap administrator and its group went out
    assert names(await target.state(), "Groups") == Counter()

    target.freeze()
    try:
        status, team = await gw.call("POST", GROUPS, {"displayName": "team"})
        assert status == 201, team

        async def retried():
            rows = await rows_of(gw, team["id"])
            return rows and rows[-1]["attempts"] >= 3 and rows[-1]["last_error"]
        await eventually(retried, "the group's create timed out three times",
                         diag=lambda: outputs(launch.procs))
    finally:
        target.thaw()
    rows = await settled(gw, launch.procs)
    state = await target.state()
    assert names(state, "Groups") == Counter({"team": 1})
    assert posts(state, "Groups", "team") == 1, state["log"]  # retries looked it up first
    (mine,) = [r for r in rows if r["entity_id"] == team["id"]]
    (remote,) = [g for g in state["Groups"] if g["displayName"] == "team"]
    assert mine["state"] == "done" and mine["remote_id"] == remote["id"]
    assert remote["externalId"] == team["id"]  # the local id: an exact lookup

    status, _ = await gw.call("DELETE", f"{GROUPS}/{team['id']}")
    assert status == 204
    await settled(gw, launch.procs)
    assert names(await target.state(), "Groups") == Counter()


async def test_user_created_and_deleted_while_the_target_is_frozen_leaves_nothing(
        target, launch):
    """A rule-based connector; the target is frozen while a user's create is sent (the
    POST waits in the target's socket), and the user is deleted here before it thaws.
    The create never came back: the user is possibly provisioned. Its retry finds it
    gone here and, once the target is back, looks it up and removes it."""
    gw = await launch("gw", target.url + "/scim2", connector={"rule": STAFF})
    await settled(gw, launch.procs)
    target.freeze()
    try:
        uid = await create_user(gw, "frosty", title="staff")

        async def attempts(n: int):
            rows = await rows_of(gw, uid)
            return rows and rows[0]["attempts"] >= n and rows[0]["last_error"] and rows
        rows = await eventually(lambda: attempts(2), "the create timed out twice",
                                diag=lambda: outputs(launch.procs))
        status, _ = await gw.call("DELETE", f"{USERS}/{uid}")
        assert status == 204
        tried = rows[0]["attempts"]
        await eventually(lambda: attempts(tried + 1), "tried again after the delete",
                         diag=lambda: outputs(launch.procs))
    finally:
        target.thaw()
    await settled(gw, launch.procs)
    state = await target.state()
    assert names(state, "Users") == Counter(), state["Users"]
    assert posts(state, "Users", "frosty") == 1, state["log"]  # never POSTed again
    outcomes = [(r["action"], r["state"], r["outcome"]) for r in await rows_of(gw, uid)]
    assert outcomes == [("upsert", "done", "deleted (gone)"),
                        ("delete", "skipped", "never provisioned")], outcomes


async def test_target_applies_then_drops_the_connection(target, launch):
    """The target creates the user, then closes the connection without an answer. The
    retry finds it by externalId and updates it (no second user, though userName is not
    unique there). Another user, whose create was dropped the same way, leaves the
    rule before the retry: it is deprovisioned (looked up and deleted), not skipped as
    never provisioned."""
    gw = await launch("gw", target.url + "/scim2", connector={"rule": STAFF},
                      backoff_base_seconds=3.0, backoff_max_seconds=3.0)
    await settled(gw, launch.procs)
    await target.control(drop={"POST /Users": 2})
    erin = await create_user(gw, "erin", title="staff")
    dora = await create_user(gw, "dora", title="staff")

    async def failed_once():
        rows = await rows_of(gw, dora)
        return rows and rows[0]["attempts"] == 1 and rows[0]["state"] == "pending" \
            and rows[0]["last_error"]
    await eventually(failed_once, "dora's create failed once (dropped)",
                     diag=lambda: outputs(launch.procs))
    assert names(await target.state(), "Users") == Counter({"erin": 1, "dora": 1})
    # dora leaves the rule while her create waits to be tried again (1.5 to 3 s)
    status, body = await gw.call("PATCH", f"{USERS}/{dora}", {
        "schemas": [PATCH], "Operations": [{"op": "replace", "path": "title",
                                            "value": "guest"}]})
    assert status == 200, body
    await settled(gw, launch.procs)

    state = await target.state()
    assert names(state, "Users") == Counter({"erin": 1}), state["Users"]
    assert posts(state, "Users", "erin") == 1 and posts(state, "Users", "dora") == 1
    (erin_row,) = await rows_of(gw, erin)
    assert erin_row["state"] == "done" and erin_row["attempts"] == 2
    assert erin_row["remote_id"] == state["Users"][0]["id"]
    outcomes = [(r["state"], r["outcome"]) for r in await rows_of(gw, dora)]
    assert outcomes == [("done", "deprovisioned"), ("skipped", "not selected")], outcomes


# 1: kill -9 after the target applied a create, before its answer; then a delete ---------------
N_KILLED = 6


async def test_kill9_before_the_answer_then_delete_leaves_no_phantom(target, launch):
    """Users of a rule-based connector are created; every create is held in flight, the
    gateway is killed (-9), then half of the held creates reach the target (created, the
    answer lost) and half never do. The users are deleted before the restarted gateway
    reaches the target. Their creates find them gone, their deletes find no remote id;
    neither may end as "never provisioned" while the target still has them."""
    proxy = HoldingProxy(target.url)
    proxy_server = TestServer(proxy.app())
    await proxy_server.start_server()
    try:
        url = str(proxy_server.make_url("/scim2"))
        names_ = [f"ghost{i}" for i in range(N_KILLED)]
        arrived = set(names_[0::2])
        proxy.hold, proxy.hold_only = True, set(names_)
        proxy.drop = lambda name: name not in arrived
        first = await launch("first", url, connector={"rule": STAFF})
        ids = {n: await create_user(first, n, title="staff") for n in names_}
        await eventually(lambda: {e.name for e in proxy.held()} >= set(names_),
                         "every create held in flight", diag=lambda: outputs(launch.procs))
        assert await first.kill9() == -signal.SIGKILL
        proxy.release()
        await proxy.idle()
        assert {e.name for e in proxy.log if e.status == DROPPED} == set(names_) - arrived
        assert names(await target.state(), "Users") == Counter(dict.fromkeys(arrived, 1))

        proxy.mode = "down"  # the restarted gateway cannot reach the target yet
        second = await launch("second", url, connector={"rule": STAFF})
        for n in names_:
            status, _ = await second.call("DELETE", f"{USERS}/{ids[n]}")
            assert status == 204
        proxy.mode = "pass"
        rows = await settled(second, launch.procs)
    finally:
        proxy.release()
        await proxy_server.close()

    state = await target.state()
    assert names(state, "Users") == Counter(), state["Users"]  # no phantom
    assert names(state, "Groups") == Counter()
    mine = [r for r in rows if r["entity_id"] in ids.values()]
    by_name = {n: [(r["action"], r["state"], r["outcome"]) for r in mine
                   if r["entity_id"] == ids[n]] for n in names_}
    for n in arrived:  # removed when its create found it gone here
        assert ("upsert", "done", "deleted (gone)") in by_name[n], by_name[n]


async def test_sigterm_mid_delivery_then_restart_creates_once(target, launch):
    """A gateway stopped (SIGTERM) while a create is in flight cancels it after its grace
    and hands the claim back: the create may have reached the target (here it does,
    after the gateway went away). The restarted gateway looks the user up first and
    updates it: one user at a target that would take a second of the same name."""
    proxy = HoldingProxy(target.url)
    proxy_server = TestServer(proxy.app())
    await proxy_server.start_server()
    try:
        url = str(proxy_server.make_url("/scim2"))
        proxy.hold, proxy.hold_only = True, {"termi"}
        first = await launch("first", url)
        uid = await create_user(first, "termi")
        await eventually(proxy.held, "the create held in flight",
                         diag=lambda: outputs(launch.procs))
        assert await first.terminate() == 0
        proxy.release()
        await proxy.idle()
        assert names(await target.state(), "Users") == Counter({"termi": 1})
        second = await launch("second", url)
        rows = await settled(second, launch.procs)
    finally:
        proxy.release()
        await proxy_server.close()
    state = await target.state()
    assert names(state, "Users") == Counter({"termi": 1}), state["Users"]
    assert posts(state, "Users", "termi") == 1, state["log"]
    (mine,) = [r for r in rows if r["entity_id"] == uid]
    assert mine["state"] == "done" and mine["attempts"] == 2, mine
    assert mine["remote_id"] == next(u["id"] for u in state["Users"]
                                     if u["userName"] == "termi")


# 3: a blocking connector slower than its deadline ---------------------------------------------
async def test_blocking_reply_comes_within_the_deadline(target, launch):
    """``blocking_timeout_seconds = 2`` and a target that takes 3 s per request: the reply
    comes within the deadline, a 502 saying the change was saved and stays queued; the
    delivery goes on and the user arrives at the target once."""
    gw = await launch("gw", target.url + "/scim2",
                      connector={"blocking": True, "timeout_seconds": 10.0},
                      blocking_timeout_seconds=2.0, lease_seconds=60.0)
    await settled(gw, launch.procs)
    await target.control(delay=3.0)
    started = time.monotonic()
    status, body = await gw.call("POST", USERS, {"userName": "slowpoke"})
    took = time.monotonic() - started
    assert status == 502, body
    assert took < 2.8, f"the reply took {took:.2f} s for a deadline of 2 s"
    assert "saved" in body["detail"] and "queued" in body["detail"], body
    status, found = await gw.call("GET", f'{USERS}?filter=userName%20eq%20%22slowpoke%22')
    assert found["totalResults"] == 1  # the local change stays

    await settled(gw, launch.procs)
    await target.control(delay=0.0)
    state = await target.state()
    assert names(state, "Users") == Counter({"slowpoke": 1})
    assert posts(state, "Users", "slowpoke") == 1

    # the same over SOAP (WSO2 addUser): a Server fault within the deadline
    await target.control(delay=3.0)
    started = time.monotonic()
    status, fault = await soap_add_user(gw, "soapslow")
    took = time.monotonic() - started
    assert status == 500 and "Server" in fault and "saved" in fault, (status, fault)
    assert took < 2.8, f"the SOAP reply took {took:.2f} s for a deadline of 2 s"
    await settled(gw, launch.procs)
    await target.control(delay=0.0)
    assert names(await target.state(), "Users") == Counter({"slowpoke": 1, "soapslow": 1})

    started = time.monotonic()  # a target within the deadline: 201, and it is there
    status, body = await gw.call("POST", USERS, {"userName": "quick"})
    assert status == 201 and time.monotonic() - started < 2.0, body
    assert "quick" in names(await target.state(), "Users")


async def soap_add_user(gw: GatewayProcess, name: str) -> tuple[int, str]:
    """WSO2 ``RemoteUserStoreManagerService.addUser`` as a SOAP 1.1 client sends it."""
    envelope = (
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:ser="http://service.ws.um.carbon.wso2.org"><soapenv:Body><ser:addUser>'
        f"<ser:userName>{name}</ser:userName><ser:credential>Slow-pass-123</ser:credential>"
        "<ser:requirePasswordChange>false</ser:requirePasswordChange>"
        "</ser:addUser></soapenv:Body></soapenv:Envelope>")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session, \
            session.post(gw.base + "/services/RemoteUserStoreManagerService",
                         data=envelope.encode(), headers={
                             **ADMIN, "Content-Type": "text/xml; charset=utf-8",
                             "SOAPAction": "urn:addUser"}) as resp:
        return resp.status, await resp.text()


# 7: the "all delivered" signal ----------------------------------------------------------------
def _queue_gauge(text: str, state: str) -> int | None:
    m = re.search(rf'^gateway_outbound_queue\{{connector="downstream",state="{state}"\}} '
                  r'(\d+)$', text, re.M)
    return int(m.group(1)) if m else None


async def test_backlog_counts_what_is_not_fanned_out_and_names_every_delivery(
        target, launch, tmp_path):
    """With ``dispatcher = "external"`` nothing is fanned out until ``gateway dispatch``
    runs: the admin backlog and /metrics count those changes (``outbox``), so that an
    empty backlog means everything was delivered. Deliveries a membership change caused
    carry their user's name. The connector listing does not ask the target each time."""
    gw = await launch("gw", target.url + "/scim2", dispatcher="external")
    uid = await create_user(gw, "member")
    status, group = await gw.call("POST", GROUPS, {"displayName": "crew",
                                                   "members": [{"value": uid}]})
    assert status == 201, group
    status, body = await gw.call("GET", "/admin/outbound/connectors")
    assert status == 200, body
    (info,) = body["connectors"]
    waiting = info["backlog"].get("outbox", 0)
    assert waiting >= 3, info  # member, crew, member's membership (and the bootstrap's)
    assert info["oldest_unfinished"] is not None
    status, text = await gw.call("GET", "/metrics")
    assert _queue_gauge(text, "outbox") == waiting, text

    async def checks() -> int:  # health checks the target received
        return sum(1 for e in (await target.state())["log"]
                   if e[1].endswith("/ServiceProviderConfig"))
    # the first listing started one check in the background; later ones show its result
    await eventually(checks, "a health check was made", timeout=10)
    for _ in range(3):
        status, body = await gw.call("GET", "/admin/outbound/connectors")
        assert body["connectors"][0]["health"].startswith("SCIM 2.0"), body
    assert await checks() == 1
    status, live = await gw.call("GET", "/admin/outbound/connectors/downstream/health")
    assert status == 200 and live["up"] is True, live
    assert await checks() == 2  # asked for: live

    def spawn() -> subprocess.Popen:
        with open(tmp_path / "dispatch.out", "wb") as out:
            return subprocess.Popen([*GATEWAY, "dispatch", "--config", str(gw.config)],
                                    cwd=tmp_path, env=clean_env(), stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
    proc = await asyncio.to_thread(spawn)
    try:
        rows = await settled(gw, launch.procs)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    status, body = await gw.call("GET", "/admin/outbound/connectors")
    assert body["connectors"][0]["backlog"] == {}, body  # everything delivered
    assert body["connectors"][0]["oldest_unfinished"] is None
    status, text = await gw.call("GET", "/metrics")
    assert _queue_gauge(text, "outbox") == 0 and _queue_gauge(text, "pending") is None
    nameless = [r for r in rows if not r["name"]]
    assert not nameless, nameless
    member_rows = [r["name"] for r in rows if r["entity_id"] == uid]
    assert member_rows == ["member", "member"], member_rows  # its create, its joining
    state = await target.state()
    assert names(state, "Users") == Counter({"member": 1})
    assert names(state, "Groups") == Counter({"crew": 1})


# the lookup at a target that cannot filter on externalId ---------------------------------------
async def test_uncertain_create_at_a_target_without_external_id_filters(tmp_path):
    """A target that refuses ``externalId eq`` (400): an uncertain create is looked up by
    name instead, adopting a resource without another ``externalId``, never one that
    carries someone else's; an uncertain delete finds it the same way."""
    from connectors.base import Action, Change, EntityKind
    from connectors.config import ConnectorConfig
    from connectors.scim import ScimConnector

    target = ScimTargetProcess(tmp_path, external_id_filter=False)
    await asyncio.to_thread(target.start)
    try:
        async with aiohttp.ClientSession() as session:
            scim = ScimConnector(ConnectorConfig(name="t", type="scim2",
                                                 url=target.url + "/scim2"), session)

            def change(action, local, name):
                return Change(EntityKind.GROUP, action, local, "PRIMARY",
                              None if action == Action.DELETE else {"displayName": name},
                              name, member_remote_ids={}, uncertain=True, external_id=local)
            theirs = await scim.deliver(Change(EntityKind.GROUP, Action.CREATE, "other",
                                               "PRIMARY", {"displayName": "ops"}, "ops",
                                               member_remote_ids={}, external_id="other"),
                                        None)
            mine = await scim.deliver(change(Action.CREATE, "local-1", "ops"), None)
            assert mine.remote_id != theirs.remote_id  # someone else's ops is not taken
            again = await scim.deliver(change(Action.CREATE, "local-1", "ops"), None)
            assert again.remote_id == mine.remote_id  # its own (externalId) is
            await scim.deliver(change(Action.DELETE, "local-1", "ops"), None)
        state = await target.state()
        assert [(g["displayName"], g["externalId"]) for g in state["Groups"]] == [
            ("ops", "other")]
        refused = [e for e in state["log"] if e[2].startswith("filter=externalId")]
        assert refused and all(e[3] == 400 for e in refused)
    finally:
        target.stop()
