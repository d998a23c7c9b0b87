"""SCIM ETags (RFC 7644 §3.14) over HTTP, on every user store backend.

``ETag`` equals ``meta.version`` wherever a resource (or its new version) is
returned; ``If-Match`` guards PUT, PATCH and DELETE (a stale or malformed tag is
412 and changes nothing, ``*`` always matches); ``If-None-Match`` on GET answers
304 while the caller's copy is current; a /Bulk operation's ``version`` is its
If-Match. The user basics (If-Match on PUT/PATCH/DELETE, a stale tag, 304) are in
test_scim_users.py; this file adds groups, ``*``, malformed tags and /Bulk.
"""

from __future__ import annotations

import pytest
from conftest import assert_scim_error, scim

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
MALFORMED = ["abc", 'W/"x"', '"1.5"', "W/", '"', 'W/"1" trailing', "-"]


def patch_body(*operations: dict) -> dict:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def set_title(value: str) -> dict:
    return patch_body({"op": "replace", "path": "title", "value": value})


def set_external(value: str) -> dict:
    return patch_body({"op": "replace", "path": "externalId", "value": value})


async def create(client, path: str, body: dict) -> tuple[dict, str]:
    status, out, resp = await scim(client, "POST", path, body)
    assert status == 201, (body, out)
    assert resp.headers["ETag"] == out["meta"]["version"]
    return out, resp.headers["ETag"]


async def fetch(client, path: str) -> tuple[dict, str]:
    status, body, resp = await scim(client, "GET", path)
    assert status == 200, body
    assert resp.headers["ETag"] == body["meta"]["version"]
    return body, resp.headers["ETag"]


async def user_and_group(client) -> tuple[dict, dict]:
    user, _ = await create(client, "/Users", {"userName": "tagged", "title": "orig"})
    member, _ = await create(client, "/Users", {"userName": "member"})
    group, _ = await create(client, "/Groups", {"displayName": "tagged-group",
                                                "externalId": "orig",
                                                "members": [{"value": member["id"]}]})
    return user, group


def state(body: dict) -> tuple:
    """What a failed conditional request must leave as it was."""
    return (body.get("title"), body.get("externalId"), body["meta"]["version"],
            body["meta"]["lastModified"],
            sorted(m["value"] for m in body.get("members", []) or []))


def edits(kind: str) -> list[tuple[str, dict | None]]:
    """(method, body) of a PUT, a PATCH and a DELETE of the resource made by user_and_group."""
    if kind == "Users":
        return [("PUT", {"userName": "tagged", "title": "lost"}), ("PATCH", set_title("lost")),
                ("DELETE", None)]
    return [("PUT", {"displayName": "tagged-group", "externalId": "lost"}),
            ("PATCH", set_external("lost")), ("DELETE", None)]


# the ETag header ------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["Users", "Groups"])
async def test_etag_is_meta_version_on_every_response(gateway, kind):
    user, group = await user_and_group(gateway)
    res = user if kind == "Users" else group
    path = f"/{kind}/{res['id']}"
    seen = [res["meta"]["version"]]
    body, etag = await fetch(gateway, path)
    assert etag == seen[-1]
    put = {"userName": "tagged", "title": "put"} if kind == "Users" else {
        "displayName": "tagged-group", "externalId": "put"}
    status, body, resp = await scim(gateway, "PUT", path, put)
    assert status == 200, body
    assert resp.headers["ETag"] == body["meta"]["version"] not in seen
    seen.append(resp.headers["ETag"])
    patch = set_title("patched") if kind == "Users" else set_external("patched")
    status, body, resp = await scim(gateway, "PATCH", path, patch)
    if kind == "Users":
        assert status == 200, body
        assert resp.headers["ETag"] == body["meta"]["version"]
    else:  # 204 without a body: the ETag names the version a GET then shows
        assert status == 204, body
        assert body is None
    assert resp.headers["ETag"] not in seen
    seen.append(resp.headers["ETag"])
    body, etag = await fetch(gateway, path)
    assert etag == seen[-1]
    # a group PATCH asking for attributes answers 200 with the body
    if kind == "Groups":
        status, body, resp = await scim(gateway, "PATCH", path + "?attributes=externalId,meta",
                                        set_external("again"))
        assert status == 200, body
        assert resp.headers["ETag"] == body["meta"]["version"] not in seen
        seen.append(resp.headers["ETag"])
        _, etag = await fetch(gateway, path)
        assert etag == seen[-1]
    # a list shows the same version the resource's ETag names
    status, listed, _ = await scim(gateway, "GET", f"/{kind}?filter=" + (
        'userName eq "tagged"' if kind == "Users" else 'displayName eq "tagged-group"'))
    assert status == 200 and listed["Resources"][0]["meta"]["version"] == seen[-1]
    # weak tags, as RFC 7644 §3.14 shows them
    assert all(v.startswith('W/"') and v.endswith('"') for v in seen)


