"""Outbound provisioning end to end: a gateway provisioning to a second gateway over SCIM,
through a proxy that fails on purpose. Real peers on loopback, never mocks."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest
from conftest import ADMIN, READER, assert_scim_error, scim
from outbound_peers import start_proxy, start_target, target_auth

from connectors.config import ConnectorConfig
from gateway.app import create_app
from gateway.outbound.config import OutboundConfig

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


async def eventually(check, timeout: float = 10.0, interval: float = 0.05):  # noqa: ASYNC109
    """Wait (bounded) until ``check()`` returns something truthy; return it."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout} s: {check.__name__}")
        await asyncio.sleep(interval)


@pytest.fixture
async def peers(tmp_path):
    target = await start_target(tmp_path)
    proxy, proxy_server = await start_proxy(str(target.make_url("")).rstrip("/"))
    yield target, proxy, proxy_server
    await proxy_server.close()
    await target.close()


def connector(proxy_server, **options) -> ConnectorConfig:
    return ConnectorConfig(name="downstream", type="scim2",
                           url=str(proxy_server.make_url("/scim2")), timeout_seconds=2,
                           **{**target_auth(), **options})


def outbound(*connectors, **options) -> OutboundConfig:
    settings = {"poll_interval_ms": 20, "backoff_base_seconds": 0.05,
                "backoff_max_seconds": 0.2, "blocking_timeout_seconds": 60, **options}
    return OutboundConfig(connectors=connectors, **settings)


@pytest.fixture
async def source(aiohttp_client, make_config, admin_env):
    async def make(*connectors, **options):
        # the bootstrap administrator goes out too: the first deliveries, waited for
        cfg = replace(await make_config(), outbound=outbound(*connectors, **options),
                      provision_bootstrap_admin=True)
        return await aiohttp_client(create_app(cfg))

    return make


async def target_users(target) -> dict[str, dict]:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(
            target.make_url("/scim2/Users?count=1000"), headers=ADMIN) as resp:
        body = await resp.json(content_type=None)
    return {u["userName"]: u for u in body.get("Resources", [])}


async def target_groups(target) -> dict[str, dict]:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(
            target.make_url("/scim2/Groups?count=1000"), headers=ADMIN) as resp:
        body = await resp.json(content_type=None)
    return {g["displayName"]: g for g in body.get("Resources", [])}


async def events(gw, query: str = "") -> list[dict]:
    status, body, _ = await scim_admin(gw, "GET", f"/admin/outbound/events?{query}")
    assert status == 200, body
    return body["events"]


async def scim_admin(gw, method: str, path: str, auth=ADMIN):
    resp = await gw.request(method, path, headers=auth)
    body = await resp.json(content_type=None) if resp.content_type == "application/json" \
        else await resp.text()
    return resp.status, body, resp


async def test_users_are_created_updated_and_deleted_downstream(peers, source):
    target, proxy, proxy_server = peers
    gw = await source(connector(proxy_server))
    before = await settled(gw, proxy)
    status, alice, _ = await scim(gw, "POST", "/Users", {
        "userName": "alice", "name": {"givenName": "Alice", "familyName": "L"},
        "emails": [{"value": "alice@example.org", "type": "work"}]})
    assert status == 201

    async def created():
        return (await target_users(target)).get("alice")
    remote = await eventually(created)
    assert remote["name"]["givenName"] == "Alice"
    assert [e["value"] for e in remote["emails"]] == ["alice@example.org"]
    done = await eventually(lambda: _done(gw, alice["id"]))
    assert done[0]["remote_id"] == remote["id"] and done[0]["outcome"] == "created"

    status, _, _ = await scim(gw, "PATCH", f"/Users/{alice['id']}", {
        "schemas": [PATCH], "Operations": [{"op": "replace", "path": "name.givenName",
                                            "value": "Alicia"}]})
    assert status == 200

    async def updated():
        user = (await target_users(target)).get("alice")
        return user and user["name"]["givenName"] == "Alicia" and user
    assert (await eventually(updated))["id"] == remote["id"]  # the same user, updated
    status, _, _ = await scim(gw, "DELETE", f"/Users/{alice['id']}")
    assert status == 204

    async def deleted():
        return "alice" not in await target_users(target)
    await eventually(deleted)
    assert proxy.count("POST", "/scim2/Users") - before == 1  # never a second create


