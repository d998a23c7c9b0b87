"""SCIM 2.0 /Users over HTTP: create, read, replace, delete, ETags, passwords, extensions."""

from __future__ import annotations

import asyncio
import re

from conftest import ADMIN_USER, assert_scim_error, scim

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
WSO2 = "urn:scim:wso2:schema"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
SECRET = "S3cret-never-shown!"


def patch_body(*operations: dict) -> dict:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


async def create(client, body: dict) -> dict:
    status, created, _ = await scim(client, "POST", "/Users", body)
    assert status == 201, created
    return created


def assert_no_password(body) -> None:
    """The password (or its hash) appears nowhere in a response body."""
    text = repr(body)
    assert "password" not in text.lower(), body
    assert SECRET not in text
    assert "$argon2" not in text


async def users_named(client, name: str) -> list[dict]:
    status, found, _ = await scim(client, "GET", f'/Users?filter=userName eq "{name}"')
    assert status == 200, found
    return found["Resources"]


# create -----------------------------------------------------------------------------------
async def test_create_returns_full_resource_with_meta_and_headers(gateway):
    status, body, resp = await scim(gateway, "POST", "/Users", {
        "schemas": [CORE], "userName": "bjensen", "displayName": "Babs Jensen",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "emails": [{"value": "bjensen@example.com", "type": "work", "primary": True}],
        "active": True,
    })
    assert status == 201, body
    assert resp.content_type == "application/scim+json"
    assert resp.headers["ETag"] == 'W/"1"'
    uid = body["id"]
    assert uid and isinstance(uid, str)
    meta = body["meta"]
    assert meta["resourceType"] == "User"
    assert meta["version"] == 'W/"1"'
    assert meta["location"].endswith(f"/scim2/Users/{uid}")
    assert meta["location"].startswith("http")
    assert resp.headers["Location"] == meta["location"]
    assert TIMESTAMP.match(meta["created"]), meta
    assert TIMESTAMP.match(meta["lastModified"]), meta
    assert meta["created"] == meta["lastModified"]
    assert body["schemas"] == [CORE]  # no extension data, no extension schema
    assert body["userName"] == "bjensen"
    assert body["displayName"] == "Babs Jensen"
    assert body["name"] == {"givenName": "Barbara", "familyName": "Jensen"}
    assert body["emails"] == [{"value": "bjensen@example.com", "type": "work", "primary": True}]
    assert body["active"] is True


async def test_schemas_list_the_extensions_in_use(gateway):
    body = await create(gateway, {"userName": "ext", ENTERPRISE: {"employeeNumber": "7"}})
    assert body["schemas"][0] == CORE
    assert ENTERPRISE in body["schemas"]
    assert WSO2 not in body["schemas"]
    both = await create(gateway, {"userName": "ext2", ENTERPRISE: {"department": "R&D"},
                                  WSO2: {"country": "LK"}})
    assert set(both["schemas"]) == {CORE, ENTERPRISE, WSO2}


async def test_get_by_id_returns_what_create_returned(gateway):
    created = await create(gateway, {"userName": "getme", "title": "Engineer"})
    status, got, resp = await scim(gateway, "GET", f"/Users/{created['id']}")
    assert status == 200, got
    assert resp.headers["ETag"] == 'W/"1"'
    assert got["id"] == created["id"]
    assert got["userName"] == "getme"
    assert got["title"] == "Engineer"
    assert got["meta"] == created["meta"]


async def test_unknown_id_is_404(gateway):
    status, body, _ = await scim(gateway, "GET", "/Users/2819c223-7f76-453a-919d-413861904646")
    assert_scim_error(status, body, 404)
    status, body, _ = await scim(gateway, "GET", "/Users/not-even-a-uuid")
    assert_scim_error(status, body, 404)
    # an id PostgreSQL could not even store is simply not found (not a 500/503)
    status, body, _ = await scim(gateway, "GET", "/Users/a%00b")
    assert_scim_error(status, body, 404)
    status, body, _ = await scim(gateway, "PUT", "/Users/00000000-0000-0000-0000-000000000000",
                                 {"userName": "ghost"})
    assert_scim_error(status, body, 404)
    status, body, _ = await scim(gateway, "PATCH", "/Users/00000000-0000-0000-0000-000000000000",
                                 patch_body({"op": "replace", "path": "title", "value": "x"}))
    assert_scim_error(status, body, 404)
    status, body, _ = await scim(gateway, "DELETE", "/Users/00000000-0000-0000-0000-000000000000")
    assert_scim_error(status, body, 404)
    assert await users_named(gateway, "ghost") == []


