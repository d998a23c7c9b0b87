"""SCIM 2.0 list responses (RFC 7644 §3.4.2): paging, sorting, attribute projection.

The bootstrap administrator (``root``) is in every store and counts in every list.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from conftest import ADMIN_USER, assert_scim_error, scim

from gateway.app import create_app

LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ROOT = ADMIN_USER[0]


async def create(client, path: str, body: dict) -> dict:
    status, out, _ = await scim(client, "POST", path, body)
    assert status == 201, (body, out)
    return out


async def seed_users(client, n: int) -> list[dict]:
    return [await create(client, "/Users", {"userName": f"user{i:02d}"}) for i in range(1, n + 1)]


async def listing(client, query: str = "", resource: str = "/Users") -> dict:
    status, body, _ = await scim(client, "GET", f"{resource}?{query}" if query else resource)
    assert status == 200, (query, body)
    assert body["schemas"] == [LIST]
    return body


def names(body: dict, key: str = "userName") -> list[str]:
    return [r[key] for r in body.get("Resources", [])]


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def q(text: str) -> str:
    return quote(text, safe="")


# --- the ListResponse ------------------------------------------------------------------------

async def test_list_response_shape(gateway):
    await seed_users(gateway, 3)
    for body in (await listing(gateway),
                 (await scim(gateway, "POST", "/Users/.search", {"schemas": [SEARCH]}))[1]):
        assert body["schemas"] == [LIST]
        assert is_int(body["totalResults"]) and body["totalResults"] == 4
        assert is_int(body["startIndex"]) and body["startIndex"] == 1
        assert is_int(body["itemsPerPage"]) and body["itemsPerPage"] == 4
        assert isinstance(body["Resources"], list) and len(body["Resources"]) == 4
        assert sorted(names(body)) == [ROOT, "user01", "user02", "user03"]
        for res in body["Resources"]:
            assert res["schemas"][0] == CORE_USER
            assert res["meta"]["resourceType"] == "User"
            assert "password" not in res


async def test_okta_first_page(gateway):
    await seed_users(gateway, 3)
    body = await listing(gateway, "startIndex=1&count=100")
    assert body["totalResults"] == 4 and body["startIndex"] == 1
    assert body["itemsPerPage"] == 4 and len(body["Resources"]) == 4


async def test_start_index_and_count_select_a_window(gateway):
    await seed_users(gateway, 7)
    everything = names(await listing(gateway))
    assert len(everything) == 8
    body = await listing(gateway, "startIndex=3&count=2")
    assert body["totalResults"] == 8 and body["startIndex"] == 3 and body["itemsPerPage"] == 2
    assert names(body) == everything[2:4]
    body = await listing(gateway, "startIndex=7&count=5")
    assert body["itemsPerPage"] == 2 and names(body) == everything[6:]
    status, body, _ = await scim(gateway, "POST", "/Users/.search",
                                 {"schemas": [SEARCH], "startIndex": 3, "count": 2})
    assert status == 200 and names(body) == everything[2:4] and body["startIndex"] == 3


async def test_start_index_beyond_the_end(gateway):
    await seed_users(gateway, 2)
    body = await listing(gateway, "startIndex=50&count=10")
    assert body["totalResults"] == 3
    assert body["Resources"] == []
    assert body["itemsPerPage"] == 0
    assert body["startIndex"] == 50


async def test_count_zero_returns_only_the_total(gateway):
    await seed_users(gateway, 2)
    for query in ("count=0", "count=-1", "count=-100&startIndex=2"):
        body = await listing(gateway, query)
        assert body["totalResults"] == 3, query
        assert body.get("Resources", []) == [], query
        assert body["itemsPerPage"] == 0, query
    status, body, _ = await scim(gateway, "POST", "/Users/.search", {"count": 0})
    assert status == 200 and body["totalResults"] == 3 and body.get("Resources", []) == []
    body = await listing(gateway, "count=0&filter=" + q('userName sw "user"'))
    assert body["totalResults"] == 2 and body.get("Resources", []) == []


async def test_start_index_below_one_is_one(gateway):
    await seed_users(gateway, 2)
    first = names(await listing(gateway, "startIndex=1&count=2"))
    for start in ("0", "-5"):
        body = await listing(gateway, f"startIndex={start}&count=2")
        assert body["startIndex"] == 1, start
        assert names(body) == first, start
        assert body["totalResults"] == 3


async def test_non_integer_paging_parameters_are_refused(gateway):
    for query in ("count=ten", "startIndex=first", "count=1.5"):
        status, body, _ = await scim(gateway, "GET", f"/Users?{query}")
        assert_scim_error(status, body, 400)


async def test_count_is_capped_by_max_results(aiohttp_client, make_config, admin_env):
    cfg = await make_config(max_results=3, default_count=2)
    client = await aiohttp_client(create_app(cfg))
    await seed_users(client, 5)
    body = await listing(client, "count=1000")
    assert body["totalResults"] == 6
    assert body["itemsPerPage"] == 3 and len(body["Resources"]) == 3
    # without a count the configured default applies
    body = await listing(client)
    assert body["itemsPerPage"] == 2 and body["totalResults"] == 6
    status, body, _ = await scim(client, "POST", "/Users/.search", {"count": 50})
    assert status == 200 and len(body["Resources"]) == 3
    # the service provider configuration says so
    status, spc, _ = await scim(client, "GET", "/ServiceProviderConfig")
    assert status == 200 and spc["filter"]["maxResults"] == 3


async def test_paging_in_pages_of_two_gives_each_user_once(gateway):
    made = await seed_users(gateway, 9)
    expected = {u["id"] for u in made}
    seen: list[str] = []
    start, total = 1, None
    for _ in range(20):  # bounded: 10 users need 5 pages
        body = await listing(gateway, f"startIndex={start}&count=2")
        total = body["totalResults"] if total is None else total
        assert body["totalResults"] == total == 10
        page = [r["id"] for r in body["Resources"]]
        assert body["itemsPerPage"] == len(page) <= 2
        if not page:
            break
        seen += page
        start += len(page)
    assert len(seen) == len(set(seen)) == 10
    assert expected < set(seen)


async def test_a_miss_is_an_empty_list(gateway):
    await seed_users(gateway, 1)
    for resource in ("/Users", "/Groups"):
        key = "userName" if resource == "/Users" else "displayName"
        body = await listing(gateway, "filter=" + q(key + ' eq "nobody"'), resource)
        assert body["totalResults"] == 0
        assert body["Resources"] == []
        assert body["itemsPerPage"] == 0
        assert body["startIndex"] == 1
        status, body, _ = await scim(gateway, "POST", f"{resource}/.search",
                                     {"filter": f'{key} eq "nobody"'})
        assert status == 200 and body["totalResults"] == 0 and body["Resources"] == []


async def test_group_paging(gateway):
    for i in range(5):
        await create(gateway, "/Groups", {"displayName": f"group{i}"})
    seen = []
    for start in (1, 3, 5, 7):
        body = await listing(gateway, f"startIndex={start}&count=2", "/Groups")
        assert body["totalResults"] == 6  # + admin
        seen += names(body, "displayName")
    assert sorted(seen) == sorted(["admin"] + [f"group{i}" for i in range(5)])


# --- sorting ----------------------------------------------------------------------------

SORT_PEOPLE = [  # creation order
    ("delta", "Zulu"), ("Alpha", "Young"), ("charlie", "xavier"), ("bravo", "Whiskey"),
    ("echo", "victor"),
]


async def seed_people(client) -> list[dict]:
    return [await create(client, "/Users", {"userName": u, "name": {"familyName": f}})
            for u, f in SORT_PEOPLE]


async def test_sort_by_user_name(gateway):
    await seed_people(gateway)
    ascending = ["Alpha", "bravo", "charlie", "delta", "echo", ROOT]
    assert names(await listing(gateway, "sortBy=userName")) == ascending
    assert names(await listing(gateway, "sortBy=userName&sortOrder=ascending")) == ascending
    assert names(await listing(gateway, "sortBy=username&sortOrder=descending")) == \
        ascending[::-1]
    # a page of a sorted list is that window of the sorted list
    body = await listing(gateway, "sortBy=userName&sortOrder=descending&startIndex=2&count=3")
    assert names(body) == ascending[::-1][1:4] and body["totalResults"] == 6
    status, body, _ = await scim(gateway, "POST", "/Users/.search",
                                 {"sortBy": "userName", "sortOrder": "descending"})
    assert status == 200 and names(body) == ascending[::-1]


async def test_wso2_misspelt_sort_order(gateway):
    await seed_people(gateway)
    ascending = ["Alpha", "bravo", "charlie", "delta", "echo", ROOT]
    assert names(await listing(gateway, "sortBy=userName&sortOder=descending")) == \
        ascending[::-1]
    status, body, _ = await scim(gateway, "POST", "/Users/.search",
                                 {"sortBy": "userName", "sortOder": "descending"})
    assert status == 200 and names(body) == ascending[::-1]


async def test_sort_by_family_name(gateway):
    await seed_people(gateway)
    flt = q("name.familyName pr")
    by_family = ["echo", "bravo", "charlie", "Alpha", "delta"]  # victor Whiskey xavier Young Zulu
    assert names(await listing(gateway, f"filter={flt}&sortBy=name.familyName")) == by_family
    assert names(await listing(
        gateway, f"filter={flt}&sortBy=name.familyName&sortOrder=descending")) == by_family[::-1]


async def test_sort_puts_missing_values_last_ascending_first_descending(gateway):
    """RFC 7644 §3.4.2.3: without a value, a resource is last ascending and first descending."""
    await seed_people(gateway)  # root has no name
    by_family = ["echo", "bravo", "charlie", "Alpha", "delta"]
    assert names(await listing(gateway, "sortBy=name.familyName")) == by_family + [ROOT]
    assert names(await listing(gateway, "sortBy=name.familyName&sortOrder=descending")) == \
        [ROOT] + by_family[::-1]


async def test_sort_by_meta_created(gateway):
    await seed_people(gateway)
    created = [ROOT] + [u for u, _ in SORT_PEOPLE]
    assert names(await listing(gateway, "sortBy=meta.created")) == created
    assert names(await listing(gateway, "sortBy=meta.created&sortOrder=descending")) == \
        created[::-1]


async def test_sort_by_multi_valued_uses_primary_or_first_value(gateway):
    """RFC 7644 §3.4.2.3: a multi-valued attribute sorts by its primary value, else its first."""
    await create(gateway, "/Users", {"userName": "p1", "emails": [
        {"value": "aa@example.com"}, {"value": "zz@example.com", "primary": True}]})
    await create(gateway, "/Users", {"userName": "p2", "emails": [{"value": "mm@example.com"}]})
    await create(gateway, "/Users", {"userName": "p3", "emails": [
        {"value": "nn@example.com"}, {"value": "bb@example.com"}]})
    flt = q("emails pr")
    assert names(await listing(gateway, f"filter={flt}&sortBy=emails.value")) == \
        ["p2", "p3", "p1"]  # mm, nn, zz
    assert names(await listing(gateway, f"filter={flt}&sortBy=emails")) == ["p2", "p3", "p1"]


async def test_ties_are_paged_in_a_stable_order(gateway):
    made = [await create(gateway, "/Users", {"userName": f"tie{i}", "title": "Same",
                                             "name": {"familyName": "Equal"}})
            for i in range(7)]
    expected = {u["id"] for u in made}
    same = "filter=" + q('title eq "Same"')
    for sort in ("title", "name.familyName", "title&sortOrder=descending"):
        first = [r["id"] for r in (await listing(
            gateway, same + f"&sortBy={sort}"))["Resources"]]
        seen = []
        for start in range(1, 9, 2):
            body = await listing(gateway,
                                 same + f"&sortBy={sort}&startIndex={start}&count=2")
            assert body["totalResults"] == 7
            seen += [r["id"] for r in body["Resources"]]
        assert len(seen) == len(set(seen)) == 7, sort
        assert set(seen) == expected, sort
        assert seen == first, f"{sort}: pages disagree with the whole list"


async def test_invalid_sort_parameters(gateway):
    for query in ("sortBy=userName&sortOrder=up", "sortBy=userName&sortOrder=",
                  "sortBy=userName&sortOder=sideways", "sortBy=nosuchAttribute",
                  "sortBy=name.nosuch", "sortBy=" + q('emails[type eq "work"]')):
        status, body, _ = await scim(gateway, "GET", f"/Users?{query}")
        assert_scim_error(status, body, 400)
    status, body, _ = await scim(gateway, "POST", "/Users/.search",
                                 {"sortBy": "userName", "sortOrder": "up"})
    assert_scim_error(status, body, 400)


async def test_group_sort(gateway):
    for name in ("beta", "Gamma", "alpha"):
        await create(gateway, "/Groups", {"displayName": name})
    body = await listing(gateway, "sortBy=displayName", "/Groups")
    assert names(body, "displayName") == ["admin", "alpha", "beta", "Gamma"]
    body = await listing(gateway, "sortBy=displayName&sortOrder=descending", "/Groups")
    assert names(body, "displayName") == ["Gamma", "beta", "alpha", "admin"]


# --- attributes / excludedAttributes ---------------------------------------------------------

FULL = {
    "userName": "bjensen", "externalId": "ext-1", "password": "pw-secret-1",
    "name": {"givenName": "Barbara", "familyName": "Jensen", "formatted": "Barbara Jensen"},
    "displayName": "Babs", "title": "Tour Guide", "active": True,
    "emails": [{"value": "bjensen@example.com", "type": "work", "primary": True},
               {"value": "babs@home.org", "type": "home"}],
    "phoneNumbers": [{"value": "555-1234", "type": "work"}],
    ENTERPRISE: {"employeeNumber": "701", "department": "Tours"},
}


@pytest.fixture
async def seeded(gateway):
    user = await create(gateway, "/Users", FULL)
    group = await create(gateway, "/Groups", {"displayName": "Tours",
                                              "members": [{"value": user["id"]}]})
    return gateway, user, group


async def the_user(client, query: str) -> tuple[dict, dict]:
    """The seeded user as the list (filtered to it) and GET by id render it."""
    body = await listing(client, "filter=" + q('userName eq "bjensen"') + "&" + query)
    assert body["totalResults"] == 1
    listed = body["Resources"][0]
    status, single, _ = await scim(client, "GET", f"/Users/{listed['id']}?{query}")
    assert status == 200, single
    return listed, single


def keys(resource: dict) -> set[str]:
    return set(resource) - {"schemas"}


async def test_attributes_user_name_only(seeded):
    client, user, _ = seeded
    for res in await the_user(client, "attributes=userName"):
        assert keys(res) == {"id", "userName"}, res
        assert res["id"] == user["id"] and res["userName"] == "bjensen"
    for res in await the_user(client, "attributes=USERNAME"):
        assert keys(res) == {"id", "userName"}, res


async def test_attributes_sub_attributes(seeded):
    client, _, _ = seeded
    for res in await the_user(client, "attributes=emails.value"):
        assert keys(res) == {"id", "emails"}, res
        assert res["emails"] == [{"value": "bjensen@example.com"}, {"value": "babs@home.org"}]
    for res in await the_user(client, "attributes=name.givenName"):
        assert keys(res) == {"id", "name"}, res
        assert res["name"] == {"givenName": "Barbara"}
    for res in await the_user(client, "attributes=userName,name.familyName,emails.type"):
        assert keys(res) == {"id", "userName", "name", "emails"}, res
        assert res["name"] == {"familyName": "Jensen"}
        assert res["emails"] == [{"type": "work"}, {"type": "home"}]


async def test_attributes_extension(seeded):
    client, _, _ = seeded
    for res in await the_user(client, f"attributes={ENTERPRISE}:employeeNumber"):
        assert keys(res) == {"id", ENTERPRISE}, res
        assert res[ENTERPRISE] == {"employeeNumber": "701"}
    for res in await the_user(client, f"attributes={ENTERPRISE}"):
        assert keys(res) == {"id", ENTERPRISE}, res
        assert res[ENTERPRISE] == {"employeeNumber": "701", "department": "Tours"}
    for res in await the_user(client, "attributes=employeeNumber,title"):
        assert keys(res) == {"id", "title", ENTERPRISE}, res
        assert res[ENTERPRISE] == {"employeeNumber": "701"}


async def test_attributes_groups(seeded):
    client, _, group = seeded
    for res in await the_user(client, "attributes=groups.display"):
        assert keys(res) == {"id", "groups"}, res
        assert res["groups"] == [{"display": "Tours"}]
    for res in await the_user(client, "attributes=groups"):
        assert [g["value"] for g in res["groups"]] == [group["id"]]


async def test_excluded_attributes(seeded):
    client, user, _ = seeded
    for res in await the_user(client, "excludedAttributes=emails,groups"):
        assert "emails" not in res and "groups" not in res, res
        assert res["userName"] == "bjensen" and res["id"] == user["id"]
        assert res["name"]["givenName"] == "Barbara"
        assert res[ENTERPRISE]["employeeNumber"] == "701"
        assert res["phoneNumbers"] and res["meta"]
    for res in await the_user(client, f"excludedAttributes=name.givenName,{ENTERPRISE}:department"):
        assert res["name"] == {"familyName": "Jensen", "formatted": "Barbara Jensen"}
        assert res[ENTERPRISE] == {"employeeNumber": "701"}
    for res in await the_user(client, "excludedAttributes=emails.type"):
        assert res["emails"] == [{"value": "bjensen@example.com", "primary": True},
                                 {"value": "babs@home.org"}]


async def test_id_is_never_excluded(seeded):
    client, user, _ = seeded
    for query in ("excludedAttributes=id", "excludedAttributes=id,userName",
                  "excludedAttributes=ID"):
        for res in await the_user(client, query):
            assert res["id"] == user["id"], (query, res)
    for res in await the_user(client, "excludedAttributes=id,userName"):
        assert "userName" not in res


async def test_password_is_never_returned(seeded):
    client, _, _ = seeded
    for query in ("attributes=password", "attributes=password,userName", ""):
        for res in await the_user(client, query):
            assert "password" not in res, (query, res)


async def test_search_body_attribute_arrays(seeded):
    client, user, _ = seeded
    status, body, _ = await scim(client, "POST", "/Users/.search", {
        "schemas": [SEARCH], "filter": 'userName eq "bjensen"',
        "attributes": ["userName", "name.givenName"]})
    assert status == 200 and body["totalResults"] == 1, body
    res = body["Resources"][0]
    assert keys(res) == {"id", "userName", "name"}
    assert res["name"] == {"givenName": "Barbara"}
    status, body, _ = await scim(client, "POST", "/Users/.search", {
        "schemas": [SEARCH], "filter": 'userName eq "bjensen"',
        "excludedAttributes": ["emails", "groups", "id"]})
    assert status == 200
    res = body["Resources"][0]
    assert "emails" not in res and "groups" not in res and res["id"] == user["id"]


async def test_group_excluded_members(seeded):
    client, _, group = seeded
    body = await listing(client, "excludedAttributes=members", "/Groups")
    assert body["totalResults"] == 2
    for res in body["Resources"]:
        assert "members" not in res, res
        assert res["displayName"] and res["id"]
    status, res, _ = await scim(client, "GET", f"/Groups/{group['id']}?excludedAttributes=members")
    assert status == 200 and "members" not in res and res["displayName"] == "Tours"
    status, res, _ = await scim(client, "GET", f"/Groups/{group['id']}?attributes=displayName")
    assert status == 200 and keys(res) == {"id", "displayName"}
    status, res, _ = await scim(client, "GET", f"/Groups/{group['id']}")
    assert status == 200 and len(res["members"]) == 1
    status, body, _ = await scim(client, "POST", "/Groups/.search",
                                 {"excludedAttributes": ["members"]})
    assert status == 200 and all("members" not in r for r in body["Resources"])
