"""SCIM 2.0 /Groups over HTTP: create, read, list, replace, delete, and memberships.

Runs on every user store backend (``gateway`` fixture). Memberships are checked
from both sides: the group's ``members`` and each member user's ``groups``.
"""

from __future__ import annotations

from conftest import assert_scim_error, scim

CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


async def make_user(gw, name: str, **attrs) -> dict:
    status, body, _ = await scim(gw, "POST", "/Users", {"userName": name, **attrs})
    assert status == 201, body
    return body


async def make_group(gw, name: str, members: list | None = None) -> dict:
    rep = {"schemas": [CORE_GROUP], "displayName": name}
    if members is not None:
        rep["members"] = members
    status, body, resp = await scim(gw, "POST", "/Groups", rep)
    assert status == 201, body
    assert resp.headers["ETag"] == body["meta"]["version"]
    return body


async def get(gw, path: str) -> tuple[dict, str]:
    status, body, resp = await scim(gw, "GET", path)
    assert status == 200, body
    return body, resp.headers["ETag"]


def by_value(items: list[dict] | None) -> dict[str, dict]:
    return {m["value"]: m for m in items or []}


async def count_groups(gw, name: str) -> int:
    status, body, _ = await scim(gw, "GET", f'/Groups?filter=displayName eq "{name}"')
    assert status == 200, body
    return body["totalResults"]


# create --------------------------------------------------------------------------------
async def test_create_without_members(gateway):
    body = await make_group(gateway, "engineering")
    assert body["schemas"] == [CORE_GROUP]
    assert body["displayName"] == "engineering"
    assert body["id"]
    assert body.get("members", []) == []
    meta = body["meta"]
    assert meta["resourceType"] == "Group"
    assert meta["location"].endswith(f"/scim2/Groups/{body['id']}")
    assert meta["version"] == 'W/"1"'
    fetched, etag = await get(gateway, f"/Groups/{body['id']}")
    assert fetched["displayName"] == "engineering"
    assert etag == 'W/"1"'
    status, body, resp = await scim(gateway, "POST", "/Groups", {"displayName": "ops"})
    assert status == 201, body
    assert resp.headers["Location"] == body["meta"]["location"]


async def test_create_with_user_and_group_members(gateway):
    alice = await make_user(gateway, "alice")
    bob = await make_user(gateway, "bob")
    inner = await make_group(gateway, "inner")
    body = await make_group(gateway, "outer", [
        {"value": alice["id"], "type": "User"},
        {"value": bob["id"]},  # type left for the server to find
        {"value": inner["id"], "type": "Group"},
    ])
    members = by_value(body["members"])
    assert set(members) == {alice["id"], bob["id"], inner["id"]}
    assert members[alice["id"]]["type"] == "User"
    assert members[bob["id"]]["type"] == "User"
    assert members[inner["id"]]["type"] == "Group"
    # the server fills in display from the member itself
    assert members[alice["id"]]["display"] == "alice"
    assert members[bob["id"]]["display"] == "bob"
    assert members[inner["id"]]["display"] == "inner"
    assert members[alice["id"]]["$ref"].endswith(f"/scim2/Users/{alice['id']}")
    assert members[inner["id"]]["$ref"].endswith(f"/scim2/Groups/{inner['id']}")
    # and it is stored: a fresh GET says the same
    fetched, _ = await get(gateway, f"/Groups/{body['id']}")
    assert by_value(fetched["members"]) == members
    # a display the client sends is not trusted
    body = await make_group(gateway, "g", [{"value": alice["id"], "display": "Mallory"}])
    assert body["members"][0]["display"] == "alice"


async def test_duplicate_display_name_is_a_conflict(gateway):
    await make_group(gateway, "Sales")
    for name in ("Sales", "sales", "SALES"):
        status, body, _ = await scim(gateway, "POST", "/Groups", {"displayName": name})
        assert_scim_error(status, body, 409, "uniqueness")
    assert await count_groups(gateway, "sales") == 1


