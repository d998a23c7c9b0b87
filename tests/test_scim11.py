"""SCIM 1.1 at ``/wso2/scim``, as WSO2 Identity Server serves it, driven over HTTP.

The requests are shaped as the SCIM 1.1 clients send them: WSO2's own outbound SCIM
connector (charon 1.x: ``application/json``, ``filter=userName%20Eq%20alice`` with the
value unquoted, group members given by ``display`` name only, PATCH as a partial
resource), charon-based clients and scripts (``"schemas": []``, ``wso2Extension``).
The wire format checked is the draft's (scim-core-schema-01 / scim-api-01) as charon
1.x writes it: ``urn:scim:schemas:core:1.0``, the enterprise extension
``urn:scim:schemas:extension:enterprise:1.0`` with ``manager.managerId``, list
responses with ``totalResults``/``itemsPerPage``/``startIndex``/``Resources``, errors
as ``{"Errors": [{"description": ..., "code": "404"}]}``, DELETE answering 200.

Every test runs on both user store backends (``gateway``/``multi_gateway``, here
mounting the SCIM 1.1 sub-application when the application factory does not yet).
"""

from __future__ import annotations

import re
import time
from urllib.parse import quote

import orjson
import pytest
from conftest import ADMIN, ADMIN_USER, READER, basic, scim
from joserfc import jwt
from joserfc.jwk import ECKey
from lxml import etree
from yarl import URL

from gateway.app import create_app
from gateway.config import IssuerConfig
from gateway.scim11.app import create_scim11_app

PREFIX = "/wso2/scim"
CORE = "urn:scim:schemas:core:1.0"
ENTERPRISE = "urn:scim:schemas:extension:enterprise:1.0"
ENTERPRISE2 = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CORE2_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_OP2 = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_TNS = "http://service.ws.um.carbon.wso2.org"


def with_scim11(app):
    """The gateway application with SCIM 1.1 mounted (once: the factory may do it already)."""
    if not any(r.canonical == PREFIX for r in app.router.resources()):
        app.add_subapp(PREFIX, create_scim11_app())
    return app


@pytest.fixture
async def gateway(aiohttp_client, make_config, admin_env):
    return await aiohttp_client(with_scim11(create_app(await make_config())))


@pytest.fixture
async def multi_gateway(aiohttp_client, make_config, admin_env):
    cfg = await make_config(domains=("PRIMARY", "SECONDARY"))
    return await aiohttp_client(with_scim11(create_app(cfg)))


# helpers ----------------------------------------------------------------------------------------
async def s11(client, method: str, path: str, body=None, auth=ADMIN, headers=None):
    """One SCIM 1.1 call as charon sends it; ``path`` is sent as written (already encoded)."""
    h = {**(auth or {}), "Accept": "application/json"}
    data = None
    if body is not None:
        h["Content-Type"] = "application/json"
        data = body if isinstance(body, bytes | str) else orjson.dumps(body)
    h.update(headers or {})
    resp = await client.request(method, URL(PREFIX + path, encoded=True), data=data, headers=h)
    raw = await resp.read()
    parsed = orjson.loads(raw) if raw and "json" in resp.content_type else None
    return resp.status, parsed, resp


def q(**params) -> str:
    return "?" + "&".join(f"{k}={quote(str(v), safe='')}" for k, v in params.items())


def assert_error(status, body, resp, expected: int) -> None:
    """A SCIM 1.1 error: the status, and exactly ``{"Errors": [{description, code}]}``."""
    assert status == expected, body
    assert resp.content_type == "application/json"
    assert isinstance(body, dict) and list(body) == ["Errors"], body
    assert len(body["Errors"]) == 1
    error = body["Errors"][0]
    assert set(error) == {"description", "code"}, error
    assert error["code"] == str(expected)
    assert isinstance(error["description"], str) and error["description"]
    assert "Traceback" not in error["description"]


async def create_user(client, user_name: str, **attrs) -> dict:
    status, body, resp = await s11(client, "POST", "/Users",
                                   {"schemas": [CORE], "userName": user_name, **attrs})
    assert status == 201, body
    return body


async def create_group(client, name: str, member_ids=(), **attrs) -> dict:
    status, body, _ = await s11(client, "POST", "/Groups", {
        "schemas": [CORE], "displayName": name,
        "members": [{"value": m} for m in member_ids], **attrs})
    assert status == 201, body
    return body


async def get(client, path: str) -> dict:
    status, body, _ = await s11(client, "GET", path)
    assert status == 200, body
    return body


async def names(client, filt: str, endpoint: str = "/Users", raw: bool = False) -> list[str]:
    """The names a filter finds (``raw``: the filter goes into the URL as WSO2 writes it)."""
    query = ("?filter=" + filt.replace(" ", "%20")) if raw else q(filter=filt)
    body = await get(client, endpoint + query)
    assert body["schemas"] == [CORE]
    assert body["totalResults"] == len(body["Resources"])
    key = "userName" if endpoint == "/Users" else "displayName"
    return sorted(r[key] for r in body["Resources"])


def member_ids(group: dict) -> set[str]:
    return {m["value"] for m in group.get("members", [])}