async def settled(gw, proxy) -> int:
    """Wait until the bootstrap administrator went out; the users created so far."""
    async def quiet():
        rows = await events(gw)
        return rows and all(r["state"] not in ("pending", "inflight") for r in rows)
    await eventually(quiet)
    return proxy.count("POST", "/scim2/Users")


async def _done(gw, entity_id: str):
    rows = await events(gw, f"entity={entity_id}")
    return [r for r in rows if r["state"] == "done"] or None


async def test_groups_carry_their_provisioned_members(peers, source):
    target, _proxy, proxy_server = peers
    gw = await source(connector(proxy_server))
    _, bob, _ = await scim(gw, "POST", "/Users", {"userName": "bob"})
    await eventually(lambda: _done(gw, bob["id"]))
    _, eng, _ = await scim(gw, "POST", "/Groups", {"displayName": "eng",
                                                   "members": [{"value": bob["id"]}]})

    async def group():
        g = (await target_groups(target)).get("eng")
        return g and g.get("members") and g
    remote_bob = (await target_users(target))["bob"]
    assert [m["value"] for m in (await eventually(group))["members"]] == [remote_bob["id"]]


async def test_role_based_provisioning_and_deprovisioning(peers, source):
    target, _proxy, proxy_server = peers
    gw = await source(connector(proxy_server, roles=("staff",)))
    _, carol, _ = await scim(gw, "POST", "/Users", {"userName": "carol"})
    _, staff, _ = await scim(gw, "POST", "/Groups", {"displayName": "staff"})

    async def skipped():
        rows = await events(gw, f"entity={carol['id']}")
        return any(r["state"] == "skipped" and r["outcome"] == "not selected" for r in rows)
    await eventually(skipped)
    assert "carol" not in await target_users(target)
    status, _, _ = await scim(gw, "PATCH", f"/Groups/{staff['id']}", {
        "schemas": [PATCH], "Operations": [{"op": "add", "path": "members",
                                            "value": [{"value": carol["id"]}]}]})
    assert status in (200, 204)

    async def provisioned():
        return "carol" in await target_users(target)
    await eventually(provisioned)
    status, _, _ = await scim(gw, "PATCH", f"/Groups/{staff['id']}", {
        "schemas": [PATCH], "Operations": [{"op": "remove",
                                            "path": f'members[value eq "{carol["id"]}"]'}]})
    assert status in (200, 204)

    async def deprovisioned():
        return "carol" not in await target_users(target)
    await eventually(deprovisioned)


async def test_rule_based_provisioning(peers, source):
    target, _proxy, proxy_server = peers
    gw = await source(connector(proxy_server, rule='title eq "Engineer"'))
    _, dave, _ = await scim(gw, "POST", "/Users", {"userName": "dave", "title": "Sales"})
    _, erin, _ = await scim(gw, "POST", "/Users", {"userName": "erin", "title": "Engineer"})

    async def erin_there():
        return "erin" in await target_users(target)
    await eventually(erin_there)
    assert "dave" not in await target_users(target)
    await scim(gw, "PATCH", f"/Users/{dave['id']}", {"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": "title", "value": "Engineer"}]})

    async def dave_there():
        return "dave" in await target_users(target)
    await eventually(dave_there)
    await scim(gw, "PATCH", f"/Users/{erin['id']}", {"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": "title", "value": "Manager"}]})

    async def erin_gone():
        return "erin" not in await target_users(target)
    await eventually(erin_gone)


