"""The audit trail: every change and every authentication decision, through the wire,
queried and exported over the admin API."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import orjson
import pytest
from conftest import ADMIN, ADMIN_CLIENT, READER, assert_scim_error, basic, scim
from test_soap_security import V2, call, op, returns

from gateway.app import create_app
from gateway.audit import Audit, Event, Filter, stamp
from gateway.config import AuditConfig
from gateway.database.engine import make_runner
from gateway.errors import ConfigError
from gateway.settings import load

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


async def trail(client, auth=ADMIN, **query) -> tuple[int, dict]:
    resp = await client.get("/admin/audit", params={k: str(v) for k, v in query.items()},
                            headers=auth)
    return resp.status, await resp.json()


async def test_every_change_is_audited_without_values(gateway):
    rid = "req-abc.123"
    status, user, resp = await scim(gateway, "POST", "/Users", {
        "userName": "alice", "displayName": "Alice Secretname", "password": "Alice-pw-1"},
        headers={"X-Request-Id": rid})
    assert status == 201, user
    assert resp.headers["X-Request-Id"] == rid
    uid = user["id"]
    status, _, resp = await scim(gateway, "PATCH", f"/Users/{uid}", {
        "schemas": [PATCH_OP], "Operations": [
            {"op": "replace", "path": "displayName", "value": "Another Secretname"},
            {"op": "replace", "path": "password", "value": "Alice-pw-2"}]})
    assert status == 200
    generated = resp.headers["X-Request-Id"]
    assert len(generated) == 32  # one of ours: the caller sent none
    assert (await scim(gateway, "DELETE", f"/Users/{uid}"))[0] == 204

    status, body = await trail(gateway, target=uid)
    assert status == 200, body
    events = body["events"]
    assert [e["operation"] for e in events] == ["DeleteUser", "PatchUser", "CreateUser"]
    delete, patch, create = events
    assert events[0]["id"] > events[1]["id"] > events[2]["id"]  # newest first
    for event in events:
        assert event["actor"] == f"client:{ADMIN_CLIENT[0]}"
        assert event["protocol"] == "scim2" and event["outcome"] == "success"
        assert event["address"] == "127.0.0.1" and event["kind"] == "User"
        assert event["target_id"] == uid and event["target"] == "alice"
        assert dt.datetime.fromisoformat(event["at"].replace("Z", "+00:00"))
    assert create["request_id"] == rid and patch["request_id"] == generated
    assert create["attributes"] == ["displayName", "password", "userName"]
    assert patch["attributes"] == ["displayName", "password"]
    assert delete["attributes"] == []
    # names only, never values
    text = orjson.dumps(events).decode()
    for secret in ("Alice-pw-1", "Alice-pw-2", "Secretname"):
        assert secret not in text
    # the same by name, and one page at a time
    status, by_name = await trail(gateway, target="alice", count=2)
    assert [e["id"] for e in by_name["events"]] == [delete["id"], patch["id"]]
    assert by_name["next"] == patch["id"]
    status, rest = await trail(gateway, target="alice", count=2, before=by_name["next"])
    assert [e["id"] for e in rest["events"]] == [create["id"]] and rest["next"] is None


async def test_refused_and_failed_changes_and_groups(gateway):
    status, user, _ = await scim(gateway, "POST", "/Users", {"userName": "bob"})
    assert status == 201
    # a reader may not change anything: denied, and nothing changed
    status, body, _ = await scim(gateway, "PATCH", f"/Users/{user['id']}", {
        "schemas": [PATCH_OP], "Operations": [
            {"op": "replace", "path": "displayName", "value": "x"}]}, auth=READER)
    assert_scim_error(status, body, 403)
    # a duplicate: failed
    status, body, _ = await scim(gateway, "POST", "/Users", {"userName": "bob"})
    assert_scim_error(status, body, 409, "uniqueness")
    status, group, _ = await scim(gateway, "POST", "/Groups", {
        "displayName": "team", "members": [{"value": user["id"]}]})
    assert status == 201
    status, _, _ = await scim(gateway, "PATCH", f"/Groups/{group['id']}", {
        "schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": "members"}]})
    assert status in (200, 204)

    _, body = await trail(gateway, actor="client:test-reader", operation="PatchUser")
    [denied] = body["events"]
    assert denied["outcome"] == "denied" and denied["operation"] == "PatchUser"
    assert denied["target_id"] == user["id"] and denied["detail"].startswith("403")
    _, body = await trail(gateway, outcome="failed")
    [failed] = body["events"]
    assert failed["operation"] == "CreateUser" and failed["target"] == "bob"
    assert failed["detail"] == "409 uniqueness"
    _, body = await trail(gateway, target=group["id"])
    assert [(e["operation"], e["attributes"]) for e in body["events"]] == [
        ("PatchGroup", ["members"]), ("CreateGroup", ["displayName", "members"])]
    assert body["events"][0]["target"] == "team" and body["events"][0]["kind"] == "Group"


async def test_logins_are_audited(gateway):
    status, user, _ = await scim(gateway, "POST", "/Users", {"userName": "carol",
                                                             "password": "Carol-pw-1"})
    assert status == 201
    assert (await scim(gateway, "GET", "/Me", auth=basic("carol", "wrong")))[0] == 401
    assert (await scim(gateway, "GET", "/Me", auth=basic("carol", "Carol-pw-1")))[0] == 200
    assert (await scim(gateway, "GET", "/Me", auth=basic("carol", "Carol-pw-1")))[0] == 200
    assert (await scim(gateway, "GET", "/Users", auth=basic(ADMIN_CLIENT[0], "no")))[0] == 401
    status, text, _ = await call(gateway, op("authenticate", ("userName", "carol"),
                                             ("credential", "Carol-pw-1")), path=V2)
    assert returns(text) == ["true"]

    _, body = await trail(gateway, actor="carol")
    decisions = [(e["operation"], e["outcome"], e["detail"], e["protocol"])
                 for e in reversed(body["events"])]
    # the second GET was a remembered login: no new decision
    assert decisions == [("CheckPassword", "refused", "invalid credentials", "scim2"),
                         ("CheckPassword", "success", None, "scim2"),
                         ("CheckPassword", "success", None, "soap")], decisions
    assert body["events"][0]["target_id"] == user["id"]
    _, body = await trail(gateway, actor=f"client:{ADMIN_CLIENT[0]}",
                          operation="AuthenticateBasic", outcome="refused")
    assert len(body["events"]) == 1 and body["events"][0]["address"] == "127.0.0.1"
    text = orjson.dumps(body).decode()
    assert "Carol-pw-1" not in text and "wrong" not in text


async def test_soap_bulk_and_the_export(gateway):
    status, text, _ = await call(gateway, op("addUser", ("userName", "dave"),
                                             ("credential", "Dave-pw-1")), path=V2)
    assert status == 200, text
    status, body, _ = await scim(gateway, "POST", "/Bulk", {"schemas": [BULK], "Operations": [
        {"method": "POST", "path": "/Users", "bulkId": "1", "data": {"userName": "erin"}},
        {"method": "POST", "path": "/Users", "bulkId": "2", "data": {"userName": "dave"}},
        {"method": "POST", "path": "/Users", "bulkId": "3",
         "data": {"userName": "frank", "password": "Frank-pw-1"}}]})
    assert status == 200, body

    resp = await gateway.get("/admin/audit/export", params={"operation": "CreateUser"},
                             headers=ADMIN)
    assert resp.status == 200 and resp.content_type == "application/x-ndjson"
    lines = [orjson.loads(line) for line in (await resp.read()).splitlines()]
    assert [e["id"] for e in lines] == sorted(e["id"] for e in lines)  # oldest first
    seen = [(e["target"], e["outcome"], e["protocol"]) for e in lines
            if e["actor"].startswith("client:")]
    assert seen[0] == ("dave", "success", "soap")
    assert sorted(seen[1:]) == [("dave", "failed", "scim2"), ("erin", "success", "scim2"),
                                ("frank", "success", "scim2")]
    frank = next(e for e in lines if e["target"] == "frank")
    assert frank["attributes"] == ["password", "userName"]
    # a time window leaves them out
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    _, body = await trail(gateway, since=future)
    assert body["events"] == []


async def test_a_store_on_another_database_is_audited_after_the_change(multi_gateway):
    """SECONDARY lives in another database than the state: its events are written right
    after the change, once each (PRIMARY's in the change's own transaction)."""
    for name in ("SECONDARY/gina", "hank"):
        status, user, _ = await scim(multi_gateway, "POST", "/Users", {"userName": name})
        assert status == 201, user
        _, body = await trail(multi_gateway, target=user["id"])
        assert [(e["operation"], e["target"]) for e in body["events"]] == [
            ("CreateUser", name)]


async def test_the_admin_api_is_for_administrators_and_checks_its_input(gateway):
    status, body = await trail(gateway, auth=READER)
    assert status == 403, body
    status, body = await trail(gateway, auth={})
    assert status == 401, body
    for bad in ({"since": "yesterday"}, {"outcome": "maybe"}, {"count": "1" + "0" * 30},
                {"actor": "x" * 600}):
        status, body = await trail(gateway, **bad)
        assert status == 400 and body["error"], (bad, body)


async def test_retention_purges_old_events(tmp_path):
    runner = make_runner(f"sqlite:///{tmp_path / 'state.db'}")
    audit = Audit(AuditConfig(retention_days=30))
    try:
        await audit.start(runner)
        old = stamp(dt.datetime.now(dt.UTC) - dt.timedelta(days=31))
        await audit.record([replace(Event("old", "PatchUser"), at=old),
                            Event("new", "PatchUser")])
        await audit._purge()
        assert [e["actor"] for e in await audit.page(Filter(), None, 10)] == ["new"]
    finally:
        await audit.stop()
        await runner.close()


async def test_audit_off(aiohttp_client, make_config, admin_env):
    cfg = replace(await make_config(), audit=AuditConfig(enabled=False))
    gw = await aiohttp_client(create_app(cfg))
    assert (await scim(gw, "POST", "/Users", {"userName": "ivan"}))[0] == 201
    status, body = await trail(gw)
    assert status == 404, body


def test_config(tmp_path):
    path = tmp_path / "gw.toml"
    path.write_text("[audit]\nretention_days = -1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="retention_days"):
        load(str(path), environ={})
    path.write_text("[audit]\nkeep = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="keep"):
        load(str(path), environ={})