async def test_unknown_member_creates_nothing(gateway):
    alice = await make_user(gateway, "alice")
    status, body, _ = await scim(gateway, "POST", "/Groups", {
        "displayName": "ghosts",
        "members": [{"value": alice["id"]}, {"value": "00000000-0000-0000-0000-000000000000"}],
    })
    assert_scim_error(status, body, 400, "invalidValue")
    assert await count_groups(gateway, "ghosts") == 0
    user, _ = await get(gateway, f"/Users/{alice['id']}")
    assert user.get("groups", []) == []
    # a member given with the wrong type is refused too
    status, body, _ = await scim(gateway, "POST", "/Groups", {
        "displayName": "typed", "members": [{"value": alice["id"], "type": "Group"}]})
    assert_scim_error(status, body, 400, "invalidValue")
    assert await count_groups(gateway, "typed") == 0


async def test_missing_name_and_unknown_ids(gateway):
    status, body, _ = await scim(gateway, "POST", "/Groups", {"members": []})
    assert_scim_error(status, body, 400)
    status, body, _ = await scim(gateway, "GET", "/Groups/no-such-group")
    assert_scim_error(status, body, 404)
    status, body, _ = await scim(gateway, "PUT", "/Groups/nope", {"displayName": "x"})
    assert_scim_error(status, body, 404)


# read and list ---------------------------------------------------------------------------


async def test_list_groups(gateway):
    alice = await make_user(gateway, "alice")
    a = await make_group(gateway, "alpha", [{"value": alice["id"]}])
    b = await make_group(gateway, "beta")
    status, body, _ = await scim(gateway, "GET", "/Groups")
    assert status == 200, body
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:ListResponse"]
    found = {g["id"]: g for g in body["Resources"]}
    # the bootstrap "admin" role is a group too
    assert {a["id"], b["id"]} <= set(found)
    assert body["totalResults"] == len(body["Resources"]) >= 3
    assert [m["value"] for m in found[a["id"]]["members"]] == [alice["id"]]
    assert found[a["id"]]["members"][0]["display"] == "alice"
    status, body, _ = await scim(gateway, "GET", '/Groups?filter=displayName eq "ALPHA"')
    assert status == 200, body
    assert [g["id"] for g in body["Resources"]] == [a["id"]]


# replace -----------------------------------------------------------------------------------
async def test_put_replaces_name_and_members(gateway):
    alice = await make_user(gateway, "alice")
    bob = await make_user(gateway, "bob")
    carol = await make_user(gateway, "carol")
    group = await make_group(gateway, "team", [{"value": alice["id"]}, {"value": bob["id"]}])
    gid = group["id"]
    status, body, resp = await scim(gateway, "PUT", f"/Groups/{gid}", {
        "schemas": [CORE_GROUP], "displayName": "team-renamed",
        "members": [{"value": bob["id"]}, {"value": carol["id"], "type": "User"}],
    })
    assert status == 200, body
    assert body["id"] == gid
    assert body["displayName"] == "team-renamed"
    assert set(by_value(body["members"])) == {bob["id"], carol["id"]}
    assert by_value(body["members"])[carol["id"]]["display"] == "carol"
    assert resp.headers["ETag"] != group["meta"]["version"]
    assert body["meta"]["version"] == resp.headers["ETag"]
    assert body["meta"]["created"] == group["meta"]["created"]
    fetched, _ = await get(gateway, f"/Groups/{gid}")
    assert fetched["displayName"] == "team-renamed"
    assert set(by_value(fetched["members"])) == {bob["id"], carol["id"]}
    user, _ = await get(gateway, f"/Users/{alice['id']}")
    assert user.get("groups", []) == []
    user, _ = await get(gateway, f"/Users/{carol['id']}")
    assert [g["display"] for g in user["groups"]] == ["team-renamed"]


async def test_put_with_empty_members_empties(gateway):
    alice = await make_user(gateway, "alice")
    group = await make_group(gateway, "team", [{"value": alice["id"]}])
    status, body, _ = await scim(gateway, "PUT", f"/Groups/{group['id']}",
                                 {"displayName": "team", "members": []})
    assert status == 200, body
    assert body.get("members", []) == []
    fetched, _ = await get(gateway, f"/Groups/{group['id']}")
    assert fetched.get("members", []) == []
    user, _ = await get(gateway, f"/Users/{alice['id']}")
    assert user.get("groups", []) == []