async def test_outage_is_retried_then_delivered_once(peers, source):
    target, proxy, proxy_server = peers
    gw = await source(connector(proxy_server))
    before = await settled(gw, proxy)
    proxy.mode = "down"
    _, frank, _ = await scim(gw, "POST", "/Users", {"userName": "frank"})

    async def retrying():
        rows = await events(gw, f"entity={frank['id']}")
        return rows and rows[0]["state"] == "pending" and rows[0]["attempts"] >= 2 and rows
    rows = await eventually(retrying)
    assert rows[0]["last_error"]
    for mode in ("500", "503", "429"):  # each a retryable failure
        proxy.mode = mode
        await asyncio.sleep(0.3)
        assert (await events(gw, f"entity={frank['id']}"))[0]["state"] in ("pending",
                                                                           "inflight")
    proxy.mode = "pass"

    async def there():
        return "frank" in await target_users(target)
    await eventually(there)
    assert proxy.count("POST", "/scim2/Users") - before == 1


async def test_permanent_errors_are_dead_at_once_and_retried_by_admin(peers, source):
    target, proxy, proxy_server = peers
    gw = await source(connector(proxy_server))
    proxy.mode = "400"
    _, gina, _ = await scim(gw, "POST", "/Users", {"userName": "gina"})

    async def dead():
        rows = await events(gw, f"entity={gina['id']}&state=dead")
        return rows
    row = (await eventually(dead))[0]
    assert row["attempts"] == 1 and "400" in row["last_error"]
    proxy.mode = "pass"
    status, body, _ = await scim_admin(gw, "POST", f"/admin/outbound/events/{row['id']}/retry")
    assert status == 200 and body["state"] in ("pending", "inflight", "done"), body
    assert body["attempts"] <= 1  # counted again from zero

    async def there():
        return "gina" in await target_users(target)
    await eventually(there)
    status, body, _ = await scim_admin(gw, "POST",
                                       f"/admin/outbound/events/{row['id']}/cancel")
    assert status == 409  # a delivered change cannot be cancelled
    # both are in the audit trail
    status, body, _ = await scim_admin(gw, "GET", f"/admin/audit?target={row['id']}")
    assert [(e["operation"], e["outcome"], e["kind"]) for e in body["events"]] == [
        ("CancelDelivery", "failed", "Delivery"), ("RetryDelivery", "success", "Delivery")]


async def test_dead_after_max_attempts_and_cancel(peers, source):
    _target, proxy, proxy_server = peers
    gw = await source(connector(proxy_server, max_attempts=3))
    proxy.mode = "503"
    _, hank, _ = await scim(gw, "POST", "/Users", {"userName": "hank"})

    async def dead():
        return await events(gw, f"entity={hank['id']}&state=dead")
    row = (await eventually(dead))[0]
    assert row["attempts"] == 3
    status, body, _ = await scim_admin(gw, "POST",
                                       f"/admin/outbound/events/{row['id']}/cancel")
    assert status == 200 and body["state"] == "cancelled"


async def test_blocking_connector_waits_and_reports_failure(peers, source):
    target, proxy, proxy_server = peers
    gw = await source(connector(proxy_server, blocking=True, max_attempts=2))
    status, ivy, _ = await scim(gw, "POST", "/Users", {"userName": "ivy"})
    assert status == 201
    assert "ivy" in await target_users(target)  # already there when the reply came
    proxy.mode = "403"
    status, body, _ = await scim(gw, "POST", "/Users", {"userName": "jack"})
    assert_scim_error(status, body, 502)
    assert "saved" in body["detail"] and "downstream" in body["detail"]
    status, body, _ = await scim(gw, "GET", '/Users?filter=userName eq "jack"')
    assert body["totalResults"] == 1  # the local change stays
    # the audit trail says both: the change was kept, its provisioning did not finish
    status, audit, _ = await scim_admin(gw, "GET", "/admin/audit?target=jack")
    assert sorted((e["operation"], e["outcome"]) for e in audit["events"]) == [
        ("CreateUser", "failed"), ("CreateUser", "success")], audit
    [failed] = [e for e in audit["events"] if e["outcome"] == "failed"]
    assert failed["detail"].startswith("502") and "saved" in failed["detail"]


