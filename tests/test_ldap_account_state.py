"""The directory's own account state on an LDAP store: a user that OpenLDAP's ppolicy
(``pwdAccountLockedTime``) or Active Directory (``userAccountControl`` ACCOUNTDISABLE,
``lockoutTime``) keeps out is refused at sign-in (HTTP Basic, SOAP ``authenticate``)
with the answer a wrong password gets, shows as such, and signs in again once the
directory lets it; the gateway's writes leave the directory's lock alone unless told
to lock or unlock.

Against the session's real slapd, over the wire (SCIM, HTTP Basic, SOAP
``authenticate``). slapd has ppolicy's schema but enforces nothing in its binds
(``tests/ldap_server.py``), so every refusal here is the gateway's own. The gateway
remembers no login (``auth_cache_seconds = 0``): each request asks the directory.
"""

from __future__ import annotations

from dataclasses import replace

import ldap3
import pytest
from conftest import ADMIN, assert_scim_error, basic, scim, test_config
from ldap_server import LIMITED_ACCOUNT

from gateway.app import create_app
from gateway.config import LdapConfig, SecurityConfig, StoreConfig

WSO2 = "urn:scim:wso2:schema"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SOAP_V1 = "/services/RemoteUserStoreManagerService"
FOREVER = "000001010000Z"  # ppolicy: until an administrator unlocks
PASSWORD = "Alice-pass-1"  # noqa: S105 (test directory)
LIMITED_PASSWORD = "Limited-pass-1"  # noqa: S105


@pytest.fixture
def directory(ldap_base):
    """A rootdn connection to the test's directory, for what its administrators do."""
    conn = ldap_base.connection()
    yield conn
    conn.unbind()


@pytest.fixture
async def ldap_gateway(aiohttp_client, ldap_base):
    """A factory: a gateway whose PRIMARY is an LDAP store on the test's subtree."""

    async def make(flavor: str = "openldap", bind_dn: str | None = None,
                   bind_password: str | None = None, **overrides):
        users, groups = ((ldap_base.users_dn, ldap_base.groups_dn) if flavor == "openldap"
                         else (ldap_base.ad_users_dn, ldap_base.ad_groups_dn))
        ldap = LdapConfig(bind_dn=bind_dn or ldap_base.bind_dn,
                          bind_password=bind_password or ldap_base.password,
                          users_base=users, groups_base=groups, flavor=flavor,
                          timeout_seconds=2,
                          **({"id_attribute": "entryUUID"} if flavor == "ad" else {}))
        cfg = replace(test_config({"PRIMARY": StoreConfig("PRIMARY", ldap_base.url, "ldap",
                                                          ldap=ldap)}),
                      auth_cache_seconds=0, **overrides)
        return await aiohttp_client(create_app(cfg, bootstrap=False))

    return make


def set_attr(conn, dn: str, attr: str, values: list[str]) -> None:
    """An administrator's change in the directory itself ([]: remove the attribute)."""
    assert conn.modify(dn, {attr: [(ldap3.MODIFY_REPLACE, values)]}), conn.result


def read_attr(conn, dn: str, attr: str) -> str | None:
    """The one value of ``attr`` in the directory (None: the entry has none)."""
    conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=[attr])
    values = conn.response[0]["attributes"].get(attr) or [None]
    return values[0] if isinstance(values, list) else values


async def me(gw, name: str, password: str) -> tuple[int, dict]:
    status, body, _ = await scim(gw, "GET", "/Me", auth=basic(name, password))
    return status, body


async def soap_authenticate(gw, name: str, password: str) -> str:
    return await soap(gw, "authenticate", userName=name, credential=password)


async def soap(gw, operation: str, **parts: str) -> str:
    """One V1 operation as a WSO2 client sends it; the reply's text."""
    body = "".join(f"<ser:{k}>{v}</ser:{k}>" for k, v in parts.items())
    resp = await gw.post(SOAP_V1, headers={**ADMIN, "Content-Type": "text/xml; charset=utf-8",
                                           "SOAPAction": f"urn:{operation}"}, data=(
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:ser="http://service.ws.um.carbon.wso2.org"><soapenv:Body>'
        f"<ser:{operation}>{body}</ser:{operation}></soapenv:Body></soapenv:Envelope>"))
    text = await resp.text()
    assert resp.status in (200, 202), text  # 202: an operation without a reply
    return text


