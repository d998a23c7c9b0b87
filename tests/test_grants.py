"""No principal gives a principal (itself included) a permission it does not hold.

A group that ``[roles]`` maps to permissions confers them to its members, directly
or through nested groups; changing who belongs to it (SCIM POST/PUT/PATCH of a
group, SOAP role operations) needs every permission it confers, or ``*``.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from conftest import ADMIN, ADMIN_USER, assert_scim_error, basic, scim

from gateway.app import create_app
from gateway.config import ClientConfig

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
MANAGER = basic("manager", "manager-secret")  # users:* and groups:*, not admin
SOAP_V2 = "/services/RemoteUserStoreManagerServiceV2"


@pytest.fixture
async def gw(aiohttp_client, make_config, admin_env):
    cfg = await make_config(roles={"admin": ("*",), "helpdesk": ("users:view", "users:list")})
    cfg = replace(cfg, clients=cfg.clients + (
        ClientConfig("manager", ("users:*", "groups:*"), secret="manager-secret"),
        ClientConfig("helpdesk-manager", ("users:view", "users:list", "groups:*"),
                     secret="hm-secret")))
    return await aiohttp_client(create_app(cfg))


async def group_id(gw, name: str) -> str:
    status, body, _ = await scim(gw, "GET", f'/Groups?filter=displayName eq "{name}"')
    assert status == 200 and body["totalResults"] == 1, body
    return body["Resources"][0]["id"]


async def members(gw, gid: str) -> set[str]:
    status, body, _ = await scim(gw, "GET", f"/Groups/{gid}")
    assert status == 200, body
    return {m["value"] for m in body.get("members", [])}


async def add_member(gw, gid: str, member: str, auth):
    return await scim(gw, "PATCH", f"/Groups/{gid}", {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": member}]}]},
        auth=auth)


async def test_a_manager_cannot_make_anyone_admin(gw):
    # the attack found: create a user with a password, put it in admin, use it
    status, user, _ = await scim(gw, "POST", "/Users", {"userName": "mallory",
                                                        "password": "Mallory-pw-1"},
                                 auth=MANAGER)
    assert status == 201, user
    admin = await group_id(gw, "admin")
    before = await members(gw, admin)
    status, body, _ = await add_member(gw, admin, user["id"], MANAGER)
    assert_scim_error(status, body, 403)
    assert "*" in body["detail"]
    status, body, _ = await scim(gw, "PUT", f"/Groups/{admin}", {
        "displayName": "admin", "members": [{"value": user["id"]}]}, auth=MANAGER)
    assert_scim_error(status, body, 403)
    assert await members(gw, admin) == before
    # so mallory has no admin rights
    status, body, _ = await scim(gw, "GET", "/Users", auth=basic("mallory", "Mallory-pw-1"))
    assert_scim_error(status, body, 403)


async def test_nested_groups_and_renames_do_not_get_around_it(gw):
    status, user, _ = await scim(gw, "POST", "/Users", {"userName": "mallory",
                                                        "password": "Mallory-pw-1"},
                                 auth=MANAGER)
    # a group nested into admin by the real administrator confers admin as well
    status, sub, _ = await scim(gw, "POST", "/Groups", {"displayName": "ops"})
    assert status == 201, sub
    status, body, _ = await add_member(gw, await group_id(gw, "admin"), sub["id"], ADMIN)
    assert status in (200, 204), body
    status, body, _ = await add_member(gw, sub["id"], user["id"], MANAGER)
    assert_scim_error(status, body, 403)
    assert await members(gw, sub["id"]) == set()
    # nor may the manager put its own group into admin
    status, own, _ = await scim(gw, "POST", "/Groups", {
        "displayName": "crew", "members": [{"value": user["id"]}]}, auth=MANAGER)
    assert status == 201, own
    status, body, _ = await add_member(gw, await group_id(gw, "admin"), own["id"], MANAGER)
    assert_scim_error(status, body, 403)
    # nor rename a group with members to a role's name, nor create one
    status, body, _ = await scim(gw, "PATCH", f"/Groups/{own['id']}", {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": "displayName", "value": "helpdesk"}]},
        auth=basic("helpdesk-manager", "hm-secret"))
    assert status in (200, 204), body  # holds what helpdesk grants
    status, body, _ = await scim(gw, "PATCH", f"/Groups/{own['id']}", {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": "displayName", "value": "admin2"}]},
        auth=MANAGER)
    assert status in (200, 204), body  # admin2 grants nothing
    status, body, _ = await scim(gw, "POST", "/Groups", {
        "displayName": "SECONDARY-less", "members": [{"value": user["id"]}]}, auth=MANAGER)
    assert status == 201, body
    status, body, _ = await scim(gw, "GET", "/Users", auth=basic("mallory", "Mallory-pw-1"))
    assert_scim_error(status, body, 403)


async def test_what_one_holds_may_be_granted(gw):
    status, user, _ = await scim(gw, "POST", "/Users", {"userName": "hd",
                                                        "password": "Helpdesk-pw-1"})
    status, helpdesk, _ = await scim(gw, "POST", "/Groups", {"displayName": "helpdesk"})
    assert status == 201, helpdesk
    # helpdesk grants users:view and users:list: a manager holding users:* may grant them
    status, body, _ = await add_member(gw, helpdesk["id"], user["id"], MANAGER)
    assert status in (200, 204), body
    status, body, _ = await scim(gw, "GET", "/Users", auth=basic("hd", "Helpdesk-pw-1"))
    assert status == 200, body
    # ordinary groups are the manager's to manage; the administrator may do anything
    status, body, _ = await scim(gw, "POST", "/Groups", {
        "displayName": "team", "members": [{"value": user["id"]}]}, auth=MANAGER)
    assert status == 201, body
    status, body, _ = await add_member(gw, await group_id(gw, "admin"), user["id"],
                                       basic(*ADMIN_USER))
    assert status in (200, 204), body


async def test_soap_role_operations_follow_the_same_rule(gw):
    status, user, _ = await scim(gw, "POST", "/Users", {"userName": "mallory",
                                                        "password": "Mallory-pw-1"},
                                 auth=MANAGER)
    assert status == 201, user
    envelope = (
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:ser="http://service.ws.um.carbon.wso2.org"><soapenv:Body>'
        "<ser:updateRoleListOfUser><ser:userName>mallory</ser:userName>"
        "<ser:newRoles>admin</ser:newRoles></ser:updateRoleListOfUser>"
        "</soapenv:Body></soapenv:Envelope>")
    resp = await gw.post(SOAP_V2, data=envelope, headers={
        **MANAGER, "Content-Type": "text/xml; charset=utf-8",
        "SOAPAction": "urn:updateRoleListOfUser"})
    text = await resp.text()
    assert resp.status == 500 and "Fault" in text, text
    assert user["id"] not in await members(gw, await group_id(gw, "admin"))


async def test_soap_add_user_with_roles_is_one_change(gw):
    """addUser with a roleList creates the user and joins its roles in one operation: a
    role the caller may not grant refuses the whole of it, before anything is stored (no
    user made and removed again, nothing for the audit trail but the refusal)."""
    status, _, _ = await scim(gw, "POST", "/Groups", {"displayName": "staff"})
    assert status == 201

    async def add_user(name: str, roles: str) -> tuple[int, str]:
        envelope = (
            '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:ser="http://service.ws.um.carbon.wso2.org"><soapenv:Body>'
            f"<ser:addUser><ser:userName>{name}</ser:userName>"
            "<ser:credential>Trudy-pw-1</ser:credential>"
            + "".join(f"<ser:roleList>{r}</ser:roleList>" for r in roles.split(","))
            + "</ser:addUser></soapenv:Body></soapenv:Envelope>")
        resp = await gw.post(SOAP_V2, data=envelope, headers={
            **MANAGER, "Content-Type": "text/xml; charset=utf-8",
            "SOAPAction": "urn:addUser"})
        return resp.status, await resp.text()

    status, text = await add_user("trudy", "staff,admin")
    assert status == 500 and "Fault" in text and "admin" in text, text
    status, body, _ = await scim(gw, "GET", '/Users?filter=userName eq "trudy"')
    assert body["totalResults"] == 0, body
    resp = await gw.get("/admin/audit", params={"target": "trudy"}, headers=ADMIN)
    events = (await resp.json())["events"]
    assert [(e["operation"], e["outcome"]) for e in events] == [("CreateUser", "denied")]
    # roles it may grant: the user and its memberships, in one event
    status, text = await add_user("victor", "staff")
    assert status == 200, text
    status, body, _ = await scim(gw, "GET", '/Users?filter=userName eq "victor"')
    [victor] = body["Resources"]
    assert [g["display"] for g in victor["groups"]] == ["staff"]
    resp = await gw.get("/admin/audit", params={"target": "victor"}, headers=ADMIN)
    [event] = (await resp.json())["events"]
    assert event["operation"] == "CreateUser" and "groups" in event["attributes"]