async def test_persist_only_clients_are_not_provisioned(peers, aiohttp_client, make_config,
                                                        admin_env):
    from gateway.config import ClientConfig

    target, _proxy, proxy_server = peers
    cfg = await make_config()
    cfg = replace(cfg, clients=(*cfg.clients, ClientConfig(
        "feed", ("*",), secret="feed-secret-1", provisioning="persist")),
        outbound=outbound(connector(proxy_server)))
    gw = await aiohttp_client(create_app(cfg))
    from conftest import basic

    status, quiet, _ = await scim(gw, "POST", "/Users", {"userName": "quiet"},
                                  auth=basic("feed", "feed-secret-1"))
    assert status == 201
    _, loud, _ = await scim(gw, "POST", "/Users", {"userName": "loud"})

    async def loud_there():
        return "loud" in await target_users(target)
    await eventually(loud_there)
    assert "quiet" not in await target_users(target)
    assert await events(gw, f"entity={quiet['id']}") == []


async def test_admin_api_needs_admin_and_reports(peers, source):
    _target, _proxy, proxy_server = peers
    gw = await source(connector(proxy_server))
    status, _, resp = await scim_admin(gw, "GET", "/admin/outbound/events", auth={})
    assert status == 401 and "WWW-Authenticate" in resp.headers
    status, _, _ = await scim_admin(gw, "GET", "/admin/outbound/events", auth=READER)
    assert status == 403
    status, body, _ = await scim_admin(gw, "GET", "/admin/outbound/events?state=bogus")
    assert status == 400
    _, kim, _ = await scim(gw, "POST", "/Users", {"userName": "kim"})
    await eventually(lambda: _done(gw, kim["id"]))
    await settled(gw, _proxy)  # the bootstrap administrator's deliveries too
    status, body, _ = await scim_admin(gw, "GET", "/admin/outbound/connectors")
    assert status == 200
    (info,) = body["connectors"]
    assert info["name"] == "downstream" and info["backlog"] == {}  # nothing waiting
    assert info["oldest_unfinished"] is None
    status, live, _ = await scim_admin(gw, "GET", "/admin/outbound/connectors/downstream/health")
    assert status == 200 and live["up"] is True and live["health"].startswith("SCIM 2.0")
    status, body, _ = await scim_admin(gw, "GET", "/admin/outbound/connectors")
    assert body["connectors"][0]["health"] == live["health"]  # the last check, cached
    assert body["connectors"][0]["health_checked"] >= live["health_checked"]
    status, _, _ = await scim_admin(gw, "GET", "/admin/outbound/connectors/nosuch/health")
    assert status == 404
    status, text, _ = await scim_admin(gw, "GET", "/metrics")
    assert status == 200
    assert 'gateway_outbound_deliveries_total{connector="downstream",outcome="created"}' in text
    assert "gateway_outbound_lag_seconds_bucket" in text
    status, _, _ = await scim_admin(gw, "GET", "/metrics", auth=READER)
    assert status == 403


async def test_no_connectors_no_outbox_rows(aiohttp_client, make_config, admin_env):
    """Without a connector, changes write no outbox rows, and rows an earlier configuration
    left behind are drained (idly, not at each change)."""
    from sqlalchemy import func, insert, select

    from gateway.keys import STORES
    from userstores.sql import tables as t

    gw = await aiohttp_client(create_app(await make_config()))
    store = gw.app[STORES].primary
    await store._runner.write(lambda conn: conn.execute(insert(t.outbox).values(
        kind="User", entity_id="left-behind", action="upsert", name="old",
        created="2026-01-01T00:00:00.000000Z")))
    ids = []
    for i in range(5):
        _, body, _ = await scim(gw, "POST", "/Users", {"userName": f"u{i}"})
        ids.append(body["id"])

    def rows(conn, entity_ids):
        return conn.execute(select(func.count()).select_from(t.outbox)
                            .where(t.outbox.c.entity_id.in_(entity_ids))).scalar()
    assert await store._runner.read(rows, ids) == 0
    await eventually(lambda: _left(store, rows), timeout=15)