async def test_group_membership_changes_move_the_etag_and_if_match_follows(gateway):
    user, group = await user_and_group(gateway)
    path = f"/Groups/{group['id']}"
    _, v1 = await fetch(gateway, path)
    status, body, resp = await scim(gateway, "PATCH", path, patch_body(
        {"op": "add", "path": "members", "value": [{"value": user["id"]}]}),
        headers={"If-Match": v1})
    assert status == 204, body
    v2 = resp.headers["ETag"]
    assert v2 != v1
    _, etag = await fetch(gateway, path)
    assert etag == v2
    # the old tag no longer matches, the new one does
    status, body, _ = await scim(gateway, "PATCH", path, patch_body(
        {"op": "remove", "path": f'members[value eq "{user["id"]}"]'}),
        headers={"If-Match": v1})
    assert_scim_error(status, body, 412)
    got, etag = await fetch(gateway, path)
    assert etag == v2 and user["id"] in {m["value"] for m in got["members"]}
    status, body, resp = await scim(gateway, "PATCH", path, patch_body(
        {"op": "remove", "path": f'members[value eq "{user["id"]}"]'}),
        headers={"If-Match": v2})
    assert status == 204, body
    assert resp.headers["ETag"] not in (v1, v2)


# If-Match ---------------------------------------------------------------------------------
async def test_group_if_match_current_version_allows_put_patch_delete(gateway):
    _, group = await user_and_group(gateway)
    path = f"/Groups/{group['id']}"
    status, body, resp = await scim(gateway, "PUT", path, {
        "displayName": "tagged-group", "externalId": "one", "members": group["members"]},
        headers={"If-Match": group["meta"]["version"]})
    assert status == 200, body
    assert body["externalId"] == "one"
    status, body, resp = await scim(gateway, "PATCH", path, set_external("two"),
                                    headers={"If-Match": resp.headers["ETag"]})
    assert status == 204, body
    got, etag = await fetch(gateway, path)
    assert got["externalId"] == "two" and etag == resp.headers["ETag"]
    # the strong form of the same version matches too
    strong = etag[2:]
    status, body, resp = await scim(gateway, "PATCH", path, set_external("three"),
                                    headers={"If-Match": strong})
    assert status == 204, body
    status, body, _ = await scim(gateway, "DELETE", path,
                                 headers={"If-Match": resp.headers["ETag"]})
    assert status == 204, body
    status, body, _ = await scim(gateway, "GET", path)
    assert_scim_error(status, body, 404)


@pytest.mark.parametrize("kind", ["Users", "Groups"])
async def test_stale_if_match_is_412_and_changes_nothing(gateway, kind):
    user, group = await user_and_group(gateway)
    res = user if kind == "Users" else group
    path = f"/{kind}/{res['id']}"
    stale = res["meta"]["version"]
    change = set_title("v2") if kind == "Users" else set_external("v2")
    status, body, _ = await scim(gateway, "PATCH", path, change)
    assert status in (200, 204), body
    before, _ = await fetch(gateway, path)
    assert before["meta"]["version"] != stale
    for method, body in edits(kind):
        status, out, resp = await scim(gateway, method, path, body, headers={"If-Match": stale})
        assert_scim_error(status, out, 412)
        assert resp.content_type == "application/scim+json"
    after, _ = await fetch(gateway, path)
    assert state(after) == state(before)