async def test_put_with_unknown_member_changes_nothing(gateway):
    alice = await make_user(gateway, "alice")
    group = await make_group(gateway, "team", [{"value": alice["id"]}])
    status, body, _ = await scim(gateway, "PUT", f"/Groups/{group['id']}", {
        "displayName": "other-name", "members": [{"value": "nobody-here"}]})
    assert_scim_error(status, body, 400, "invalidValue")
    fetched, etag = await get(gateway, f"/Groups/{group['id']}")
    assert fetched["displayName"] == "team"
    assert [m["value"] for m in fetched["members"]] == [alice["id"]]
    assert etag == group["meta"]["version"]


async def test_put_to_taken_name_is_a_conflict(gateway):
    await make_group(gateway, "first")
    second = await make_group(gateway, "second")
    status, body, _ = await scim(gateway, "PUT", f"/Groups/{second['id']}",
                                 {"displayName": "FIRST"})
    assert_scim_error(status, body, 409, "uniqueness")
    fetched, _ = await get(gateway, f"/Groups/{second['id']}")
    assert fetched["displayName"] == "second"
    # its own name in another case is not a conflict
    status, body, _ = await scim(gateway, "PUT", f"/Groups/{second['id']}",
                                 {"displayName": "SECOND"})
    assert status == 200, body
    assert body["displayName"] == "SECOND"


