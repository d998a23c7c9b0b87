"""WSO2's own SCIM 2.0 clients and connectors, replayed against the gateway.

Clients written for WSO2 Identity Server (its console, its outbound SCIM
connectors, scripts following its documentation) say things their own way:
filter operators in any case (``userName Eq "kim"``, ``AND``), the sort order
under its misspelt name ``sortOder``, a ``domain`` query parameter, group names
carrying their user store domain (``PRIMARY/eng``), and members added by id in
a path-less ``add`` whose value holds ``members``.

Naming rule asserted here (``userstores.registry.Stores.split``/``qualify``, used
by ``gateway.pipeline`` and ``gateway.scim_common.render``): a name may be written with
its domain, ``PRIMARY/eng`` is the same as ``eng``, and a PRIMARY name is always
returned bare (``eng``); names in another domain come back qualified
(``SECONDARY/eng``). Some WSO2 versions return ``PRIMARY/eng`` for groups; the
gateway does not, and a filter on either spelling finds the group.
Every test runs on both user store backends (``gateway``).
"""

from __future__ import annotations

from urllib.parse import quote

import orjson
from conftest import ADMIN, assert_scim_error, scim
from yarl import URL

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"


def query(*pairs: tuple[str, str | int]) -> str:
    return "&".join(f"{k}={quote(str(v), safe='')}" for k, v in pairs)


async def wso2(client, method: str, path: str, body: dict | None = None):
    """One request as WSO2's clients send it: Basic auth, application/scim+json."""
    headers = {**ADMIN, "Accept": "application/scim+json"}
    data = None
    if body is not None:
        headers["Content-Type"] = "application/scim+json"
        data = orjson.dumps(body)
    resp = await client.request(method, URL("/scim2" + path, encoded=True), data=data,
                                headers=headers)
    raw = await resp.read()
    parsed = orjson.loads(raw) if raw and "json" in resp.content_type else None
    return resp.status, parsed, resp


async def listing(client, endpoint: str, *pairs: tuple[str, str | int]) -> dict:
    status, body, _ = await wso2(client, "GET", f"{endpoint}?{query(*pairs)}")
    assert status == 200, body
    assert body["schemas"] == [LIST]
    return body


async def create_user(client, user_name: str, **attrs) -> dict:
    status, body, _ = await wso2(client, "POST", "/Users", {
        "schemas": [CORE_USER], "userName": user_name, "password": "Kim-password-1",
        "emails": [{"primary": True, "value": f"{user_name.split('/')[-1]}@wso2.com",
                    "type": "home"}], **attrs})
    assert status == 201, body
    return body


async def read(client, path: str) -> dict:
    status, body, _ = await wso2(client, "GET", path)
    assert status == 200, body
    return body


def ids(body: dict) -> list[str]:
    return [r["id"] for r in body["Resources"]]


# filters --------------------------------------------------------------------------------------
async def test_filter_operators_in_any_case(gateway):
    kim = await create_user(gateway, "kim", active=True,
                            name={"givenName": "Kim", "familyName": "Berry"})
    await create_user(gateway, "kimberly", active=False)
    for filt in ('userName Eq "kim"', 'userName EQ "kim"', 'userName eq "KIM"',
                 'userName Eq "kim" and active Eq true',
                 'userName Eq "kim" AND name.givenName Sw "K"',
                 'userName EQ "nobody" OR userName EQ "kim"',
                 'userName Sw "kim" And Not (active Eq false)'):
        body = await listing(gateway, "/Users", ("filter", filt))
        assert ids(body) == [kim["id"]], filt
        assert body["totalResults"] == 1, filt
    body = await listing(gateway, "/Users", ("filter", 'userName SW "kim"'),
                         ("sortBy", "userName"))
    assert [r["userName"] for r in body["Resources"]] == ["kim", "kimberly"]
    body = await listing(gateway, "/Users", ("filter", 'emails.value Co "@WSO2.com"'),
                         ("sortBy", "userName"))
    assert [r["userName"] for r in body["Resources"]] == ["kim", "kimberly"]