async def test_case_insensitive_attribute_names(gateway):
    body = await create(gateway, {
        "USERNAME": "caps", "Name": {"GIVENNAME": "Cap", "familyname": "Lock"},
        "EMAILS": [{"VALUE": "caps@example.com", "Type": "work"}],
        "DisplayName": "Caps Lock", ENTERPRISE.upper(): {"EMPLOYEENUMBER": "9"},
    })
    assert body["userName"] == "caps"
    assert body["name"] == {"givenName": "Cap", "familyName": "Lock"}
    assert body["emails"] == [{"value": "caps@example.com", "type": "work"}]
    assert body["displayName"] == "Caps Lock"
    assert body[ENTERPRISE] == {"employeeNumber": "9"}
    for key in ("USERNAME", "Name", "EMAILS", "DisplayName"):
        assert key not in body
    status, got, _ = await scim(gateway, "GET", f"/Users/{body['id']}")
    assert got["userName"] == "caps" and got["name"]["givenName"] == "Cap"


async def test_user_name_is_unique_case_insensitively(gateway):
    await create(gateway, {"userName": "Alice"})
    status, body, _ = await scim(gateway, "POST", "/Users", {"userName": "alice"})
    assert_scim_error(status, body, 409, "uniqueness")
    status, body, _ = await scim(gateway, "POST", "/Users", {"userName": "ALICE"})
    assert_scim_error(status, body, 409, "uniqueness")
    found = await users_named(gateway, "alice")
    assert [u["userName"] for u in found] == ["Alice"]
    # the bootstrap administrator's name is taken too
    status, body, _ = await scim(gateway, "POST", "/Users", {"userName": ADMIN_USER[0].upper()})
    assert_scim_error(status, body, 409, "uniqueness")
    # renaming onto a taken name is refused and changes nothing
    other = await create(gateway, {"userName": "other"})
    status, body, _ = await scim(gateway, "PUT", f"/Users/{other['id']}", {"userName": "aLiCe"})
    assert_scim_error(status, body, 409, "uniqueness")
    status, got, _ = await scim(gateway, "GET", f"/Users/{other['id']}")
    assert got["userName"] == "other"
    assert got["meta"]["version"] == 'W/"1"'


# read-only attributes ---------------------------------------------------------------------
async def test_read_only_attributes_are_ignored_on_create(gateway):
    body = await create(gateway, {
        "userName": "ro", "id": "chosen-by-client",
        "meta": {"resourceType": "Group", "version": 'W/"42"', "created": "2000-01-01T00:00:00Z",
                 "location": "http://evil.example/x"},
        "groups": [{"value": "1234", "display": "admin"}],
        ENTERPRISE: {"manager": {"value": "m-1", "displayName": "Boss"}},
    })
    assert body["id"] != "chosen-by-client"
    assert body["meta"]["resourceType"] == "User"
    assert body["meta"]["version"] == 'W/"1"'
    assert not body["meta"]["created"].startswith("2000")
    assert "evil" not in body["meta"]["location"]
    assert not body.get("groups")
    assert body[ENTERPRISE]["manager"] == {"value": "m-1"}  # displayName is readOnly
    status, _, _ = await scim(gateway, "GET", "/Users/chosen-by-client")
    assert status == 404
    status, got, _ = await scim(gateway, "GET", f"/Users/{body['id']}")
    assert not got.get("groups")


