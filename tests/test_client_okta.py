"""Okta's SCIM 2.0 provisioning client, replayed request by request.

Each test sends what Okta sends, as it sends it (Okta's "SCIM 2.0 protocol
reference" and its SCIM test suite): ``Accept: application/scim+json``,
``Content-Type: application/scim+json; charset=utf-8``, ``User-Agent: Okta SCIM
Client 1.0.0``, queries encoded with ``%20`` and always paged
(``startIndex=1&count=100``), user bodies with ``password``, ``active`` and an
empty ``groups``, PUT as a full replace, path-less ``replace`` for deactivation,
password sync and group renames, and ``replace members`` with the full list.
Okta reads ``totalResults``/``startIndex``/``itemsPerPage`` as integers and
expects a SCIM Error body on 401 and 409. Every test runs on both user store
backends (``gateway``).
"""

from __future__ import annotations

from urllib.parse import quote

import orjson
from conftest import ADMIN, ADMIN_USER, assert_scim_error, basic
from yarl import URL

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
OKTA_HEADERS = {
    "Accept": "application/scim+json",
    "Accept-Charset": "utf-8",
    "User-Agent": "Okta SCIM Client 1.0.0",
}


def query(*pairs: tuple[str, str | int]) -> str:
    """A query string as Okta encodes it (``%20`` for spaces, ``%22``, ``%40``)."""
    return "&".join(f"{k}={quote(str(v), safe='')}" for k, v in pairs)


async def okta(client, method: str, path: str, body: dict | None = None, auth=ADMIN):
    """One request as Okta sends it: (status, parsed JSON or None, response)."""
    headers = {**OKTA_HEADERS, **(auth or {})}
    data = None
    if body is not None:
        headers["Content-Type"] = "application/scim+json; charset=utf-8"
        data = orjson.dumps(body)
    resp = await client.request(method, URL("/scim2" + path, encoded=True), data=data,
                                headers=headers)
    raw = await resp.read()
    parsed = orjson.loads(raw) if raw and "json" in resp.content_type else None
    return resp.status, parsed, resp


def assert_list(body: dict, total: int, start: int, items: int) -> None:
    """The ListResponse shape Okta parses: integers, not strings, and always Resources."""
    assert body["schemas"] == [LIST]
    for key, want in (("totalResults", total), ("startIndex", start), ("itemsPerPage", items)):
        assert type(body[key]) is int, (key, body[key])
        assert body[key] == want, (key, body)
    assert isinstance(body["Resources"], list)
    assert len(body["Resources"]) == items


async def search(client, endpoint: str, filt: str | None = None, start: int = 1,
                 count: int = 100) -> dict:
    pairs = ([("filter", filt)] if filt is not None else []) + [("startIndex", start),
                                                                   ("count", count)]
    status, body, resp = await okta(client, "GET", f"{endpoint}?{query(*pairs)}")
    assert status == 200, body
    assert resp.content_type == "application/scim+json"
    return body


def okta_user(user_name: str, given: str = "Test", family: str = "User",
              password: str = "1mz050nq",  # noqa: S107 - Okta's documented example
              external_id: str = "00ujl29u0le5T6Aj10h7") -> dict:
    """The body of Okta's POST /Users (its protocol reference's "Create the User")."""
    return {
        "schemas": [CORE_USER],
        "userName": user_name,
        "name": {"givenName": given, "familyName": family},
        "emails": [{"primary": True, "value": user_name, "type": "work"}],
        "displayName": f"{given} {family}",
        "locale": "en-US",
        "externalId": external_id,
        "groups": [],
        "password": password,
        "active": True,
    }


async def create_user(client, user_name: str, **kw) -> dict:
    status, body, resp = await okta(client, "POST", "/Users", okta_user(user_name, **kw))
    assert status == 201, body
    return body


async def read(client, path: str) -> dict:
    status, body, _ = await okta(client, "GET", path)
    assert status == 200, body
    return body


async def create_group(client, name: str, members: list[dict] | None = None) -> dict:
    status, body, _ = await okta(client, "POST", "/Groups", {
        "schemas": [CORE_GROUP], "displayName": name, "members": members or []})
    assert status == 201, body
    return body


def patch_op(*operations: dict) -> dict:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


async def can_log_in(client, user_name: str, password: str) -> bool:
    """Whether a store user's password authenticates (its own /Me answers)."""
    status, body, _ = await okta(client, "GET", "/Me", auth=basic(user_name, password))
    if status == 401:
        assert_scim_error(status, body, 401)
        return False
    assert status == 200, body
    assert body["userName"].lower() == user_name.lower()
    return True


