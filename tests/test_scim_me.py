"""/Me (RFC 7644 §3.11): the authenticated store user's own resource."""

from dataclasses import replace

import pytest
from conftest import ADMIN, ADMIN_USER, assert_scim_error, basic, scim

from gateway.app import create_app

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
    assert resp.headers["Location"] == body["meta"]["location"]  # RFC 7644 §3.11
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


WSO2 = "urn:scim:wso2:schema"


async def patch_as(gw, path: str, operations: list, auth=ADMIN):
    return await scim(gw, "PATCH", path, {"schemas": [PATCH_OP], "Operations": operations},
                      auth=auth)


async def test_a_disabled_user_no_longer_authenticates(gateway):
    me = await make_user(gateway, "alice", "alice-pw-1")
    auth = basic("alice", "alice-pw-1")
    status, body, _ = await scim(gateway, "GET", "/Me", auth=auth)
    assert status == 200, body  # now remembered by the process
    # deprovisioned the way Entra ID and Okta do it
    status, body, _ = await patch_as(gateway, f"/Users/{me['id']}",
                                     [{"op": "replace", "path": "active", "value": False}])
    assert status == 200 and body["active"] is False, body
    status, body, _ = await scim(gateway, "GET", "/Me", auth=auth)
    assert_scim_error(status, body, 401)
    # and cannot turn itself back on
    status, body, _ = await patch_as(gateway, "/Me", [{"op": "replace", "path": "active",
                                                       "value": True}], auth=auth)
    assert_scim_error(status, body, 401)
    status, body, _ = await scim(gateway, "GET", f"/Users/{me['id']}")
    assert body["active"] is False
    # a wrong password is answered the same way
    status, wrong, _ = await scim(gateway, "GET", "/Me", auth=basic("alice", "nope"))
    assert_scim_error(status, wrong, 401)
    # an administrator turns it on again
    status, body, _ = await patch_as(gateway, f"/Users/{me['id']}",
                                     [{"op": "replace", "path": "active", "value": True}])
    assert status == 200, body
    status, body, _ = await scim(gateway, "GET", "/Me", auth=auth)
    assert status == 200, body


async def test_disabled_and_wrong_password_are_the_same_refusal(gateway):
    me = await make_user(gateway, "alice", "alice-pw-1")
    status, body, _ = await scim(gateway, "PUT", f"/Users/{me['id']}",
                                 {"userName": "alice", "active": False})
    assert status == 200, body
    status, disabled, _ = await scim(gateway, "GET", "/Me", auth=basic("alice", "alice-pw-1"))
    status2, wrong, _ = await scim(gateway, "GET", "/Me", auth=basic("alice", "wrong-pw-1"))
    status3, unknown, _ = await scim(gateway, "GET", "/Me", auth=basic("nobody", "wrong-pw-1"))
    assert status == status2 == status3 == 401
    assert disabled == wrong == unknown


async def test_wso2_locked_or_disabled_accounts_do_not_authenticate(gateway):
    me = await make_user(gateway, "alice", "alice-pw-1")
    auth = basic("alice", "alice-pw-1")
    for attr in ("accountLocked", "accountDisabled"):
        status, body, _ = await patch_as(gateway, f"/Users/{me['id']}", [
            {"op": "replace", "path": f"{WSO2}:{attr}", "value": True}])
        assert status == 200 and body[WSO2][attr] is True, body
        status, body, _ = await scim(gateway, "GET", "/Me", auth=auth)
        assert_scim_error(status, body, 401)
        status, body, _ = await patch_as(gateway, f"/Users/{me['id']}", [
            {"op": "replace", "path": f"{WSO2}:{attr}", "value": False}])
        assert status == 200, body
        status, body, _ = await scim(gateway, "GET", "/Me", auth=auth)
        assert status == 200, body