async def test_misspelt_sort_order_and_domain_parameter(gateway):
    for name in ("alex", "kim", "bob", "PRIMARY/carol"):
        await create_user(gateway, name)
    body = await listing(gateway, "/Users", ("filter", 'emails.value ew "@wso2.com"'),
                         ("sortBy", "userName"), ("sortOder", "descending"))
    assert [r["userName"] for r in body["Resources"]] == ["kim", "carol", "bob", "alex"]
    body = await listing(gateway, "/Users", ("filter", 'emails.value ew "@wso2.com"'),
                         ("sortBy", "userName"), ("sortOder", "Ascending"),
                         ("startIndex", 2), ("count", 2))
    assert [r["userName"] for r in body["Resources"]] == ["bob", "carol"]
    assert body["totalResults"] == 4 and body["startIndex"] == 2
    body = await listing(gateway, "/Users", ("domain", "PRIMARY"),
                         ("filter", 'userName sw "a"'))
    assert [r["userName"] for r in body["Resources"]] == ["alex"]
    status, body, _ = await wso2(gateway, "GET", "/Users?" + query(("domain", "NOSUCH")))
    assert_scim_error(status, body, 400)


# users in PRIMARY -------------------------------------------------------------------------------
async def test_user_name_with_primary_domain_is_stored_bare(gateway):
    kim = await create_user(gateway, "PRIMARY/kim")
    assert kim["userName"] == "kim"
    for filt in ('userName eq "PRIMARY/kim"', 'userName eq "primary/KIM"',
                 'userName eq "kim"'):
        body = await listing(gateway, "/Users", ("filter", filt))
        assert ids(body) == [kim["id"]], filt
    status, body, _ = await wso2(gateway, "POST", "/Users", {
        "schemas": [CORE_USER], "userName": "kim", "password": "Kim-password-2"})
    assert_scim_error(status, body, 409, "uniqueness")


# groups with the domain in their name -----------------------------------------------------------
async def test_group_named_with_primary_domain(gateway):
    kim = await create_user(gateway, "kim")
    status, group, resp = await wso2(gateway, "POST", "/Groups", {
        "schemas": [CORE_GROUP], "displayName": "PRIMARY/eng",
        "members": [{"value": kim["id"], "display": "kim"}]})
    assert status == 201, group
    # the product's rule: PRIMARY names come back without their domain
    assert group["displayName"] == "eng"
    assert [(m["value"], m.get("display")) for m in group["members"]] == [(kim["id"], "kim")]
    assert resp.headers["Location"].endswith(f"/Groups/{group['id']}")

    for filt in ('displayName eq "PRIMARY/eng"', 'displayName Eq "PRIMARY/eng"',
                 'displayName eq "primary/ENG"', 'displayName eq "eng"',
                 'displayName sw "PRIMARY/e"'):
        body = await listing(gateway, "/Groups", ("filter", filt))
        assert ids(body) == [group["id"]], filt
        assert body["Resources"][0]["displayName"] == "eng"
    assert (await listing(gateway, "/Groups", ("filter", 'displayName eq "SECONDARY/eng"'),
                          ))["totalResults"] == 0
    got = await read(gateway, f"/Groups/{group['id']}")
    assert got["displayName"] == "eng"
    assert [g["display"] for g in (await read(gateway, f"/Users/{kim['id']}"))["groups"]] == \
        ["eng"]
    # the same name, with or without the domain, is the same group
    for again in ("eng", "PRIMARY/eng", "primary/Eng"):
        status, body, _ = await wso2(gateway, "POST", "/Groups", {
            "schemas": [CORE_GROUP], "displayName": again})
        assert_scim_error(status, body, 409, "uniqueness")
    # renaming with the domain keeps it in PRIMARY
    status, body, _ = await wso2(gateway, "PATCH", f"/Groups/{group['id']}", {
        "schemas": [PATCH_OP], "Operations": [
            {"op": "replace", "path": "displayName", "value": "PRIMARY/engineering"}]})
    assert status == 204, body
    assert (await read(gateway, f"/Groups/{group['id']}"))["displayName"] == "engineering"
    body = await listing(gateway, "/Groups", ("filter", 'displayName eq "PRIMARY/engineering"'))
    assert ids(body) == [group["id"]]