# users -----------------------------------------------------------------------------------------
async def test_user_crud_in_scim11_shape(gateway):
    manager = await create_user(gateway, "boss")
    status, user, resp = await s11(gateway, "POST", "/Users", {
        "schemas": [CORE, ENTERPRISE], "userName": "alice", "password": "Alice-password-1",
        "name": {"givenName": "Alice", "familyName": "Liddell"}, "nickName": "Al",
        "emails": [{"value": "alice@example.com", "type": "work", "primary": True}],
        ENTERPRISE: {"employeeNumber": "000111", "department": "R&D",
                     "manager": {"managerId": manager["id"], "displayName": "Boss"}},
    })
    assert status == 201, user
    assert resp.content_type == "application/json"
    assert user["schemas"] == [CORE, ENTERPRISE]
    assert user["userName"] == "alice"
    assert "password" not in user
    assert user["name"] == {"givenName": "Alice", "familyName": "Liddell"}
    assert user[ENTERPRISE]["employeeNumber"] == "000111"
    assert user[ENTERPRISE]["manager"] == {"managerId": manager["id"]}  # displayName: read-only
    assert ENTERPRISE2 not in user
    meta = user["meta"]
    assert set(meta) == {"created", "lastModified", "location", "version"}
    assert SECONDS.match(meta["created"]) and SECONDS.match(meta["lastModified"])
    assert meta["location"].endswith(f"{PREFIX}/Users/{user['id']}")
    assert resp.headers["Location"] == meta["location"]
    assert resp.headers["ETag"] == meta["version"]

    got = await get(gateway, f"/Users/{user['id']}")
    assert got == user

    # PUT replaces the whole resource (nickName and the enterprise attributes go)
    status, put, _ = await s11(gateway, "PUT", f"/Users/{user['id']}", {
        "schemas": [CORE], "userName": "alice", "name": {"givenName": "Alicia"},
        "emails": [{"value": "alicia@example.com"}]})
    assert status == 200, put
    assert put["schemas"] == [CORE]
    assert put["name"] == {"givenName": "Alicia"}
    assert "nickName" not in put and ENTERPRISE not in put
    assert (await get(gateway, f"/Users/{user['id']}"))["emails"] == [
        {"value": "alicia@example.com"}]

    # the password given on POST works: alice can log in (and is forbidden, having no role)
    status, body, resp = await s11(gateway, "GET", "/Users", auth=basic("alice",
                                                                       "Alice-password-1"))
    assert_error(status, body, resp, 403)

    status, body, resp = await s11(gateway, "DELETE", f"/Users/{user['id']}")
    assert status == 200 and body is None  # SCIM 1.1: 200 OK, no body
    status, body, resp = await s11(gateway, "GET", f"/Users/{user['id']}")
    assert_error(status, body, resp, 404)


async def test_wso2_style_input(gateway):
    """``"schemas": []``, WSO2's ``wso2Extension`` key, values marked delete on POST."""
    user = await create_user(gateway, "SureshAtt", schemas=[], wso2Extension={
        "employeeNumber": "000111", "costCenter": "111111", "organization": "WSO2Org",
        "manager": {"managerId": "111000", "displayName": "Prabath"}},
        emails=[{"value": "keep@x.org"}, {"value": "gone@x.org", "operation": "delete"}])
    assert user["schemas"] == [CORE, ENTERPRISE]
    assert user[ENTERPRISE] == {"employeeNumber": "000111", "costCenter": "111111",
                                "organization": "WSO2Org", "manager": {"managerId": "111000"}}
    assert user["emails"] == [{"value": "keep@x.org"}]
    # the WSO2 extension's URN works as well
    other = await create_user(gateway, "other", **{
        "urn:scim:schemas:extension:wso2:1.0": {"division": "Engineering"}})
    assert other[ENTERPRISE] == {"division": "Engineering"}


async def test_wso2_outbound_connector_sequence(gateway):
    """The calls WSO2's SCIM 1.1 outbound connector makes (ProvisioningClient), in order."""
    async def find(endpoint: str, attr: str, name: str) -> str:
        body = await get(gateway, f"{endpoint}?filter={attr}%20Eq%20{name}")
        (found,) = body["Resources"]
        return found["id"]

    user = await create_user(gateway, "jdoe", password="Jdoe-password-1",
                             emails=[{"value": "jdoe@x.org"}])
    uid = await find("/Users", "userName", "jdoe")
    assert uid == user["id"]
    status, body, _ = await s11(gateway, "PATCH", f"/Users/{uid}", {
        "schemas": [CORE], "userName": "jdoe", "name": {"givenName": "John"}})
    assert status == 200 and body["name"] == {"givenName": "John"}
    assert body["emails"] == [{"value": "jdoe@x.org"}]  # PATCH keeps what it does not name
    status, body, _ = await s11(gateway, "POST", "/Groups", {
        "schemas": [CORE], "displayName": "team", "members": [{"value": uid, "display": "jdoe"}]})
    assert status == 201 and member_ids(body) == {uid}
    other = await create_user(gateway, "other")
    gid = await find("/Groups", "displayName", "team")
    status, body, _ = await s11(gateway, "PATCH", f"/Groups/{gid}", {
        "schemas": [CORE], "displayName": "team", "members": [{"display": "other"}]})
    assert status == 204
    status, body, _ = await s11(gateway, "PATCH", f"/Groups/{gid}", {
        "schemas": [CORE], "displayName": "team",
        "members": [{"display": "jdoe", "operation": "delete"}]})
    assert status == 204
    assert member_ids(await get(gateway, f"/Groups/{gid}")) == {other["id"]}
    status, body, _ = await s11(gateway, "DELETE", f"/Groups/{gid}")
    assert status == 200
    uid = await find("/Users", "userName", "jdoe")
    status, body, _ = await s11(gateway, "DELETE", f"/Users/{uid}")
    assert status == 200
    assert await names(gateway, "userName Eq jdoe") == []