# listing and matching ---------------------------------------------------------------------------
async def test_list_users_paged_with_integer_counts(gateway):
    for i in range(3):
        await create_user(gateway, f"user{i}@okta.local", external_id=f"00u{i}")
    everyone = await search(gateway, "/Users")
    total = everyone["totalResults"]  # the bootstrap admin is a user too
    assert total == 4
    assert_list(everyone, total, 1, total)
    assert {u["userName"] for u in everyone["Resources"]} >= {
        "user0@okta.local", "user1@okta.local", "user2@okta.local"}
    first = await search(gateway, "/Users", start=1, count=2)
    assert_list(first, total, 1, 2)
    rest = await search(gateway, "/Users", start=3, count=2)
    assert_list(rest, total, 3, 2)
    assert {u["id"] for u in first["Resources"]}.isdisjoint(u["id"] for u in rest["Resources"])
    past = await search(gateway, "/Users", start=101, count=100)
    assert_list(past, total, 101, 0)
    groups = await search(gateway, "/Groups")  # the bootstrap "admin" role
    assert_list(groups, groups["totalResults"], 1, groups["totalResults"])


async def test_filter_user_name_is_case_insensitive_and_a_miss_is_empty(gateway):
    user = await create_user(gateway, "test.user@okta.local")
    for asked in ("test.user@okta.local", "TEST.USER@OKTA.LOCAL", "Test.User@Okta.Local"):
        found = await search(gateway, "/Users", f'userName eq "{asked}"')
        assert_list(found, 1, 1, 1)
        assert found["Resources"][0]["id"] == user["id"]
        assert found["Resources"][0]["userName"] == "test.user@okta.local"
    missing = await search(gateway, "/Users", 'userName eq "nobody@okta.local"')
    assert_list(missing, 0, 1, 0)
    assert missing["Resources"] == []


# users ------------------------------------------------------------------------------------------
async def test_create_user_with_password_and_active(gateway):
    status, body, resp = await okta(gateway, "POST", "/Users",
                                    okta_user("test.user@okta.local"))
    assert status == 201, body
    assert resp.content_type == "application/scim+json"
    assert resp.headers["Location"] == body["meta"]["location"]
    assert body["active"] is True
    assert body["userName"] == "test.user@okta.local"
    assert body["externalId"] == "00ujl29u0le5T6Aj10h7"
    assert body["locale"] == "en-US"
    assert body["emails"] == [{"primary": True, "value": "test.user@okta.local",
                               "type": "work"}]
    assert "password" not in body
    assert body.get("groups", []) == []
    assert "password" not in await read(gateway, f"/Users/{body['id']}")
    assert await can_log_in(gateway, "test.user@okta.local", "1mz050nq")
    assert not await can_log_in(gateway, "test.user@okta.local", "wrong-password")


async def test_duplicate_user_name_is_409_with_a_scim_error(gateway):
    await create_user(gateway, "test.user@okta.local")
    for again in ("test.user@okta.local", "TEST.User@okta.local"):
        status, body, resp = await okta(gateway, "POST", "/Users", okta_user(again))
        assert_scim_error(status, body, 409, "uniqueness")
        assert resp.content_type == "application/scim+json"
    found = await search(gateway, "/Users", 'userName eq "test.user@okta.local"')
    assert found["totalResults"] == 1


async def test_put_replaces_the_whole_user(gateway):
    user = await create_user(gateway, "test.user@okta.local")
    user_id = user["id"]
    # Okta's PUT: the whole profile as Okta holds it, id and meta included; what it no
    # longer holds (here locale, displayName and the e-mails) is left out
    status, body, _ = await okta(gateway, "PUT", f"/Users/{user_id}", {
        "schemas": [CORE_USER],
        "id": user_id,
        "userName": "test.user@okta.local",
        "name": {"givenName": "Another", "familyName": "User"},
        "externalId": "00u1dhhb1fkIGP7RL1d8",
        "groups": [],
        "active": True,
        "meta": {"resourceType": "User", "created": user["meta"]["created"],
                 "lastModified": user["meta"]["lastModified"]},
    })
    assert status == 200, body
    assert body["id"] == user_id
    assert body["name"] == {"givenName": "Another", "familyName": "User"}
    assert body["externalId"] == "00u1dhhb1fkIGP7RL1d8"
    for gone in ("locale", "displayName", "emails"):
        assert gone not in body, gone
    fetched = await read(gateway, f"/Users/{user_id}")
    assert {k: v for k, v in fetched.items() if k != "meta"} == \
        {k: v for k, v in body.items() if k != "meta"}
    # a PUT without a password leaves the password alone
    assert await can_log_in(gateway, "test.user@okta.local", "1mz050nq")


async def test_deactivate_and_reactivate_with_pathless_replace(gateway):
    user = await create_user(gateway, "test.user@okta.local")
    path = f"/Users/{user['id']}"
    status, body, resp = await okta(gateway, "PATCH", path, patch_op(
        {"op": "replace", "value": {"active": False}}))
    assert status == 200, body
    assert body["active"] is False
    assert resp.headers["ETag"] == body["meta"]["version"]
    assert (await read(gateway, path))["active"] is False
    assert body["name"] == user["name"] and body["emails"] == user["emails"]
    status, body, _ = await okta(gateway, "PATCH", path, patch_op(
        {"op": "replace", "value": {"active": True}}))
    assert status == 200, body
    assert body["active"] is True