async def test_group_membership_cannot_be_set_through_the_user(gateway):
    status, group, _ = await scim(gateway, "POST", "/Groups", {"displayName": "eng"})
    assert status == 201, group
    user = await create(gateway, {"userName": "joiner",
                                   "groups": [{"value": group["id"]}]})
    assert not user.get("groups")
    status, put, _ = await scim(gateway, "PUT", f"/Users/{user['id']}", {
        "userName": "joiner", "groups": [{"value": group["id"], "display": "eng"}]})
    assert status == 200, put
    assert not put.get("groups")
    status, g, _ = await scim(gateway, "GET", f"/Groups/{group['id']}")
    assert not g.get("members")


# replace -------------------------------------------------------------------------------------
async def test_put_replaces_the_whole_resource(gateway):
    created = await create(gateway, {
        "userName": "putme", "displayName": "Before", "title": "Old title",
        "name": {"givenName": "Put", "familyName": "Me"},
        "emails": [{"value": "a@example.com"}, {"value": "b@example.com"}],
        ENTERPRISE: {"employeeNumber": "1", "department": "Sales"},
    })
    await asyncio.sleep(0.002)
    status, body, resp = await scim(gateway, "PUT", f"/Users/{created['id']}", {
        "schemas": [CORE], "userName": "putme", "displayName": "After",
        "emails": [{"value": "c@example.com", "primary": True}],
    })
    assert status == 200, body
    assert resp.headers["ETag"] == 'W/"2"'
    assert body["meta"]["version"] == 'W/"2"'
    assert body["id"] == created["id"]
    assert body["displayName"] == "After"
    assert body["emails"] == [{"value": "c@example.com", "primary": True}]
    for gone in ("title", "name", ENTERPRISE):
        assert gone not in body, body
    assert body["schemas"] == [CORE]
    assert body["meta"]["created"] == created["meta"]["created"]
    assert body["meta"]["lastModified"] != created["meta"]["lastModified"]
    assert body["meta"]["lastModified"] > created["meta"]["lastModified"]
    status, got, _ = await scim(gateway, "GET", f"/Users/{created['id']}")
    assert got == body


async def test_put_ignores_id_and_meta_in_the_body(gateway):
    created = await create(gateway, {"userName": "keepid"})
    other = await create(gateway, {"userName": "someone-else"})
    status, body, _ = await scim(gateway, "PUT", f"/Users/{created['id']}", {
        "id": other["id"], "userName": "keepid", "nickName": "kid",
        "meta": {"version": 'W/"77"', "created": "1999-01-01T00:00:00Z", "resourceType": "X"},
    })
    assert status == 200, body
    assert body["id"] == created["id"]
    assert body["meta"]["version"] == 'W/"2"'
    assert body["meta"]["resourceType"] == "User"
    assert body["meta"]["created"] == created["meta"]["created"]
    status, untouched, _ = await scim(gateway, "GET", f"/Users/{other['id']}")
    assert untouched["userName"] == "someone-else"
    assert "nickName" not in untouched
    assert untouched["meta"]["version"] == 'W/"1"'


async def test_put_can_rename_and_versions_keep_counting(gateway):
    created = await create(gateway, {"userName": "v1"})
    for n in range(2, 5):
        status, body, resp = await scim(gateway, "PUT", f"/Users/{created['id']}",
                                        {"userName": f"v{n}"})
        assert status == 200, body
        assert resp.headers["ETag"] == f'W/"{n}"'
        assert body["userName"] == f"v{n}"
    assert await users_named(gateway, "v1") == []
    assert len(await users_named(gateway, "v4")) == 1




async def test_put_without_user_name_is_refused_and_changes_nothing(gateway):
    created = await create(gateway, {"userName": "needname", "title": "t"})
    status, body, _ = await scim(gateway, "PUT", f"/Users/{created['id']}", {"title": "x"})
    assert_scim_error(status, body, 400, "invalidValue")
    status, got, _ = await scim(gateway, "GET", f"/Users/{created['id']}")
    assert got["title"] == "t" and got["meta"]["version"] == 'W/"1"'


