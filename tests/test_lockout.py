"""Failed logins: account lockout (WSO2's accountLocked/unlockTime) and throttling by
account name and source address, shared by every worker on one database."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from conftest import assert_scim_error, basic, scim

from gateway.app import create_app
from gateway.config import SecurityConfig

WSO2 = "urn:scim:wso2:schema"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SOAP_V2 = "/services/RemoteUserStoreManagerServiceV2"


@pytest.fixture
def secure(aiohttp_client, make_config, admin_env):
    """A factory: gateways (one or more, on one database) with these [security] settings."""

    async def make(count: int = 1, **settings):
        cfg = replace(await make_config(), security=SecurityConfig(**settings))
        return [await aiohttp_client(create_app(cfg)) for _ in range(count)]

    return make


async def add_user(gw, name: str = "alice", password: str = "Alice-pw-1") -> dict:  # noqa: S107
    status, body, _ = await scim(gw, "POST", "/Users", {"userName": name, "password": password})
    assert status == 201, body
    return body


async def me(gw, name: str, password: str) -> tuple[int, dict]:
    status, body, _ = await scim(gw, "GET", "/Me", auth=basic(name, password))
    return status, body


async def test_consecutive_failures_lock_the_account_until_an_admin_unlocks_it(secure):
    (gw,) = await secure(lockout_attempts=3, lockout_seconds=600)
    user = await add_user(gw)
    assert (await me(gw, "alice", "Alice-pw-1"))[0] == 200
    for _ in range(3):
        status, body = await me(gw, "alice", "wrong-pw")
        assert_scim_error(status, body, 401)
    # locked: the right password is refused like a wrong one
    status, body = await me(gw, "alice", "Alice-pw-1")
    assert_scim_error(status, body, 401)
    status, got, _ = await scim(gw, "GET", f"/Users/{user['id']}")
    assert got[WSO2]["accountLocked"] is True
    assert int(got[WSO2]["unlockTime"]) > 0
    # an administrator unlocks it, the way WSO2's clients do
    status, body, _ = await scim(gw, "PATCH", f"/Users/{user['id']}", {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": f"{WSO2}:accountLocked", "value": False}]})
    assert status == 200, body
    assert (await me(gw, "alice", "Alice-pw-1"))[0] == 200
    # and the count started afresh: two failures do not lock it again
    for _ in range(2):
        assert (await me(gw, "alice", "wrong-pw"))[0] == 401
    assert (await me(gw, "alice", "Alice-pw-1"))[0] == 200


async def test_a_lockout_ends_by_itself(secure):
    (gw,) = await secure(lockout_attempts=2, lockout_seconds=1, lockout_max_seconds=10)
    user = await add_user(gw)
    for _ in range(2):
        assert (await me(gw, "alice", "wrong-pw"))[0] == 401
    assert (await me(gw, "alice", "Alice-pw-1"))[0] == 401
    await asyncio.sleep(1.2)
    assert (await me(gw, "alice", "Alice-pw-1"))[0] == 200
    status, got, _ = await scim(gw, "GET", f"/Users/{user['id']}")
    assert got.get(WSO2, {}).get("accountLocked") is not True


async def test_no_lockout_when_switched_off(secure):
    (gw,) = await secure(lockout_attempts=0, account_burst=50)
    await add_user(gw)
    for _ in range(8):
        assert (await me(gw, "alice", "wrong-pw"))[0] == 401
    assert (await me(gw, "alice", "Alice-pw-1"))[0] == 200


async def test_failures_of_an_account_name_are_throttled(secure):
    (gw,) = await secure(lockout_attempts=0, account_burst=4, account_per_minute=1)
    for _ in range(4):
        status, body = await me(gw, "nobody", "guess")
        assert_scim_error(status, body, 401)
    status, body = await me(gw, "nobody", "guess")
    assert_scim_error(status, body, 429)
    # another name from the same address is not held back by it
    await add_user(gw)
    assert (await me(gw, "alice", "Alice-pw-1"))[0] == 200


async def test_failures_from_an_address_are_throttled(secure):
    (gw,) = await secure(lockout_attempts=0, address_burst=5, address_per_minute=1)
    for i in range(5):
        assert (await me(gw, f"name{i}", "guess"))[0] == 401
    status, body = await me(gw, "another", "guess")
    assert_scim_error(status, body, 429)
    # over SOAP as well: a Client fault
    resp = await gw.post(SOAP_V2, headers={**basic("another", "guess"),
                                           "Content-Type": "text/xml; charset=utf-8",
                                           "SOAPAction": "urn:isExistingUser"}, data=(
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:ser="http://service.ws.um.carbon.wso2.org"><soapenv:Body><ser:isExistingUser>'
        "<ser:userName>x</ser:userName></ser:isExistingUser></soapenv:Body></soapenv:Envelope>"))
    text = await resp.text()
    assert resp.status == 500 and "soapenv:Client" in text and "Too many" in text, text


async def test_api_clients_are_throttled_by_address(secure):
    from conftest import ADMIN_CLIENT

    (gw,) = await secure(address_burst=3, address_per_minute=1)
    wrong = basic(ADMIN_CLIENT[0], "not-the-secret")
    for _ in range(3):
        status, body, _ = await scim(gw, "GET", "/Users", auth=wrong)
        assert_scim_error(status, body, 401)
    status, body, _ = await scim(gw, "GET", "/Users", auth=wrong)
    assert_scim_error(status, body, 429)


async def test_failures_count_across_workers(secure):
    first, second = await secure(2, lockout_attempts=4, lockout_seconds=600)
    user = await add_user(first)
    for gw in (first, second, first, second):
        assert (await me(gw, "alice", "wrong-pw"))[0] == 401
    for gw in (first, second):
        assert (await me(gw, "alice", "Alice-pw-1"))[0] == 401
    status, got, _ = await scim(second, "GET", f"/Users/{user['id']}")
    assert got[WSO2]["accountLocked"] is True


async def test_a_put_that_leaves_the_state_out_keeps_it(secure):
    """A client that knows nothing of WSO2's extension (Okta replaces users with PUT) does
    not unlock, enable or restart the password age of an account by leaving them out."""
    (gw,) = await secure(lockout_attempts=2, lockout_seconds=600)
    user = await add_user(gw)
    for _ in range(2):
        assert (await me(gw, "alice", "wrong-pw"))[0] == 401
    status, body, _ = await scim(gw, "PUT", f"/Users/{user['id']}", {
        "userName": "alice", "displayName": "Alice Replaced"})
    assert status == 200, body
    assert body["displayName"] == "Alice Replaced"
    assert body[WSO2]["accountLocked"] is True and int(body[WSO2]["unlockTime"]) > 0
    assert (await me(gw, "alice", "Alice-pw-1"))[0] == 401
    # disabled by an administrator: the same
    status, body, _ = await scim(gw, "PUT", f"/Users/{user['id']}", {
        "userName": "alice", WSO2: {"accountLocked": False, "accountDisabled": True}})
    assert status == 200 and body[WSO2]["accountDisabled"] is True, body
    status, body, _ = await scim(gw, "PUT", f"/Users/{user['id']}", {"userName": "alice"})
    assert body[WSO2] == {"accountLocked": False, "accountDisabled": True}, body
    assert (await me(gw, "alice", "Alice-pw-1"))[0] == 401
    # given explicitly, the state changes
    status, body, _ = await scim(gw, "PUT", f"/Users/{user['id']}", {
        "userName": "alice", WSO2: {"accountDisabled": False}})
    assert status == 200, body
    assert (await me(gw, "alice", "Alice-pw-1"))[0] == 200
