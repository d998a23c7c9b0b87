"""SCIM 2.0 PATCH (RFC 7644 §3.5.2) on /Users and /Groups over HTTP, with the real clients' forms.

Entra ID and Okta each have their own way of saying things (``Replace`` in
capitals, path-less values with URN-qualified or dotted keys, ``"False"`` as a
string, filters that match nothing yet); every one is exercised here on every
user store backend (``gateway`` fixture). A PATCH is all or nothing.
"""

from __future__ import annotations

import pytest
from conftest import assert_scim_error, basic, scim

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def patch_body(*operations: dict) -> dict:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


async def patch(gw, path: str, *operations: dict, headers=None):
    return await scim(gw, "PATCH", path, patch_body(*operations), headers=headers)


async def patch_ok(gw, path: str, *operations: dict, before: str | None = None) -> dict:
    """A PATCH that must succeed: 200 and the full resource for a user; 204 for a group
    (then read back), and either way an ETag that matches the resource's meta."""
    status, body, resp = await patch(gw, path, *operations)
    if "/Groups/" in path:
        assert status == 204, body
        assert body is None and resp.headers.get("ETag")
        _, body, got = await scim(gw, "GET", path)
        assert got.headers["ETag"] == resp.headers["ETag"]
    else:
        assert status == 200, body
    assert body["id"] == path.rsplit("/", 1)[1]
    assert body["meta"]["version"] == resp.headers["ETag"]
    assert "password" not in body
    if before is not None:
        assert resp.headers["ETag"] != before, "a change must give a new version"
    return body


async def make_user(gw, user_name: str = "bjensen", **attrs) -> dict:
    status, body, _ = await scim(gw, "POST", "/Users", {"userName": user_name, **attrs})
    assert status == 201, body
    return body


async def make_group(gw, name: str, members: list[str] = ()) -> dict:
    status, body, _ = await scim(gw, "POST", "/Groups", {
        "displayName": name, "members": [{"value": m} for m in members]})
    assert status == 201, body
    return body


async def fetch(gw, path: str) -> dict:
    status, body, _ = await scim(gw, "GET", path)
    assert status == 200, body
    return body


def member_ids(group: dict) -> set[str]:
    return {m["value"] for m in group.get("members") or []}


def stable(resource: dict) -> dict:
    """A resource without what changes on every write (to compare before/after)."""
    return {k: v for k, v in resource.items() if k != "meta"}


# groups -----------------------------------------------------------------------------------
async def test_group_add_members(gateway):
    a, b, c = [await make_user(gateway, n) for n in ("a1", "b1", "c1")]
    inner = await make_group(gateway, "inner")
    group = await make_group(gateway, "team")
    path = f"/Groups/{group['id']}"
    body = await patch_ok(gateway, path, {"op": "add", "path": "members", "value": [
        {"value": a["id"]}, {"value": b["id"], "type": "User"}, {"value": inner["id"]}]},
        before=group["meta"]["version"])
    assert member_ids(body) == {a["id"], b["id"], inner["id"]}
    members = {m["value"]: m for m in body["members"]}
    assert members[a["id"]]["display"] == "a1"
    assert members[inner["id"]]["type"] == "Group"
    assert members[inner["id"]]["$ref"].endswith(f"/Groups/{inner['id']}")
    # adding an existing member again (with a new one) is harmless
    body = await patch_ok(gateway, path, {"op": "Add", "path": "members", "value": [
        {"value": a["id"]}, {"value": c["id"]}]})
    assert member_ids(body) == {a["id"], b["id"], c["id"], inner["id"]}
    assert len(body["members"]) == 4
    assert member_ids(await fetch(gateway, path)) == member_ids(body)


async def test_group_readding_a_member_is_a_no_op(gateway):
    a = await make_user(gateway, "a1")
    group = await make_group(gateway, "team", [a["id"]])
    path = f"/Groups/{group['id']}"
    status, body, resp = await patch(gateway, path, {
        "op": "add", "path": "members", "value": [{"value": a["id"]}]})
    assert status == 204, body
    assert member_ids(await fetch(gateway, path)) == {a["id"]}
    assert resp.headers["ETag"] == group["meta"]["version"]


async def test_group_remove_member_by_filter(gateway):
    a, b = await make_user(gateway, "a1"), await make_user(gateway, "b1")
    group = await make_group(gateway, "team", [a["id"], b["id"]])
    path = f"/Groups/{group['id']}"
    body = await patch_ok(gateway, path,
                          {"op": "remove", "path": f'members[value eq "{a["id"]}"]'},
                          before=group["meta"]["version"])
    assert member_ids(body) == {b["id"]}
    assert member_ids(await fetch(gateway, path)) == {b["id"]}
    user = await fetch(gateway, f"/Users/{a['id']}")
    assert user.get("groups", []) == []
    # removing someone who is not a member changes nothing
    status, again, resp = await patch(gateway, path,
                                      {"op": "remove", "path": f'members[value eq "{a["id"]}"]'})
    assert status == 204, again
    assert member_ids(await fetch(gateway, path)) == {b["id"]}