# groups ----------------------------------------------------------------------------------------
async def test_group_crud(gateway):
    alice = await create_user(gateway, "alice")
    bob = await create_user(gateway, "bob")
    group = await create_group(gateway, "eng", [alice["id"]])
    assert group["schemas"] == [CORE]
    assert group["displayName"] == "eng"
    assert group["members"] == [{"value": alice["id"], "type": "User", "display": "alice"}]
    assert SECONDS.match(group["meta"]["created"])
    assert group["meta"]["location"].endswith(f"{PREFIX}/Groups/{group['id']}")
    assert (await get(gateway, f"/Users/{alice['id']}"))["groups"] == [
        {"value": group["id"], "display": "eng", "type": "direct"}]

    status, put, _ = await s11(gateway, "PUT", f"/Groups/{group['id']}", {
        "schemas": [CORE], "displayName": "engineering", "members": [{"value": bob["id"]}]})
    assert status == 200, put
    assert put["displayName"] == "engineering"
    assert member_ids(put) == {bob["id"]}
    assert await names(gateway, "displayName Eq engineering", "/Groups", raw=True) == [
        "engineering"]

    status, body, _ = await s11(gateway, "DELETE", f"/Groups/{group['id']}")
    assert status == 200 and body is None
    status, body, resp = await s11(gateway, "GET", f"/Groups/{group['id']}")
    assert_error(status, body, resp, 404)
    assert not (await get(gateway, f"/Users/{bob['id']}")).get("groups")


async def test_group_members_by_display_name_as_wso2_connector_sends_them(gateway):
    """WSO2's connector PUTs and PATCHes groups with ``{"display": userName}`` members."""
    alice = await create_user(gateway, "alice")
    bob = await create_user(gateway, "bob")
    sub = await create_group(gateway, "sub")
    group = await create_group(gateway, "eng")
    status, body, _ = await s11(gateway, "PATCH", f"/Groups/{group['id']}", {
        "schemas": [CORE], "displayName": "eng",
        "members": [{"display": "alice"}, {"display": "sub", "type": "Group"}]})
    assert status == 204, body
    assert member_ids(await get(gateway, f"/Groups/{group['id']}")) == {alice["id"], sub["id"]}
    status, body, _ = await s11(gateway, "PATCH", f"/Groups/{group['id']}", {
        "schemas": [CORE], "displayName": "eng",
        "members": [{"display": "alice", "operation": "delete"},
                    {"display": "nobody", "operation": "delete"}]})
    assert status == 204, body
    assert member_ids(await get(gateway, f"/Groups/{group['id']}")) == {sub["id"]}
    status, put, _ = await s11(gateway, "PUT", f"/Groups/{group['id']}", {
        "schemas": [CORE], "displayName": "eng", "members": [{"display": "bob"}]})
    assert status == 200, put
    assert member_ids(put) == {bob["id"]}
    # a member to add that does not exist is an error, and nothing changes
    status, body, resp = await s11(gateway, "PATCH", f"/Groups/{group['id']}", {
        "members": [{"display": "ghost"}, {"display": "alice"}]})
    assert_error(status, body, resp, 400)
    assert member_ids(await get(gateway, f"/Groups/{group['id']}")) == {bob["id"]}


# filters, paging, sorting --------------------------------------------------------------------
async def test_filters(gateway):
    await create_user(gateway, "kim", title="Dr", name={"givenName": "Kim", "familyName": "Berry"},
                      emails=[{"value": "kim@wso2.com"}], active=True,
                      **{ENTERPRISE: {"employeeNumber": "7", "manager": {"managerId": "m-1"}}})
    await create_user(gateway, "kimberly", name={"givenName": "Kimberly"},
                      emails=[{"value": "kimberly@example.org"}], active=False)
    await create_user(gateway, "bob", title="Mr", emails=[{"value": "bob@wso2.com"}])
    await create_user(gateway, "000111", nickName="digits")
    everyone = sorted(["kim", "kimberly", "bob", "000111", ADMIN_USER[0]])

    # operators in any case, values quoted or not (WSO2 sends "userName Eq kim")
    for filt in ('userName eq "kim"', 'userName Eq "kim"', 'userName EQ "kim"',
                 "userName Eq kim", "USERNAME eQ KIM"):
        assert await names(gateway, filt) == ["kim"], filt
    assert await names(gateway, "userName%20Eq%20kim", raw=True) == ["kim"]
    assert await names(gateway, "userName Eq 000111") == ["000111"]  # unquoted, yet a string
    assert await names(gateway, 'userName Co "im"') == ["kim", "kimberly"]
    assert await names(gateway, "userName co berl") == ["kimberly"]
    assert await names(gateway, 'userName Sw "ki"') == ["kim", "kimberly"]
    assert await names(gateway, "userName SW b") == ["bob"]
    assert await names(gateway, "title Pr") == ["bob", "kim"]
    assert await names(gateway, "title pr") == ["bob", "kim"]
    assert await names(gateway, 'emails Co "@wso2.com"') == ["bob", "kim"]
    assert await names(gateway, 'userName Sw "k" and emails Co "wso2"') == ["kim"]
    assert await names(gateway, 'userName Sw "k" AND active Eq false') == ["kimberly"]
    assert await names(gateway, 'userName Eq "bob" or name.givenName Eq "Kim"') == ["bob", "kim"]
    assert await names(gateway, "userName Eq bob OR title Eq Dr") == ["bob", "kim"]
    assert await names(gateway, 'name.familyName Eq "Berry"') == ["kim"]
    assert await names(gateway, "meta.created Pr") == everyone
    # the enterprise extension by its SCIM 1.1 names
    assert await names(gateway, f"{ENTERPRISE}:employeeNumber Eq 7") == ["kim"]
    assert await names(gateway, f'{ENTERPRISE}.employeeNumber eq "7"') == ["kim"]
    assert await names(gateway, "employeeNumber Eq 7") == ["kim"]
    assert await names(gateway, f"{ENTERPRISE}:manager.managerId Eq m-1") == ["kim"]
    assert await names(gateway, "wso2Extension.employeeNumber Eq 7") == ["kim"]
    # nothing found is an empty list, not an error
    body = await get(gateway, "/Users" + q(filter="userName Eq nobody"))
    assert body == {"schemas": [CORE], "totalResults": 0, "itemsPerPage": 0, "startIndex": 1,
                    "Resources": []}


