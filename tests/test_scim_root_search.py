"""POST /scim2/.search at the service root (RFC 7644 §3.4.3): every resource type."""

from __future__ import annotations

from conftest import READER, assert_scim_error, scim

SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


async def seed(gw) -> None:
    for name in ("ann", "bob", "cyd"):
        status, body, _ = await scim(gw, "POST", "/Users", {"userName": name,
                                                            "externalId": f"x-{name}"})
        assert status == 201, body
    for name in ("team-a", "team-b"):
        status, body, _ = await scim(gw, "POST", "/Groups", {"displayName": name,
                                                             "externalId": f"x-{name}"})
        assert status == 201, body


async def root(gw, body: dict, auth=None):
    kwargs = {} if auth is None else {"auth": auth}
    return await scim(gw, "POST", "/.search", {"schemas": [SEARCH], **body}, **kwargs)


async def test_root_search_spans_users_and_groups_with_paging(gateway):
    await seed(gateway)
    status, body, _ = await root(gateway, {"filter": 'externalId sw "x-"'})
    assert status == 200, body
    assert body["schemas"] == [LIST] and body["totalResults"] == 5
    kinds = [r["meta"]["resourceType"] for r in body["Resources"]]
    assert kinds == ["User"] * 3 + ["Group"] * 2
    # pages fit together across the types
    seen = []
    for start in (1, 3, 5):
        status, page, _ = await root(gateway, {"filter": 'externalId sw "x-"', "startIndex": start,
                                               "count": 2, "sortBy": "externalId"})
        assert status == 200 and page["totalResults"] == 5 and page["startIndex"] == start
        seen += [r["externalId"] for r in page["Resources"]]
    assert seen == ["x-ann", "x-bob", "x-cyd", "x-team-a", "x-team-b"]


async def test_a_filter_of_one_type_finds_that_type(gateway):
    await seed(gateway)
    status, body, _ = await root(gateway, {"filter": 'userName eq "bob"'})
    assert status == 200, body
    assert [r["userName"] for r in body["Resources"]] == ["bob"]
    status, body, _ = await root(gateway, {"filter": 'displayName sw "team"',
                                           "attributes": ["displayName"]})
    assert status == 200, body
    assert {r["displayName"] for r in body["Resources"] if "displayName" in r} >= {
        "team-a", "team-b"}
    status, body, _ = await root(gateway, {"filter": 'noSuchAttribute eq "x"'})
    assert_scim_error(status, body, 400, "invalidFilter")
    status, body, _ = await root(gateway, {"attributes": ["noSuchAttribute"]})
    assert_scim_error(status, body, 400)


async def test_attributes_and_permissions(gateway):
    await seed(gateway)
    status, body, _ = await root(gateway, {"attributes": ["userName", "displayName"],
                                           "count": 10})
    assert status == 200, body
    for r in body["Resources"]:
        assert set(r) <= {"schemas", "id", "userName", "displayName", "meta"}, r
        assert r["schemas"] in ([CORE_USER], [CORE_GROUP])
    # the reader may list both; a body without the SearchRequest schema is refused
    status, body, _ = await root(gateway, {"count": 1}, auth=READER)
    assert status == 200 and body["totalResults"] >= 6, body
    status, body, _ = await scim(gateway, "POST", "/.search", {"schemas": ["urn:x"]})
    assert_scim_error(status, body, 400)