async def test_group_remove_all_members(gateway):
    a, b = await make_user(gateway, "a1"), await make_user(gateway, "b1")
    group = await make_group(gateway, "team", [a["id"], b["id"]])
    path = f"/Groups/{group['id']}"
    body = await patch_ok(gateway, path, {"op": "remove", "path": "members"},
                          before=group["meta"]["version"])
    assert body.get("members", []) == []
    assert (await fetch(gateway, path)).get("members", []) == []
    assert (await fetch(gateway, f"/Users/{b['id']}")).get("groups", []) == []


async def test_group_remove_members_with_value_array(gateway):
    """Entra ID removes members with ``{"op": "Remove", "path": "members", "value": [...]}``."""
    a, b, c = [await make_user(gateway, n) for n in ("a1", "b1", "c1")]
    group = await make_group(gateway, "team", [a["id"], b["id"], c["id"]])
    path = f"/Groups/{group['id']}"
    body = await patch_ok(gateway, path, {"op": "Remove", "path": "members", "value": [
        {"value": a["id"]}, {"value": c["id"]}]}, before=group["meta"]["version"])
    assert member_ids(body) == {b["id"]}
    assert member_ids(await fetch(gateway, path)) == {b["id"]}


async def test_group_replace_members(gateway):
    a, b, c = [await make_user(gateway, n) for n in ("a1", "b1", "c1")]
    group = await make_group(gateway, "team", [a["id"], b["id"]])
    path = f"/Groups/{group['id']}"
    body = await patch_ok(gateway, path, {"op": "Replace", "path": "members", "value": [
        {"value": b["id"]}, {"value": c["id"]}]}, before=group["meta"]["version"])
    assert member_ids(body) == {b["id"], c["id"]}
    assert member_ids(await fetch(gateway, path)) == {b["id"], c["id"]}
    # Okta empties a group with replace and []
    body = await patch_ok(gateway, path, {"op": "replace", "path": "members", "value": []},
                          before=body["meta"]["version"])
    assert body.get("members", []) == []
    assert (await fetch(gateway, path)).get("members", []) == []
    assert (await fetch(gateway, f"/Users/{c['id']}")).get("groups", []) == []


async def test_group_rename(gateway):
    a = await make_user(gateway, "a1")
    group = await make_group(gateway, "before", [a["id"]])
    path = f"/Groups/{group['id']}"
    body = await patch_ok(gateway, path, {"op": "Replace", "path": "displayName",
                                          "value": "after"}, before=group["meta"]["version"])
    assert body["displayName"] == "after"
    assert member_ids(body) == {a["id"]}
    user = await fetch(gateway, f"/Users/{a['id']}")
    assert [g["display"] for g in user["groups"]] == ["after"]
    # Okta's path-less form
    body = await patch_ok(gateway, path, {"op": "replace", "value": {
        "id": group["id"], "displayName": "after-okta"}})
    assert body["displayName"] == "after-okta"
    assert (await fetch(gateway, path))["displayName"] == "after-okta"


async def test_group_rename_to_taken_name_is_a_conflict(gateway):
    await make_group(gateway, "taken")
    group = await make_group(gateway, "mine")
    status, body, _ = await patch(gateway, f"/Groups/{group['id']}",
                                  {"op": "replace", "path": "displayName", "value": "TAKEN"})
    assert_scim_error(status, body, 409, "uniqueness")
    assert (await fetch(gateway, f"/Groups/{group['id']}"))["displayName"] == "mine"


async def test_group_no_op_keeps_version(gateway):
    a = await make_user(gateway, "a1")
    group = await make_group(gateway, "same", [a["id"]])
    status, body, resp = await patch(gateway, f"/Groups/{group['id']}",
                                     {"op": "replace", "path": "displayName", "value": "same"})
    assert status == 204, body
    assert resp.headers["ETag"] == group["meta"]["version"]
    # asking for attributes gets the resource (RFC 7644 §3.5.2), members included
    status, body, resp = await scim(
        gateway, "PATCH", f"/Groups/{group['id']}?excludedAttributes=externalId",
        patch_body({"op": "replace", "path": "displayName", "value": "same"}))
    assert status == 200, body
    assert resp.headers["ETag"] == group["meta"]["version"]
    assert body["displayName"] == "same"
    assert member_ids(body) == {a["id"]}