async def test_paging_sorting_and_attributes(gateway):
    for name in ("dave", "carol", "erin", "alice", "bob"):
        await create_user(gateway, name, nickName=name.upper())
    body = await get(gateway, "/Users" + q(filter="userName ne root", sortBy="userName",
                                           startIndex=2, count=2))
    assert list(body) == ["schemas", "totalResults", "itemsPerPage", "startIndex", "Resources"]
    assert (body["totalResults"], body["itemsPerPage"], body["startIndex"]) == (5, 2, 2)
    assert [r["userName"] for r in body["Resources"]] == ["bob", "carol"]
    body = await get(gateway, "/Users" + q(filter="userName ne root", sortBy="nickName",
                                           sortOrder="descending"))
    assert [r["userName"] for r in body["Resources"]] == ["erin", "dave", "carol", "bob",
                                                          "alice"]
    body = await get(gateway, "/Users" + q(filter="userName Eq alice",
                                           attributes="userName,meta.created"))
    (alice,) = body["Resources"]
    assert set(alice) == {"schemas", "id", "userName", "meta"}
    assert set(alice["meta"]) == {"created"}
    await s11(gateway, "PATCH", f"/Users/{alice['id']}", {ENTERPRISE: {"division": "D"}})
    got = await get(gateway, f"/Users/{alice['id']}" + q(attributes=f"{ENTERPRISE}:division"))
    assert got == {"schemas": [CORE, ENTERPRISE], "id": alice["id"],
                   ENTERPRISE: {"division": "D"}}
    body = await get(gateway, "/Users" + q(count=0))
    assert body["totalResults"] == 6 and body["Resources"] == []
    group = await create_group(gateway, "g")
    got = await get(gateway, f"/Groups/{group['id']}" + q(attributes="displayName"))
    assert set(got) == {"schemas", "id", "displayName"}


# PATCH -----------------------------------------------------------------------------------------
async def test_patch_user(gateway):
    user = await create_user(
        gateway, "pat", title="Dr", nickName="P",
        name={"givenName": "Pat", "middleName": "Q", "familyName": "Smith"},
        emails=[{"value": "a@x.org", "primary": True}, {"value": "b@x.org", "type": "home"}],
        **{ENTERPRISE: {"employeeNumber": "1", "department": "Ops",
                        "manager": {"managerId": "m-1"}}})
    path = f"/Users/{user['id']}"
    status, patched, resp = await s11(gateway, "PATCH", path, {
        "schemas": [CORE],
        "nickName": "Patty",                                   # replace
        "name": {"familyName": "Jones"},                       # merge into name
        "emails": [{"value": "c@x.org", "type": "work", "primary": True},   # add, primary
                   {"value": "b@x.org", "operation": "delete"}],             # delete one
        "meta": {"attributes": ["title", "name.middleName"]},  # remove
    })
    assert status == 200, patched
    assert patched["schemas"] == [CORE, ENTERPRISE]
    assert patched["nickName"] == "Patty"
    assert "title" not in patched
    assert patched["name"] == {"givenName": "Pat", "familyName": "Jones"}
    assert patched["emails"] == [{"value": "a@x.org"},
                                 {"value": "c@x.org", "type": "work", "primary": True}]
    assert resp.headers["ETag"] == patched["meta"]["version"] != user["meta"]["version"]
    assert await get(gateway, path) == patched

    # an existing value given again is updated in place; the enterprise extension by 1.1 names
    status, patched, _ = await s11(gateway, "PATCH", path, {
        "emails": [{"value": "A@x.org", "type": "home"}],
        ENTERPRISE: {"manager": {"managerId": "m-2"}, "costCenter": "42"},
        "meta": {"attributes": [f"{ENTERPRISE}:employeeNumber"]}})
    assert status == 200, patched
    assert patched["emails"][0] == {"value": "A@x.org", "type": "home"}
    assert len(patched["emails"]) == 2
    assert patched[ENTERPRISE] == {"department": "Ops", "manager": {"managerId": "m-2"},
                                   "costCenter": "42"}

    # an attribute both removed and given is replaced; read-only ones are ignored
    status, patched, _ = await s11(gateway, "PATCH", path, {
        "emails": [{"value": "z@x.org"}], "groups": [{"value": "nope"}], "id": "other",
        "meta": {"attributes": ["emails", "wso2Extension.department"]}})
    assert status == 200, patched
    assert patched["id"] == user["id"]
    assert patched["emails"] == [{"value": "z@x.org"}]
    assert "department" not in patched[ENTERPRISE]

    # values without "value" (addresses) are added whole and deleted by what they hold
    status, patched, _ = await s11(gateway, "PATCH", path, {"addresses": [
        {"type": "work", "locality": "Colombo"}, {"type": "home", "locality": "Kandy"}]})
    assert status == 200 and len(patched["addresses"]) == 2
    status, patched, _ = await s11(gateway, "PATCH", path, {
        "addresses": [{"type": "work", "operation": "delete"}]})
    assert status == 200 and patched["addresses"] == [{"type": "home", "locality": "Kandy"}]

    # the password is patched (and never returned)
    status, patched, _ = await s11(gateway, "PATCH", path, {"password": "New-password-1"})
    assert status == 200 and "password" not in patched
    status, _, resp = await s11(gateway, "GET", "/Users", auth=basic("pat", "New-password-1"))
    assert status == 403  # authenticated (no role): the new password is in force

    # a required attribute cannot be removed; a bad value changes nothing
    before = await get(gateway, path)
    for body in ({"meta": {"attributes": ["userName"]}}, {"active": "maybe"},
                 {"emails": [{"primary": True, "operation": "delete"}]},
                 {"emails": [{"value": "q@x.org", "operation": "remove"}]},
                 {"meta": {"attributes": "title"}}, {"nosuch": 1}):
        status, err, resp = await s11(gateway, "PATCH", path, body)
        assert_error(status, err, resp, 400)
    assert await get(gateway, path) == before