async def _left(store, rows) -> bool:
    return await store._runner.read(rows, ["left-behind"]) == 0


def test_rules_are_checked_when_the_configuration_is_read(tmp_path):
    from gateway.errors import ConfigError
    from gateway.settings import load

    path = tmp_path / "gw.toml"
    path.write_text('[[outbound.connectors]]\nname = "x"\ntype = "scim2"\n'
                    'url = "http://127.0.0.1:9/"\nrule = "userName eq"\n')
    with pytest.raises(ConfigError, match="rule"):
        load(str(path), environ={})
    path.write_text('[[outbound.connectors]]\nname = "x"\ntype = "nosuch"\n'
                    'url = "http://127.0.0.1:9/"\n')
    cfg = load(str(path), environ={})
    assert cfg.outbound.connectors[0].type == "nosuch"


@pytest.mark.parametrize(("setting", "error"), [
    ('dispatcher = "thread"', "dispatcher is one of process, inline, external"),
    ("dispatcher_nice = 20", "dispatcher_nice is between 0 and 19"),
    ("dispatcher_nice = -1", "dispatcher_nice is between 0 and 19"),
])
def test_dispatcher_settings_are_checked(tmp_path, setting, error):
    from gateway.errors import ConfigError
    from gateway.settings import load

    path = tmp_path / "gw.toml"
    path.write_text(f"[outbound]\n{setting}\n")
    with pytest.raises(ConfigError, match=error):
        load(str(path), environ={})


def test_a_sqlite_queue_lives_beside_its_store():
    from gateway.outbound.service import sqlite_beside

    assert sqlite_beside("sqlite:////srv/gw/gateway.db") == \
        "sqlite:////srv/gw/gateway-outbound.db"
    assert sqlite_beside("sqlite:///data") == "sqlite:///data-outbound.db"
    assert sqlite_beside("postgresql://gw@db/gw") is None


async def test_unknown_connector_type_fails_the_start(aiohttp_client, make_config, admin_env):
    from gateway.errors import ConfigError

    cfg = replace(await make_config(), outbound=outbound(ConnectorConfig(
        name="x", type="nosuch", url="http://127.0.0.1:9/")))
    with pytest.raises(ConfigError, match="nosuch"):
        await aiohttp_client(create_app(cfg))



async def test_spml_target_through_the_dispatcher(aiohttp_server, source):
    """The same engine, to an SPML 2.0 target (schema-validating, in the test)."""
    from spml_target import SpmlTarget

    spml = SpmlTarget(auth="wss")
    server = await aiohttp_server(spml.app())
    gw = await source(ConnectorConfig(
        name="spml", type="spml", url=str(server.make_url("/spml")), auth="wss",
        username=spml.username, password=spml.password, provision_groups=False,
        options={"target_id": spml.target_id, "container_id": "ou=people"}))
    _, lee, _ = await scim(gw, "POST", "/Users", {
        "userName": "lee", "name": {"givenName": "Lee", "familyName": "Ray"},
        "emails": [{"value": "lee@example.org", "primary": True}]})

    async def added():
        return spml.psos.get("lee")
    pso = await eventually(added)
    assert pso.attrs["givenname"] == ["Lee"] and pso.attrs["mail"] == ["lee@example.org"]
    await scim(gw, "PATCH", f"/Users/{lee['id']}", {"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": "name.givenName", "value": "Leo"}]})

    async def modified():
        p = spml.psos.get("lee")
        return p and p.attrs.get("givenname") == ["Leo"]
    await eventually(modified)
    await scim(gw, "DELETE", f"/Users/{lee['id']}")

    async def deleted():
        return "lee" not in spml.psos
    await eventually(deleted)

    async def recorded():  # the target may answer before the delivery's end is written
        rows = await events(gw, f"entity={lee['id']}")
        return all(r["state"] not in ("pending", "inflight") for r in rows) and rows
    rows = await eventually(recorded)
    assert [r["state"] for r in rows] == ["done"] * 3 and rows[-1]["remote_id"] == "lee"
    assert spml.invalid == [] and spml.reply_errors == []