async def assert_refused_like_a_wrong_password(gw, name: str) -> None:
    """Basic and SOAP ``authenticate`` refuse the right password as they do a wrong one."""
    status, locked = await me(gw, name, PASSWORD)
    assert_scim_error(status, locked, 401)
    status, wrong = await me(gw, name, "Wrong-pass-1")
    assert status == 401 and locked == wrong
    refused = await soap_authenticate(gw, name, PASSWORD)
    assert refused == await soap_authenticate(gw, name, "Wrong-pass-1")
    assert ">false<" in refused, refused


async def assert_signs_in(gw, name: str) -> None:
    status, body = await me(gw, name, PASSWORD)
    assert status == 200, body
    assert ">true<" in await soap_authenticate(gw, name, PASSWORD)


async def patch(gw, user_id: str, path: str, value) -> tuple[int, dict]:
    status, body, _ = await scim(gw, "PATCH", f"/Users/{user_id}", {
        "schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": path, "value": value}]})
    return status, body


async def add_alice(gw) -> dict:
    status, body, _ = await scim(gw, "POST", "/Users", {"userName": "alice",
                                                        "password": PASSWORD})
    assert status == 201, body
    return body


def alice_dn(ldap_base) -> str:
    return f"uid=alice,{ldap_base.users_dn}"


# OpenLDAP: ppolicy's pwdAccountLockedTime ----------------------------------------------

@pytest.mark.parametrize("lock", [FOREVER, "20240101000000Z"], ids=["forever", "since"])
async def test_a_ppolicy_lock_keeps_the_user_out_until_the_directory_unlocks_it(
        ldap_gateway, ldap_base, directory, lock):
    gw = await ldap_gateway()
    alice = await add_alice(gw)
    assert WSO2 not in alice or "accountLocked" not in alice[WSO2]
    await assert_signs_in(gw, "alice")
    set_attr(directory, alice_dn(ldap_base), "pwdAccountLockedTime", [lock])
    await assert_refused_like_a_wrong_password(gw, "alice")
    status, got, _ = await scim(gw, "GET", f"/Users/{alice['id']}")
    assert status == 200 and got[WSO2] == {"accountLocked": True}, got
    # the lock is the directory's: the filter asks it
    _, found, _ = await scim(gw, "GET", f'/Users?filter={WSO2}:accountLocked eq true')
    assert [u["userName"] for u in found["Resources"]] == ["alice"]
    _, found, _ = await scim(gw, "GET", f'/Users?filter={WSO2}:accountLocked eq false')
    assert found["totalResults"] == 0
    set_attr(directory, alice_dn(ldap_base), "pwdAccountLockedTime", [])
    await assert_signs_in(gw, "alice")
    status, got, _ = await scim(gw, "GET", f"/Users/{alice['id']}")
    assert got.get(WSO2, {}).get("accountLocked") is not True, got
    _, found, _ = await scim(gw, "GET", f'/Users?filter={WSO2}:accountLocked eq false')
    assert [u["userName"] for u in found["Resources"]] == ["alice"]


async def test_a_change_of_a_locked_user_leaves_its_lock_alone(ldap_gateway, ldap_base,
                                                               directory):
    gw = await ldap_gateway()
    alice = await add_alice(gw)
    set_attr(directory, alice_dn(ldap_base), "pwdAccountLockedTime", [FOREVER])
    # a PATCH of something else carries the lock it read back: nothing of it is written
    status, body = await patch(gw, alice["id"], "title", "Engineer")
    assert status == 200 and body["title"] == "Engineer", body
    assert body[WSO2] == {"accountLocked": True}
    # a PUT that knows nothing of WSO2 (Entra ID, Okta) does not unlock either
    status, body, _ = await scim(gw, "PUT", f"/Users/{alice['id']}",
                                 {"userName": "alice", "title": "Lead"})
    assert status == 200 and body[WSO2] == {"accountLocked": True}, body
    assert read_attr(directory, alice_dn(ldap_base), "pwdAccountLockedTime") == FOREVER
    await assert_refused_like_a_wrong_password(gw, "alice")


