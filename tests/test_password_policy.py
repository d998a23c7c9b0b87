"""The password policy ([passwords] min_length, max_length, min_classes, pattern), on
every path that sets a password, with SCIM's 400 and WSO2's coded SOAP fault."""

from __future__ import annotations

from dataclasses import replace

import pytest
from conftest import ADMIN, assert_scim_error, basic, scim
from test_soap_security import V2, call, client_fault, op, returns

from gateway.app import create_app
from gateway.config import PasswordConfig
from gateway.errors import ConfigError
from gateway.settings import load

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
FAST = dict(time_cost=1, memory_cost_kib=8, parallelism=1)


@pytest.fixture
def policy_gateway(aiohttp_client, make_config, admin_env):
    async def make(**policy):
        cfg = replace(await make_config(), passwords=PasswordConfig(**FAST, **policy))
        return await aiohttp_client(create_app(cfg))

    return make


async def test_wso2_preset_on_scim_bulk_and_soap(policy_gateway):
    gw = await policy_gateway(pattern="wso2")
    # SCIM POST, PUT, PATCH
    status, body, _ = await scim(gw, "POST", "/Users", {"userName": "a", "password": "abc"})
    assert_scim_error(status, body, 400, "invalidValue")
    assert "^[\\S]{5,30}$" in body["detail"]
    status, body, _ = await scim(gw, "POST", "/Users", {"userName": "a", "password": "has space"})
    assert_scim_error(status, body, 400, "invalidValue")
    status, user, _ = await scim(gw, "POST", "/Users", {"userName": "a", "password": "Good-pw1"})
    assert status == 201, user
    status, body, _ = await scim(gw, "PATCH", f"/Users/{user['id']}", {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": "password", "value": "x" * 31}]})
    assert_scim_error(status, body, 400, "invalidValue")
    status, body, _ = await scim(gw, "PUT", f"/Users/{user['id']}",
                                 {"userName": "a", "password": "no"})
    assert_scim_error(status, body, 400, "invalidValue")
    # Bulk: that operation fails, the others do not
    status, body, _ = await scim(gw, "POST", "/Bulk", {"schemas": [BULK], "Operations": [
        {"method": "POST", "path": "/Users", "bulkId": "b1",
         "data": {"userName": "b1", "password": "bad"}},
        {"method": "POST", "path": "/Users", "bulkId": "b2",
         "data": {"userName": "b2", "password": "Fine-pw-2"}}]})
    assert status == 200, body
    statuses = [o["status"] for o in body["Operations"]]
    assert statuses[0].startswith("400") and statuses[1].startswith("201"), body
    # SOAP: WSO2's coded fault
    status, text, _ = await call(gw, op("addUser", ("userName", "s"), ("credential", "abc")),
                                 path=V2)
    reason = client_fault(status, text, v2=True)
    assert reason.startswith("30003 - "), reason
    assert "errorCode>30003<" in text
    status, text, _ = await call(gw, op("updateCredentialByAdmin", ("userName", "a"),
                                        ("newCredential", "abc")), path=V2)
    assert client_fault(status, text, v2=True).startswith("30003 - ")
    status, text, _ = await call(gw, op("isExistingUser", ("userName", "s")), path=V2)
    assert returns(text) == ["false"]


async def test_length_and_classes(policy_gateway):
    gw = await policy_gateway(min_length=10, max_length=20, min_classes=3)
    for bad in ("Sh0rt!", "alllowercaseletters", "ALLUPPER1234567", "x" * 21):
        status, body, _ = await scim(gw, "POST", "/Users", {"userName": "u", "password": bad})
        assert_scim_error(status, body, 400, "invalidValue")
    status, body, _ = await scim(gw, "POST", "/Users", {"userName": "u",
                                                        "password": "Three-kinds-ok"})
    assert status == 201, body


async def test_existing_passwords_still_work_when_the_policy_tightens(aiohttp_client,
                                                                      make_config, admin_env):
    cfg = await make_config()
    gw = await aiohttp_client(create_app(cfg))
    status, body, _ = await scim(gw, "POST", "/Users", {"userName": "old", "password": "abc"})
    assert status == 201, body
    strict = replace(cfg, passwords=PasswordConfig(**FAST, pattern="wso2", min_length=5))
    gw2 = await aiohttp_client(create_app(strict))
    status, body, _ = await scim(gw2, "GET", "/Me", auth=basic("old", "abc"))
    assert status == 200, body


def test_config_is_checked(tmp_path):
    for text, words in (('[passwords]\npattern = "(unclosed"\n', "regular expression"),
                        ("[passwords]\nmin_classes = 5\n", "min_classes"),
                        ("[passwords]\nmin_length = 0\n", "min_length")):
        path = tmp_path / "gw.toml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError, match=words):
            load(str(path), environ={})


async def test_maximum_age(policy_gateway):
    """[passwords] max_age_days: WSO2's lastPasswordUpdateTime is kept, answered by
    getPasswordExpirationTime, and a password older than the maximum no longer signs in."""
    import time

    gw = await policy_gateway(max_age_days=30)
    status, user, _ = await scim(gw, "POST", "/Users", {"userName": "aged",
                                                        "password": "Aged-pw-1"})
    assert status == 201, user
    stamped = int(user["urn:scim:wso2:schema"]["lastPasswordUpdateTime"])
    assert abs(stamped - time.time() * 1000) < 60_000
    status, text, _ = await call(gw, op("getPasswordExpirationTime", ("username", "aged")),
                                 path=V2)
    assert status == 200 and int(returns(text)[0]) == stamped + 30 * 86_400_000, text
    assert (await scim(gw, "GET", "/Me", auth=basic("aged", "Aged-pw-1")))[0] == 200
    # set 31 days ago (an administrator may write it, as WSO2's claim): expired
    old = str(int(time.time() * 1000) - 31 * 86_400_000)
    status, body, _ = await scim(gw, "PATCH", f"/Users/{user['id']}", {
        "schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {
            "urn:scim:wso2:schema": {"lastPasswordUpdateTime": old}}}]})
    assert status == 200, body
    status, body, _ = await scim(gw, "GET", "/Me", auth=basic("aged", "Aged-pw-1"))
    assert_scim_error(status, body, 401)
    # the user changes it with the expired one (SOAP updateCredential), which starts the
    # clock again; so does an administrator's new password
    status, text, _ = await call(gw, op("updateCredential", ("userName", "aged"),
                                        ("newCredential", "Aged-pw-2"),
                                        ("oldCredential", "Aged-pw-1")), path=V2)
    assert status == 200, text
    assert (await scim(gw, "GET", "/Me", auth=basic("aged", "Aged-pw-2")))[0] == 200
    status, body, _ = await scim(gw, "PATCH", f"/Users/{user['id']}", {
        "schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {
            "urn:scim:wso2:schema": {"lastPasswordUpdateTime": old}}}]})
    assert (await scim(gw, "GET", "/Me", auth=basic("aged", "Aged-pw-2")))[0] == 401
    status, text, _ = await call(gw, op("updateCredentialByAdmin", ("userName", "aged"),
                                        ("newCredential", "Aged-pw-3")), path=V2)
    assert status == 200, text
    assert (await scim(gw, "GET", "/Me", auth=basic("aged", "Aged-pw-3")))[0] == 200


