"""/Me (RFC 7644 §3.11): the authenticated store user's own resource."""

from conftest import ADMIN, ADMIN_USER, assert_scim_error, basic, scim

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


async def make_user(gw, name: str, password: str) -> dict:
    status, body, _ = await scim(gw, "POST", "/Users", {"userName": name, "password": password,
                                                        "title": "before"})
    assert status == 201, body
    return body


async def test_me_reads_and_updates_own_user_without_permissions(gateway):
    me = await make_user(gateway, "alice", "alice-pw-1")
    auth = basic("alice", "alice-pw-1")
    # alice holds no role: she may not list users ...
    status, body, _ = await scim(gateway, "GET", "/Users", auth=auth)
    assert_scim_error(status, body, 403)
    # ... but she reads herself
    status, body, resp = await scim(gateway, "GET", "/Me", auth=auth)
    assert status == 200, body
    assert body["id"] == me["id"] and body["userName"] == "alice"
    assert body["meta"]["location"].endswith(f"/Users/{me['id']}")
    assert resp.headers["ETag"] == me["meta"]["version"]
    assert "password" not in body
    # and changes her own profile
    status, body, _ = await scim(gateway, "PATCH", "/Me", {
        "schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "title",
                                               "value": "after"}]}, auth=auth)
    assert status == 200, body
    assert body["title"] == "after"
    status, body, _ = await scim(gateway, "PUT", "/Me", {"userName": "alice",
                                                         "nickName": "al"}, auth=auth)
    assert status == 200, body
    assert body["nickName"] == "al" and "title" not in body
    status, body, _ = await scim(gateway, "GET", f"/Users/{me['id']}")
    assert body["nickName"] == "al"


async def test_me_cannot_reach_other_users(gateway):
    await make_user(gateway, "alice", "alice-pw-1")
    bob = await make_user(gateway, "bob", "bob-pw-1")
    auth = basic("alice", "alice-pw-1")
    status, body, _ = await scim(gateway, "GET", f"/Users/{bob['id']}", auth=auth)
    assert_scim_error(status, body, 403)
    status, body, _ = await scim(gateway, "PATCH", f"/Users/{bob['id']}", {
        "Operations": [{"op": "replace", "path": "title", "value": "x"}]}, auth=auth)
    assert_scim_error(status, body, 403)


async def test_me_password_change_and_delete_needs_permission(gateway):
    await make_user(gateway, "alice", "alice-pw-1")
    auth = basic("alice", "alice-pw-1")
    status, body, _ = await scim(gateway, "PATCH", "/Me", {
        "Operations": [{"op": "replace", "path": "password", "value": "alice-pw-2"}]},
        auth=auth)
    assert status == 200, body
    status, body, _ = await scim(gateway, "GET", "/Me", auth=auth)
    assert_scim_error(status, body, 401)
    auth = basic("alice", "alice-pw-2")
    status, body, _ = await scim(gateway, "DELETE", "/Me", auth=auth)
    assert_scim_error(status, body, 403)
    status, body, _ = await scim(gateway, "GET", "/Me", auth=auth)
    assert status == 200, body


async def test_me_delete_with_permission(gateway):
    auth = basic(*ADMIN_USER)  # the bootstrap admin: every permission
    status, body, _ = await scim(gateway, "DELETE", "/Me", auth=auth)
    assert status == 204, body
    status, body, _ = await scim(gateway, "GET", f'/Users?filter=userName eq "{ADMIN_USER[0]}"')
    assert body["totalResults"] == 0


async def test_me_is_501_for_api_clients(gateway):
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        status, body, _ = await scim(gateway, method, "/Me",
                                     None if method in ("GET", "DELETE") else {"userName": "x"},
                                     auth=ADMIN)
        assert_scim_error(status, body, 501)
    status, body, _ = await scim(gateway, "GET", "/Me", auth=None)
    assert_scim_error(status, body, 401)
