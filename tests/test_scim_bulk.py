"""SCIM 2.0 /Bulk (RFC 7644 §3.7) over HTTP, on every user store backend.

Each bulk operation is checked in the response (request order, method, bulkId,
location, version, status as a string) and then against the resources
themselves with plain GETs: what a response says was created, changed or
deleted really was, and what failed left nothing behind.
"""

from __future__ import annotations

import orjson
import pytest
from conftest import ADMIN, READER, SCIM_JSON, assert_scim_error, scim

from gateway.app import create_app

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


# helpers --------------------------------------------------------------------------------
async def bulk(gw, operations, fail_on_errors=None, auth=ADMIN, **extra):
    body = {"schemas": [BULK_REQUEST], "Operations": operations, **extra}
    if fail_on_errors is not None:
        body["failOnErrors"] = fail_on_errors
    return await scim(gw, "POST", "/Bulk", body, auth=auth)


async def bulk_ok(gw, operations, fail_on_errors=None, auth=ADMIN) -> list[dict]:
    """Run a bulk request that must be accepted; return its response operations."""
    status, body, resp = await bulk(gw, operations, fail_on_errors, auth)
    assert status == 200, body
    assert resp.content_type == SCIM_JSON
    assert body["schemas"] == [BULK_RESPONSE]
    assert isinstance(body["Operations"], list)
    return body["Operations"]


def post_user(bulk_id: str, name: str, **attrs) -> dict:
    return {"method": "POST", "path": "/Users", "bulkId": bulk_id,
            "data": {"schemas": [CORE_USER], "userName": name, **attrs}}


def post_managed_user(bulk_id: str, name: str, manager_ref: str) -> dict:
    return {"method": "POST", "path": "/Users", "bulkId": bulk_id,
            "data": {"schemas": [CORE_USER, ENTERPRISE], "userName": name,
                     ENTERPRISE: {"manager": {"value": f"bulkId:{manager_ref}"}}}}


def post_group(bulk_id: str, name: str, member_refs=()) -> dict:
    data = {"schemas": [CORE_GROUP], "displayName": name}
    if member_refs:
        data["members"] = [{"value": f"bulkId:{r}"} for r in member_refs]
    return {"method": "POST", "path": "/Groups", "bulkId": bulk_id, "data": data}


def patch_body(*operations: dict) -> dict:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def assert_op_ok(op: dict, method: str, status: str, bulk_id: str | None = None) -> None:
    assert op["method"] == method, op
    assert op["status"] == status, op
    assert isinstance(op["status"], str)
    assert "response" not in op or op["response"].get("schemas") != [ERROR], op
    if bulk_id is not None:
        assert op["bulkId"] == bulk_id, op


def assert_op_error(op: dict, method: str, status: str, scim_type: str | None = None,
                    bulk_id: str | None = None) -> dict:
    assert op["method"] == method, op
    assert op["status"] == status, op
    err = op["response"]
    assert err["schemas"] == [ERROR], op
    assert err["status"] == status, op
    assert err.get("detail"), op
    if scim_type is not None:
        assert err.get("scimType") == scim_type, op
    if bulk_id is not None:
        assert op["bulkId"] == bulk_id, op
    assert "version" not in op, op
    return err


def id_of(op: dict) -> str:
    return op["location"].rsplit("/", 1)[1]


async def make_user(gw, name: str, **attrs) -> dict:
    status, body, _ = await scim(gw, "POST", "/Users", {"userName": name, **attrs})
    assert status == 201, body
    return body


async def make_group(gw, name: str) -> dict:
    status, body, _ = await scim(gw, "POST", "/Groups",
                                 {"schemas": [CORE_GROUP], "displayName": name})
    assert status == 201, body
    return body


async def get(gw, path: str) -> dict:
    status, body, resp = await scim(gw, "GET", path)
    assert status == 200, body
    assert resp.headers["ETag"] == body["meta"]["version"]
    return body


async def gone(gw, path: str) -> bool:
    status, body, _ = await scim(gw, "GET", path)
    assert status in (200, 404), body
    return status == 404


async def count(gw, kind: str, attr: str, value: str) -> int:
    status, body, _ = await scim(gw, "GET", f'/{kind}?filter={attr} eq "{value}"')
    assert status == 200, body
    return body["totalResults"]


async def users_named(gw, *names: str) -> dict[str, int]:
    return {n: await count(gw, "Users", "userName", n) for n in names}


async def assert_matches_resource(gw, op: dict, kind: str) -> dict:
    """The op's location and version are those of the resource as it is now."""
    assert op["location"].endswith(f"/scim2/{kind}/{id_of(op)}"), op
    found = await get(gw, f"/{kind}/{id_of(op)}")
    assert found["meta"]["location"] == op["location"]
    assert found["meta"]["version"] == op["version"]
    return found


