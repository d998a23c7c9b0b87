"""User store domains over SCIM: ``SECONDARY/alice`` lives in SECONDARY, ``alice`` in PRIMARY."""

from __future__ import annotations

from conftest import ADMIN_USER, assert_scim_error, scim

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


async def create(client, path: str, body: dict) -> dict:
    status, created, _ = await scim(client, "POST", path, body)
    assert status == 201, created
    return created


async def list_all(client, query: str = "", endpoint: str = "/Users") -> dict:
    sep = "&" if query else ""
    status, body, _ = await scim(client, "GET", f"{endpoint}?{query}{sep}count=1000")
    assert status == 200, body
    return body


def names(body: dict, key: str = "userName") -> list[str]:
    return sorted(r[key] for r in body["Resources"])


async def test_qualified_user_name_creates_in_that_domain(multi_gateway):
    resp = await multi_gateway.get("/health")
    assert resp.status == 200
    assert (await resp.json())["stores"] == {"PRIMARY": "up", "SECONDARY": "up"}
    status, body, resp = await scim(multi_gateway, "POST", "/Users",
                                    {"userName": "SECONDARY/alice", "title": "second"})
    assert status == 201, body
    assert body["userName"] == "SECONDARY/alice"
    assert resp.headers["Location"].endswith(f"/Users/{body['id']}")
    status, got, _ = await scim(multi_gateway, "GET", f"/Users/{body['id']}")
    assert status == 200
    assert got["userName"] == "SECONDARY/alice"
    assert got["title"] == "second"
    only_secondary = await list_all(multi_gateway, "domain=SECONDARY")
    assert names(only_secondary) == ["SECONDARY/alice"]
    assert ADMIN_USER[0] not in names(only_secondary)
    primary = await list_all(multi_gateway, "domain=PRIMARY")
    assert names(primary) == [ADMIN_USER[0]]
    # the domain is case-insensitive and always rendered in its configured spelling
    lower = await create(multi_gateway, "/Users", {"userName": "secondary/bob"})
    assert lower["userName"] == "SECONDARY/bob"
    # an explicit PRIMARY prefix is PRIMARY, and rendered without a prefix
    explicit = await create(multi_gateway, "/Users", {"userName": "PRIMARY/carol"})
    assert explicit["userName"] == "carol"
    assert names(await list_all(multi_gateway, "domain=PRIMARY")) == sorted(
        [ADMIN_USER[0], "carol"])


async def test_same_name_in_two_domains_coexists(multi_gateway):
    primary = await create(multi_gateway, "/Users", {"userName": "alice", "title": "one"})
    secondary = await create(multi_gateway, "/Users",
                             {"userName": "SECONDARY/alice", "title": "two"})
    assert primary["id"] != secondary["id"]
    assert primary["userName"] == "alice"
    assert secondary["userName"] == "SECONDARY/alice"
    for user, title in ((primary, "one"), (secondary, "two")):
        status, got, _ = await scim(multi_gateway, "GET", f"/Users/{user['id']}")
        assert status == 200
        assert got["userName"] == user["userName"] and got["title"] == title
    # but each domain is unique in itself, case-insensitively
    for dup in ("ALICE", "SECONDARY/Alice", "secondary/alice"):
        status, body, _ = await scim(multi_gateway, "POST", "/Users", {"userName": dup})
        assert_scim_error(status, body, 409, "uniqueness")
    assert names(await list_all(multi_gateway)) == sorted(
        [ADMIN_USER[0], "alice", "SECONDARY/alice"])


async def test_unknown_domain_is_400_and_stores_nothing(multi_gateway):
    for bad in ("NOPE/x", "INTERNAL/x", "SECONDARY/", "/x"):
        status, body, _ = await scim(multi_gateway, "POST", "/Users", {"userName": bad})
        assert_scim_error(status, body, 400, "invalidValue")
        if bad == "INTERNAL/x":  # a WSO2 hybrid role name: valid for groups (see below)
            continue
        status, body, _ = await scim(multi_gateway, "POST", "/Groups", {"displayName": bad})
        assert_scim_error(status, body, 400, "invalidValue")
    assert names(await list_all(multi_gateway)) == [ADMIN_USER[0]]
    assert names(await list_all(multi_gateway, endpoint="/Groups"), "displayName") == ["admin"]
    status, body, _ = await scim(multi_gateway, "GET", "/Users?domain=NOPE")
    assert_scim_error(status, body, 400, "invalidValue")