async def test_group_patch_can_answer_without_members(gateway):
    a, b = await make_user(gateway, "a1"), await make_user(gateway, "b1")
    group = await make_group(gateway, "big", [a["id"]])
    status, body, resp = await scim(
        gateway, "PATCH", f"/Groups/{group['id']}?excludedAttributes=members",
        patch_body({"op": "add", "path": "members", "value": [{"value": b["id"]}]}))
    assert status == 200, body
    assert "members" not in body
    assert body["meta"]["version"] == resp.headers["ETag"] != group["meta"]["version"]
    assert member_ids(await fetch(gateway, f"/Groups/{group['id']}")) == {a["id"], b["id"]}


async def test_group_pathless_add_members(gateway):
    a, b = await make_user(gateway, "a1"), await make_user(gateway, "b1")
    group = await make_group(gateway, "team", [a["id"]])
    path = f"/Groups/{group['id']}"
    body = await patch_ok(gateway, path, {"op": "add", "value": {
        "members": [{"value": b["id"], "display": "ignored"}]}}, before=group["meta"]["version"])
    assert member_ids(body) == {a["id"], b["id"]}
    assert {m["value"]: m["display"] for m in body["members"]}[b["id"]] == "b1"
    assert member_ids(await fetch(gateway, path)) == {a["id"], b["id"]}


async def test_group_failing_patch_changes_nothing(gateway):
    a = await make_user(gateway, "a1")
    b = await make_user(gateway, "b1")
    group = await make_group(gateway, "atomic", [a["id"]])
    path = f"/Groups/{group['id']}"
    status, body, _ = await patch(
        gateway, path,
        {"op": "replace", "path": "displayName", "value": "renamed"},
        {"op": "remove", "path": "members"},
        {"op": "add", "path": "members", "value": [{"value": b["id"]},
                                                   {"value": "no-such-member"}]})
    assert_scim_error(status, body, 400, "invalidValue")
    after = await fetch(gateway, path)
    assert after["displayName"] == "atomic"
    assert member_ids(after) == {a["id"]}
    assert after["meta"]["version"] == group["meta"]["version"]


async def test_group_member_filter_other_than_value_is_refused(gateway):
    group = await make_group(gateway, "g")
    status, body, _ = await patch(gateway, f"/Groups/{group['id']}",
                                  {"op": "add", "path": 'members[value eq "x"]', "value": "y"})
    assert_scim_error(status, body, 400, "invalidPath")


async def test_patch_unknown_resource_is_404(gateway):
    status, body, _ = await patch(gateway, "/Groups/nope",
                                  {"op": "replace", "path": "displayName", "value": "x"})
    assert_scim_error(status, body, 404)
    status, body, _ = await patch(gateway, "/Users/nope",
                                  {"op": "replace", "path": "title", "value": "x"})
    assert_scim_error(status, body, 404)


# users: plain attributes ---------------------------------------------------------------------
async def test_user_add_replace_remove_with_path(gateway):
    user = await make_user(gateway, nickName="Babs")
    path = f"/Users/{user['id']}"
    body = await patch_ok(gateway, path, {"op": "add", "path": "title", "value": "Tour Guide"},
                          before=user["meta"]["version"])
    assert body["title"] == "Tour Guide"
    assert body["nickName"] == "Babs"
    body = await patch_ok(gateway, path, {"op": "replace", "path": "title", "value": "Boss"},
                          before=body["meta"]["version"])
    assert body["title"] == "Boss"
    body = await patch_ok(gateway, path, {"op": "remove", "path": "nickName"},
                          before=body["meta"]["version"])
    assert "nickName" not in body
    assert body["title"] == "Boss"
    fetched = await fetch(gateway, path)
    assert stable(fetched) == stable(body)
    assert body["meta"]["created"] == user["meta"]["created"]


async def test_user_add_replace_without_path(gateway):
    user = await make_user(gateway, title="Clerk")
    path = f"/Users/{user['id']}"
    body = await patch_ok(gateway, path, {"op": "add", "value": {
        "nickName": "Babs", "name": {"familyName": "Jensen"}}}, before=user["meta"]["version"])
    assert body["nickName"] == "Babs"
    assert body["name"] == {"familyName": "Jensen"}
    assert body["title"] == "Clerk"
    body = await patch_ok(gateway, path, {"op": "replace", "value": {
        "title": "Chief", "name": {"givenName": "Barbara"}}})
    assert body["title"] == "Chief"
    # replace of a complex attribute merges its sub-attributes (RFC 7644 §3.5.2.3)
    assert body["name"] == {"familyName": "Jensen", "givenName": "Barbara"}
    assert stable(await fetch(gateway, path)) == stable(body)


async def test_user_okta_deactivate(gateway):
    user = await make_user(gateway, active=True)
    path = f"/Users/{user['id']}"
    body = await patch_ok(gateway, path, {"op": "replace", "value": {"active": False}},
                          before=user["meta"]["version"])
    assert body["active"] is False
    assert (await fetch(gateway, path))["active"] is False
    status, found, _ = await scim(gateway, "GET", '/Users?filter=active eq false')
    assert status == 200, found
    assert [u["id"] for u in found["Resources"]] == [user["id"]]