@pytest.fixture
async def limited(aiohttp_client, make_config, admin_env):
    """A gateway with small bulk limits: 3 operations, 2048 bytes."""
    cfg = await make_config(bulk_max_operations=3, bulk_max_payload_bytes=2048)
    return await aiohttp_client(create_app(cfg))


# all four methods in one request ---------------------------------------------------------
async def test_post_put_patch_delete_in_request_order(gateway):
    keep = await make_user(gateway, "keeper", displayName="Before")
    team = await make_group(gateway, "team")
    doomed = await make_user(gateway, "doomed")
    ops = await bulk_ok(gateway, [
        post_user("u1", "alice", displayName="Alice"),
        {"method": "PUT", "path": f"/Users/{keep['id']}",
         "data": {"schemas": [CORE_USER], "userName": "keeper", "displayName": "Replaced"}},
        {"method": "PATCH", "path": f"/Groups/{team['id']}",
         "data": patch_body({"op": "add", "path": "members",
                             "value": [{"value": keep["id"]}]},
                            {"op": "replace", "path": "displayName", "value": "team-2"})},
        {"method": "DELETE", "path": f"/Users/{doomed['id']}"},
        post_group("g1", "fresh"),
    ])
    assert [o["method"] for o in ops] == ["POST", "PUT", "PATCH", "DELETE", "POST"]
    assert [o["status"] for o in ops] == ["201", "200", "200", "204", "201"]

    assert_op_ok(ops[0], "POST", "201", "u1")
    alice = await assert_matches_resource(gateway, ops[0], "Users")
    assert alice["userName"] == "alice"
    assert alice["displayName"] == "Alice"
    assert alice["meta"]["version"] == 'W/"1"'

    assert_op_ok(ops[1], "PUT", "200")
    assert id_of(ops[1]) == keep["id"]
    replaced = await assert_matches_resource(gateway, ops[1], "Users")
    assert replaced["displayName"] == "Replaced"
    assert replaced["meta"]["version"] != keep["meta"]["version"]

    assert_op_ok(ops[2], "PATCH", "200")
    assert id_of(ops[2]) == team["id"]
    patched = await assert_matches_resource(gateway, ops[2], "Groups")
    assert patched["displayName"] == "team-2"
    assert [m["value"] for m in patched["members"]] == [keep["id"]]

    assert_op_ok(ops[3], "DELETE", "204")
    assert "version" not in ops[3]
    assert await gone(gateway, f"/Users/{doomed['id']}")

    assert_op_ok(ops[4], "POST", "201", "g1")
    fresh = await assert_matches_resource(gateway, ops[4], "Groups")
    assert fresh["displayName"] == "fresh"


async def test_delete_response_has_location(gateway):
    # RFC 7644 §3.7: "location ... REQUIRED in a response, except in the event of a POST
    # failure"; the RFC's own DELETE example answers with the deleted resource's location
    doomed = await make_user(gateway, "doomed")
    ops = await bulk_ok(gateway, [{"method": "DELETE", "path": f"/Users/{doomed['id']}"}])
    assert_op_ok(ops[0], "DELETE", "204")
    assert ops[0].get("location", "").endswith(f"/scim2/Users/{doomed['id']}"), ops[0]


async def test_failed_non_post_response_has_location(gateway):
    # location is REQUIRED for every response but a failed POST: a failed PATCH names its target
    user = await make_user(gateway, "target")
    ops = await bulk_ok(gateway, [
        {"method": "PATCH", "path": f"/Users/{user['id']}",
         "data": patch_body({"op": "add", "path": "noSuchAttribute", "value": "x"})},
    ])
    assert_op_error(ops[0], "PATCH", "400")
    assert ops[0].get("location", "").endswith(f"/scim2/Users/{user['id']}"), ops[0]


async def test_empty_operations_list(gateway):
    assert await bulk_ok(gateway, []) == []


async def test_version_is_used_as_if_match(gateway):
    user = await make_user(gateway, "versioned")
    v1 = user["meta"]["version"]
    replace = patch_body({"op": "replace", "path": "displayName", "value": "one"})
    again = patch_body({"op": "replace", "path": "displayName", "value": "two"})
    ops = await bulk_ok(gateway, [
        {"method": "PATCH", "path": f"/Users/{user['id']}", "version": v1, "data": replace},
        {"method": "PATCH", "path": f"/Users/{user['id']}", "version": v1, "data": again},
        {"method": "DELETE", "path": f"/Users/{user['id']}", "version": v1},
    ])
    assert_op_ok(ops[0], "PATCH", "200")
    assert_op_error(ops[1], "PATCH", "412")
    assert_op_error(ops[2], "DELETE", "412")
    now = await get(gateway, f"/Users/{user['id']}")
    assert now["displayName"] == "one"
    assert now["meta"]["version"] == ops[0]["version"]