# delete ---------------------------------------------------------------------------------------
async def test_delete_then_404(gateway):
    created = await create(gateway, {"userName": "deleteme"})
    status, body, resp = await scim(gateway, "DELETE", f"/Users/{created['id']}")
    assert status == 204
    assert await resp.read() == b""
    status, body, _ = await scim(gateway, "GET", f"/Users/{created['id']}")
    assert_scim_error(status, body, 404)
    status, body, _ = await scim(gateway, "DELETE", f"/Users/{created['id']}")
    assert_scim_error(status, body, 404)
    status, body, _ = await scim(gateway, "PUT", f"/Users/{created['id']}",
                                 {"userName": "deleteme"})
    assert_scim_error(status, body, 404)
    assert await users_named(gateway, "deleteme") == []
    # the name is free again
    again = await create(gateway, {"userName": "deleteme"})
    assert again["id"] != created["id"]


async def test_delete_removes_the_user_from_its_groups(gateway):
    user = await create(gateway, {"userName": "member"})
    status, group, _ = await scim(gateway, "POST", "/Groups",
                                  {"displayName": "team", "members": [{"value": user["id"]}]})
    assert status == 201, group
    status, _, _ = await scim(gateway, "DELETE", f"/Users/{user['id']}")
    assert status == 204
    status, g, _ = await scim(gateway, "GET", f"/Groups/{group['id']}")
    assert status == 200
    assert not g.get("members")


# passwords -----------------------------------------------------------------------------------
async def test_password_is_accepted_but_never_returned(gateway):
    status, created, resp = await scim(gateway, "POST", "/Users",
                                       {"userName": "secret", "password": SECRET})
    assert status == 201, created
    assert_no_password(created)
    uid = created["id"]

    status, got, _ = await scim(gateway, "GET", f"/Users/{uid}")
    assert status == 200
    assert_no_password(got)
    status, got, _ = await scim(gateway, "GET", f"/Users/{uid}?attributes=password,userName")
    assert status == 200
    assert_no_password(got)

    status, listed, _ = await scim(gateway, "GET", "/Users")
    assert status == 200
    assert any(u["id"] == uid for u in listed["Resources"])
    assert_no_password(listed)
    status, searched, _ = await scim(gateway, "POST", "/Users/.search",
                                     {"filter": 'userName eq "secret"'})
    assert status == 200 and searched["totalResults"] == 1
    assert_no_password(searched)

    status, put, _ = await scim(gateway, "PUT", f"/Users/{uid}",
                                {"userName": "secret", "password": SECRET + "2"})
    assert status == 200, put
    assert_no_password(put)
    assert (SECRET + "2") not in repr(put)

    status, patched, _ = await scim(gateway, "PATCH", f"/Users/{uid}", patch_body(
        {"op": "replace", "path": "password", "value": SECRET + "3"}))
    assert status == 200, patched
    assert_no_password(patched)
    assert (SECRET + "3") not in repr(patched)


async def test_password_rules_and_login(gateway):
    from conftest import basic

    for bad in ("", 12345, {"value": "x"}):
        status, body, _ = await scim(gateway, "POST", "/Users",
                                     {"userName": "login", "password": bad})
        assert_scim_error(status, body, 400, "invalidValue")
    assert await users_named(gateway, "login") == []
    created = await create(gateway, {"userName": "login", "password": SECRET})
    # the user has no role: authenticated (so not 401) but not allowed
    status, body, _ = await scim(gateway, "GET", "/Users", auth=basic("login", SECRET))
    assert_scim_error(status, body, 403)
    status, body, _ = await scim(gateway, "GET", "/Users", auth=basic("login", "wrong"))
    assert_scim_error(status, body, 401)
    # PUT with a new password changes it; PUT without one keeps it
    status, body, _ = await scim(gateway, "PUT", f"/Users/{created['id']}",
                                 {"userName": "login", "password": SECRET + "2"})
    assert status == 200, body
    status, body, _ = await scim(gateway, "GET", "/Users", auth=basic("login", SECRET + "2"))
    assert_scim_error(status, body, 403)
    status, body, _ = await scim(gateway, "PUT", f"/Users/{created['id']}",
                                 {"userName": "login", "title": "kept"})
    assert status == 200, body
    status, body, _ = await scim(gateway, "GET", "/Users", auth=basic("login", SECRET + "2"))
    assert_scim_error(status, body, 403)
    status, body, _ = await scim(gateway, "GET", "/Users", auth=basic("login", SECRET))
    assert_scim_error(status, body, 401)