async def test_password_sync_by_patch(gateway):
    user = await create_user(gateway, "test.user@okta.local")
    status, body, _ = await okta(gateway, "PATCH", f"/Users/{user['id']}", patch_op(
        {"op": "replace", "value": {"password": "t0ps3cret-Okta"}}))
    assert status == 200, body
    assert "password" not in body
    assert await can_log_in(gateway, "test.user@okta.local", "t0ps3cret-Okta")
    assert not await can_log_in(gateway, "test.user@okta.local", "1mz050nq")


async def test_bad_credentials_are_401_with_a_scim_error(gateway):
    for auth in (basic(ADMIN_USER[0], "not-the-password"), basic("test-admin", "nope"),
                 {"Authorization": "Bearer not-a-token"}, {}):
        for method, path in (("GET", "/Users?" + query(("startIndex", 1), ("count", 100))),
                             ("GET", "/Groups?" + query(("startIndex", 1), ("count", 100)))):
            status, body, resp = await okta(gateway, method, path, auth=auth)
            assert_scim_error(status, body, 401)
            assert resp.content_type == "application/scim+json"
            assert resp.headers.get("WWW-Authenticate")
    status, body, _ = await okta(gateway, "POST", "/Users", okta_user("intruder@okta.local"),
                                 auth=basic("test-admin", "nope"))
    assert_scim_error(status, body, 401)
    assert (await search(gateway, "/Users", 'userName eq "intruder@okta.local"'))[
        "totalResults"] == 0


# groups ----------------------------------------------------------------------------------------
async def test_group_push_lifecycle(gateway):
    a = await create_user(gateway, "a@okta.local", external_id="00ua")
    b = await create_user(gateway, "b@okta.local", external_id="00ub")
    c = await create_user(gateway, "c@okta.local", external_id="00uc")
    status, group, resp = await okta(gateway, "POST", "/Groups", {
        "schemas": [CORE_GROUP], "displayName": "Test SCIMv2", "members": []})
    assert status == 201, group
    assert resp.headers["Location"] == group["meta"]["location"]
    assert group["displayName"] == "Test SCIMv2"
    assert group.get("members", []) == []
    path = f"/Groups/{group['id']}"

    found = await search(gateway, "/Groups", 'displayName eq "Test SCIMv2"')
    assert_list(found, 1, 1, 1)
    assert found["Resources"][0]["id"] == group["id"]

    async def patch_204(*operations: dict) -> None:
        status, body, resp = await okta(gateway, "PATCH", path, patch_op(*operations))
        assert status == 204, body
        assert body is None and resp.headers.get("ETag")

    # rename: Okta sends the id along with the new name, without a path
    await patch_204({"op": "replace", "value": {"id": group["id"],
                                                "displayName": "Test SCIMv2 renamed"}})
    assert (await read(gateway, path))["displayName"] == "Test SCIMv2 renamed"
    assert (await search(gateway, "/Groups", 'displayName eq "Test SCIMv2"'))[
        "totalResults"] == 0

    # membership: the whole list each time
    await patch_204({"op": "replace", "path": "members", "value": [
        {"value": a["id"], "display": "a@okta.local"},
        {"value": b["id"], "display": "b@okta.local"}]})
    assert {m["value"] for m in (await read(gateway, path))["members"]} == {a["id"], b["id"]}
    await patch_204({"op": "replace", "path": "members", "value": [
        {"value": b["id"], "display": "b@okta.local"},
        {"value": c["id"], "display": "c@okta.local"}]})
    assert {m["value"] for m in (await read(gateway, path))["members"]} == {b["id"], c["id"]}
    assert (await read(gateway, f"/Users/{a['id']}")).get("groups", []) == []
    assert [g["value"] for g in (await read(gateway, f"/Users/{c['id']}"))["groups"]] == \
        [group["id"]]
    # a removal and an addition in one request, as Okta's incremental push sends them
    await patch_204({"op": "remove", "path": f'members[value eq "{b["id"]}"]'},
                    {"op": "add", "path": "members",
                     "value": [{"value": a["id"], "display": "a@okta.local"}]})
    assert {m["value"] for m in (await read(gateway, path))["members"]} == {a["id"], c["id"]}
    await patch_204({"op": "replace", "path": "members", "value": []})
    assert (await read(gateway, path)).get("members", []) == []
    assert (await read(gateway, f"/Users/{c['id']}")).get("groups", []) == []

    # unlinking the push group deletes it
    status, body, _ = await okta(gateway, "DELETE", path)
    assert status == 204, body
    status, body, _ = await okta(gateway, "GET", path)
    assert_scim_error(status, body, 404)


async def test_duplicate_group_name_is_409_with_a_scim_error(gateway):
    await create_group(gateway, "Test SCIMv2")
    status, body, _ = await okta(gateway, "POST", "/Groups", {
        "schemas": [CORE_GROUP], "displayName": "test scimv2", "members": []})
    assert_scim_error(status, body, 409, "uniqueness")