async def test_user_entra_string_booleans(gateway):
    user = await make_user(gateway, active=True)
    path = f"/Users/{user['id']}"
    body = await patch_ok(gateway, path, {"op": "Replace", "path": "active", "value": "False"})
    assert body["active"] is False
    body = await patch_ok(gateway, path, {"op": "Replace", "value": {"active": "True"}})
    assert body["active"] is True
    assert (await fetch(gateway, path))["active"] is True
    status, bad, _ = await patch(gateway, path, {"op": "replace", "path": "active",
                                                 "value": "maybe"})
    assert_scim_error(status, bad, 400, "invalidValue")


async def test_user_sub_attribute_path(gateway):
    user = await make_user(gateway, name={"familyName": "Jensen"})
    path = f"/Users/{user['id']}"
    body = await patch_ok(gateway, path, {"op": "replace", "path": "name.givenName",
                                          "value": "Barbara"})
    assert body["name"] == {"familyName": "Jensen", "givenName": "Barbara"}
    body = await patch_ok(gateway, path, {"op": "remove", "path": "name.familyName"})
    assert body["name"] == {"givenName": "Barbara"}
    assert (await fetch(gateway, path))["name"] == {"givenName": "Barbara"}


async def test_user_op_in_any_case(gateway):
    user = await make_user(gateway)
    path = f"/Users/{user['id']}"
    body = await patch_ok(gateway, path, {"op": "Add", "path": "nickName", "value": "B"})
    assert body["nickName"] == "B"
    body = await patch_ok(gateway, path, {"op": "REPLACE", "path": "nickName", "value": "C"})
    assert body["nickName"] == "C"
    body = await patch_ok(gateway, path, {"op": "Remove", "path": "nickName"})
    assert "nickName" not in body
    # and without the (optional for real clients) schemas
    status, body, _ = await scim(gateway, "PATCH", path, {
        "Operations": [{"op": "add", "path": "nickName", "value": "D"}]})
    assert status == 200, body
    assert body["nickName"] == "D"


# users: multi-valued attributes --------------------------------------------------------------
async def test_user_replace_work_email_value(gateway):
    user = await make_user(gateway, emails=[
        {"value": "b@work.example", "type": "work", "primary": True},
        {"value": "b@home.example", "type": "home"}])
    path = f"/Users/{user['id']}"
    body = await patch_ok(gateway, path, {"op": "replace", "path": 'emails[type eq "work"].value',
                                          "value": "barbara@work.example"},
                          before=user["meta"]["version"])
    emails = {e["type"]: e for e in body["emails"]}
    assert emails["work"] == {"value": "barbara@work.example", "type": "work", "primary": True}
    assert emails["home"]["value"] == "b@home.example"
    assert len(body["emails"]) == 2
    status, found, _ = await scim(gateway, "GET",
                                  '/Users?filter=emails.value eq "barbara@work.example"')
    assert status == 200, found
    assert found["totalResults"] == 1


async def test_user_entra_creates_missing_work_email(gateway):
    user = await make_user(gateway, emails=[{"value": "b@home.example", "type": "home"}])
    path = f"/Users/{user['id']}"
    body = await patch_ok(gateway, path, {"op": "Replace", "path": 'emails[type eq "work"].value',
                                          "value": "b@work.example"})
    emails = {e["type"]: e["value"] for e in body["emails"]}
    assert emails == {"home": "b@home.example", "work": "b@work.example"}
    assert stable(await fetch(gateway, path)) == stable(body)
    # and on a user with no email at all
    other = await make_user(gateway, "noemail")
    body = await patch_ok(gateway, f"/Users/{other['id']}", {
        "op": "Add", "path": 'emails[type eq "work"].value', "value": "n@work.example"})
    assert body["emails"] == [{"type": "work", "value": "n@work.example"}]


async def test_user_remove_emails_by_filter(gateway):
    user = await make_user(gateway, emails=[
        {"value": "b@work.example", "type": "work"},
        {"value": "b@home.example", "type": "home"},
        {"value": "b@old.example", "type": "other"}])
    path = f"/Users/{user['id']}"
    body = await patch_ok(gateway, path, {"op": "remove", "path": 'emails[type eq "home"]'})
    assert {e["value"] for e in body["emails"]} == {"b@work.example", "b@old.example"}
    body = await patch_ok(gateway, path, {"op": "remove", "path": 'emails[value co "@old"]'})
    assert [e["value"] for e in body["emails"]] == ["b@work.example"]
    assert [e["value"] for e in (await fetch(gateway, path))["emails"]] == ["b@work.example"]