async def test_list_spans_both_stores_with_paging_across_the_boundary(multi_gateway):
    primary = [ADMIN_USER[0]]
    secondary = []
    for i in range(3):
        primary.append((await create(multi_gateway, "/Users", {"userName": f"p{i}"}))["userName"])
        secondary.append((await create(multi_gateway, "/Users",
                                       {"userName": f"SECONDARY/s{i}"}))["userName"])
    everyone = sorted(primary + secondary)

    whole = await list_all(multi_gateway)
    assert whole["totalResults"] == 7
    assert names(whole) == everyone

    seen = []
    for start in (1, 3, 5, 7):
        status, page, _ = await scim(multi_gateway, "GET", f"/Users?startIndex={start}&count=2")
        assert status == 200, page
        assert page["totalResults"] == 7
        assert page["startIndex"] == start
        assert page["itemsPerPage"] == len(page["Resources"])
        assert len(page["Resources"]) == (2 if start < 7 else 1)
        seen += [u["userName"] for u in page["Resources"]]
    assert sorted(seen) == everyone
    assert len(set(seen)) == 7
    # PRIMARY first, then SECONDARY: the page starting at 4 straddles the two stores
    assert set(seen[:4]) == set(primary) and set(seen[4:]) == set(secondary)
    status, page, _ = await scim(multi_gateway, "GET", "/Users?startIndex=4&count=2")
    assert [u["userName"] for u in page["Resources"]] == seen[3:5]
    assert page["Resources"][0]["userName"] in primary
    assert page["Resources"][1]["userName"] in secondary
    # past the end, and a count of 0
    status, page, _ = await scim(multi_gateway, "GET", "/Users?startIndex=8&count=2")
    assert status == 200 and page["totalResults"] == 7 and page["Resources"] == []
    status, page, _ = await scim(multi_gateway, "GET", "/Users?count=0")
    assert status == 200 and page["totalResults"] == 7 and page["Resources"] == []

    # sorted across stores: pages still partition the whole
    seen = []
    for start in (1, 3, 5, 7):
        status, page, _ = await scim(
            multi_gateway, "GET", f"/Users?sortBy=userName&startIndex={start}&count=2")
        assert status == 200, page
        assert page["totalResults"] == 7
        seen += [u["userName"] for u in page["Resources"]]
    assert sorted(seen) == everyone

    # the domain parameter restricts a list (and its paging)
    only = await list_all(multi_gateway, "domain=SECONDARY")
    assert only["totalResults"] == 3
    assert names(only) == sorted(secondary)
    status, page, _ = await scim(multi_gateway, "GET", "/Users?domain=secondary&startIndex=3")
    assert status == 200 and page["totalResults"] == 3
    assert [u["userName"] for u in page["Resources"]] == [
        u["userName"] for u in only["Resources"]][2:]
    only = await list_all(multi_gateway, "domain=PRIMARY")
    assert only["totalResults"] == 4
    assert names(only) == sorted(primary)
    status, body, _ = await scim(multi_gateway, "POST", "/Users/.search",
                                 {"domain": "SECONDARY", "filter": 'userName sw "s"'})
    assert status == 200, body
    assert names(body) == sorted(secondary)


async def test_filter_on_a_qualified_user_name(multi_gateway):
    primary = await create(multi_gateway, "/Users", {"userName": "alice"})
    secondary = await create(multi_gateway, "/Users", {"userName": "SECONDARY/alice"})
    await create(multi_gateway, "/Users", {"userName": "SECONDARY/alfred"})
    body = await list_all(multi_gateway, 'filter=userName eq "SECONDARY/alice"')
    assert [u["id"] for u in body["Resources"]] == [secondary["id"]]
    assert body["totalResults"] == 1
    body = await list_all(multi_gateway, 'filter=userName eq "secondary/ALICE"')
    assert [u["id"] for u in body["Resources"]] == [secondary["id"]]
    body = await list_all(multi_gateway, 'filter=userName eq "PRIMARY/alice"')
    assert [u["id"] for u in body["Resources"]] == [primary["id"]]
    body = await list_all(multi_gateway, 'filter=userName sw "SECONDARY/al"')
    assert names(body) == ["SECONDARY/alfred", "SECONDARY/alice"]
    # combined with another condition, and with conditions that cannot both hold
    body = await list_all(multi_gateway,
                          'filter=userName eq "SECONDARY/alice" and id eq "'
                          f'{secondary["id"]}"')
    assert body["totalResults"] == 1
    body = await list_all(multi_gateway,
                          'filter=userName eq "SECONDARY/alice" and userName eq "PRIMARY/alice"')
    assert body["totalResults"] == 0 and body["Resources"] == []
    status, body, _ = await scim(multi_gateway, "POST", "/Users/.search",
                                 {"filter": 'userName eq "SECONDARY/alice"'})
    assert status == 200 and [u["id"] for u in body["Resources"]] == [secondary["id"]]