# bulkId references -----------------------------------------------------------------------
async def test_group_members_reference_users_created_later(gateway):
    ops = await bulk_ok(gateway, [
        post_group("g1", "early", member_refs=["u1", "u2"]),
        post_user("u1", "mem-one"),
        post_user("u2", "mem-two"),
    ])
    assert [o.get("bulkId") for o in ops] == ["g1", "u1", "u2"]
    assert_op_ok(ops[0], "POST", "201", "g1")
    assert_op_ok(ops[1], "POST", "201", "u1")
    assert_op_ok(ops[2], "POST", "201", "u2")
    u1, u2 = id_of(ops[1]), id_of(ops[2])
    assert u1 != u2
    # created after its members: the version it reports is the group's current one
    group = await assert_matches_resource(gateway, ops[0], "Groups")
    assert sorted(m["value"] for m in group["members"]) == sorted([u1, u2])
    for op in ops[1:]:
        user = await assert_matches_resource(gateway, op, "Users")
        assert [g["value"] for g in user.get("groups", [])] == [id_of(ops[0])]


async def test_manager_references_user_created_later(gateway):
    ops = await bulk_ok(gateway, [
        post_managed_user("emp", "employee", "boss"),
        post_user("boss", "the-boss"),
    ])
    assert_op_ok(ops[0], "POST", "201", "emp")
    assert_op_ok(ops[1], "POST", "201", "boss")
    employee = await assert_matches_resource(gateway, ops[0], "Users")
    assert employee[ENTERPRISE]["manager"]["value"] == id_of(ops[1])
    boss = await assert_matches_resource(gateway, ops[1], "Users")
    assert boss["userName"] == "the-boss"


async def test_path_references_for_patch_put_delete(gateway):
    ops = await bulk_ok(gateway, [
        # the PATCH comes before the POST it refers to, and names another new user as manager
        {"method": "PATCH", "path": "/Users/bulkId:p",
         "data": patch_body(
             {"op": "replace", "path": "displayName", "value": "Patched"},
             {"op": "add", "path": f"{ENTERPRISE}:manager", "value": {"value": "bulkId:m"}})},
        post_user("p", "patch-me", displayName="Original"),
        post_user("m", "manager"),
        post_user("r", "replace-me", displayName="Original"),
        {"method": "PUT", "path": "/Users/bulkId:r",
         "data": {"schemas": [CORE_USER], "userName": "replace-me", "title": "Replaced"}},
        {"method": "DELETE", "path": "/Users/bulkId:d"},
        post_user("d", "delete-me"),
    ])
    assert [o["method"] for o in ops] == ["PATCH", "POST", "POST", "POST", "PUT", "DELETE",
                                          "POST"]
    assert [o["status"] for o in ops] == ["200", "201", "201", "201", "200", "204", "201"]
    p, m, r, d = id_of(ops[1]), id_of(ops[2]), id_of(ops[3]), id_of(ops[6])
    assert id_of(ops[0]) == p
    patched = await assert_matches_resource(gateway, ops[0], "Users")
    assert patched["displayName"] == "Patched"
    assert patched[ENTERPRISE]["manager"]["value"] == m
    assert patched["meta"]["version"] == 'W/"2"'
    assert id_of(ops[4]) == r
    replaced = await assert_matches_resource(gateway, ops[4], "Users")
    assert replaced["title"] == "Replaced"
    assert "displayName" not in replaced
    assert await gone(gateway, f"/Users/{d}")
    assert await users_named(gateway, "delete-me") == {"delete-me": 0}


async def test_group_patch_adds_member_created_later(gateway):
    team = await make_group(gateway, "team")
    ops = await bulk_ok(gateway, [
        {"method": "PATCH", "path": f"/Groups/{team['id']}",
         "data": patch_body({"op": "add", "path": "members",
                             "value": [{"value": "bulkId:new"}]})},
        post_user("new", "newcomer"),
    ])
    assert_op_ok(ops[0], "PATCH", "200")
    assert_op_ok(ops[1], "POST", "201", "new")
    group = await assert_matches_resource(gateway, ops[0], "Groups")
    assert [m["value"] for m in group["members"]] == [id_of(ops[1])]