# extensions ----------------------------------------------------------------------------------
async def test_enterprise_extension_round_trips(gateway):
    boss = await create(gateway, {"userName": "boss"})
    ext = {"employeeNumber": "701984", "costCenter": "4130", "organization": "Universal Studios",
           "division": "Theme Park", "department": "Tour Operations",
           "manager": {"value": boss["id"]}}
    created = await create(gateway, {"schemas": [CORE, ENTERPRISE], "userName": "emp",
                                      ENTERPRISE: ext})
    assert created[ENTERPRISE] == ext
    status, got, _ = await scim(gateway, "GET", f"/Users/{created['id']}")
    assert got[ENTERPRISE] == ext
    assert ENTERPRISE in got["schemas"]
    status, found, _ = await scim(
        gateway, "GET", f'/Users?filter={ENTERPRISE}:employeeNumber eq "701984"')
    assert status == 200, found
    assert [u["id"] for u in found["Resources"]] == [created["id"]]
    status, found, _ = await scim(
        gateway, "GET", f'/Users?filter={ENTERPRISE}:manager.value eq "{boss["id"]}"')
    assert status == 200, found
    assert [u["id"] for u in found["Resources"]] == [created["id"]]
    # the shape Entra ID sends: one URN-qualified attribute per key
    entra = await create(gateway, {
        "userName": "entra", f"{ENTERPRISE}:employeeNumber": "55",
        f"{ENTERPRISE}:manager.value": boss["id"]})
    assert entra[ENTERPRISE] == {"employeeNumber": "55", "manager": {"value": boss["id"]}}


async def test_wso2_extension_round_trips(gateway):
    ext = {"accountLocked": False, "accountDisabled": False, "failedLoginAttempts": 3,
           "askPassword": True, "emailVerified": True, "dateOfBirth": "1990-01-31",
           "gender": "female", "country": "Sri Lanka", "stateOrProvince": "Western",
           "otherPhone": "+94 11 000 0000", "userSource": "SOAP"}
    created = await create(gateway, {"userName": "wso2user", WSO2: ext})
    assert created[WSO2] == ext
    assert WSO2 in created["schemas"]
    status, got, _ = await scim(gateway, "GET", f"/Users/{created['id']}")
    assert got[WSO2] == ext
    status, found, _ = await scim(gateway, "GET",
                                  f'/Users?filter={WSO2}:country eq "sri lanka"')
    assert status == 200, found
    assert [u["id"] for u in found["Resources"]] == [created["id"]]
    status, found, _ = await scim(gateway, "GET", "/Users?filter=failedLoginAttempts gt 2")
    assert status == 200, found
    assert [u["id"] for u in found["Resources"]] == [created["id"]]


async def test_wso2_extension_types_are_checked(gateway):
    status, body, _ = await scim(gateway, "POST", "/Users",
                                 {"userName": "wso2bad", WSO2: {"failedLoginAttempts": "many"}})
    assert_scim_error(status, body, 400, "invalidValue")
    status, body, _ = await scim(gateway, "POST", "/Users",
                                 {"userName": "wso2bad", WSO2: {"accountLocked": "maybe"}})
    assert_scim_error(status, body, 400, "invalidValue")
    assert await users_named(gateway, "wso2bad") == []
    # Entra ID sends booleans as strings
    created = await create(gateway, {"userName": "entrabool", "active": "False",
                                      WSO2: {"accountLocked": "True"}})
    assert created["active"] is False
    assert created[WSO2]["accountLocked"] is True