async def test_no_maximum_age_is_minus_one_and_adds_nothing(policy_gateway):
    gw = await policy_gateway()
    status, user, _ = await scim(gw, "POST", "/Users", {"userName": "young",
                                                        "password": "Young-pw-1"})
    assert "urn:scim:wso2:schema" not in user
    status, text, _ = await call(gw, op("getPasswordExpirationTime", ("username", "young")),
                                 path=V2)
    assert returns(text) == ["-1"], text


async def test_history_refuses_the_last_passwords_on_every_path(policy_gateway):
    """[passwords] history = 3: the current password and the two before it are refused
    (SCIM 400 invalidValue; over SOAP WSO2's 22001), an older one is allowed again."""
    gw = await policy_gateway(history=3)
    status, user, _ = await scim(gw, "POST", "/Users", {"userName": "h", "password": "Pw-one-1"})
    assert status == 201, user
    uid = user["id"]

    async def patch(password):
        return await scim(gw, "PATCH", f"/Users/{uid}", {"schemas": [PATCH_OP], "Operations": [
            {"op": "replace", "path": "password", "value": password}]})

    status, body, _ = await patch("Pw-one-1")  # the current one
    assert_scim_error(status, body, 400, "invalidValue")
    assert "recent history" in body["detail"]
    assert (await patch("Pw-two-2"))[0] == 200
    status, body, _ = await scim(gw, "PUT", f"/Users/{uid}", {"userName": "h",
                                                               "password": "Pw-one-1"})
    assert_scim_error(status, body, 400, "invalidValue")
    status, text, _ = await call(gw, op("updateCredentialByAdmin", ("userName", "h"),
                                        ("newCredential", "Pw-one-1")), path=V2)
    assert client_fault(status, text, v2=True).startswith("22001 - "), text
    status, text, _ = await call(gw, op("updateCredential", ("userName", "h"),
                                        ("newCredential", "Pw-two-2"),
                                        ("oldCredential", "Pw-two-2")), path=V2)
    assert client_fault(status, text, v2=True).startswith("22001 - "), text
    assert (await scim(gw, "GET", "/Me", auth=basic("h", "Pw-two-2")))[0] == 200
    status, text, _ = await call(gw, op("updateCredential", ("userName", "h"),
                                        ("newCredential", "Pw-three-3"),
                                        ("oldCredential", "Pw-two-2")), path=V2)
    assert status == 200, text
    # one, two, three are the last three; a fourth pushes the first out
    for again in ("Pw-one-1", "Pw-two-2", "Pw-three-3"):
        assert (await patch(again))[0] == 400, again
    assert (await patch("Pw-four-4"))[0] == 200
    assert (await patch("Pw-one-1"))[0] == 200
    assert (await scim(gw, "GET", "/Me", auth=basic("h", "Pw-one-1")))[0] == 200
    # the history goes with the account: a new account of the same name starts afresh
    assert (await scim(gw, "DELETE", f"/Users/{uid}"))[0] == 204
    status, user, _ = await scim(gw, "POST", "/Users", {"userName": "h", "password": "Pw-two-2"})
    assert status == 201, user


