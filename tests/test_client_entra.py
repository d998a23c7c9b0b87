"""Microsoft Entra ID's provisioning service, replayed request by request.

Each test sends what the Entra provisioning service sends, as it sends it: the
query strings URL-encoded with ``+`` and ``%22`` (``/Groups?excludedAttributes=members
&filter=displayName+eq+%22...%22``), ``Content-Type: application/scim+json`` on a
body and no Content-Type at all on a GET or DELETE, ``op`` capitalised (``Replace``,
``Add``, ``Remove``), booleans as the strings ``"True"``/``"False"``, path-less
replaces whose keys are dotted or URN-qualified, the work e-mail addressed as
``emails[type eq "work"].value`` (in PATCH and, outside RFC 7644's grammar, in a
filter), the manager as a bare id, and group members removed with a value array.
The shapes come from Microsoft's "Develop a SCIM endpoint" tutorial, its "Known
issues with SCIM 2.0 protocol compliance" page, and the AzureAD/SCIMReferenceCode
test collection. Every test runs on both user store backends (``gateway``).
"""

from __future__ import annotations

import uuid
from urllib.parse import quote_plus

import orjson
from conftest import ADMIN, assert_scim_error
from yarl import URL

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
AD_GROUP = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
MANAGER = f"{ENTERPRISE}:manager"


def query(*pairs: tuple[str, str]) -> str:
    """A query string encoded the way Entra encodes it (``+`` for spaces, ``%22``)."""
    return "&".join(f"{k}={quote_plus(v, safe='')}" for k, v in pairs)


async def entra(client, method: str, path: str, body: dict | None = None):
    """One request as Entra sends it: (status, parsed JSON or None, response)."""
    headers = dict(ADMIN)
    data = None
    if body is not None:
        headers["Content-Type"] = "application/scim+json"
        data = orjson.dumps(body)
    url = URL("/scim2" + path, encoded=True)
    resp = await client.request(method, url, data=data, headers=headers)
    raw = await resp.read()
    parsed = orjson.loads(raw) if raw and "json" in resp.content_type else None
    return resp.status, parsed, resp


async def lookup(client, endpoint: str, *pairs: tuple[str, str]) -> dict:
    status, body, resp = await entra(client, "GET", f"{endpoint}?{query(*pairs)}")
    assert status == 200, body
    assert resp.content_type == "application/scim+json"
    assert body["schemas"] == [LIST]
    assert body["itemsPerPage"] == len(body["Resources"])
    return body


def patch_op(*operations: dict) -> dict:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def entra_user(user_name: str, work_email: str | None = None, **extra) -> dict:
    """The body of Entra's POST /Users (the tutorial's "Create User" request)."""
    body = {
        "schemas": [CORE_USER, ENTERPRISE],
        "externalId": str(uuid.uuid4()),
        "userName": user_name,
        "active": True,
        "emails": [{"primary": True, "type": "work",
                    "value": work_email or f"{user_name}@testuser.com"}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "givenName familyName", "familyName": "familyName",
                 "givenName": "givenName"},
        "roles": [],
    }
    body.update(extra)
    return body


async def create_user(client, user_name: str, work_email: str | None = None, **extra) -> dict:
    status, body, resp = await entra(client, "POST", "/Users",
                                     entra_user(user_name, work_email, **extra))
    assert status == 201, body
    return body


async def read(client, path: str) -> dict:
    status, body, _ = await entra(client, "GET", path)
    assert status == 200, body
    return body


def emails_of(user: dict, kind: str) -> list[str]:
    return [e["value"] for e in user.get("emails", []) if e.get("type") == kind]


# connection test and matching ---------------------------------------------------------------
async def test_test_connection_queries_a_random_user_name(gateway):
    """"Test Connection" looks up a random GUID and expects 200 with an empty list."""
    body = await lookup(gateway, "/Users", ("filter", f'userName eq "{uuid.uuid4()}"'))
    assert body["totalResults"] == 0
    assert body["Resources"] == []
    assert body["startIndex"] == 1