async def test_user_remove_filter_matching_nothing_is_harmless(gateway):
    user = await make_user(gateway, emails=[{"value": "b@work.example", "type": "work"}])
    path = f"/Users/{user['id']}"
    status, body, resp = await patch(gateway, path,
                                     {"op": "remove", "path": 'emails[type eq "home"]'})
    assert status == 200, body
    assert body["emails"] == [{"value": "b@work.example", "type": "work"}]
    assert resp.headers["ETag"] == user["meta"]["version"]
    # nor on an attribute that has no value at all
    status, body, _ = await patch(gateway, path,
                                  {"op": "remove", "path": 'phoneNumbers[type eq "fax"]'})
    assert status == 200, body
    assert "phoneNumbers" not in body


async def test_user_add_appends_replace_replaces(gateway):
    user = await make_user(gateway, phoneNumbers=[{"value": "555-1", "type": "work"}])
    path = f"/Users/{user['id']}"
    body = await patch_ok(gateway, path, {"op": "add", "path": "phoneNumbers",
                                          "value": [{"value": "555-2", "type": "mobile"}]})
    assert [p["value"] for p in body["phoneNumbers"]] == ["555-1", "555-2"]
    # path-less add appends too
    body = await patch_ok(gateway, path, {"op": "add", "value": {
        "phoneNumbers": [{"value": "555-3", "type": "home"}]}})
    assert [p["value"] for p in body["phoneNumbers"]] == ["555-1", "555-2", "555-3"]
    body = await patch_ok(gateway, path, {"op": "replace", "path": "phoneNumbers",
                                          "value": [{"value": "555-9", "type": "work"}]})
    assert body["phoneNumbers"] == [{"value": "555-9", "type": "work"}]
    assert (await fetch(gateway, path))["phoneNumbers"] == [{"value": "555-9", "type": "work"}]
    body = await patch_ok(gateway, path, {"op": "remove", "path": "phoneNumbers"})
    assert "phoneNumbers" not in body


async def test_user_new_primary_clears_the_old_one(gateway):
    user = await make_user(gateway, emails=[{"value": "a@x.example", "primary": True}])
    body = await patch_ok(gateway, f"/Users/{user['id']}", {
        "op": "add", "path": "emails", "value": [{"value": "b@x.example", "primary": True}]})
    primaries = [e["value"] for e in body["emails"] if e.get("primary")]
    assert primaries == ["b@x.example"]


# users: extensions ---------------------------------------------------------------------------
async def test_user_enterprise_attributes_by_urn_path(gateway):
    user = await make_user(gateway)
    path = f"/Users/{user['id']}"
    body = await patch_ok(gateway, path, {"op": "add", "path": f"{ENTERPRISE}:employeeNumber",
                                          "value": "701984"})
    assert body[ENTERPRISE]["employeeNumber"] == "701984"
    assert ENTERPRISE in body["schemas"]
    body = await patch_ok(gateway, path, {"op": "replace", "path": f"{ENTERPRISE}:manager.value",
                                          "value": "mgr-1"})
    assert body[ENTERPRISE]["manager"] == {"value": "mgr-1"}
    # Entra's form: the manager object with a value
    body = await patch_ok(gateway, path, {"op": "Replace", "path": f"{ENTERPRISE}:manager",
                                          "value": {"value": "mgr-2"}})
    assert body[ENTERPRISE]["manager"]["value"] == "mgr-2"
    assert body[ENTERPRISE]["employeeNumber"] == "701984"
    fetched = await fetch(gateway, path)
    assert fetched[ENTERPRISE] == body[ENTERPRISE]
    status, found, _ = await scim(gateway, "GET",
                                  f'/Users?filter={ENTERPRISE}:manager.value eq "mgr-2"')
    assert status == 200, found
    assert [u["id"] for u in found["Resources"]] == [user["id"]]
    body = await patch_ok(gateway, path, {"op": "remove", "path": f"{ENTERPRISE}:manager"})
    assert "manager" not in body[ENTERPRISE]
    body = await patch_ok(gateway, path, {"op": "remove", "path": f"{ENTERPRISE}:employeeNumber"})
    assert ENTERPRISE not in body
    assert ENTERPRISE not in body["schemas"]