async def test_group_cannot_contain_itself(gateway):
    group = await make_group(gateway, "loop")
    gid = group["id"]
    status, body, _ = await scim(gateway, "PUT", f"/Groups/{gid}",
                                 {"displayName": "loop", "members": [{"value": gid}]})
    assert_scim_error(status, body, 400)
    status, body, _ = await scim(gateway, "PATCH", f"/Groups/{gid}", {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": gid}]}]})
    assert_scim_error(status, body, 400)
    fetched, etag = await get(gateway, f"/Groups/{gid}")
    assert fetched.get("members", []) == []
    assert etag == group["meta"]["version"]


# delete --------------------------------------------------------------------------------------
async def test_delete_group_drops_it_from_members_groups(gateway):
    alice = await make_user(gateway, "alice")
    keep = await make_group(gateway, "keep", [{"value": alice["id"]}])
    gone = await make_group(gateway, "gone", [{"value": alice["id"]}])
    user, _ = await get(gateway, f"/Users/{alice['id']}")
    assert {g["value"] for g in user["groups"]} == {keep["id"], gone["id"]}
    status, body, resp = await scim(gateway, "DELETE", f"/Groups/{gone['id']}")
    assert status == 204, body
    assert await resp.read() == b""
    status, body, _ = await scim(gateway, "GET", f"/Groups/{gone['id']}")
    assert_scim_error(status, body, 404)
    status, body, _ = await scim(gateway, "DELETE", f"/Groups/{gone['id']}")
    assert_scim_error(status, body, 404)
    user, _ = await get(gateway, f"/Users/{alice['id']}")
    assert [g["value"] for g in user["groups"]] == [keep["id"]]


async def test_delete_member_group_drops_it_from_parent(gateway):
    inner = await make_group(gateway, "inner")
    outer = await make_group(gateway, "outer", [{"value": inner["id"]}])
    status, _, _ = await scim(gateway, "DELETE", f"/Groups/{inner['id']}")
    assert status == 204
    fetched, etag = await get(gateway, f"/Groups/{outer['id']}")
    assert fetched.get("members", []) == []
    assert etag != outer["meta"]["version"]


async def test_deleted_user_leaves_its_groups(gateway):
    alice = await make_user(gateway, "alice")
    bob = await make_user(gateway, "bob")
    group = await make_group(gateway, "team", [{"value": alice["id"]}, {"value": bob["id"]}])
    status, _, _ = await scim(gateway, "DELETE", f"/Users/{alice['id']}")
    assert status == 204
    fetched, etag = await get(gateway, f"/Groups/{group['id']}")
    assert [m["value"] for m in fetched["members"]] == [bob["id"]]
    # the membership changed, so the group's version did too
    assert etag != group["meta"]["version"]
    assert fetched["meta"]["version"] == etag


# memberships seen from the user --------------------------------------------------------------
async def test_user_groups_reflect_membership(gateway):
    alice = await make_user(gateway, "alice")
    assert alice.get("groups", []) == []
    group = await make_group(gateway, "readers")
    gid = group["id"]
    status, body, resp = await scim(gateway, "PATCH", f"/Groups/{gid}", {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": alice["id"]}]}]})
    assert status == 204, body  # a group PATCH answers 204 unless attributes are asked for
    assert resp.headers["ETag"] != group["meta"]["version"]
    user, _ = await get(gateway, f"/Users/{alice['id']}")
    assert len(user["groups"]) == 1
    ref = user["groups"][0]
    assert ref["value"] == gid
    assert ref["display"] == "readers"
    assert ref["$ref"].endswith(f"/scim2/Groups/{gid}")
    assert ref["$ref"] == group["meta"]["location"]
    # list results carry it too
    status, body, _ = await scim(gateway, "GET", '/Users?filter=userName eq "alice"')
    assert status == 200, body
    assert [g["value"] for g in body["Resources"][0]["groups"]] == [gid]
    # and filtering users by group works off the same data
    status, body, _ = await scim(gateway, "GET", f'/Users?filter=groups.value eq "{gid}"')
    assert status == 200, body
    assert [u["id"] for u in body["Resources"]] == [alice["id"]]
    before = resp.headers["ETag"]
    status, body, resp = await scim(gateway, "PATCH", f"/Groups/{gid}", {
        "Operations": [{"op": "remove", "path": f'members[value eq "{alice["id"]}"]'}]})
    assert status == 204, body
    assert resp.headers["ETag"] != before
    user, _ = await get(gateway, f"/Users/{alice['id']}")
    assert user.get("groups", []) == []


async def test_user_groups_follow_rename(gateway):
    alice = await make_user(gateway, "alice")
    group = await make_group(gateway, "old-name", [{"value": alice["id"]}])
    status, body, _ = await scim(gateway, "PUT", f"/Groups/{group['id']}", {
        "displayName": "new-name", "members": [{"value": alice["id"]}]})
    assert status == 200, body
    user, _ = await get(gateway, f"/Users/{alice['id']}")
    assert [g["display"] for g in user["groups"]] == ["new-name"]


async def test_user_groups_cannot_be_written_on_the_user(gateway):
    """groups is readOnly on a User (RFC 7643 §4.1.2): a client cannot join that way."""
    group = await make_group(gateway, "closed")
    status, body, _ = await scim(gateway, "POST", "/Users", {
        "userName": "sneaky", "groups": [{"value": group["id"]}]})
    assert status == 201, body
    assert body.get("groups", []) == []
    fetched, _ = await get(gateway, f"/Groups/{group['id']}")
    assert fetched.get("members", []) == []


async def test_version_changes_with_membership_only(gateway):
    alice = await make_user(gateway, "alice")
    group = await make_group(gateway, "versioned")
    gid = group["id"]
    _, v1 = await get(gateway, f"/Groups/{gid}")
    _, again = await get(gateway, f"/Groups/{gid}")
    assert again == v1
    status, body, resp = await scim(gateway, "PUT", f"/Groups/{gid}", {
        "displayName": "versioned", "members": [{"value": alice["id"]}]})
    assert status == 200, body
    v2 = resp.headers["ETag"]
    assert v2 != v1
    _, fetched = await get(gateway, f"/Groups/{gid}")
    assert fetched == v2
    # a stale If-Match is refused
    status, body, _ = await scim(gateway, "PUT", f"/Groups/{gid}",
                                 {"displayName": "versioned"}, headers={"If-Match": v1})
    assert_scim_error(status, body, 412)
    status, body, resp = await scim(gateway, "PUT", f"/Groups/{gid}",
                                    {"displayName": "versioned"}, headers={"If-Match": v2})
    assert status == 200, body
    assert resp.headers["ETag"] not in (v1, v2)
    assert body.get("members", []) == []