@pytest.mark.parametrize("operation", [
    pytest.param({"op": "add", "path": "roles", "value": [{"value": "admin"}]}, id="roles"),
    pytest.param({"op": "add", "path": "entitlements", "value": [{"value": "all"}]},
                 id="entitlements"),
    pytest.param({"op": "replace", "path": f"{WSO2}:accountLocked", "value": False},
                 id="accountLocked"),
    pytest.param({"op": "replace", "path": f"{WSO2}:accountDisabled", "value": False},
                 id="accountDisabled"),
    pytest.param({"op": "replace", "path": "active", "value": True}, id="active"),
    pytest.param({"op": "replace", "path": "userName", "value": "root"}, id="userName"),
    pytest.param({"op": "replace", "path": "externalId", "value": "x-1"}, id="externalId"),
    pytest.param({"op": "replace", "value": {"title": "ok", "userType": "Admin"}},
                 id="allowed-and-not-together"),
])
async def test_me_cannot_change_what_self_service_does_not_allow(gateway, operation):
    me = await make_user(gateway, "alice", "alice-pw-1")
    auth = basic("alice", "alice-pw-1")
    status, body, _ = await patch_as(gateway, "/Me", [operation], auth=auth)
    assert_scim_error(status, body, 403)
    assert "of its own account" in body["detail"]
    status, after, _ = await scim(gateway, "GET", f"/Users/{me['id']}")
    assert after["meta"]["version"] == me["meta"]["version"]
    assert after["userName"] == "alice" and after["title"] == "before"
    # PUT cannot do it either
    rep = {"userName": "alice", "title": "before", "roles": [{"value": "admin"}]}
    status, body, _ = await scim(gateway, "PUT", "/Me", rep, auth=auth)
    assert_scim_error(status, body, 403)
    status, after, _ = await scim(gateway, "GET", f"/Users/{me['id']}")
    assert after["meta"]["version"] == me["meta"]["version"]


async def test_me_changes_its_profile_and_password(gateway):
    await make_user(gateway, "alice", "alice-pw-1")
    auth = basic("alice", "alice-pw-1")
    status, body, _ = await patch_as(gateway, "/Me", [
        {"op": "add", "path": "emails", "value": [{"value": "alice@example.com"}]},
        {"op": "add", "path": "phoneNumbers", "value": [{"value": "+1 555 0100"}]},
        {"op": "replace", "path": "name.givenName", "value": "Alice"},
        {"op": "replace", "path": "displayName", "value": "Alice A."}], auth=auth)
    assert status == 200, body
    assert body["emails"][0]["value"] == "alice@example.com"
    assert body["name"]["givenName"] == "Alice" and body["displayName"] == "Alice A."


async def test_self_service_attributes_are_configurable(aiohttp_client, make_config, admin_env):
    cfg = await make_config()
    cfg = replace(cfg, self_service_attributes=frozenset({"nickname"}))
    client = await aiohttp_client(create_app(cfg))
    await make_user(client, "alice", "alice-pw-1")
    auth = basic("alice", "alice-pw-1")
    status, body, _ = await patch_as(client, "/Me", [
        {"op": "replace", "path": "nickName", "value": "al"}], auth=auth)
    assert status == 200, body
    status, body, _ = await patch_as(client, "/Me", [
        {"op": "replace", "path": "displayName", "value": "Al"}], auth=auth)
    assert_scim_error(status, body, 403)


async def test_a_user_disabled_through_another_worker_is_refused_within_a_second(
        aiohttp_client, make_config, admin_env):
    """Two gateways on one database (two workers): a login remembered by one ends soon
    after the other disables the user (not after [auth] cache_seconds)."""
    import asyncio

    cfg = await make_config()
    first = await aiohttp_client(create_app(cfg))
    second = await aiohttp_client(create_app(cfg))
    me = await make_user(first, "alice", "alice-pw-1")
    auth = basic("alice", "alice-pw-1")
    status, body, _ = await scim(second, "GET", "/Me", auth=auth)
    assert status == 200, body  # now remembered by the second
    status, body, _ = await patch_as(first, f"/Users/{me['id']}",
                                     [{"op": "replace", "path": "active", "value": False}])
    assert status == 200, body
    await asyncio.sleep(1.2)  # the second looks at the shared counter once a second
    status, body, _ = await scim(second, "GET", "/Me", auth=auth)
    assert_scim_error(status, body, 401)