@pytest.mark.parametrize("kind", ["Users", "Groups"])
async def test_if_match_star_always_matches(gateway, kind):
    user, group = await user_and_group(gateway)
    res = user if kind == "Users" else group
    path = f"/{kind}/{res['id']}"
    for method, body in edits(kind):
        status, out, resp = await scim(gateway, method, path, body, headers={"If-Match": "*"})
        assert status in (200, 204), (method, out)
        if method == "DELETE":
            status, out, _ = await scim(gateway, "GET", path)
            assert_scim_error(status, out, 404)
        else:
            got, etag = await fetch(gateway, path)
            assert got["title" if kind == "Users" else "externalId"] == "lost"
            assert etag == resp.headers["ETag"]


@pytest.mark.parametrize("kind", ["Users", "Groups"])
async def test_malformed_if_match_is_412_and_changes_nothing(gateway, kind):
    user, group = await user_and_group(gateway)
    res = user if kind == "Users" else group
    path = f"/{kind}/{res['id']}"
    before, _ = await fetch(gateway, path)
    for tag in MALFORMED:
        for method, body in edits(kind):
            status, out, _ = await scim(gateway, method, path, body, headers={"If-Match": tag})
            assert_scim_error(status, out, 412)
    after, _ = await fetch(gateway, path)
    assert state(after) == state(before)


# If-None-Match ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["Users", "Groups"])
async def test_if_none_match(gateway, kind):
    user, group = await user_and_group(gateway)
    res = user if kind == "Users" else group
    path = f"/{kind}/{res['id']}"
    current = res["meta"]["version"]
    for tag in (current, current[2:], "*"):  # weak comparison: W/"n" and "n" alike
        status, body, resp = await scim(gateway, "GET", path, headers={"If-None-Match": tag})
        assert status == 304, (tag, body)
        assert body is None and await resp.read() == b""
        assert resp.headers["ETag"] == current
    change = set_title("new") if kind == "Users" else set_external("new")
    status, body, _ = await scim(gateway, "PATCH", path, change)
    assert status in (200, 204), body
    for tag in (current, "abc", 'W/"x"'):  # an old or unparseable tag matches nothing
        status, body, resp = await scim(gateway, "GET", path, headers={"If-None-Match": tag})
        assert status == 200, (tag, body)
        assert body["meta"]["version"] == resp.headers["ETag"] != current
        assert body["title" if kind == "Users" else "externalId"] == "new"
    status, body, resp = await scim(gateway, "GET", path, headers={
        "If-None-Match": resp.headers["ETag"]})
    assert status == 304 and body is None


# /Bulk ----------------------------------------------------------------------------------
async def bulk(client, operations: list[dict]) -> list[dict]:
    status, body, _ = await scim(client, "POST", "/Bulk",
                                 {"schemas": [BULK_REQUEST], "Operations": operations})
    assert status == 200, body
    assert len(body["Operations"]) == len(operations), body
    return body["Operations"]


def assert_412(op: dict, method: str) -> None:
    assert op["method"] == method and op["status"] == "412", op
    assert op["response"]["schemas"] == [ERROR], op
    assert op["response"]["status"] == "412", op


async def test_bulk_version_is_if_match_for_users_and_groups(gateway):
    user, group = await user_and_group(gateway)
    upath, gpath = f"/Users/{user['id']}", f"/Groups/{group['id']}"
    u1, g1 = user["meta"]["version"], group["meta"]["version"]
    ops = await bulk(gateway, [
        {"method": "PUT", "path": upath, "version": u1,
         "data": {"userName": "tagged", "title": "bulk-put"}},
        {"method": "PUT", "path": upath, "version": u1,  # u1 is stale by now
         "data": {"userName": "tagged", "title": "lost"}},
        {"method": "PATCH", "path": gpath, "version": g1, "data": set_external("bulk-patch")},
        {"method": "PATCH", "path": gpath, "version": g1, "data": set_external("lost")},
        {"method": "DELETE", "path": gpath, "version": g1},
    ])
    assert ops[0]["status"] == "200", ops[0]
    assert_412(ops[1], "PUT")
    assert ops[2]["status"] == "200", ops[2]
    assert_412(ops[3], "PATCH")
    assert_412(ops[4], "DELETE")
    got, etag = await fetch(gateway, upath)
    assert got["title"] == "bulk-put" and etag == ops[0]["version"] != u1
    got, etag = await fetch(gateway, gpath)
    assert got["externalId"] == "bulk-patch" and etag == ops[2]["version"] != g1
    # the versions the bulk response gave are current: they match
    ops = await bulk(gateway, [
        {"method": "PATCH", "path": upath, "version": ops[0]["version"],
         "data": set_title("again")},
        {"method": "DELETE", "path": gpath, "version": ops[2]["version"]},
    ])
    assert [o["status"] for o in ops] == ["200", "204"], ops
    got, _ = await fetch(gateway, upath)
    assert got["title"] == "again"
    status, body, _ = await scim(gateway, "GET", gpath)
    assert_scim_error(status, body, 404)