# circular references ----------------------------------------------------------------------
async def test_two_users_naming_each_other_as_manager(gateway):
    ops = await bulk_ok(gateway, [
        post_managed_user("a", "circle-a", "b"),
        post_user("x", "bystander"),
        post_managed_user("b", "circle-b", "a"),
        post_group("g", "bystanders", member_refs=["x"]),
    ])
    assert len(ops) == 4
    assert_op_error(ops[0], "POST", "409", bulk_id="a")
    assert_op_error(ops[2], "POST", "409", bulk_id="b")
    assert "location" not in ops[0] and "location" not in ops[2]
    assert_op_ok(ops[1], "POST", "201", "x")
    assert_op_ok(ops[3], "POST", "201", "g")
    group = await assert_matches_resource(gateway, ops[3], "Groups")
    assert [m["value"] for m in group["members"]] == [id_of(ops[1])]
    assert await users_named(gateway, "circle-a", "circle-b", "bystander") == {
        "circle-a": 0, "circle-b": 0, "bystander": 1}


async def test_cycle_of_three(gateway):
    ops = await bulk_ok(gateway, [
        post_managed_user("c1", "ring-1", "c2"),
        post_managed_user("c2", "ring-2", "c3"),
        post_user("free", "free-user"),
        post_managed_user("c3", "ring-3", "c1"),
    ])
    for i, bid in ((0, "c1"), (1, "c2"), (3, "c3")):
        assert_op_error(ops[i], "POST", "409", bulk_id=bid)
    assert_op_ok(ops[2], "POST", "201", "free")
    assert await users_named(gateway, "ring-1", "ring-2", "ring-3", "free-user") == {
        "ring-1": 0, "ring-2": 0, "ring-3": 0, "free-user": 1}


async def test_every_operation_of_a_cycle_is_reported_as_circular(gateway):
    # s -> a -> s is a cycle, and so is s -> b -> a -> s: all three are circular, and none
    # of them is a uniqueness problem
    ops = await bulk_ok(gateway, [
        post_group("s", "grp-s", member_refs=["a", "b"]),
        post_group("a", "grp-a", member_refs=["s"]),
        post_group("b", "grp-b", member_refs=["a"]),
    ])
    for op, bid in zip(ops, ("s", "a", "b"), strict=True):
        err = assert_op_error(op, "POST", "409", bulk_id=bid)
        assert err.get("scimType") != "uniqueness", op
        assert "ircular" in err["detail"], op
    for name in ("grp-s", "grp-a", "grp-b"):
        assert await count(gateway, "Groups", "displayName", name) == 0


async def test_operation_depending_on_a_cycle_fails(gateway):
    ops = await bulk_ok(gateway, [
        post_managed_user("dep", "depends-on-ring", "a"),
        post_managed_user("a", "ring-a", "b"),
        post_managed_user("b", "ring-b", "a"),
    ])
    assert_op_error(ops[0], "POST", "409", bulk_id="dep")
    assert_op_error(ops[1], "POST", "409", bulk_id="a")
    assert_op_error(ops[2], "POST", "409", bulk_id="b")
    assert await users_named(gateway, "depends-on-ring", "ring-a", "ring-b") == {
        "depends-on-ring": 0, "ring-a": 0, "ring-b": 0}


async def test_reference_chain_as_long_as_max_operations(gateway):
    # 1000 operations (the default maxOperations), each naming the next as manager, the
    # last one an unknown bulkId: resolving the order must not overflow the stack
    n = 1000
    ops = await bulk_ok(gateway, [post_managed_user(f"c{i}", f"chain-{i}", f"c{i + 1}")
                                  for i in range(n)])
    assert len(ops) == n
    assert [o["bulkId"] for o in ops] == [f"c{i}" for i in range(n)]
    assert_op_error(ops[-1], "POST", "400", "invalidValue", bulk_id=f"c{n - 1}")
    assert {o["status"] for o in ops[:-1]} == {"409"}
    assert await users_named(gateway, "chain-0", f"chain-{n - 1}") == {
        "chain-0": 0, f"chain-{n - 1}": 0}


# bad references and bad operations -----------------------------------------------------
async def test_unknown_bulk_id(gateway):
    ops = await bulk_ok(gateway, [
        post_group("g", "orphans", member_refs=["nobody"]),
        {"method": "DELETE", "path": "/Users/bulkId:nobody"},
        post_user("ok", "fine-user"),
    ])
    assert_op_error(ops[0], "POST", "400", "invalidValue", bulk_id="g")
    assert_op_error(ops[1], "DELETE", "400", "invalidValue")
    assert_op_ok(ops[2], "POST", "201", "ok")
    assert await count(gateway, "Groups", "displayName", "orphans") == 0
    assert await users_named(gateway, "fine-user") == {"fine-user": 1}