async def test_an_administrator_unlocks_and_locks_over_scim(ldap_gateway, ldap_base,
                                                             directory):
    gw = await ldap_gateway()
    alice = await add_alice(gw)
    set_attr(directory, alice_dn(ldap_base), "pwdAccountLockedTime", ["20240101000000Z"])
    # an unlock is a real one, in the directory
    status, body = await patch(gw, alice["id"], f"{WSO2}:accountLocked", False)
    assert status == 200 and body.get(WSO2, {}).get("accountLocked") is not True, body
    assert read_attr(directory, alice_dn(ldap_base), "pwdAccountLockedTime") is None
    await assert_signs_in(gw, "alice")
    # so is a lock: ppolicy's "until an administrator unlocks"
    status, body = await patch(gw, alice["id"], f"{WSO2}:accountLocked", True)
    assert status == 200 and body[WSO2] == {"accountLocked": True}, body
    assert read_attr(directory, alice_dn(ldap_base), "pwdAccountLockedTime") == FOREVER
    await assert_refused_like_a_wrong_password(gw, "alice")
    status, body = await patch(gw, alice["id"], f"{WSO2}:accountLocked", False)
    assert status == 200, body
    # a lock that ends by itself is the directory's policy's, not something to write
    status, body, _ = await scim(gw, "PATCH", f"/Users/{alice['id']}", {
        "schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": WSO2, "value": {
            "accountLocked": True, "unlockTime": "4102444800000"}}]})
    assert_scim_error(status, body, 400, "invalidValue")
    assert read_attr(directory, alice_dn(ldap_base), "pwdAccountLockedTime") is None
    await assert_signs_in(gw, "alice")


async def test_a_wso2_client_reads_and_clears_the_lock_as_a_claim(ldap_gateway, ldap_base,
                                                                  directory):
    gw = await ldap_gateway()
    await add_alice(gw)
    set_attr(directory, alice_dn(ldap_base), "pwdAccountLockedTime", [FOREVER])
    claim = "http://wso2.org/claims/identity/accountLocked"
    text = await soap(gw, "getUserClaimValue", userName="alice", claim=claim)
    assert ">true<" in text, text
    await soap(gw, "setUserClaimValue", userName="alice", claimURI=claim, claimValue="false")
    assert read_attr(directory, alice_dn(ldap_base), "pwdAccountLockedTime") is None
    await assert_signs_in(gw, "alice")


async def test_the_gateways_own_lockout_is_not_written_to_the_directory(
        ldap_gateway, ldap_base, directory):
    """Failed logins lock an account for a while (``[security]``); a directory lock
    would outlast that, so the gateway's guard keeps it, not the entry."""
    gw = await ldap_gateway(security=SecurityConfig(lockout_attempts=2, lockout_seconds=600))
    alice = await add_alice(gw)
    for _ in range(2):
        assert (await me(gw, "alice", "Wrong-pass-1"))[0] == 401
    await assert_refused_like_a_wrong_password(gw, "alice")
    assert read_attr(directory, alice_dn(ldap_base), "pwdAccountLockedTime") is None
    status, got, _ = await scim(gw, "GET", f"/Users/{alice['id']}")
    assert status == 200 and got.get(WSO2, {}).get("accountLocked") is not True, got


async def test_an_unlock_the_bind_account_may_not_make_is_refused(ldap_gateway, ldap_base,
                                                                  directory):
    admin = await ldap_gateway()
    alice = await add_alice(admin)
    limited_dn = f"cn={LIMITED_ACCOUNT},{ldap_base.base_dn}"
    assert directory.add(limited_dn, ["person"], {"cn": LIMITED_ACCOUNT, "sn": "gateway",
                                                  "userPassword": LIMITED_PASSWORD}), \
        directory.result
    set_attr(directory, alice_dn(ldap_base), "pwdAccountLockedTime", [FOREVER])
    gw = await ldap_gateway(bind_dn=limited_dn, bind_password=LIMITED_PASSWORD)
    status, got, _ = await scim(gw, "GET", f"/Users/{alice['id']}")
    assert status == 200 and got[WSO2] == {"accountLocked": True}, got
    # other changes go through; an unlock is refused in so many words, never dropped
    status, body = await patch(gw, alice["id"], "title", "Engineer")
    assert status == 200 and body[WSO2] == {"accountLocked": True}, body
    status, body = await patch(gw, alice["id"], f"{WSO2}:accountLocked", False)
    assert_scim_error(status, body, 400)
    assert "refused the change" in body["detail"], body
    assert read_attr(directory, alice_dn(ldap_base), "pwdAccountLockedTime") == FOREVER
    status, got, _ = await scim(gw, "GET", f"/Users/{alice['id']}")
    assert got[WSO2] == {"accountLocked": True} and got["title"] == "Engineer", got
    await assert_refused_like_a_wrong_password(gw, "alice")