async def test_patch_group_members(gateway):
    alice = await create_user(gateway, "alice")
    bob = await create_user(gateway, "bob")
    carol = await create_user(gateway, "carol")
    group = await create_group(gateway, "eng", [alice["id"]])
    path = f"/Groups/{group['id']}"

    status, body, resp = await s11(gateway, "PATCH", path, {
        "schemas": [CORE], "members": [{"value": bob["id"]}, {"value": carol["id"]}]})
    assert status == 204 and body is None
    assert resp.headers["ETag"]
    assert member_ids(await get(gateway, path)) == {alice["id"], bob["id"], carol["id"]}

    status, body, _ = await s11(gateway, "PATCH", path, {
        "members": [{"value": alice["id"], "display": "alice", "operation": "delete"}]})
    assert status == 204, body
    assert member_ids(await get(gateway, path)) == {bob["id"], carol["id"]}

    # removal of all members, then the new ones (meta.attributes goes first)
    status, body, _ = await s11(gateway, "PATCH", path + q(attributes="members,displayName"), {
        "displayName": "engineering", "members": [{"value": alice["id"]}],
        "meta": {"attributes": ["members"]}})
    assert status == 200, body
    assert body["displayName"] == "engineering"
    assert member_ids(body) == {alice["id"]}

    status, body, _ = await s11(gateway, "PATCH", path, {"meta": {"attributes": ["members"]}})
    assert status == 204, body
    assert not (await get(gateway, path)).get("members")
    status, body, resp = await s11(gateway, "PATCH", path, {"members": [{"value": "no-such-id"}]})
    assert_error(status, body, resp, 400)


# bulk ---------------------------------------------------------------------------------------------
async def test_bulk(gateway):
    victim = await create_user(gateway, "victim")
    status, body, resp = await s11(gateway, "POST", "/Bulk", {
        "schemas": [CORE], "failOnErrors": 5,
        "Operations": [
            {"method": "POST", "path": "/Groups", "bulkId": "g",
             "data": {"schemas": [CORE], "displayName": "bulk-group",
                      "members": [{"value": "bulkId:u1"}, {"value": "bulkId:u2"}]}},
            {"method": "POST", "path": "/Users", "bulkId": "u1",
             "data": {"schemas": [CORE], "userName": "bulk1",
                      ENTERPRISE: {"employeeNumber": "11"}}},
            {"method": "POST", "path": "/Users", "bulkId": "u2",
             "data": {"schemas": [CORE], "userName": "bulk2"}},
            {"method": "PATCH", "path": "/Users/bulkId:u2",
             "data": {"schemas": [CORE], "nickName": "two",
                      "emails": [{"value": "two@x.org"}]}},
            {"method": "POST", "path": "/Users", "bulkId": "dup",
             "data": {"schemas": [CORE], "userName": "victim"}},
            {"method": "DELETE", "path": f"/Users/{victim['id']}"},
            {"method": "PUT", "path": "/Users/no-such-id",
             "data": {"schemas": [CORE], "userName": "ghost"}},
        ]})
    assert status == 200, body
    assert resp.content_type == "application/json"
    assert body["schemas"] == [CORE]
    by_id = {op.get("bulkId") or op["method"]: op for op in body["Operations"]}
    assert len(body["Operations"]) == 7
    for key in ("u1", "u2", "g"):
        assert by_id[key]["status"] == {"code": "201"}, by_id[key]
        assert by_id[key]["method"] == "POST"
        assert f"{PREFIX}/" in by_id[key]["location"] and by_id[key]["version"]
    patch = next(op for op in body["Operations"] if op["method"] == "PATCH")
    assert patch["status"] == {"code": "200"}
    dup = by_id["dup"]
    assert dup["status"]["code"] == "409" and dup["status"]["description"]
    assert by_id["DELETE"]["status"] == {"code": "200"}
    assert by_id["DELETE"]["location"].endswith(f"/Users/{victim['id']}")
    assert by_id["PUT"]["status"]["code"] == "404"

    group = await get(gateway, "/Groups/" + by_id["g"]["location"].rsplit("/", 1)[1])
    u1 = await get(gateway, "/Users/" + by_id["u1"]["location"].rsplit("/", 1)[1])
    u2 = await get(gateway, "/Users/" + by_id["u2"]["location"].rsplit("/", 1)[1])
    assert member_ids(group) == {u1["id"], u2["id"]}
    assert u1[ENTERPRISE] == {"employeeNumber": "11"}
    assert u2["nickName"] == "two" and u2["emails"] == [{"value": "two@x.org"}]
    status, body, resp = await s11(gateway, "GET", f"/Users/{victim['id']}")
    assert_error(status, body, resp, 404)

    # failOnErrors stops the job; a circular reference fails only its operations
    status, body, _ = await s11(gateway, "POST", "/Bulk", {
        "schemas": [CORE], "failOnErrors": 1, "Operations": [
            {"method": "PUT", "path": "/Users/nope", "data": {"userName": "x"}},
            {"method": "POST", "path": "/Users", "bulkId": "late", "data": {"userName": "late"}},
        ]})
    assert status == 200, body
    assert [op["status"]["code"] for op in body["Operations"]] == ["404"]
    status, body, _ = await s11(gateway, "POST", "/Bulk", {"Operations": [
        {"method": "POST", "path": "/Groups", "bulkId": "a",
         "data": {"displayName": "a", "members": [{"value": "bulkId:b"}]}},
        {"method": "POST", "path": "/Groups", "bulkId": "b",
         "data": {"displayName": "b", "members": [{"value": "bulkId:a"}]}},
        {"method": "POST", "path": "/Users", "bulkId": "ok", "data": {"userName": "fine"}}]})
    assert status == 200, body
    codes = {op["bulkId"]: op["status"]["code"] for op in body["Operations"]}
    assert codes == {"a": "409", "b": "409", "ok": "201"}
    assert await names(gateway, "userName Eq late") == []