async def test_create_user_then_match_by_user_name_and_external_id(gateway):
    name = f"Test_User_{uuid.uuid4()}"
    sent = entra_user(name)
    status, created, resp = await entra(gateway, "POST", "/Users", sent)
    assert status == 201, created
    assert resp.headers["Location"] == created["meta"]["location"]
    assert created["userName"] == name
    assert created["externalId"] == sent["externalId"]
    assert created["active"] is True
    assert emails_of(created, "work") == [f"{name}@testuser.com"]
    assert created["name"]["givenName"] == "givenName"
    assert "roles" not in created or created["roles"] == []

    # the matching queries Entra sends before it creates or updates anyone
    found = await lookup(gateway, "/Users", ("filter", f'userName eq "{name}"'))
    assert [u["id"] for u in found["Resources"]] == [created["id"]]
    found = await lookup(gateway, "/Users", ("filter", f'userName eq "{name.lower()}"'))
    assert [u["id"] for u in found["Resources"]] == [created["id"]]
    found = await lookup(gateway, "/Users", ("filter", f'externalId eq "{sent["externalId"]}"'))
    assert [u["id"] for u in found["Resources"]] == [created["id"]]
    found = await lookup(gateway, "/Users", ("filter", f'externalId eq "{uuid.uuid4()}"'))
    assert found["totalResults"] == 0 and found["Resources"] == []


async def test_match_by_work_email_filter(gateway):
    """Entra may match on ``emails[type eq "work"].value eq "..."`` (not RFC 7644 grammar)."""
    worker = await create_user(gateway, "worker", "shared@contoso.com")
    # the same address as a home e-mail must not match the work e-mail filter
    await create_user(gateway, "homebody", "other@contoso.com",
                      emails=[{"type": "work", "value": "other@contoso.com"},
                              {"type": "home", "value": "home@contoso.com"}])
    found = await lookup(gateway, "/Users",
                         ("filter", 'emails[type eq "work"].value eq "shared@contoso.com"'))
    assert [u["id"] for u in found["Resources"]] == [worker["id"]]
    assert found["totalResults"] == 1
    found = await lookup(gateway, "/Users",
                         ("filter", 'emails[type eq "work"].value eq "home@contoso.com"'))
    assert found["totalResults"] == 0 and found["Resources"] == []
    found = await lookup(gateway, "/Users",
                         ("filter", 'emails[type eq "work"].value eq "nobody@contoso.com"'))
    assert found["totalResults"] == 0 and found["Resources"] == []