async def test_spml_create_applied_but_unanswered_then_deleted_leaves_nothing(
        aiohttp_server, source):
    """An SPML target applies an addRequest and its reply is lost (HTTP 502); the user is
    deleted here before the retry. The connector is rule-based, so its delete of an
    entity it holds no remote id for used to be skipped as never provisioned, leaving
    the PSO at the target. The create was possibly provisioned: the retry, finding the
    user gone here, deletes the PSO."""
    from spml_target import SpmlTarget

    spml = SpmlTarget()
    server = await aiohttp_server(spml.app())
    gw = await source(ConnectorConfig(
        name="spml", type="spml", url=str(server.make_url("/spml")), provision_groups=False,
        rule='title eq "staff"', options={"target_id": spml.target_id,
                                          "container_id": "ou=people"}),
        backoff_base_seconds=3.0, backoff_max_seconds=3.0)
    spml.inject("lose_reply", "addRequest")
    _, pat, _ = await scim(gw, "POST", "/Users", {"userName": "pat", "title": "staff"})

    async def lost():
        rows = await events(gw, f"entity={pat['id']}")
        return "pat" in spml.psos and rows and rows[0]["state"] == "pending" \
            and rows[0]["attempts"] == 1 and rows[0]["last_error"]
    await eventually(lost)
    status, _, _ = await scim(gw, "DELETE", f"/Users/{pat['id']}")
    assert status == 204

    async def ended():
        rows = await events(gw, f"entity={pat['id']}")
        return len(rows) == 2 and all(r["state"] not in ("pending", "inflight")
                                      for r in rows) and rows
    rows = await eventually(ended, timeout=15)
    assert "pat" not in spml.psos, spml.psos
    assert [(r["action"], r["state"], r["outcome"]) for r in reversed(rows)] == [
        ("upsert", "done", "deleted (gone)"), ("delete", "skipped", "never provisioned")]
    assert spml.ops().count("addRequest") == 1 and "deleteRequest" in spml.ops()
    assert spml.invalid == [] and spml.reply_errors == []


async def test_provision_only_clients_store_nothing(peers, aiohttp_client, make_config,
                                                   admin_env):
    """WSO2's "dumb mode": the change goes straight to the target, the reply is what the
    target answered, nothing is kept here."""
    from conftest import basic

    from gateway.config import ClientConfig

    target, _proxy, proxy_server = peers
    cfg = await make_config()
    cfg = replace(cfg, clients=(*cfg.clients, ClientConfig(
        "relay", ("*",), secret="relay-secret-1", provisioning="provision")),
        outbound=outbound(connector(proxy_server)))
    gw = await aiohttp_client(create_app(cfg))
    relay = basic("relay", "relay-secret-1")
    status, made, _ = await scim(gw, "POST", "/Users", {"userName": "passing",
                                                        "title": "Visitor"}, auth=relay)
    assert status == 201, made
    remote = (await target_users(target))["passing"]
    assert made["id"] == remote["id"] and remote["title"] == "Visitor"
    status, body, _ = await scim(gw, "GET", '/Users?filter=userName eq "passing"')
    assert body["totalResults"] == 0  # nothing stored here
    status, body, _ = await scim(gw, "PUT", f"/Users/{made['id']}", {
        "userName": "passing", "title": "Guest"}, auth=relay)
    assert status == 200, body
    assert (await target_users(target))["passing"]["title"] == "Guest"
    status, body, _ = await scim(gw, "GET", f"/Users/{made['id']}", auth=relay)
    assert_scim_error(status, body, 501)
    status, _, _ = await scim(gw, "DELETE", f"/Users/{made['id']}", auth=relay)
    assert status == 204
    assert "passing" not in await target_users(target)
    _proxy.mode = "400"
    status, body, _ = await scim(gw, "POST", "/Users", {"userName": "refused"}, auth=relay)
    assert_scim_error(status, body, 502)
