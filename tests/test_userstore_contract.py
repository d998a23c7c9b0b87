"""The user store contract: the same behaviour on SQLite, PostgreSQL and LDAP.

Each test runs a gateway whose PRIMARY store is on the backend under test
(``any_backend``: a real SQLite file, a real PostgreSQL database, a real slapd)
and drives it over SCIM 2.0 and SOAP, as clients do.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from conftest import ADMIN, ADMIN_USER, assert_scim_error, basic, scim, test_config

from gateway.app import create_app

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@pytest.fixture
async def make_gateway(aiohttp_client, store_config, admin_env):
    async def make(**store):
        primary = await store_config(**store)
        return await aiohttp_client(create_app(test_config({"PRIMARY": primary})))

    return make


@pytest.fixture
async def gw(make_gateway):
    return await make_gateway()


async def create(gw, path, body, status=201):
    code, out, _ = await scim(gw, "POST", path, body)
    assert code == status, out
    return out


def alice(name="alice", **extra):
    return {"userName": name, "password": "Alice-pass-1",
            "name": {"givenName": "Alice", "familyName": "Liddell"},
            "emails": [{"value": f"{name}@example.org", "type": "work"}],
            "phoneNumbers": [{"value": "+1 555 0100", "type": "mobile"}], **extra}


async def test_user_round_trip(gw):
    made = await create(gw, "/Users", alice(title="Engineer"))
    status, got, _ = await scim(gw, "GET", f"/Users/{made['id']}")
    assert status == 200
    assert got["userName"] == "alice"
    assert got["name"]["givenName"] == "Alice" and got["name"]["familyName"] == "Liddell"
    assert got["emails"] == [{"value": "alice@example.org", "type": "work"}] or \
        [e["value"] for e in got["emails"]] == ["alice@example.org"]
    assert [p["value"] for p in got["phoneNumbers"]] == ["+1 555 0100"]
    assert got["title"] == "Engineer"
    assert "password" not in got
    assert got["meta"]["version"] == made["meta"]["version"]
    status, body, _ = await scim(gw, "GET", "/Users/00000000-0000-0000-0000-000000000000")
    assert_scim_error(status, body, 404)


async def test_names_are_unique_case_insensitively(gw):
    await create(gw, "/Users", alice())
    status, body, _ = await scim(gw, "POST", "/Users", alice("ALICE"))
    assert_scim_error(status, body, 409, "uniqueness")
    await create(gw, "/Groups", {"displayName": "eng"})
    status, body, _ = await scim(gw, "POST", "/Groups", {"displayName": "Eng"})
    assert_scim_error(status, body, 409, "uniqueness")


async def test_password_login_and_change(gw):
    made = await create(gw, "/Users", alice())
    status, _, _ = await scim(gw, "GET", "/Me", auth=basic("alice", "Alice-pass-1"))
    assert status == 200
    status, _, _ = await scim(gw, "GET", "/Me", auth=basic("alice", "wrong-pass-1"))
    assert status == 401
    status, _, _ = await scim(gw, "GET", "/Me", auth=basic("alice", ""))
    assert status == 401
    status, body, _ = await scim(gw, "PATCH", f"/Users/{made['id']}", {
        "schemas": [PATCH], "Operations": [{"op": "replace", "path": "password",
                                            "value": "Other-pass-2"}]})
    assert status == 200, body
    status, _, _ = await scim(gw, "GET", "/Me", auth=basic("alice", "Other-pass-2"))
    assert status == 200
    status, _, _ = await scim(gw, "GET", "/Me", auth=basic("alice", "Alice-pass-1"))
    assert status == 401


async def test_rename_keeps_id_and_memberships(gw):
    user = await create(gw, "/Users", alice())
    group = await create(gw, "/Groups", {"displayName": "eng",
                                         "members": [{"value": user["id"]}]})
    status, body, _ = await scim(gw, "PATCH", f"/Users/{user['id']}", {
        "schemas": [PATCH], "Operations": [{"op": "replace", "path": "userName",
                                            "value": "alicia"}]})
    assert status == 200, body
    assert body["id"] == user["id"] and body["userName"] == "alicia"
    assert [g["value"] for g in body["groups"]] == [group["id"]]
    status, body, _ = await scim(gw, "GET", f"/Groups/{group['id']}")
    assert [(m["value"], m["display"]) for m in body["members"]] == [(user["id"], "alicia")]
    status, _, _ = await scim(gw, "GET", "/Me", auth=basic("alicia", "Alice-pass-1"))
    assert status == 200
    status, body, _ = await scim(gw, "PATCH", f"/Groups/{group['id']}", {
        "schemas": [PATCH], "Operations": [{"op": "replace", "path": "displayName",
                                            "value": "engineering"}]})
    assert status in (200, 204), body
    status, body, _ = await scim(gw, "GET", f"/Groups/{group['id']}")
    assert body["displayName"] == "engineering"
    assert [m["value"] for m in body["members"]] == [user["id"]]


async def test_memberships_both_ways_and_nesting(gw):
    a = await create(gw, "/Users", alice("a1"))
    b = await create(gw, "/Users", alice("b1"))
    inner = await create(gw, "/Groups", {"displayName": "inner", "members": [{"value": a["id"]}]})
    outer = await create(gw, "/Groups", {"displayName": "outer",
                                         "members": [{"value": inner["id"], "type": "Group"}]})
    status, body, _ = await scim(gw, "PATCH", f"/Groups/{inner['id']}", {
        "schemas": [PATCH], "Operations": [{"op": "add", "path": "members",
                                            "value": [{"value": b["id"]}]}]})
    assert status in (200, 204), body
    status, body, _ = await scim(gw, "GET", f"/Groups/{inner['id']}")
    assert sorted(m["value"] for m in body["members"]) == sorted([a["id"], b["id"]])
    # a cycle is refused, and changes nothing
    status, body, _ = await scim(gw, "PATCH", f"/Groups/{inner['id']}", {
        "schemas": [PATCH], "Operations": [{"op": "add", "path": "members",
                                            "value": [{"value": outer["id"]}]}]})
    assert_scim_error(status, body, 400)
    status, body, _ = await scim(gw, "GET", f"/Groups/{outer['id']}")
    assert [m["value"] for m in body["members"]] == [inner["id"]]
    # unknown members are refused
    status, body, _ = await scim(gw, "PATCH", f"/Groups/{inner['id']}", {
        "schemas": [PATCH], "Operations": [{"op": "add", "path": "members",
                                            "value": [{"value": "no-such-id"}]}]})
    assert_scim_error(status, body, 400)
    # remove one member; the user's side follows
    status, body, _ = await scim(gw, "PATCH", f"/Groups/{inner['id']}", {
        "schemas": [PATCH], "Operations": [{"op": "remove",
                                            "path": f'members[value eq "{a["id"]}"]'}]})
    assert status in (200, 204), body
    status, body, _ = await scim(gw, "GET", f"/Users/{a['id']}")
    assert body.get("groups", []) == [] or all(
        g["value"] != inner["id"] or g.get("type") == "indirect" for g in body["groups"])
    # deleting a user takes it out of its groups
    status, _, _ = await scim(gw, "DELETE", f"/Users/{b['id']}")
    assert status == 204
    status, body, _ = await scim(gw, "GET", f"/Groups/{inner['id']}")
    assert body.get("members", []) == []
    status, _, _ = await scim(gw, "DELETE", f"/Groups/{outer['id']}")
    assert status == 204
    status, _, _ = await scim(gw, "GET", f"/Groups/{outer['id']}")
    assert status == 404


async def test_filters(gw):
    for n in ("amy", "andy", "bob", "bobby"):
        await create(gw, "/Users", alice(n, title="Chief" if n == "bob" else None))

    async def matching(flt):
        status, body, _ = await scim(gw, "GET", f"/Users?filter={quote(flt)}&count=50")
        assert status == 200, body
        return sorted(u["userName"] for u in body.get("Resources", []))

    assert await matching('userName eq "AMY"') == ["amy"]
    assert await matching('userName sw "an"') == ["andy"]
    assert await matching('userName co "ob"') == ["bob", "bobby"]
    assert await matching('userName ew "by"') == ["bobby"]
    assert await matching('title pr') == ["bob"]
    assert await matching('emails.value eq "bobby@example.org"') == ["bobby"]
    assert await matching('emails[type eq "work" and value sw "am"]') == ["amy"]
    assert await matching('userName sw "b" and not (userName eq "bob")') == ["bobby"]
    assert await matching('userName eq "amy" or userName eq "bob"') == ["amy", "bob"]
    assert await matching('nickName eq "x"') == []
    # injection attempts are values, never filter syntax
    assert await matching('userName eq "*"') == []
    assert await matching('userName eq "amy)(uid=*"') == []
    assert await matching('userName sw "*)(|(uid=*"') == []


async def test_special_characters_in_names(gw):
    for name in ("o'neil", "a,b=c+d", "x\\y", "semi;colon", "sp ace", "star*"):
        made = await create(gw, "/Users", alice(name))
        status, body, _ = await scim(gw, "GET", f"/Users/{made['id']}")
        assert body["userName"] == name
        flt = 'userName eq "' + name.replace("\\", "\\\\") + '"'
        status, body, _ = await scim(gw, "GET", "/Users?filter=" + quote(flt))
        assert [u["id"] for u in body["Resources"]] == [made["id"]], name


async def test_paging_sorting_and_cursor(gw):
    names = [f"user{i:02d}" for i in range(23)]
    for n in reversed(names):
        await create(gw, "/Users", {"userName": n})
    everyone = sorted([*names, ADMIN_USER[0]])
    status, body, _ = await scim(gw, "GET", "/Users?sortBy=userName&startIndex=1&count=10")
    assert body["totalResults"] == 24
    assert [u["userName"] for u in body["Resources"]] == everyone[:10]
    status, body, _ = await scim(gw, "GET", "/Users?sortBy=userName&startIndex=21&count=10")
    assert [u["userName"] for u in body["Resources"]] == everyone[20:]
    status, body, _ = await scim(gw, "GET",
                                 "/Users?sortBy=userName&sortOrder=descending&count=3")
    assert [u["userName"] for u in body["Resources"]] == everyone[::-1][:3]
    seen, cursor = [], ""
    for _ in range(10):
        status, body, _ = await scim(gw, "GET", f"/Users?count=7&cursor={cursor}")
        assert status == 200, body
        seen += [u["userName"] for u in body["Resources"]]
        cursor = body.get("nextCursor")
        if not cursor:
            break
    assert sorted(seen) == everyone and len(seen) == len(everyone)


async def test_read_only_store_refuses_writes_everywhere(make_gateway):
    gw = await make_gateway(read_only=True)
    status, body, _ = await scim(gw, "POST", "/Users", {"userName": "nobody"})
    assert_scim_error(status, body, 400, "mutability")
    envelope = (
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:ns="http://service.ws.um.carbon.wso2.org"><soapenv:Body><ns:addUser>'
        '<ns:userName>nobody</ns:userName><ns:credential>Secret-pass-1</ns:credential>'
        '</ns:addUser></soapenv:Body></soapenv:Envelope>')
    resp = await gw.post("/services/RemoteUserStoreManagerServiceV2", data=envelope,
                         headers={**ADMIN, "Content-Type": "text/xml"})
    text = await resp.text()
    assert resp.status == 500 and "read-only" in text and "soapenv:Client" in text
    status, body, _ = await scim(gw, "GET", '/Users?filter=userName eq "nobody"')
    assert body["totalResults"] == 0


async def test_ids_survive_a_restart(aiohttp_client, store_config, admin_env):
    cfg = test_config({"PRIMARY": await store_config()})
    first = await aiohttp_client(create_app(cfg))
    made = await create(first, "/Users", alice())
    await first.close()
    second = await aiohttp_client(create_app(cfg))
    status, body, _ = await scim(second, "GET", f"/Users/{made['id']}")
    assert status == 200 and body["userName"] == "alice"