async def test_reference_to_failed_operation(gateway):
    await make_user(gateway, "taken")
    ops = await bulk_ok(gateway, [
        post_group("g", "with-failed-member", member_refs=["dup"]),
        post_user("dup", "taken"),
        {"method": "PATCH", "path": "/Users/bulkId:dup",
         "data": patch_body({"op": "replace", "path": "displayName", "value": "x"})},
    ])
    assert_op_error(ops[1], "POST", "409", "uniqueness", bulk_id="dup")
    err = assert_op_error(ops[0], "POST", "409", bulk_id="g")
    # the group's own values are not in use anywhere: its failure is not a uniqueness one
    assert err.get("scimType") != "uniqueness", ops[0]
    assert_op_error(ops[2], "PATCH", "409")
    assert await count(gateway, "Groups", "displayName", "with-failed-member") == 0
    taken = await scim(gateway, "GET", '/Users?filter=userName eq "taken"')
    assert taken[1]["totalResults"] == 1
    assert "displayName" not in taken[1]["Resources"][0]


async def test_duplicate_bulk_ids_refuse_the_request(gateway):
    status, body, _ = await bulk(gateway, [
        post_user("same", "first-of-two"),
        post_user("same", "second-of-two"),
    ])
    assert_scim_error(status, body, 400, "invalidValue")
    assert await users_named(gateway, "first-of-two", "second-of-two") == {
        "first-of-two": 0, "second-of-two": 0}


async def test_post_without_bulk_id(gateway):
    no_id = post_user("x", "no-bulk-id")
    del no_id["bulkId"]
    ops = await bulk_ok(gateway, [no_id, post_user("y", "with-bulk-id")])
    assert_op_error(ops[0], "POST", "400", "invalidValue")
    assert "bulkId" not in ops[0]
    assert_op_ok(ops[1], "POST", "201", "y")
    assert await users_named(gateway, "no-bulk-id", "with-bulk-id") == {
        "no-bulk-id": 0, "with-bulk-id": 1}


async def test_unsupported_paths_fail_alone(gateway):
    user = await make_user(gateway, "existing")
    ops = await bulk_ok(gateway, [
        {"method": "POST", "path": "/Schemas", "bulkId": "s",
         "data": {"schemas": [CORE_USER], "userName": "via-schemas"}},
        {"method": "PATCH", "path": f"/Users/{user['id']}/extra",
         "data": patch_body({"op": "replace", "path": "displayName", "value": "x"})},
        {"method": "DELETE", "path": "Users"},
        post_user("ok", "after-bad-paths"),
    ])
    assert_op_error(ops[0], "POST", "400", "invalidValue", bulk_id="s")
    assert_op_error(ops[1], "PATCH", "400", "invalidValue")
    assert_op_error(ops[2], "DELETE", "400", "invalidValue")
    assert_op_ok(ops[3], "POST", "201", "ok")
    assert await users_named(gateway, "via-schemas", "after-bad-paths") == {
        "via-schemas": 0, "after-bad-paths": 1}
    assert "displayName" not in await get(gateway, f"/Users/{user['id']}")


async def test_bad_operation_shapes_fail_alone_never_500(gateway):
    user = await make_user(gateway, "shapes")
    uid = user["id"]
    bad = [
        {"method": "POST", "path": "/Users", "bulkId": "nodata"},
        {"method": "POST", "path": "/Users", "bulkId": "listdata", "data": ["x"]},
        {"method": "POST", "path": f"/Users/{uid}", "bulkId": "toid",
         "data": {"userName": "posted-to-id"}},
        {"method": "POST", "path": "/Users", "bulkId": "noname", "data": {"displayName": "x"}},
        {"method": "PUT", "path": "/Users", "data": {"userName": "put-to-collection"}},
        {"method": "PUT", "path": f"/Users/{uid}"},
        {"method": "PATCH", "path": f"/Users/{uid}", "data": {"schemas": [PATCH_OP]}},
        {"method": "PATCH", "path": f"/Users/{uid}",
         "data": {"schemas": [PATCH_OP], "Operations": "replace"}},
        {"method": "PATCH", "path": f"/Users/{uid}",
         "data": patch_body({"op": "frobnicate", "path": "displayName", "value": 1})},
        {"method": "DELETE", "path": "/Users/no-such-id"},
        {"method": "DELETE", "path": "/Groups"},
        {"method": "DELETE", "path": f"/Users/{uid}", "version": "not-a-version"},
        {"method": "DELETE", "path": "/Users/" + "x" * 500},
    ]
    ops = await bulk_ok(gateway, bad + [post_user("ok", "shapes-ok")])
    assert len(ops) == len(bad) + 1
    for sent, got in zip(bad, ops[:-1], strict=True):
        assert got["method"] == sent["method"]
        assert got["status"].isdigit() and 400 <= int(got["status"]) < 500, (sent, got)
        assert_op_error(got, sent["method"], got["status"])
    assert ops[9]["status"] == "404"
    assert_op_ok(ops[-1], "POST", "201", "ok")
    after = await get(gateway, f"/Users/{uid}")
    assert after["meta"]["version"] == user["meta"]["version"]
    assert await users_named(gateway, "posted-to-id", "put-to-collection") == {
        "posted-to-id": 0, "put-to-collection": 0}