async def test_history_is_shared_by_gateways_on_one_database(aiohttp_client, make_config,
                                                             admin_env):
    """Two gateways (processes, hosts) on one database see the same history."""
    cfg = replace(await make_config(), passwords=PasswordConfig(**FAST, history=2))
    one = await aiohttp_client(create_app(cfg))
    two = await aiohttp_client(create_app(cfg, bootstrap=False))
    status, user, _ = await scim(one, "POST", "/Users", {"userName": "s", "password": "Pw-a-1"})
    assert status == 201, user
    body = {"schemas": [PATCH_OP], "Operations": [
        {"op": "replace", "path": "password", "value": "Pw-b-2"}]}
    assert (await scim(one, "PATCH", f"/Users/{user['id']}", body))[0] == 200
    body["Operations"][0]["value"] = "Pw-a-1"
    status, err, _ = await scim(two, "PATCH", f"/Users/{user['id']}", body)
    assert_scim_error(status, err, 400, "invalidValue")


def test_history_depth_is_checked(tmp_path):
    path = tmp_path / "gw.toml"
    path.write_text("[passwords]\nhistory = 25\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="history"):
        load(str(path), environ={})


async def test_the_operators_bootstrap_password_is_not_held_to_the_history(
        aiohttp_client, make_config, admin_env):
    """GATEWAY_ADMIN_PASSWORD is the operator's: a start sets it back even when it is one
    of the administrator's recent passwords (and the change is in the audit trail)."""
    from conftest import ADMIN_USER

    cfg = replace(await make_config(), passwords=PasswordConfig(**FAST, history=3))
    gw = await aiohttp_client(create_app(cfg))
    status, body, _ = await scim(gw, "GET", f'/Users?filter=userName eq "{ADMIN_USER[0]}"')
    uid = body["Resources"][0]["id"]
    status, body, _ = await scim(gw, "PATCH", f"/Users/{uid}", {"schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": "password", "value": "Changed-pw-9"}]})
    assert status == 200, body
    again = await aiohttp_client(create_app(cfg))  # a restart, same environment
    assert (await scim(again, "GET", "/Me", auth=basic(*ADMIN_USER)))[0] == 200
    resp = await again.get("/admin/audit", params={"actor": "system",
                                                   "operation": "ChangePassword"},
                           headers=ADMIN)
    [event] = (await resp.json())["events"]
    assert event["target"] == ADMIN_USER[0] and event["outcome"] == "success"