async def test_bulk_user_creations_are_written_together_each_on_its_own(gateway):
    """Consecutive POST /Users (no failOnErrors) go to the store as one batch: a taken
    name, a bad value and a reader's lack of permission still fail only their own."""
    await create_user(gateway, "taken11")
    ops_ = [{"method": "POST", "path": "/Users", "bulkId": f"b{i}",
             "data": {"schemas": [CORE], "userName": name}}
            for i, name in enumerate(["batch-a", "taken11", "batch-b", "batch-c"])]
    ops_.append({"method": "POST", "path": "/Users", "bulkId": "bad",
                 "data": {"schemas": [CORE], "userName": "batch-d", "active": "perhaps"}})
    ops_.append({"method": "PATCH", "path": "/Users/bulkId:b2",
                 "data": {"schemas": [CORE], "nickName": "bee"}})
    status, body, _ = await s11(gateway, "POST", "/Bulk", {"schemas": [CORE],
                                                           "Operations": ops_})
    assert status == 200, body
    codes = {op.get("bulkId", op["method"]): op["status"]["code"] for op in body["Operations"]}
    assert codes == {"b0": "201", "b1": "409", "b2": "201", "b3": "201", "bad": "400",
                     "PATCH": "200"}
    assert body["Operations"][1]["status"]["description"]
    assert sorted(await names(gateway, 'userName sw "batch-"')) == ["batch-a", "batch-b",
                                                                  "batch-c"]
    bee = await get(gateway, "/Users/" + body["Operations"][2]["location"].rsplit("/", 1)[1])
    assert bee["nickName"] == "bee"
    status, body, _ = await s11(gateway, "POST", "/Bulk", {"Operations": [
        {"method": "POST", "path": "/Users", "bulkId": f"r{i}",
         "data": {"userName": f"reader-made-{i}"}} for i in range(3)]}, auth=READER)
    assert [op["status"]["code"] for op in body["Operations"]] == ["403"] * 3
    assert await names(gateway, 'userName sw "reader-made"') == []


# errors and authentication -------------------------------------------------------------------
async def test_errors_are_scim11_errors(gateway):
    user = await create_user(gateway, "taken")
    cases = [
        ("GET", "/Users/no-such-id", None, {}, 404),
        ("GET", "/Groups/no-such-id", None, {}, 404),
        ("PATCH", "/Users/no-such-id", {"nickName": "x"}, {}, 404),
        ("DELETE", "/Groups/no-such-id", None, {}, 404),
        ("GET", "/Nope", None, {}, 404),
        ("GET", "/Users/x/y", None, {}, 404),
        ("POST", "/Users", {"userName": "taken"}, {}, 409),
        ("POST", "/Users", {"userName": "TAKEN"}, {}, 409),
        ("GET", "/Users" + q(filter='userName xx "a"'), None, {}, 400),
        ("GET", "/Users" + q(filter="userName Eq"), None, {}, 400),
        ("GET", "/Users" + q(filter='nosuch Eq "a"'), None, {}, 400),
        ("GET", "/Users" + q(filter="password Eq x"), None, {}, 400),
        ("GET", "/Users" + q(sortBy="nosuch"), None, {}, 400),
        ("GET", "/Users" + q(sortOrder="sideways"), None, {}, 400),
        ("GET", "/Users" + q(startIndex="one"), None, {}, 400),
        ("GET", "/Users" + q(attributes="no such"), None, {}, 400),
        ("POST", "/Users", b"{not json", {}, 400),
        ("POST", "/Users", b"[1, 2]", {}, 400),
        ("POST", "/Users", b"", {}, 400),
        ("POST", "/Users", {"userName": "x", "nosuch": 1}, {}, 400),
        ("POST", "/Users", {"userName": "x", ENTERPRISE: "flat"}, {}, 400),
        ("POST", "/Users", {"userName": "x", "active": "perhaps"}, {}, 400),
        ("POST", "/Users", {"nickName": "no userName"}, {}, 400),
        ("POST", "/Users", {"userName": "NOWHERE/x"}, {}, 400),
        ("PATCH", f"/Users/{user['id']}", b"{bad", {}, 400),
        ("POST", "/Bulk", {"Operations": "no"}, {}, 400),
        ("POST", "/Users", "userName=x", {"Content-Type": "application/xml"}, 415),
        ("DELETE", "/Users", None, {}, 405),
        ("POST", f"/Users/{user['id']}", {"userName": "x"}, {}, 405),
        ("PUT", f"/Users/{user['id']}", {"userName": "taken"},
         {"If-Match": 'W/"999"'}, 412),
    ]
    for method, path, body, headers, expected in cases:
        status, got, resp = await s11(gateway, method, path, body, headers=headers)
        try:
            assert_error(status, got, resp, expected)
        except AssertionError as exc:
            raise AssertionError(f"{method} {path} {body!r}: {exc}") from None
    # nothing was written by the failed requests
    assert await names(gateway, "userName pr") == sorted([ADMIN_USER[0], "taken"])