# failOnErrors ------------------------------------------------------------------------------
async def test_fail_on_errors_1_stops_after_first_error(gateway):
    await make_user(gateway, "taken")
    ops = await bulk_ok(gateway, [
        post_user("a", "foe-a"),
        post_user("b", "taken"),
        post_user("c", "foe-c"),
        post_group("g", "foe-group"),
    ], fail_on_errors=1)
    assert len(ops) == 2
    assert_op_ok(ops[0], "POST", "201", "a")
    assert_op_error(ops[1], "POST", "409", "uniqueness", bulk_id="b")
    assert await users_named(gateway, "foe-a", "foe-c") == {"foe-a": 1, "foe-c": 0}
    assert await count(gateway, "Groups", "displayName", "foe-group") == 0


async def test_fail_on_errors_2_continues_until_second_error(gateway):
    await make_user(gateway, "taken")
    ops = await bulk_ok(gateway, [
        post_user("a", "taken"),
        post_user("b", "foe-b"),
        post_user("c", "taken"),
        post_user("d", "foe-d"),
    ], fail_on_errors=2)
    assert len(ops) == 3
    assert_op_error(ops[0], "POST", "409", bulk_id="a")
    assert_op_ok(ops[1], "POST", "201", "b")
    assert_op_error(ops[2], "POST", "409", bulk_id="c")
    assert await users_named(gateway, "foe-b", "foe-d") == {"foe-b": 1, "foe-d": 0}


async def test_without_fail_on_errors_everything_runs(gateway):
    await make_user(gateway, "taken")
    ops = await bulk_ok(gateway, [
        post_user("a", "taken"),
        post_user("b", "taken"),
        post_user("c", "all-run"),
    ])
    assert [o["status"] for o in ops] == ["409", "409", "201"]
    assert await users_named(gateway, "all-run") == {"all-run": 1}


async def test_fail_on_errors_must_be_positive_integer(gateway):
    for value in (0, -1, "1", True, 1.5):
        status, body, _ = await bulk(gateway, [post_user("a", "never")], fail_on_errors=value)
        assert_scim_error(status, body, 400)
    assert await users_named(gateway, "never") == {"never": 0}


# each operation commits or fails on its own ---------------------------------------------
async def test_failing_patch_leaves_no_half_written_change(gateway):
    user = await make_user(gateway, "half", displayName="Before", title="Old")
    ops = await bulk_ok(gateway, [
        post_user("a", "before-patch"),
        {"method": "PATCH", "path": f"/Users/{user['id']}",
         "data": patch_body(
             {"op": "replace", "path": "displayName", "value": "After"},
             {"op": "replace", "path": "title", "value": "New"},
             {"op": "add", "path": "noSuchAttribute", "value": "boom"})},
        post_user("b", "after-patch"),
    ])
    assert_op_ok(ops[0], "POST", "201", "a")
    assert_op_error(ops[1], "PATCH", "400")
    assert_op_ok(ops[2], "POST", "201", "b")
    now = await get(gateway, f"/Users/{user['id']}")
    assert now["displayName"] == "Before"
    assert now["title"] == "Old"
    assert now["meta"]["version"] == user["meta"]["version"]
    await assert_matches_resource(gateway, ops[0], "Users")
    await assert_matches_resource(gateway, ops[2], "Users")


async def test_failing_group_patch_keeps_members(gateway):
    member = await make_user(gateway, "member")
    team = await make_group(gateway, "kept")
    status, body, _ = await scim(gateway, "PATCH", f"/Groups/{team['id']}", patch_body(
        {"op": "add", "path": "members", "value": [{"value": member["id"]}]}))
    assert status in (200, 204), body
    before = await get(gateway, f"/Groups/{team['id']}")
    ops = await bulk_ok(gateway, [
        {"method": "PATCH", "path": f"/Groups/{team['id']}",
         "data": patch_body({"op": "remove", "path": "members"},
                            {"op": "replace", "path": "displayName", "value": "renamed"},
                            {"op": "replace", "path": "noSuchAttribute", "value": 1})},
    ])
    assert_op_error(ops[0], "PATCH", "400")
    after = await get(gateway, f"/Groups/{team['id']}")
    assert after["displayName"] == "kept"
    assert [m["value"] for m in after["members"]] == [member["id"]]
    assert after["meta"]["version"] == before["meta"]["version"]