# ETags ------------------------------------------------------------------------------------------
async def test_if_match_current_version_allows_put_patch_delete(gateway):
    created = await create(gateway, {"userName": "etag"})
    uid = created["id"]
    status, body, resp = await scim(gateway, "PUT", f"/Users/{uid}",
                                    {"userName": "etag", "title": "one"},
                                    headers={"If-Match": 'W/"1"'})
    assert status == 200, body
    assert resp.headers["ETag"] == 'W/"2"'
    status, body, resp = await scim(gateway, "PATCH", f"/Users/{uid}", patch_body(
        {"op": "replace", "path": "title", "value": "two"}), headers={"If-Match": resp.headers[
            "ETag"]})
    assert status == 200, body
    assert body["title"] == "two"
    assert resp.headers["ETag"] == 'W/"3"'
    status, body, _ = await scim(gateway, "DELETE", f"/Users/{uid}",
                                 headers={"If-Match": 'W/"3"'})
    assert status == 204, body
    status, _, _ = await scim(gateway, "GET", f"/Users/{uid}")
    assert status == 404
    # "*" matches any version
    other = await create(gateway, {"userName": "star"})
    status, body, _ = await scim(gateway, "PUT", f"/Users/{other['id']}",
                                 {"userName": "star", "title": "x"}, headers={"If-Match": "*"})
    assert status == 200, body
    assert body["title"] == "x"


async def test_stale_if_match_is_412_and_changes_nothing(gateway):
    created = await create(gateway, {"userName": "stale", "title": "orig"})
    uid = created["id"]
    status, body, _ = await scim(gateway, "PUT", f"/Users/{uid}",
                                 {"userName": "stale", "title": "v2"})
    assert status == 200
    stale = {"If-Match": 'W/"1"'}

    status, body, _ = await scim(gateway, "PUT", f"/Users/{uid}",
                                 {"userName": "stale", "title": "lost"}, headers=stale)
    assert_scim_error(status, body, 412)
    status, body, _ = await scim(gateway, "PATCH", f"/Users/{uid}", patch_body(
        {"op": "replace", "path": "title", "value": "lost"}), headers=stale)
    assert_scim_error(status, body, 412)
    status, body, _ = await scim(gateway, "DELETE", f"/Users/{uid}", headers=stale)
    assert_scim_error(status, body, 412)
    status, body, _ = await scim(gateway, "PUT", f"/Users/{uid}",
                                 {"userName": "stale", "title": "lost"},
                                 headers={"If-Match": '"not-a-version"'})
    assert_scim_error(status, body, 412)

    status, got, resp = await scim(gateway, "GET", f"/Users/{uid}")
    assert status == 200
    assert got["title"] == "v2"
    assert resp.headers["ETag"] == 'W/"2"'
    assert got["meta"]["version"] == 'W/"2"'


async def test_if_none_match_current_version_is_304(gateway):
    created = await create(gateway, {"userName": "cached"})
    uid = created["id"]
    status, body, resp = await scim(gateway, "GET", f"/Users/{uid}",
                                    headers={"If-None-Match": 'W/"1"'})
    assert status == 304
    assert body is None
    assert resp.headers["ETag"] == 'W/"1"'
    await scim(gateway, "PUT", f"/Users/{uid}", {"userName": "cached", "title": "new"})
    status, body, resp = await scim(gateway, "GET", f"/Users/{uid}",
                                    headers={"If-None-Match": 'W/"1"'})
    assert status == 200
    assert body["title"] == "new"
    assert resp.headers["ETag"] == 'W/"2"'


# concurrency ----------------------------------------------------------------------------------
async def test_concurrent_creates_of_one_name_make_exactly_one_user(gateway):
    async def attempt(i: int):
        status, body, _ = await scim(gateway, "POST", "/Users",
                                     {"userName": "racer" if i % 2 else "RACER",
                                      "title": str(i)})
        return status, body

    results = await asyncio.wait_for(asyncio.gather(*(attempt(i) for i in range(10))), 60)
    statuses = sorted(s for s, _ in results)
    assert statuses == [201] + [409] * 9, results
    for status, body in results:
        if status == 409:
            assert_scim_error(status, body, 409, "uniqueness")
    found = await users_named(gateway, "racer")
    assert len(found) == 1
    winner = next(b for s, b in results if s == 201)
    assert found[0]["id"] == winner["id"]
    status, listed, _ = await scim(gateway, "GET", "/Users?count=100")
    assert sum(1 for u in listed["Resources"] if u["userName"].lower() == "racer") == 1