async def test_authentication_and_permissions(gateway):
    status, body, resp = await s11(gateway, "GET", "/Users", auth=None)
    assert_error(status, body, resp, 401)
    assert "Basic" in resp.headers["WWW-Authenticate"]
    status, body, resp = await s11(gateway, "POST", "/Users", {"userName": "x"}, auth=None)
    assert_error(status, body, resp, 401)
    status, body, resp = await s11(gateway, "GET", "/Users", auth=basic("test-admin", "wrong"))
    assert_error(status, body, resp, 401)
    status, body, resp = await s11(gateway, "GET", "/Users", auth={"Authorization": "Digest x"})
    assert_error(status, body, resp, 401)
    # the reader client reads and may not write (the same permissions as over /scim2)
    status, body, _ = await s11(gateway, "GET", "/Users", auth=READER)
    assert status == 200, body
    for method, path, payload in (("POST", "/Users", {"userName": "x"}),
                                  ("POST", "/Groups", {"displayName": "x"}),
                                  ("POST", "/Bulk", {"Operations": []})):
        status, body, resp = await s11(gateway, method, path, payload, auth=READER)
        if path == "/Bulk":  # an empty job is allowed to anyone authenticated
            assert status == 200 and body["Operations"] == []
            continue
        assert_error(status, body, resp, 403)
    status, body, _ = await s11(gateway, "POST", "/Bulk", {"Operations": [
        {"method": "POST", "path": "/Users", "bulkId": "x", "data": {"userName": "x"}}]},
        auth=READER)
    assert body["Operations"][0]["status"]["code"] == "403"
    # the bootstrap administrator (a store user) over Basic
    status, body, _ = await s11(gateway, "POST", "/Users", {"userName": "by-root"},
                                auth=basic(*ADMIN_USER))
    assert status == 201, body
    # discovery needs no credentials
    status, body, _ = await s11(gateway, "GET", "/ServiceProviderConfigs", auth=None)
    assert status == 200 and body["schemas"] == [CORE]
    assert body["bulk"]["supported"] is True and body["patch"]["supported"] is True


ISSUER = "https://idp.example.test/"
AUDIENCE = "https://gateway.example.test/wso2/scim"
EC = ECKey.generate_key("P-256", parameters={"kid": "ec-1"})


async def test_bearer_tokens(aiohttp_client, make_config, admin_env):
    issuer = IssuerConfig(issuer=ISSUER, audience=AUDIENCE,
                          jwks={"keys": [EC.as_dict(private=False)]},
                          scope_permissions={"read": ("users:list", "users:view"),
                                             "write": ("users:*",)})
    client = await aiohttp_client(with_scim11(create_app(await make_config(issuers=(issuer,)))))

    def token(scope: str) -> dict:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "svc", "iat": now, "exp": now + 300,
                  "scope": scope}
        return {"Authorization": "Bearer " + jwt.encode({"alg": "ES256", "kid": "ec-1"},
                                                         claims, EC)}

    status, body, resp = await s11(client, "POST", "/Users", {"userName": "x"},
                                   auth=token("read"))
    assert_error(status, body, resp, 403)
    status, body, _ = await s11(client, "POST", "/Users", {"userName": "x"},
                                auth=token("read write"))
    assert status == 201, body
    status, body, _ = await s11(client, "GET", "/Users" + q(filter="userName Eq x"),
                                auth=token("read"))
    assert status == 200 and body["totalResults"] == 1
    status, body, resp = await s11(client, "GET", "/Groups", auth=token("read"))
    assert_error(status, body, resp, 403)
    status, body, resp = await s11(client, "GET", "/Users", auth={"Authorization": "Bearer x.y.z"})
    assert_error(status, body, resp, 401)


# domains ------------------------------------------------------------------------------------------
async def test_domain_qualified_names(multi_gateway):
    gw = multi_gateway
    alice = await create_user(gw, "SECONDARY/alice", nickName="second")
    assert alice["userName"] == "SECONDARY/alice"
    await create_user(gw, "alice", nickName="primary")
    assert await names(gw, "userName Eq SECONDARY/alice", raw=True) == ["SECONDARY/alice"]
    assert await names(gw, "userName Eq alice") == ["alice"]
    assert await names(gw, 'userName Sw "SECONDARY/"') == ["SECONDARY/alice"]
    body = await get(gw, "/Users" + q(domain="SECONDARY"))
    assert [u["userName"] for u in body["Resources"]] == ["SECONDARY/alice"]
    # a group of the SECONDARY domain, its member given by unqualified name (WSO2's connector)
    group = await create_group(gw, "SECONDARY/eng")
    assert group["displayName"] == "SECONDARY/eng"
    status, body, _ = await s11(gw, "PATCH", f"/Groups/{group['id']}", {
        "displayName": "SECONDARY/eng", "members": [{"display": "alice"}]})
    assert status == 204, body
    got = await get(gw, f"/Groups/{group['id']}")
    assert got["members"] == [{"value": alice["id"], "type": "User",
                               "display": "SECONDARY/alice"}]
    # the same over SCIM 2.0
    status, scim2_user, _ = await scim(gw, "GET", f"/Users/{alice['id']}")
    assert scim2_user["userName"] == "SECONDARY/alice"
    assert scim2_user["groups"][0]["display"] == "SECONDARY/eng"
    status, body, resp = await s11(gw, "PATCH", f"/Users/{alice['id']}",
                                   {"userName": "PRIMARY/alice2"})
    assert_error(status, body, resp, 400)  # no move to another domain