# limits --------------------------------------------------------------------------------------
async def test_service_provider_config_advertises_limits(limited, gateway):
    status, body, _ = await scim(limited, "GET", "/ServiceProviderConfig", auth=None)
    assert status == 200, body
    assert body["bulk"] == {"supported": True, "maxOperations": 3, "maxPayloadSize": 2048}
    status, body, _ = await scim(gateway, "GET", "/ServiceProviderConfig", auth=None)
    assert status == 200, body
    assert body["bulk"]["supported"] is True
    assert body["bulk"]["maxOperations"] == 1000
    assert body["bulk"]["maxPayloadSize"] == 8_388_608


async def test_too_many_operations(limited):
    status, body, _ = await bulk(limited, [post_user(f"u{i}", f"many-{i}") for i in range(4)])
    assert_scim_error(status, body, 413)
    assert "3" in body["detail"]  # RFC 7644 §3.7.4: the error names the limit exceeded
    assert await users_named(limited, *(f"many-{i}" for i in range(4))) == {
        f"many-{i}": 0 for i in range(4)}
    ops = await bulk_ok(limited, [post_user(f"u{i}", f"many-{i}") for i in range(3)])
    assert [o["status"] for o in ops] == ["201"] * 3


async def test_payload_too_large(limited):
    big = [post_user("big", "big-user", displayName="x" * 2100)]
    assert len(orjson.dumps({"schemas": [BULK_REQUEST], "Operations": big})) > 2048
    status, body, _ = await bulk(limited, big)
    assert_scim_error(status, body, 413)
    assert "2048" in body["detail"]
    assert await users_named(limited, "big-user") == {"big-user": 0}


async def test_payload_too_large_without_content_length(limited):
    raw = orjson.dumps({"schemas": [BULK_REQUEST],
                        "Operations": [post_user("big", "chunked", displayName="x" * 2100)]})

    async def chunks():
        for i in range(0, len(raw), 512):
            yield raw[i:i + 512]

    resp = await limited.post("/scim2/Bulk", data=chunks(),
                              headers={**ADMIN, "Content-Type": SCIM_JSON})
    body = await resp.json(content_type=None)
    assert_scim_error(resp.status, body, 413)
    assert await users_named(limited, "chunked") == {"chunked": 0}


async def test_bulk_limit_not_general_body_limit_applies(aiohttp_client, make_config, admin_env):
    cfg = await make_config(max_body_bytes=1024, bulk_max_payload_bytes=65536)
    gw = await aiohttp_client(create_app(cfg))
    ops = await bulk_ok(gw, [post_user("w", "wide", displayName="y" * 4000)])
    assert_op_ok(ops[0], "POST", "201", "w")
    assert (await get(gw, f"/Users/{id_of(ops[0])}"))["displayName"] == "y" * 4000


# malformed requests --------------------------------------------------------------------------
async def test_malformed_bodies(gateway):
    cases = [
        b"{not json",
        b"",
        b"[]",
        {"schemas": [BULK_REQUEST]},
        {"schemas": [BULK_REQUEST], "Operations": {"method": "POST"}},
        {"schemas": [BULK_REQUEST], "Operations": None},
        {"schemas": [BULK_REQUEST], "Operations": ["not an object"]},
        {"schemas": [BULK_REQUEST], "Operations": [post_user("a", "never-a"), 42]},
        {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
         "Operations": [post_user("a", "never-a")]},
        {"schemas": BULK_REQUEST, "Operations": [post_user("a", "never-a")]},
        {"schemas": [BULK_REQUEST], "Operations": [
            post_user("a", "never-a"), {"method": "GET", "path": "/Users"}]},
        {"schemas": [BULK_REQUEST], "Operations": [
            post_user("a", "never-a"), {"method": "FROB", "path": "/Users"}]},
        {"schemas": [BULK_REQUEST], "Operations": [
            post_user("a", "never-a"), {"path": "/Users", "bulkId": "b", "data": {}}]},
        {"schemas": [BULK_REQUEST], "Operations": [
            post_user("a", "never-a"), {"method": "DELETE"}]},
        {"schemas": [BULK_REQUEST], "Operations": [
            post_user("a", "never-a"), {"method": "DELETE", "path": 7}]},
        {"schemas": [BULK_REQUEST], "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": 5, "data": {"userName": "never-a"}}]},
        {"schemas": [BULK_REQUEST], "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "", "data": {"userName": "never-a"}}]},
    ]
    for case in cases:
        status, body, _ = await scim(gateway, "POST", "/Bulk", case)
        assert status == 400, (case, status, body)
        assert_scim_error(status, body, 400)
        assert body.get("scimType") in ("invalidSyntax", "invalidValue"), (case, body)
    assert await users_named(gateway, "never-a") == {"never-a": 0}