async def test_bulk_star_and_malformed_versions(gateway):
    user, group = await user_and_group(gateway)
    upath, gpath = f"/Users/{user['id']}", f"/Groups/{group['id']}"
    before_user, _ = await fetch(gateway, upath)
    before_group, _ = await fetch(gateway, gpath)
    operations = []
    for tag in MALFORMED:
        operations += [
            {"method": "PATCH", "path": upath, "version": tag, "data": set_title("lost")},
            {"method": "PUT", "path": gpath, "version": tag,
             "data": {"displayName": "tagged-group", "externalId": "lost"}},
            {"method": "DELETE", "path": upath, "version": tag},
        ]
    ops = await bulk(gateway, operations)
    for op, sent in zip(ops, operations, strict=True):
        assert_412(op, sent["method"])
    after_user, _ = await fetch(gateway, upath)
    after_group, _ = await fetch(gateway, gpath)
    assert state(after_user) == state(before_user)
    assert state(after_group) == state(before_group)
    # "*" matches whatever the version
    ops = await bulk(gateway, [
        {"method": "PATCH", "path": upath, "version": "*", "data": set_title("star")},
        {"method": "PATCH", "path": gpath, "version": "*", "data": set_external("star")},
        {"method": "DELETE", "path": upath, "version": "*"},
    ])
    assert [o["status"] for o in ops] == ["200", "200", "204"], ops
    got, etag = await fetch(gateway, gpath)
    assert got["externalId"] == "star" and etag == ops[1]["version"]
    status, body, _ = await scim(gateway, "GET", upath)
    assert_scim_error(status, body, 404)


async def test_entity_tag_lists_in_if_match_and_if_none_match(gateway):
    """RFC 7232 §3.1/§3.2: several entity tags, comma-separated, weak or strong."""
    status, user, _ = await scim(gateway, "POST", "/Users", {"userName": "listed"})
    assert status == 201, user
    uid, version = user["id"], user["meta"]["version"]  # W/"1"
    # If-None-Match: a list holding the current version is a 304, one without is a 200
    status, _, _ = await scim(gateway, "GET", f"/Users/{uid}",
                              headers={"If-None-Match": f'W/"77", {version}'})
    assert status == 304
    status, _, _ = await scim(gateway, "GET", f"/Users/{uid}",
                              headers={"If-None-Match": 'W/"77", "78"'})
    assert status == 200
    # If-Match: a list holding the current version lets the write through, on that version
    patch = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
             "Operations": [{"op": "replace", "path": "displayName", "value": "L"}]}
    status, body, _ = await scim(gateway, "PATCH", f"/Users/{uid}", patch,
                                 headers={"If-Match": f'"5", {version}, W/"9"'})
    assert status == 200, body
    # a list without it is 412, and nothing changes
    status, body, _ = await scim(gateway, "PUT", f"/Users/{uid}", {"userName": "listed2"},
                                 headers={"If-Match": 'W/"1", W/"3"'})
    assert_scim_error(status, body, 412)
    status, body, _ = await scim(gateway, "DELETE", f"/Users/{uid}",
                                 headers={"If-Match": 'W/"1", "x"'})
    assert_scim_error(status, body, 412)
    status, got, _ = await scim(gateway, "GET", f"/Users/{uid}")
    assert got["userName"] == "listed" and got["displayName"] == "L"