async def test_user_pathless_urn_and_dotted_keys(gateway):
    """Entra ID: ``{"op": "Replace", "value": {"<urn>:department": .., "name.givenName": ..}}``."""
    user = await make_user(gateway, name={"familyName": "Jensen"})
    path = f"/Users/{user['id']}"
    body = await patch_ok(gateway, path, {"op": "Replace", "value": {
        f"{ENTERPRISE}:department": "Tour Operations",
        f"{ENTERPRISE}:manager.value": "mgr-9",
        "name.givenName": "Barbara",
        "displayName": "Babs Jensen",
    }})
    assert body[ENTERPRISE]["department"] == "Tour Operations"
    assert body[ENTERPRISE]["manager"] == {"value": "mgr-9"}
    assert body["name"] == {"familyName": "Jensen", "givenName": "Barbara"}
    assert body["displayName"] == "Babs Jensen"
    # the extension as an object under its URN
    body = await patch_ok(gateway, path, {"op": "add", "value": {
        ENTERPRISE: {"costCenter": "4130", "department": "Sales"}}})
    assert body[ENTERPRISE]["costCenter"] == "4130"
    assert body[ENTERPRISE]["department"] == "Sales"
    assert body[ENTERPRISE]["manager"] == {"value": "mgr-9"}
    assert stable(await fetch(gateway, path)) == stable(body)


# users: password -----------------------------------------------------------------------------
async def test_user_password_by_patch(gateway):
    old, new = "Old-password-1", "New-password-2"
    user = await make_user(gateway, "pwuser", password=old)
    # the old password authenticates (a non-admin gets 403 on a list, not 401)
    status, body, _ = await scim(gateway, "GET", "/Users", auth=basic("pwuser", old))
    assert status != 401, body
    body = await patch_ok(gateway, f"/Users/{user['id']}",
                          {"op": "replace", "path": "password", "value": new},
                          before=user["meta"]["version"])
    assert "password" not in body
    status, body, _ = await scim(gateway, "GET", "/Users", auth=basic("pwuser", new))
    assert status != 401, body
    status, body, _ = await scim(gateway, "GET", "/Users", auth=basic("pwuser", old))
    assert_scim_error(status, body, 401)


async def test_user_password_pathless(gateway):
    user = await make_user(gateway, "pwuser2", password="Old-password-1")
    await patch_ok(gateway, f"/Users/{user['id']}",
                   {"op": "Replace", "value": {"password": "New-password-3"}})
    status, body, _ = await scim(gateway, "GET", "/Users", auth=basic("pwuser2", "New-password-3"))
    assert status != 401, body
    status, body, _ = await scim(gateway, "GET", "/Users",
                                 auth=basic("pwuser2", "Old-password-1"))
    assert_scim_error(status, body, 401)
    # a password cannot be removed
    status, body, _ = await patch(gateway, f"/Users/{user['id']}",
                                  {"op": "remove", "path": "password"})
    assert_scim_error(status, body, 400, "mutability")
    status, body, _ = await scim(gateway, "GET", "/Users", auth=basic("pwuser2", "New-password-3"))
    assert status != 401, body


# users: rename -------------------------------------------------------------------------------
async def test_user_rename_and_taken_name(gateway):
    user = await make_user(gateway, "first")
    await make_user(gateway, "second")
    path = f"/Users/{user['id']}"
    body = await patch_ok(gateway, path, {"op": "replace", "path": "userName", "value": "renamed"})
    assert body["userName"] == "renamed"
    status, found, _ = await scim(gateway, "GET", '/Users?filter=userName eq "renamed"')
    assert [u["id"] for u in found["Resources"]] == [user["id"]]
    status, body, _ = await patch(gateway, path, {"op": "replace", "path": "userName",
                                                  "value": "SECOND"})
    assert_scim_error(status, body, 409, "uniqueness")
    assert (await fetch(gateway, path))["userName"] == "renamed"


# users: refused ------------------------------------------------------------------------------
async def test_user_remove_username_is_refused(gateway):
    user = await make_user(gateway)
    status, body, _ = await patch(gateway, f"/Users/{user['id']}",
                                  {"op": "remove", "path": "userName"})
    assert_scim_error(status, body, 400, "mutability")
    assert (await fetch(gateway, f"/Users/{user['id']}"))["userName"] == "bjensen"


async def test_user_id_and_meta_are_read_only(gateway):
    user = await make_user(gateway)
    path = f"/Users/{user['id']}"
    for op in ({"op": "replace", "path": "id", "value": "other-id"},
               {"op": "replace", "path": "meta.created", "value": "2000-01-01T00:00:00Z"},
               {"op": "remove", "path": "meta"},
               {"op": "add", "path": "groups", "value": [{"value": "x"}]}):
        status, body, _ = await patch(gateway, path, op)
        assert_scim_error(status, body, 400, "mutability")
    # path-less: read-only keys are ignored, the rest is applied
    body = await patch_ok(gateway, path, {"op": "replace", "value": {
        "id": "other-id", "meta": {"created": "2000-01-01T00:00:00Z"}, "nickName": "B"}})
    assert body["id"] == user["id"]
    assert body["meta"]["created"] == user["meta"]["created"]
    assert body["nickName"] == "B"
    status, body, _ = await scim(gateway, "GET", "/Users/other-id")
    assert_scim_error(status, body, 404)