# Active Directory (the AD-lite schema): userAccountControl and lockoutTime ---------------

def add_ad_user(conn, ldap_base, name: str = "alice", control: int = 512) -> str:
    """An AD account made by AD's own tools (AD-lite takes its password in userPassword)."""
    dn = f"cn={name},{ldap_base.ad_users_dn}"
    assert conn.add(dn, ["top", "person", "organizationalPerson", "user"], {
        "cn": name, "sn": name, "sAMAccountName": name, "userAccountControl": str(control),
        "lockoutTime": "0", "userPassword": PASSWORD}), conn.result
    return dn


async def test_active_directory_disabled_accounts_are_refused(ldap_gateway, ldap_base,
                                                              directory):
    dn = add_ad_user(directory, ldap_base)
    gw = await ldap_gateway("ad")
    await assert_signs_in(gw, "alice")
    set_attr(directory, dn, "userAccountControl", ["514"])  # NORMAL_ACCOUNT | ACCOUNTDISABLE
    await assert_refused_like_a_wrong_password(gw, "alice")
    _, found, _ = await scim(gw, "GET", '/Users?filter=userName eq "alice"')
    assert found["Resources"][0]["active"] is False
    set_attr(directory, dn, "userAccountControl", ["512"])
    await assert_signs_in(gw, "alice")
    # the gateway's own change of active touches ACCOUNTDISABLE only, never AD's other
    # flags (here DONT_EXPIRE_PASSWORD, 0x10000)
    set_attr(directory, dn, "userAccountControl", [str(0x10200)])
    user_id = found["Resources"][0]["id"]
    status, body = await patch(gw, user_id, "active", False)
    assert status == 200 and body["active"] is False, body
    assert int(read_attr(directory, dn, "userAccountControl")) == 0x10202
    await assert_refused_like_a_wrong_password(gw, "alice")
    status, body = await patch(gw, user_id, "active", True)
    assert status == 200 and body["active"] is True, body
    assert int(read_attr(directory, dn, "userAccountControl")) == 0x10200
    await assert_signs_in(gw, "alice")


async def test_active_directory_lockouts_are_refused(ldap_gateway, ldap_base, directory):
    dn = add_ad_user(directory, ldap_base)
    gw = await ldap_gateway("ad")
    await assert_signs_in(gw, "alice")
    set_attr(directory, dn, "lockoutTime", ["133500000000000000"])  # a FILETIME (2024)
    await assert_refused_like_a_wrong_password(gw, "alice")
    _, found, _ = await scim(gw, "GET", f'/Users?filter={WSO2}:accountLocked eq true')
    user = found["Resources"][0]
    assert user["userName"] == "alice" and user[WSO2] == {"accountLocked": True}
    assert user["active"] is True  # locked out, not disabled
    set_attr(directory, dn, "lockoutTime", ["0"])  # how AD's tools unlock
    await assert_signs_in(gw, "alice")
    # over SCIM: an unlock writes lockoutTime 0; a lock is AD's lockout policy's alone
    set_attr(directory, dn, "lockoutTime", ["133500000000000000"])
    status, body = await patch(gw, user["id"], f"{WSO2}:accountLocked", False)
    assert status == 200 and body.get(WSO2, {}).get("accountLocked") is not True, body
    assert int(read_attr(directory, dn, "lockoutTime")) == 0
    await assert_signs_in(gw, "alice")
    status, body = await patch(gw, user["id"], f"{WSO2}:accountLocked", True)
    assert_scim_error(status, body, 400, "invalidValue")
    assert "active" in body["detail"]
    await assert_signs_in(gw, "alice")