# the same users over every protocol --------------------------------------------------------------
def soap(operation: str, **args: str) -> bytes:
    params = "".join(f"<ser:{k}>{v}</ser:{k}>" for k, v in args.items())
    return (f'<soapenv:Envelope xmlns:soapenv="{SOAP11_ENV}" xmlns:ser="{SOAP_TNS}">'
            f"<soapenv:Body><ser:{operation}>{params}</ser:{operation}></soapenv:Body>"
            "</soapenv:Envelope>").encode()


async def soap_return(client, operation: str, **args: str) -> str | None:
    resp = await client.post("/services/RemoteUserStoreManagerService",
                             data=soap(operation, **args),
                             headers={**ADMIN, "Content-Type": "text/xml; charset=utf-8",
                                      "SOAPAction": f"urn:{operation}"})
    raw = await resp.read()
    assert resp.status == 200, raw
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring(raw, parser)
    found = root.xpath("//*[local-name()='return']")
    return found[0].text if found else None


async def test_cross_protocol(gateway):
    boss = await create_user(gateway, "boss")
    # created over SCIM 1.1, read over SCIM 2.0 with the same values
    user = await create_user(gateway, "cross11", password="Cross-password-1",
                             name={"givenName": "Cross", "familyName": "Eleven"},
                             emails=[{"value": "cross11@x.org", "type": "work",
                                      "primary": True}],
                             **{ENTERPRISE: {"employeeNumber": "11", "department": "QA",
                                             "manager": {"managerId": boss["id"]}}})
    status, v2, _ = await scim(gateway, "GET", f"/Users/{user['id']}")
    assert status == 200, v2
    assert v2["schemas"] == [CORE2_USER, ENTERPRISE2]
    for key in ("id", "userName", "name", "emails"):
        assert v2[key] == user[key], key
    assert v2[ENTERPRISE2]["employeeNumber"] == "11"
    assert v2[ENTERPRISE2]["department"] == "QA"
    assert v2[ENTERPRISE2]["manager"]["value"] == boss["id"]
    assert v2["meta"]["version"] == user["meta"]["version"]
    status, found, _ = await scim(gateway, "GET", "/Users" + q(
        filter=f'{ENTERPRISE2}:manager.value eq "{boss["id"]}"'))
    assert [u["userName"] for u in found["Resources"]] == ["cross11"]

    # created over SCIM 2.0, read and changed over SCIM 1.1
    status, v2, _ = await scim(gateway, "POST", "/Users", {
        "schemas": [CORE2_USER, ENTERPRISE2], "userName": "cross20",
        "name": {"givenName": "Cross", "familyName": "Twenty"}, "title": "Eng",
        "emails": [{"value": "cross20@x.org", "primary": True}],
        ENTERPRISE2: {"costCenter": "20", "manager": {"value": boss["id"]}}})
    assert status == 201, v2
    v1 = await get(gateway, f"/Users/{v2['id']}")
    for key in ("id", "userName", "name", "emails", "title"):
        assert v1[key] == v2[key], key
    assert v1[ENTERPRISE] == {"costCenter": "20", "manager": {"managerId": boss["id"]}}
    status, body, _ = await s11(gateway, "PATCH", f"/Users/{v2['id']}",
                                {"meta": {"attributes": ["title"]}, "nickName": "twenty"})
    assert status == 200, body
    status, after, _ = await scim(gateway, "GET", f"/Users/{v2['id']}")
    assert "title" not in after and after["nickName"] == "twenty"

    # a group made over SCIM 2.0 lists its members over SCIM 1.1, and the other way round
    status, g2, _ = await scim(gateway, "POST", "/Groups", {
        "displayName": "cross", "members": [{"value": user["id"]}]})
    assert status == 201, g2
    g1 = await get(gateway, f"/Groups/{g2['id']}")
    assert g1["members"] == [{"value": user["id"], "type": "User", "display": "cross11"}]
    status, body, _ = await s11(gateway, "PATCH", f"/Groups/{g2['id']}",
                                {"members": [{"display": "cross20"}]})
    assert status == 204, body
    status, g2, _ = await scim(gateway, "GET", f"/Groups/{g2['id']}")
    assert {m["value"] for m in g2["members"]} == {user["id"], v2["id"]}
    status, body, _ = await scim(gateway, "PATCH", f"/Groups/{g2['id']}", {
        "schemas": [PATCH_OP2],
        "Operations": [{"op": "remove", "path": f'members[value eq "{user["id"]}"]'}]})
    assert status == 204, body
    assert member_ids(await get(gateway, f"/Groups/{g2['id']}")) == {v2["id"]}

    # and over SOAP (WSO2 RemoteUserStoreManagerService, SOAP 1.1)
    assert await soap_return(gateway, "isExistingUser", userName="cross11") == "true"
    assert await soap_return(gateway, "getUserClaimValue", userName="cross11",
                             claim="http://wso2.org/claims/givenname",
                             profileName="default") == "Cross"
    assert await soap_return(gateway, "getUserClaimValue", userName="cross11",
                             claim="http://wso2.org/claims/department",
                             profileName="default") == "QA"
    status, body, _ = await s11(gateway, "DELETE", f"/Users/{user['id']}")
    assert status == 200
    assert await soap_return(gateway, "isExistingUser", userName="cross11") == "false"