async def test_user_bad_operations(gateway):
    user = await make_user(gateway)
    path = f"/Users/{user['id']}"
    cases = [
        ({"op": "move", "path": "title", "value": "x"}, None),
        ({"op": "replace", "path": "noSuchAttribute", "value": "x"}, "invalidPath"),
        ({"op": "replace", "path": "name.noSuchPart", "value": "x"}, "invalidPath"),
        ({"op": "replace", "path": f"{ENTERPRISE}:noSuch", "value": "x"}, "invalidPath"),
        ({"op": "remove", "path": 'emails[type eq "work"'}, "invalidPath"),
        ({"op": "remove", "path": 'emails[type eq]'}, "invalidPath"),
        ({"op": "replace", "path": "name..givenName", "value": "x"}, "invalidPath"),
        ({"op": "remove", "path": 'emails[nosuch eq "x"]'}, "invalidPath"),
        ({"op": "replace", "path": "title", "value": 12}, "invalidValue"),
        ({"op": "replace", "value": "not an object"}, None),
        ({"op": "add", "path": "title"}, None),
    ]
    for op, scim_type in cases:
        status, body, _ = await patch(gateway, path, op)
        assert_scim_error(status, body, 400, scim_type)
    after = await fetch(gateway, path)
    assert after["meta"]["version"] == user["meta"]["version"]
    assert "title" not in after


async def test_user_operations_missing_or_empty(gateway):
    user = await make_user(gateway)
    path = f"/Users/{user['id']}"
    for body in ({"schemas": [PATCH_OP]}, {"schemas": [PATCH_OP], "Operations": []},
                 {"schemas": [PATCH_OP], "Operations": {"op": "add"}}):
        status, err, _ = await scim(gateway, "PATCH", path, body)
        assert_scim_error(status, err, 400, "invalidSyntax")
    group = await make_group(gateway, "g")
    status, err, _ = await scim(gateway, "PATCH", f"/Groups/{group['id']}",
                                {"schemas": [PATCH_OP], "Operations": []})
    assert_scim_error(status, err, 400, "invalidSyntax")


# versions and atomicity ----------------------------------------------------------------------
async def test_user_no_op_keeps_version(gateway):
    user = await make_user(gateway, title="Boss", emails=[{"value": "b@x.example",
                                                           "type": "work"}])
    path = f"/Users/{user['id']}"
    for op in ({"op": "replace", "path": "title", "value": "Boss"},
               {"op": "remove", "path": "nickName"},
               {"op": "add", "path": "emails", "value": [{"value": "b@x.example",
                                                         "type": "work"}]},
               {"op": "replace", "value": {"title": "Boss"}}):
        status, body, resp = await patch(gateway, path, op)
        assert status == 200, body
        assert resp.headers["ETag"] == user["meta"]["version"], op
        assert stable(body) == stable(user)
    assert (await fetch(gateway, path))["meta"]["version"] == user["meta"]["version"]


async def test_user_each_change_bumps_version(gateway):
    user = await make_user(gateway)
    path = f"/Users/{user['id']}"
    seen = {user["meta"]["version"]}
    for i in range(3):
        body = await patch_ok(gateway, path, {"op": "replace", "path": "title",
                                              "value": f"t{i}"})
        assert body["meta"]["version"] not in seen
        seen.add(body["meta"]["version"])
    status, body, _ = await patch(gateway, path, {"op": "replace", "path": "title",
                                                  "value": "late"},
                                  headers={"If-Match": user["meta"]["version"]})
    assert_scim_error(status, body, 412)
    assert (await fetch(gateway, path))["title"] == "t2"


async def test_user_failing_patch_changes_nothing(gateway):
    user = await make_user(gateway, title="Clerk", emails=[{"value": "b@x.example",
                                                            "type": "work"}])
    path = f"/Users/{user['id']}"
    status, body, _ = await patch(
        gateway, path,
        {"op": "replace", "path": "title", "value": "Boss"},
        {"op": "remove", "path": "emails"},
        {"op": "replace", "path": "password", "value": "Sneaky-password-1"},
        {"op": "remove", "path": "userName"})
    assert_scim_error(status, body, 400, "mutability")
    status, body, _ = await patch(
        gateway, path,
        {"op": "add", "path": "nickName", "value": "B"},
        {"op": "replace", "path": "noSuchAttribute", "value": "x"})
    assert_scim_error(status, body, 400, "invalidPath")
    after = await fetch(gateway, path)
    assert stable(after) == stable(user)
    assert after["meta"]["version"] == user["meta"]["version"]
    status, body, _ = await scim(gateway, "GET", "/Users",
                                 auth=basic("bjensen", "Sneaky-password-1"))
    assert_scim_error(status, body, 401)