async def test_wrong_content_type(gateway):
    raw = orjson.dumps({"schemas": [BULK_REQUEST], "Operations": [post_user("a", "xml-a")]})
    resp = await gateway.post("/scim2/Bulk", data=raw,
                              headers={**ADMIN, "Content-Type": "application/xml"})
    body = await resp.json(content_type=None)
    assert_scim_error(resp.status, body, 415)
    assert await users_named(gateway, "xml-a") == {"xml-a": 0}


async def test_bulk_is_post_only(gateway):
    status, body, _ = await scim(gateway, "GET", "/Bulk")
    assert_scim_error(status, body, 405)


# permissions ---------------------------------------------------------------------------------
async def test_reader_cannot_write_through_bulk(gateway):
    victim = await make_user(gateway, "victim", displayName="Intact")
    team = await make_group(gateway, "readers-target")
    status, body, _ = await bulk(gateway, [
        post_user("r", "by-reader"),
        post_group("g", "reader-group", member_refs=["r"]),
        {"method": "PUT", "path": f"/Users/{victim['id']}",
         "data": {"userName": "victim", "displayName": "Overwritten"}},
        {"method": "PATCH", "path": f"/Groups/{team['id']}",
         "data": patch_body({"op": "replace", "path": "displayName", "value": "pwned"})},
        {"method": "DELETE", "path": f"/Users/{victim['id']}"},
    ], auth=READER)
    if status == 200:
        ops = body["Operations"]
        assert len(ops) == 5
        assert ops[0]["status"] == "403"
        assert_op_error(ops[0], "POST", "403", bulk_id="r")
        # the group refers to a failed operation, or is itself refused
        assert ops[1]["status"] in ("403", "409"), ops[1]
        assert_op_error(ops[1], "POST", ops[1]["status"], bulk_id="g")
        assert_op_error(ops[2], "PUT", "403")
        assert_op_error(ops[3], "PATCH", "403")
        assert_op_error(ops[4], "DELETE", "403")
    else:
        assert_scim_error(status, body, 403)
    assert await users_named(gateway, "by-reader") == {"by-reader": 0}
    assert await count(gateway, "Groups", "displayName", "reader-group") == 0
    after = await get(gateway, f"/Users/{victim['id']}")
    assert after["displayName"] == "Intact"
    assert after["meta"]["version"] == victim["meta"]["version"]
    assert (await get(gateway, f"/Groups/{team['id']}"))["displayName"] == "readers-target"


async def test_bulk_needs_authentication(gateway):
    status, body, _ = await bulk(gateway, [post_user("a", "anon")], auth=None)
    assert_scim_error(status, body, 401)
    assert await users_named(gateway, "anon") == {"anon": 0}


async def test_user_creations_written_together_still_fail_one_by_one(gateway):
    """Consecutive user creations share one transaction; a refused one refuses only itself:
    a name already stored, a name twice in the same run, a value the schema refuses."""
    await make_user(gateway, "taken")
    ops = await bulk_ok(gateway, [
        post_user("a", "a-one"),
        post_user("b", "TAKEN"),
        post_user("c", "c-three", title="x" * 20_000),
        post_user("d", "A-ONE"),
        post_user("e", "e-five"),
        post_group("g", "team", ["a", "e"]),
    ])
    assert_op_ok(ops[0], "POST", "201", "a")
    assert_op_error(ops[1], "POST", "409", "uniqueness", "b")
    assert_op_error(ops[2], "POST", "400", "invalidValue", "c")
    assert_op_error(ops[3], "POST", "409", "uniqueness", "d")
    assert_op_ok(ops[4], "POST", "201", "e")
    assert_op_ok(ops[5], "POST", "201", "g")
    assert await users_named(gateway, "a-one", "taken", "c-three", "e-five") == {
        "a-one": 1, "taken": 1, "c-three": 0, "e-five": 1}
    for op in (ops[0], ops[4]):
        await assert_matches_resource(gateway, op, "Users")
    group = await get(gateway, f"/Groups/{id_of(ops[5])}")
    assert {m["value"] for m in group["members"]} == {id_of(ops[0]), id_of(ops[4])}
