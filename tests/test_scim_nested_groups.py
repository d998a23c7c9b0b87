"""Groups in groups: a user's `groups` lists direct and indirect memberships; no cycles."""

from conftest import ADMIN_USER, assert_scim_error, basic, scim

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


async def create(gw, path, body):
    status, out, _ = await scim(gw, "POST", path, body)
    assert status == 201, out
    return out


async def add_members(gw, gid, *ids):
    status, body, _ = await scim(gw, "PATCH", f"/Groups/{gid}", {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": i} for i in ids]}]})
    return status, body


async def groups_of(gw, uid) -> dict[str, str]:
    status, user, _ = await scim(gw, "GET", f"/Users/{uid}")
    assert status == 200, user
    return {g["display"]: g["type"] for g in user.get("groups", [])}


async def test_user_groups_include_indirect_memberships(gateway):
    alice = await create(gateway, "/Users", {"userName": "alice"})
    team = await create(gateway, "/Groups", {"displayName": "team",
                                             "members": [{"value": alice["id"]}]})
    dept = await create(gateway, "/Groups", {"displayName": "dept",
                                             "members": [{"value": team["id"]}]})
    org = await create(gateway, "/Groups", {"displayName": "org"})
    assert await groups_of(gateway, alice["id"]) == {"team": "direct", "dept": "indirect"}
    status, body = await add_members(gateway, org["id"], dept["id"])
    assert status == 204, body
    assert await groups_of(gateway, alice["id"]) == {
        "team": "direct", "dept": "indirect", "org": "indirect"}
    # a direct membership wins over an indirect one to the same group
    status, body = await add_members(gateway, org["id"], alice["id"])
    assert status == 204, body
    assert (await groups_of(gateway, alice["id"]))["org"] == "direct"
    # the group's own members stay direct only
    status, got, _ = await scim(gateway, "GET", f"/Groups/{org['id']}")
    assert {m["value"] for m in got["members"]} == {dept["id"], alice["id"]}
    # leaving the middle group drops what came through it
    status, body, _ = await scim(gateway, "PATCH", f"/Groups/{dept['id']}", {
        "schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": "members"}]})
    assert status == 204, body
    assert await groups_of(gateway, alice["id"]) == {"team": "direct", "org": "direct"}


async def test_cycles_are_refused(gateway):
    a = await create(gateway, "/Groups", {"displayName": "a"})
    b = await create(gateway, "/Groups", {"displayName": "b", "members": [{"value": a["id"]}]})
    c = await create(gateway, "/Groups", {"displayName": "c", "members": [{"value": b["id"]}]})
    status, body = await add_members(gateway, a["id"], c["id"])
    assert_scim_error(status, body, 400, "invalidValue")
    assert "cycle" in body["detail"]
    status, body, _ = await scim(gateway, "PUT", f"/Groups/{b['id']}", {
        "displayName": "b", "members": [{"value": a["id"]}, {"value": c["id"]}]})
    assert_scim_error(status, body, 400, "invalidValue")
    status, got, _ = await scim(gateway, "GET", f"/Groups/{a['id']}")
    assert got.get("members", []) == []
    status, got, _ = await scim(gateway, "GET", f"/Groups/{b['id']}")
    assert [m["value"] for m in got["members"]] == [a["id"]]


async def test_roles_come_through_nested_groups(aiohttp_client, make_config, admin_env):
    from gateway.app import create_app

    cfg = await make_config(roles={"admin": ("*",), "readers": ("users:list",)},
                            auth_cache_seconds=0)
    gw = await aiohttp_client(create_app(cfg))
    await create(gw, "/Users", {"userName": "bob", "password": "bob-pw-12"})
    bob = basic("bob", "bob-pw-12")
    status, body, _ = await scim(gw, "GET", "/Users", auth=bob)
    assert_scim_error(status, body, 403)
    status, users, _ = await scim(gw, "GET", '/Users?filter=userName eq "bob"')
    bob_id = users["Resources"][0]["id"]
    eng = await create(gw, "/Groups", {"displayName": "eng", "members": [{"value": bob_id}]})
    await create(gw, "/Groups", {"displayName": "readers", "members": [{"value": eng["id"]}]})
    status, body, _ = await scim(gw, "GET", "/Users", auth=bob)
    assert status == 200, body
    status, body, _ = await scim(gw, "POST", "/Users", {"userName": "x"}, auth=bob)
    assert_scim_error(status, body, 403)
    assert ADMIN_USER  # the bootstrap admin is untouched by all this