@pytest.mark.parametrize("operation", [
    {"op": "replace", "path": "members.value", "value": "other-id"},
    {"op": "replace", "path": 'members[value eq "MEMBER"].value', "value": "other-id"},
    {"op": "add", "path": "members.value", "value": "other-id"},
], ids=["replace-all-values", "replace-one-value", "add-value"])
async def test_changing_members_value_is_a_mutability_error(gateway, operation):
    """members.value is immutable (RFC 7643 §4.2): 400 mutability, nothing changed."""
    status, user, _ = await scim(gateway, "POST", "/Users", {"userName": "member"})
    group = await make_group(gateway, "g")
    status, body, _ = await patch(gateway, f"/Groups/{group['id']}",
                                  {"op": "add", "path": "members",
                                   "value": [{"value": user["id"]}]})
    assert status in (200, 204), body
    operation = {**operation, "path": operation["path"].replace("MEMBER", user["id"])}
    status, body, _ = await patch(gateway, f"/Groups/{group['id']}", operation)
    assert_scim_error(status, body, 400, "mutability")
    status, after, _ = await scim(gateway, "GET", f"/Groups/{group['id']}")
    assert member_ids(after) == {user["id"]}


async def test_patches_that_change_nothing_keep_version_and_last_modified(gateway):
    """RFC 7644 §3.5.2.1: adding a value that is there already changes nothing."""
    status, user, _ = await scim(gateway, "POST", "/Users", {
        "userName": "same", "displayName": "D",
        "emails": [{"value": "same@example.com", "type": "work"}]})
    assert status == 201, user
    group = await make_group(gateway, "same-group")
    status, body, _ = await patch(gateway, f"/Groups/{group['id']}", {
        "op": "add", "path": "members", "value": [{"value": user["id"]}]})
    assert status in (200, 204), body
    status, group, _ = await scim(gateway, "GET", f"/Groups/{group['id']}")
    for path, operation, before in (
            (f"/Users/{user['id']}", {"op": "add", "path": "emails",
                                      "value": [{"value": "same@example.com", "type": "work"}]},
             user),
            (f"/Users/{user['id']}", {"op": "replace", "path": "displayName", "value": "D"}, user),
            (f"/Users/{user['id']}", {"op": "add", "value": {"displayName": "D"}}, user),
            (f"/Groups/{group['id']}", {"op": "add", "path": "members",
                                        "value": [{"value": user["id"]}]}, group),
            (f"/Groups/{group['id']}", {"op": "replace", "path": "members",
                                        "value": [{"value": user["id"]}]}, group)):
        status, body, _ = await patch(gateway, path, operation)
        assert status in (200, 204), body
        status, after, _ = await scim(gateway, "GET", path)
        assert after["meta"]["version"] == before["meta"]["version"], operation
        assert after["meta"]["lastModified"] == before["meta"]["lastModified"], operation


async def test_a_whole_extension_object_may_carry_schemas(gateway):
    """scim2-models sends an extension object with its own ``schemas`` key (issue 17 #6)."""
    status, user, _ = await scim(gateway, "POST", "/Users", {"userName": "ext"})
    assert status == 201, user
    for operation in (
            {"op": "add", "path": ENTERPRISE,
             "value": {"schemas": [ENTERPRISE], "department": "R&D"}},
            {"op": "replace", "value": {ENTERPRISE: {"schemas": [ENTERPRISE],
                                                     "costCenter": "42"}}}):
        status, body, _ = await patch(gateway, f"/Users/{user['id']}", operation)
        assert status == 200, body
    assert body[ENTERPRISE]["department"] == "R&D" and body[ENTERPRISE]["costCenter"] == "42"
    assert "schemas" not in body[ENTERPRISE]


async def test_replace_through_a_value_filter_on_value_that_matches_nothing_is_no_target(
        gateway):
    """RFC 7644 §3.5.2.3; Entra ID's 'emails[type eq "work"].value' still adds one."""
    status, user, _ = await scim(gateway, "POST", "/Users", {
        "userName": "nt", "emails": [{"value": "nt@example.com", "type": "home"}]})
    assert status == 201, user
    status, body, _ = await patch(gateway, f"/Users/{user['id']}", {
        "op": "replace", "path": 'emails[value eq "nobody@nowhere.example"].value',
        "value": "new@example.com"})
    assert_scim_error(status, body, 400, "noTarget")
    status, after, _ = await scim(gateway, "GET", f"/Users/{user['id']}")
    assert [e["value"] for e in after["emails"]] == ["nt@example.com"]
    status, body, _ = await patch(gateway, f"/Users/{user['id']}", {
        "op": "replace", "path": 'emails[type eq "work"].value', "value": "w@example.com"})
    assert status == 200, body
    assert {e["value"] for e in body["emails"]} == {"nt@example.com", "w@example.com"}