# user updates ---------------------------------------------------------------------------------
async def test_patch_capitalised_ops_and_string_booleans(gateway):
    user = await create_user(gateway, "Test_User_flags")
    path = f"/Users/{user['id']}"
    status, body, resp = await entra(gateway, "PATCH", path, patch_op(
        {"op": "Replace", "path": "active", "value": "False"}))
    assert status == 200, body
    assert body["active"] is False
    assert resp.headers["ETag"] == body["meta"]["version"]
    status, body, _ = await entra(gateway, "PATCH", path, patch_op(
        {"op": "Replace", "path": "active", "value": "True"},
        {"op": "Replace", "path": "userName", "value": "renamed@testuser.com"},
        {"op": "Add", "path": "nickName", "value": "Babs"},
        {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"}))
    assert status == 200, body
    assert body["active"] is True
    assert body["userName"] == "renamed@testuser.com"
    assert body["nickName"] == "Babs"
    assert body["name"]["familyName"] == "updatedFamilyName"
    status, body, _ = await entra(gateway, "PATCH", path, patch_op(
        {"op": "Remove", "path": "nickName"}))
    assert status == 200, body
    assert "nickName" not in body
    fetched = await read(gateway, path)
    assert fetched["active"] is True and "nickName" not in fetched
    assert fetched["userName"] == "renamed@testuser.com"


async def test_patch_pathless_dotted_and_urn_keys(gateway):
    user = await create_user(gateway, "Test_User_pathless")
    path = f"/Users/{user['id']}"
    status, body, _ = await entra(gateway, "PATCH", path, patch_op({"op": "Replace", "value": {
        "name.givenName": "Barbara",
        "name.familyName": "Jensen",
        "displayName": "Babs Jensen",
        f"{ENTERPRISE}:department": "Tour Operations",
        f"{ENTERPRISE}:employeeNumber": "701984",
        "active": "False",
    }}))
    assert status == 200, body
    assert body["name"]["givenName"] == "Barbara"
    assert body["name"]["familyName"] == "Jensen"
    assert body["name"]["formatted"] == "givenName familyName"  # untouched sub-attribute
    assert body["displayName"] == "Babs Jensen"
    assert body[ENTERPRISE] == {"department": "Tour Operations", "employeeNumber": "701984"}
    assert ENTERPRISE in body["schemas"]
    assert body["active"] is False
    status, body, _ = await entra(gateway, "PATCH", path, patch_op({"op": "Add", "value": {
        f"{ENTERPRISE}:costCenter": "4130", "title": "Tour Guide"}}))
    assert status == 200, body
    assert body[ENTERPRISE]["costCenter"] == "4130"
    assert body[ENTERPRISE]["department"] == "Tour Operations"
    assert body["title"] == "Tour Guide"
    fetched = await read(gateway, path)
    assert fetched[ENTERPRISE] == body[ENTERPRISE]
    assert fetched["name"] == body["name"]


async def test_patch_work_email_path_replaces_or_adds(gateway):
    both = await create_user(gateway, "Test_User_mail", "old@contoso.com",
                             emails=[{"type": "work", "value": "old@contoso.com",
                                      "primary": True},
                                     {"type": "home", "value": "home@contoso.com"}])
    path = f"/Users/{both['id']}"
    status, body, _ = await entra(gateway, "PATCH", path, patch_op(
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "new@contoso.com"}))
    assert status == 200, body
    assert emails_of(body, "work") == ["new@contoso.com"]
    assert emails_of(body, "home") == ["home@contoso.com"]
    assert emails_of(await read(gateway, path), "work") == ["new@contoso.com"]

    # no work e-mail yet: Entra still says Replace (or Add), and means "set it"
    status, home_only, _ = await entra(gateway, "POST", "/Users", {
        "schemas": [CORE_USER], "userName": "Test_User_home", "active": True,
        "emails": [{"type": "home", "value": "h2@contoso.com"}]})
    assert status == 201, home_only
    path = f"/Users/{home_only['id']}"
    status, body, _ = await entra(gateway, "PATCH", path, patch_op(
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "w2@contoso.com"}))
    assert status == 200, body
    assert emails_of(body, "work") == ["w2@contoso.com"]
    assert emails_of(body, "home") == ["h2@contoso.com"]
    status, bare, _ = await entra(gateway, "POST", "/Users", {
        "schemas": [CORE_USER], "userName": "Test_User_nomail", "active": True})
    assert status == 201, bare
    status, body, _ = await entra(gateway, "PATCH", f"/Users/{bare['id']}", patch_op(
        {"op": "Add", "path": 'emails[type eq "work"].value', "value": "w3@contoso.com"}))
    assert status == 200, body
    assert emails_of(body, "work") == ["w3@contoso.com"]
    found = await lookup(gateway, "/Users", ("filter", 'emails.value eq "w3@contoso.com"'))
    assert [u["id"] for u in found["Resources"]] == [bare["id"]]


async def test_patch_single_app_role(gateway):
    """An app role mapped with SingleAppRoleAssignment: the primary role, "True" as a string."""
    user = await create_user(gateway, "Test_User_role")
    path = f"/Users/{user['id']}"
    status, body, _ = await entra(gateway, "PATCH", path, patch_op(
        {"op": "Replace", "path": 'roles[primary eq "True"].value', "value": "Admin"}))
    assert status == 200, body
    assert [(r["value"], r.get("primary")) for r in body["roles"]] == [("Admin", True)]
    status, body, _ = await entra(gateway, "PATCH", path, patch_op(
        {"op": "Replace", "path": 'roles[primary eq "True"].value', "value": "Reader"}))
    assert status == 200, body
    assert [(r["value"], r.get("primary")) for r in body["roles"]] == [("Reader", True)]
    assert (await read(gateway, path))["roles"] == body["roles"]


async def test_patch_manager_as_plain_id(gateway):
    """Entra sends the manager as the manager's id, not as ``{"value": id}``."""
    boss = await create_user(gateway, "Test_User_boss")
    user = await create_user(gateway, "Test_User_report")
    path = f"/Users/{user['id']}"
    status, body, _ = await entra(gateway, "PATCH", path, patch_op(
        {"op": "Add", "path": MANAGER, "value": boss["id"]}))
    assert status == 200, body
    assert body[ENTERPRISE]["manager"]["value"] == boss["id"]
    assert (await read(gateway, path))[ENTERPRISE]["manager"]["value"] == boss["id"]
    found = await lookup(gateway, "/Users", ("filter", f'{MANAGER}.value eq "{boss["id"]}"'))
    assert [u["id"] for u in found["Resources"]] == [user["id"]]


async def test_patch_manager_as_value_object(gateway):
    boss = await create_user(gateway, "Test_User_boss2")
    user = await create_user(gateway, "Test_User_report2")
    path = f"/Users/{user['id']}"
    status, body, _ = await entra(gateway, "PATCH", path, patch_op(
        {"op": "Replace", "path": MANAGER, "value": {"value": boss["id"]}}))
    assert status == 200, body
    assert body[ENTERPRISE]["manager"]["value"] == boss["id"]
    status, body, _ = await entra(gateway, "PATCH", path, patch_op(
        {"op": "Remove", "path": MANAGER}))
    assert status == 200, body
    assert "manager" not in body.get(ENTERPRISE, {})
    assert "manager" not in (await read(gateway, path)).get(ENTERPRISE, {})


# deprovisioning --------------------------------------------------------------------------------
async def test_soft_delete_keeps_the_user_readable_and_filterable(gateway):
    keep = await create_user(gateway, "Test_User_stays")
    gone = await create_user(gateway, "Test_User_leaver")
    status, body, _ = await entra(gateway, "PATCH", f"/Users/{gone['id']}", patch_op(
        {"op": "Replace", "path": "active", "value": "False"}))
    assert status == 200, body
    fetched = await read(gateway, f"/Users/{gone['id']}")
    assert fetched["active"] is False
    assert fetched["userName"] == "Test_User_leaver"
    inactive = await lookup(gateway, "/Users", ("filter", "active eq false"))
    assert [u["id"] for u in inactive["Resources"]] == [gone["id"]]
    active = await lookup(gateway, "/Users", ("filter", "active eq true"))
    assert gone["id"] not in {u["id"] for u in active["Resources"]}
    assert keep["id"] in {u["id"] for u in active["Resources"]}
    found = await lookup(gateway, "/Users", ("filter", 'userName eq "Test_User_leaver"'))
    assert [u["active"] for u in found["Resources"]] == [False]


async def test_delete_without_content_type(gateway):
    user = await create_user(gateway, "Test_User_deleted")
    status, body, _ = await entra(gateway, "POST", "/Groups", {
        "schemas": [CORE_GROUP], "displayName": "deleted-group",
        "members": [{"value": user["id"]}]})
    assert status == 201, body
    group = body
    for path in (f"/Groups/{group['id']}", f"/Users/{user['id']}"):
        resp = await gateway.request("DELETE", "/scim2" + path, headers=ADMIN)
        assert "Content-Type" not in resp.request_info.headers
        assert resp.status == 204, await resp.text()
        assert await resp.read() == b""
        status, body, _ = await entra(gateway, "GET", path)
        assert_scim_error(status, body, 404)
    found = await lookup(gateway, "/Users", ("filter", 'userName eq "Test_User_deleted"'))
    assert found["totalResults"] == 0


# groups -----------------------------------------------------------------------------------------
async def test_group_create_with_members_and_match_without_members(gateway):
    a = await create_user(gateway, "Test_User_a")
    b = await create_user(gateway, "Test_User_b")
    external = str(uuid.uuid4())
    status, group, resp = await entra(gateway, "POST", "/Groups", {
        "schemas": [CORE_GROUP, AD_GROUP],
        "externalId": external,
        "displayName": "Test_Group_Sales",
        "meta": {"resourceType": "Group"},
        "members": [{"value": a["id"]}, {"value": b["id"]}],
    })
    assert status == 201, group
    assert resp.headers["Location"] == group["meta"]["location"]
    assert group["displayName"] == "Test_Group_Sales"
    assert group["externalId"] == external
    assert {m["value"] for m in group["members"]} == {a["id"], b["id"]}

    # Entra's group match: members excluded, displayName (or externalId) compared
    found = await lookup(gateway, "/Groups", ("excludedAttributes", "members"),
                         ("filter", 'displayName eq "Test_Group_Sales"'))
    assert [g["id"] for g in found["Resources"]] == [group["id"]]
    assert "members" not in found["Resources"][0]
    assert found["Resources"][0]["displayName"] == "Test_Group_Sales"
    found = await lookup(gateway, "/Groups", ("excludedAttributes", "members"),
                         ("filter", f'externalId eq "{external}"'))
    assert [g["id"] for g in found["Resources"]] == [group["id"]]
    assert "members" not in found["Resources"][0]
    found = await lookup(gateway, "/Groups", ("excludedAttributes", "members"),
                         ("filter", 'displayName eq "Test_Group_Nobody"'))
    assert found["totalResults"] == 0 and found["Resources"] == []
    status, one, _ = await entra(gateway, "GET", f"/Groups/{group['id']}?"
                                 + query(("excludedAttributes", "members")))
    assert status == 200, one
    assert "members" not in one


async def test_group_patch_members_and_rename_answer_204(gateway):
    a = await create_user(gateway, "Test_User_m1")
    b = await create_user(gateway, "Test_User_m2")
    c = await create_user(gateway, "Test_User_m3")
    status, group, _ = await entra(gateway, "POST", "/Groups", {
        "schemas": [CORE_GROUP, AD_GROUP], "externalId": str(uuid.uuid4()),
        "displayName": "Test_Group_Patch", "meta": {"resourceType": "Group"}})
    assert status == 201, group
    path = f"/Groups/{group['id']}"
    versions = [group["meta"]["version"]]

    async def patch_204(*operations: dict) -> None:
        status, body, resp = await entra(gateway, "PATCH", path, patch_op(*operations))
        assert status == 204, body
        assert body is None and await resp.read() == b""
        etag = resp.headers["ETag"]
        assert etag not in versions, "a change must give a new version"
        versions.append(etag)
        assert (await read(gateway, path))["meta"]["version"] == etag

    await patch_204({"name": "addMember", "op": "Add", "path": "members",
                     "value": [{"$ref": None, "value": a["id"]},
                               {"$ref": None, "value": b["id"]},
                               {"$ref": None, "value": c["id"]}]})
    assert {m["value"] for m in (await read(gateway, path))["members"]} == \
        {a["id"], b["id"], c["id"]}
    await patch_204({"name": "removeMember", "op": "Remove", "path": "members",
                     "value": [{"$ref": None, "value": a["id"]},
                               {"$ref": None, "value": c["id"]}]})
    assert {m["value"] for m in (await read(gateway, path))["members"]} == {b["id"]}
    assert (await read(gateway, f"/Users/{a['id']}")).get("groups", []) == []
    await patch_204({"op": "Replace", "path": "displayName", "value": "Test_Group_Renamed"})
    renamed = await read(gateway, path)
    assert renamed["displayName"] == "Test_Group_Renamed"
    assert {m["value"] for m in renamed["members"]} == {b["id"]}
    assert [g["display"] for g in (await read(gateway, f"/Users/{b['id']}"))["groups"]] == \
        ["Test_Group_Renamed"]
    # the RFC form Entra sends once the compliance flag is on
    await patch_204({"op": "remove", "path": f'members[value eq "{b["id"]}"]'})
    assert (await read(gateway, path)).get("members", []) == []