async def test_members_added_by_id(gateway):
    kim = await create_user(gateway, "kim")
    alex = await create_user(gateway, "alex")
    bob = await create_user(gateway, "bob")
    status, group, _ = await wso2(gateway, "POST", "/Groups", {
        "schemas": [CORE_GROUP], "displayName": "PRIMARY/manager",
        "members": [{"value": kim["id"], "display": "kim"}]})
    assert status == 201, group
    path = f"/Groups/{group['id']}"
    # WSO2's documented form: a path-less add whose value carries the members
    status, body, resp = await wso2(gateway, "PATCH", path, {
        "schemas": [PATCH_OP], "Operations": [
            {"op": "add", "value": {"members": [{"display": "alex", "value": alex["id"]}]}}]})
    assert status == 204, body
    assert resp.headers.get("ETag")
    members = (await read(gateway, path))["members"]
    assert {(m["value"], m.get("display")) for m in members} == \
        {(kim["id"], "kim"), (alex["id"], "alex")}
    # and with a path, asking for the group back
    status, body, _ = await wso2(gateway, "PATCH", f"{path}?attributes=members", {
        "schemas": [PATCH_OP], "Operations": [
            {"op": "add", "path": "members", "value": [{"value": bob["id"]}]}]})
    assert status == 200, body
    assert {m["value"] for m in body["members"]} == {kim["id"], alex["id"], bob["id"]}
    assert [g["display"] for g in (await read(gateway, f"/Users/{bob['id']}"))["groups"]] == \
        ["manager"]
    # the member found through a filter on the group, with the domain in the name
    body = await listing(gateway, "/Groups", ("filter",
                                              f'displayName Eq "PRIMARY/manager" and '
                                              f'members.value eq "{bob["id"]}"'))
    assert ids(body) == [group["id"]]
    # a PUT with the domain-qualified name and the member list by id, as the
    # outbound connector sends a group update
    status, body, _ = await wso2(gateway, "PUT", path, {
        "schemas": [CORE_GROUP], "id": group["id"], "displayName": "PRIMARY/manager",
        "members": [{"value": alex["id"], "display": "alex"}]})
    assert status == 200, body
    assert body["displayName"] == "manager"
    assert [m["value"] for m in body["members"]] == [alex["id"]]
    assert (await read(gateway, f"/Users/{kim['id']}")).get("groups", []) == []


async def test_unquoted_filter_values_as_wso2_documents_them(gateway):
    """WSO2's docs and clients send `filter=userName+Eq+kim`: values without quotes."""
    kim = await create_user(gateway, "kim", active=True)
    await create_user(gateway, "kimberly")
    assert ids(await listing(gateway, "/Users", ("filter", "userName Eq kim"))) == [kim["id"]]
    body = await listing(gateway, "/Users", ("filter", "userName sw kim and active eq true"))
    assert ids(body) == [kim["id"]]
    # a quoted value keeps working, and broken syntax is still refused
    assert ids(await listing(gateway, "/Users", ("filter", 'userName eq "kim"'))) == [kim["id"]]
    status, body, _ = await wso2(gateway, "GET", "/Users?" + query(("filter", "userName eq")))
    assert_scim_error(status, body, 400, "invalidFilter")


async def test_bare_numeric_names_in_filters_are_strings(gateway):
    """WSO2's clients send numeric user names unquoted: ``userName Eq 000111``."""
    for name in ("000111", "12345"):
        status, body, _ = await scim(gateway, "POST", "/Users", {"userName": name})
        assert status == 201, body
    for flt, expected in (("userName Eq 000111", ["000111"]), ("userName eq 12345", ["12345"]),
                          ("userName sw 1", ["12345"])):
        status, body, _ = await scim(gateway, "GET", f"/Users?filter={flt}")
        assert status == 200, body
        assert [u["userName"] for u in body["Resources"]] == expected, flt