async def test_unqualified_user_name_filter_matches_only_what_it_names(multi_gateway):
    # a client looking up "alice" (Entra ID and Okta match users this way) must get the
    # PRIMARY alice only: "SECONDARY/alice" is not equal to "alice"
    primary = await create(multi_gateway, "/Users", {"userName": "alice"})
    await create(multi_gateway, "/Users", {"userName": "SECONDARY/alice"})
    body = await list_all(multi_gateway, 'filter=userName eq "alice"')
    assert [u["id"] for u in body["Resources"]] == [primary["id"]], body["Resources"]
    assert body["totalResults"] == 1


async def test_qualified_user_names_inside_or_filters(multi_gateway):
    bob = await create(multi_gateway, "/Users", {"userName": "bob"})
    alice = await create(multi_gateway, "/Users", {"userName": "SECONDARY/alice"})
    body = await list_all(multi_gateway,
                          'filter=userName eq "SECONDARY/alice" or userName eq "bob"')
    assert sorted(u["id"] for u in body["Resources"]) == sorted([bob["id"], alice["id"]])


async def test_put_and_patch_cannot_move_a_user_to_another_domain(multi_gateway):
    primary = await create(multi_gateway, "/Users", {"userName": "mover", "title": "p"})
    secondary = await create(multi_gateway, "/Users",
                             {"userName": "SECONDARY/stayer", "title": "s"})
    for user, target in ((primary, "SECONDARY/mover"), (secondary, "stayer"),
                         (secondary, "PRIMARY/stayer")):
        status, body, _ = await scim(multi_gateway, "PUT", f"/Users/{user['id']}",
                                     {"userName": target, "title": "moved"})
        assert_scim_error(status, body, 400, "mutability")
        status, body, _ = await scim(multi_gateway, "PATCH", f"/Users/{user['id']}", {
            "schemas": [PATCH_OP],
            "Operations": [{"op": "replace", "path": "userName", "value": target}]})
        assert_scim_error(status, body, 400, "mutability")
    for user in (primary, secondary):
        status, got, resp = await scim(multi_gateway, "GET", f"/Users/{user['id']}")
        assert got["userName"] == user["userName"] and got["title"] == user["title"]
        assert resp.headers["ETag"] == 'W/"1"'
    assert names(await list_all(multi_gateway, "domain=SECONDARY")) == ["SECONDARY/stayer"]
    # renaming inside the domain is fine
    status, body, _ = await scim(multi_gateway, "PUT", f"/Users/{secondary['id']}",
                                 {"userName": "secondary/renamed"})
    assert status == 200, body
    assert body["userName"] == "SECONDARY/renamed"
    status, body, _ = await scim(multi_gateway, "PATCH", f"/Users/{secondary['id']}", {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": "title", "value": "patched"}]})
    assert status == 200, body
    assert body["userName"] == "SECONDARY/renamed" and body["title"] == "patched"


async def test_delete_a_secondary_user(multi_gateway):
    user = await create(multi_gateway, "/Users", {"userName": "SECONDARY/gone"})
    twin = await create(multi_gateway, "/Users", {"userName": "gone"})
    status, _, _ = await scim(multi_gateway, "DELETE", f"/Users/{user['id']}")
    assert status == 204
    status, body, _ = await scim(multi_gateway, "GET", f"/Users/{user['id']}")
    assert_scim_error(status, body, 404)
    status, got, _ = await scim(multi_gateway, "GET", f"/Users/{twin['id']}")
    assert status == 200 and got["userName"] == "gone"
    assert (await list_all(multi_gateway, "domain=SECONDARY"))["totalResults"] == 0


async def test_groups_in_the_secondary_domain(multi_gateway):
    alice = await create(multi_gateway, "/Users", {"userName": "SECONDARY/alice"})
    bob = await create(multi_gateway, "/Users", {"userName": "bob"})
    eng2 = await create(multi_gateway, "/Groups",
                        {"displayName": "SECONDARY/eng", "members": [{"value": alice["id"]}]})
    eng1 = await create(multi_gateway, "/Groups",
                        {"displayName": "eng", "members": [{"value": bob["id"]}]})
    assert eng2["displayName"] == "SECONDARY/eng"
    assert eng1["displayName"] == "eng"
    assert [(m["value"], m.get("display")) for m in eng2["members"]] == [
        (alice["id"], "SECONDARY/alice")]

    status, got, _ = await scim(multi_gateway, "GET", f"/Groups/{eng2['id']}")
    assert status == 200 and got["displayName"] == "SECONDARY/eng"
    status, user, _ = await scim(multi_gateway, "GET", f"/Users/{alice['id']}")
    assert [(g["value"], g["display"]) for g in user["groups"]] == [(eng2["id"],
                                                                     "SECONDARY/eng")]

    status, body, _ = await scim(multi_gateway, "POST", "/Groups", {"displayName": "secondary/ENG"})
    assert_scim_error(status, body, 409, "uniqueness")
    status, body, _ = await scim(multi_gateway, "POST", "/Groups", {"displayName": "NOPE/eng"})
    assert_scim_error(status, body, 400, "invalidValue")
    # a group holds members of its own store only
    status, body, _ = await scim(multi_gateway, "POST", "/Groups",
                                 {"displayName": "SECONDARY/mixed", "members": [
                                     {"value": alice["id"]}, {"value": bob["id"]}]})
    assert_scim_error(status, body, 400, "invalidValue")

    groups = await list_all(multi_gateway, endpoint="/Groups")
    assert names(groups, "displayName") == sorted(["admin", "eng", "SECONDARY/eng"])
    assert groups["totalResults"] == 3
    only = await list_all(multi_gateway, "domain=SECONDARY", endpoint="/Groups")
    assert names(only, "displayName") == ["SECONDARY/eng"]
    found = await list_all(multi_gateway, 'filter=displayName eq "SECONDARY/eng"',
                           endpoint="/Groups")
    assert [g["id"] for g in found["Resources"]] == [eng2["id"]]

    # no moving between domains
    status, body, _ = await scim(multi_gateway, "PUT", f"/Groups/{eng2['id']}",
                                 {"displayName": "eng2"})
    assert_scim_error(status, body, 400, "mutability")
    status, body, _ = await scim(multi_gateway, "PATCH", f"/Groups/{eng1['id']}", {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": "displayName", "value": "SECONDARY/eng1"}]})
    assert_scim_error(status, body, 400, "mutability")
    status, got, resp = await scim(multi_gateway, "GET", f"/Groups/{eng2['id']}")
    assert got["displayName"] == "SECONDARY/eng"
    assert [m["value"] for m in got["members"]] == [alice["id"]]
    assert resp.headers["ETag"] == 'W/"1"'
    # renaming inside the domain is fine
    status, body, _ = await scim(multi_gateway, "PUT", f"/Groups/{eng2['id']}",
                                 {"displayName": "SECONDARY/engineering",
                                  "members": [{"value": alice["id"]}]})
    assert status == 200, body
    assert body["displayName"] == "SECONDARY/engineering"
    status, _, _ = await scim(multi_gateway, "DELETE", f"/Groups/{eng2['id']}")
    assert status == 204
    status, user, _ = await scim(multi_gateway, "GET", f"/Users/{alice['id']}")
    assert not user.get("groups")


async def test_hybrid_role_names_are_primary_groups_that_keep_their_prefix(multi_gateway):
    """WSO2's Internal/ and Application/ roles: groups of PRIMARY, named with the prefix,
    found by that name, and holding users of any store (tests/test_hybrid_roles.py); other
    PRIMARY groups hold PRIMARY users only."""
    user = await create(multi_gateway, "/Users", {"userName": "hy"})
    group = await create(multi_gateway, "/Groups", {"displayName": "Internal/auditors",
                                                    "members": [{"value": user["id"]}]})
    assert group["displayName"] == "Internal/auditors"
    status, body, _ = await scim(multi_gateway, "GET",
                                 '/Groups?filter=displayName eq "internal/AUDITORS"')
    assert status == 200 and [g["id"] for g in body["Resources"]] == [group["id"]]
    status, body, _ = await scim(multi_gateway, "GET",
                                 '/Groups?domain=PRIMARY&filter=displayName sw "Internal/"')
    assert [g["displayName"] for g in body["Resources"]] == ["Internal/auditors"]
    other = await create(multi_gateway, "/Users", {"userName": "SECONDARY/hy2"})
    status, body, _ = await scim(multi_gateway, "POST", "/Groups", {
        "displayName": "Application/app1", "members": [{"value": other["id"]}]})
    assert status == 201, body
    assert body["members"][0]["display"] == "SECONDARY/hy2"
    status, body, _ = await scim(multi_gateway, "POST", "/Groups", {
        "displayName": "plain", "members": [{"value": other["id"]}]})
    assert status == 400, body
