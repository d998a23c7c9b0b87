"""Cursor paging (RFC 9865) of /Users and /Groups over HTTP, on every user store backend.

A walk follows ``nextCursor`` from an empty cursor until a page comes without one.
Each walk is checked page by page (ListResponse shape, no ``startIndex``, a
``nextCursor`` on every page but the last) and as a whole against an index-paged
list of the same query with a large ``count``: the same resources, each once, in
the same order. Resources created and deleted between two page fetches must not
make a walk skip or repeat any resource that existed throughout.
"""

from __future__ import annotations

import itertools
import re
from urllib.parse import urlencode

from conftest import ADMIN_USER, assert_scim_error, scim

from gateway.app import create_app

LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
ROOT = ADMIN_USER[0]
MAX_PAGES = 60  # every walk here ends well before this
UNRESERVED = re.compile(r"^[A-Za-z0-9._~-]+$")  # RFC 3986 §2.3, as RFC 9865 requires


# helpers --------------------------------------------------------------------------------
def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


async def create(client, path: str, body: dict) -> dict:
    status, out, _ = await scim(client, "POST", path, body)
    assert status == 201, (body, out)
    return out


async def delete(client, path: str, rid: str) -> None:
    status, body, _ = await scim(client, "DELETE", f"{path}/{rid}")
    assert status == 204, body


def check_page(body: dict, count: int | None) -> None:
    """One cursor page: RFC 9865 ListResponse, no index paging attributes."""
    assert body["schemas"] == [LIST], body
    assert is_int(body["totalResults"]), body
    assert is_int(body["itemsPerPage"]), body
    resources = body.get("Resources", [])
    assert body["itemsPerPage"] == len(resources), body
    if count is not None:
        assert len(resources) <= count, body
    assert "startIndex" not in body, "a cursor page has no startIndex"
    if "nextCursor" in body:
        cursor = body["nextCursor"]
        assert isinstance(cursor, str) and UNRESERVED.match(cursor), cursor


async def page(client, resource: str, params: dict, cursor: str, count: int | None,
               via: str = "GET") -> dict:
    if via == "GET":
        query = dict(params, cursor=cursor)
        if count is not None:
            query["count"] = count
        status, body, _ = await scim(client, "GET", f"{resource}?{urlencode(query)}")
    else:
        request = {"schemas": [SEARCH], **params, "cursor": cursor}
        if count is not None:
            request["count"] = count
        status, body, _ = await scim(client, "POST", f"{resource}/.search", request)
    assert status == 200, (resource, params, body)
    check_page(body, count)
    return body


async def walk(client, resource: str = "/Users", count: int | None = 3, via: str = "GET",
               between=None, **params) -> list[dict]:
    """Every page of a cursor walk; ``between(page_number)`` runs after each non-last page."""
    pages, cursor = [], ""
    for number in range(MAX_PAGES):
        body = await page(client, resource, params, cursor, count, via)
        pages.append(body)
        if "nextCursor" not in body:
            return pages
        # a page that says more follows is never empty (nextCursor is omitted only when
        # there are no more results: RFC 9865 §2)
        assert body["Resources"], body
        cursor = body["nextCursor"]
        if between is not None:
            await between(number)
    raise AssertionError(f"cursor paging of {resource} {params} did not end")


def ids(pages: list[dict]) -> list[str]:
    return [r["id"] for p in pages for r in p.get("Resources", [])]


def names(pages: list[dict], key: str = "userName") -> list[str]:
    return [r[key] for p in pages for r in p.get("Resources", [])]


async def index_list(client, resource: str = "/Users", **params) -> dict:
    """The whole result of a query in one index page (count well above the data)."""
    status, body, _ = await scim(client, "GET",
                                 f"{resource}?{urlencode(dict(params, count=1000))}")
    assert status == 200, body
    assert body["startIndex"] == 1 and "nextCursor" not in body, body
    assert body["itemsPerPage"] == body["totalResults"] == len(body["Resources"]), body
    return body


async def assert_walk_matches_index(client, resource: str = "/Users",
                                    counts=(1, 2, 3, 50), via: str = "GET", **params) -> list:
    """Cursor walks with several page sizes give exactly the index-paged list, in order."""
    whole = await index_list(client, resource, **params)
    expected = [r["id"] for r in whole["Resources"]]
    assert len(set(expected)) == len(expected)
    for count in counts:
        pages = await walk(client, resource, count, via, **params)
        got = ids(pages)
        assert got == expected, (params, count)
        assert all(p["totalResults"] == len(expected) for p in pages), (params, count)
        if expected:
            # pages are full until the last one
            assert [p["itemsPerPage"] for p in pages[:-1]] == [count] * (len(pages) - 1)
    return whole["Resources"]


# the walk -------------------------------------------------------------------------------
async def test_cursor_pages_shape_and_walk(gateway):
    made = [await create(gateway, "/Users", {"userName": f"user{i:02d}"}) for i in range(7)]
    pages = await walk(gateway, "/Users", 3)
    assert [p["itemsPerPage"] for p in pages] == [3, 3, 2]
    assert all(p["totalResults"] == 8 for p in pages)
    assert all("nextCursor" in p for p in pages[:-1]) and "nextCursor" not in pages[-1]
    assert len(set(p["nextCursor"] for p in pages[:-1])) == 2
    got = ids(pages)
    assert len(got) == len(set(got)) == 8
    assert set(got) == {u["id"] for u in made} | {r["id"] for r in (
        await index_list(gateway, filter=f'userName eq "{ROOT}"'))["Resources"]}
    whole = await index_list(gateway)
    assert got == [r["id"] for r in whole["Resources"]]
    # one page holding everything has no nextCursor; the page size may change mid-walk
    only = await walk(gateway, "/Users", 100)
    assert len(only) == 1 and ids(only) == got
    first = await page(gateway, "/Users", {}, "", 5)
    rest = await page(gateway, "/Users", {}, first["nextCursor"], 2)
    last = await page(gateway, "/Users", {}, rest["nextCursor"], 10)
    assert "nextCursor" not in last
    assert ids([first, rest, last]) == got
    # 'cursor' without a value (RFC 9865's own example) starts a walk too
    status, body, _ = await scim(gateway, "GET", "/Users?cursor&count=3")
    assert status == 200, body
    check_page(body, 3)
    assert ids([body]) == got[:3] and body["nextCursor"]
    # without 'cursor' the list is index-paged, as ServiceProviderConfig says
    status, body, _ = await scim(gateway, "GET", "/Users?count=3")
    assert status == 200 and body["startIndex"] == 1 and "nextCursor" not in body


async def test_search_endpoint_walks_the_same(gateway):
    for i in range(6):
        await create(gateway, "/Users", {"userName": f"searcher{i}", "title": "t" if i % 2
                                         else "u"})
    expected = await assert_walk_matches_index(gateway, "/Users", (2, 4), via="POST")
    assert len(expected) == 7
    # with a filter, a sort and an attribute list
    pages = await walk(gateway, "/Users", 2, "POST", filter='title eq "t"', sortBy="userName",
                       sortOrder="descending", attributes=["userName"])
    assert names(pages) == ["searcher5", "searcher3", "searcher1"]
    assert all(set(r) <= {"id", "userName", "schemas"} for p in pages for r in p["Resources"])
    # GET and POST cursors are interchangeable for the same query
    first = await page(gateway, "/Users", {"filter": 'title eq "t"'}, "", 1, "POST")
    second = await page(gateway, "/Users", {"filter": 'title eq "t"'}, first["nextCursor"], 5)
    assert len(ids([first, second])) == 3 and "nextCursor" not in second


# sorting --------------------------------------------------------------------------------
PEOPLE = [  # userName, familyName (None: no name at all)
    ("Mike", "Smith"), ("alpha", "jones"), ("Zed", None), ("bravo", "Smith"),
    ("charlie", "adams"), ("delta", None), ("Echo", "smith"), ("foxtrot", "Brown"),
    ("golf", "Jones"), ("hotel", None),
]


async def seed_people(client, prefix: str = "") -> list[dict]:
    out = []
    for user_name, family in PEOPLE:
        rep = {"userName": prefix + user_name}
        if family is not None:
            rep["name"] = {"familyName": family, "givenName": user_name}
        out.append(await create(client, "/Users", rep))
    return out


def family(user: dict) -> str | None:
    value = user.get("name", {}).get("familyName")
    return value.lower() if value is not None else None


async def test_walk_follows_sort_by_and_sort_order(gateway):
    await seed_people(gateway)
    everyone = 1 + len(PEOPLE)
    for sort_by in ("userName", "name.familyName", "meta.created"):
        for order in ("ascending", "descending"):
            for extra in ({}, {"filter": 'userName ne "hotel"'}):
                got = await assert_walk_matches_index(
                    gateway, "/Users", (1, 2, 3), sortBy=sort_by, sortOrder=order, **extra)
                assert len(got) == everyone - (1 if extra else 0), (sort_by, order, extra)
                desc = order == "descending"
                if sort_by == "userName":
                    keys = [u["userName"].lower() for u in got]
                    assert keys == sorted(keys, reverse=desc)
                elif sort_by == "meta.created":
                    keys = [u["meta"]["created"] for u in got]
                    assert keys == sorted(keys, reverse=desc)
                else:  # no familyName: last ascending, first descending
                    keys = [family(u) for u in got]
                    present = [k for k in keys if k is not None]
                    missing = len(keys) - len(present)
                    assert missing >= 3
                    if desc:
                        assert keys[:missing] == [None] * missing
                    else:
                        assert keys[len(present):] == [None] * missing
                    assert present == sorted(present, reverse=desc)
    # POST /.search follows the sort as well
    await assert_walk_matches_index(gateway, "/Users", (4,), via="POST",
                                    sortBy="name.familyName", sortOrder="descending")


async def test_ties_are_walked_once_each(gateway):
    made = [await create(gateway, "/Users", {"userName": f"tie{i}", "title": "Same"})
            for i in range(7)]
    for order in ("ascending", "descending"):
        got = await assert_walk_matches_index(gateway, "/Users", (1, 2, 3),
                                              filter='title eq "Same"', sortBy="title",
                                              sortOrder=order)
        assert sorted(u["id"] for u in got) == sorted(u["id"] for u in made)


# several user stores --------------------------------------------------------------------
async def test_walk_across_primary_and_secondary(multi_gateway):
    await seed_people(multi_gateway)
    await seed_people(multi_gateway, "SECONDARY/")
    for i in range(3):
        await create(multi_gateway, "/Users", {"userName": f"SECONDARY/extra{i}",
                                                "name": {"familyName": "smith"}})
    total = 1 + 2 * len(PEOPLE) + 3
    got = await assert_walk_matches_index(multi_gateway, "/Users", (1, 4, 5, 7))
    assert len(got) == total
    # PRIMARY first, then SECONDARY
    domains = ["S" if u["userName"].startswith("SECONDARY/") else "P" for u in got]
    assert domains == ["P"] * (1 + len(PEOPLE)) + ["S"] * (len(PEOPLE) + 3)
    for sort_by in ("userName", "name.familyName", "meta.created"):
        for order in ("ascending", "descending"):
            got = await assert_walk_matches_index(multi_gateway, "/Users", (2, 5),
                                                  sortBy=sort_by, sortOrder=order)
            assert len(got) == total, (sort_by, order)
    # a filter, and the domain parameter
    got = await assert_walk_matches_index(multi_gateway, "/Users", (2, 3),
                                          filter='name.familyName eq "smith"')
    assert len(got) == 3 + 3 + 3
    got = await assert_walk_matches_index(multi_gateway, "/Users", (2, 3),
                                          filter='name.familyName eq "smith"',
                                          sortBy="userName", sortOrder="descending")
    assert len(got) == 9
    got = await assert_walk_matches_index(multi_gateway, "/Users", (2, 4), domain="SECONDARY",
                                          sortBy="name.familyName")
    assert len(got) == len(PEOPLE) + 3
    assert all(u["userName"].startswith("SECONDARY/") for u in got)
    got = await assert_walk_matches_index(multi_gateway, "/Users", (3,),
                                          filter='userName eq "SECONDARY/Zed"')
    assert [u["userName"] for u in got] == ["SECONDARY/Zed"]


async def test_last_page_has_no_cursor_when_later_stores_match_nothing(multi_gateway):
    """The walk ends on the page that holds the last match, whichever store holds it."""
    for i in range(4):
        await create(multi_gateway, "/Users", {"userName": f"only{i}", "title": "primary"})
        await create(multi_gateway, "/Users", {"userName": f"SECONDARY/other{i}"})
    for sort in ({}, {"sortBy": "userName"}):
        for count in (2, 4):
            pages = await walk(multi_gateway, "/Users", count, filter='title eq "primary"',
                               **sort)
            assert len(ids(pages)) == 4, (sort, count)
            assert len(pages) == 4 // count, (sort, count, pages)


async def test_sort_by_user_name_across_stores_orders_the_names_clients_see(multi_gateway):
    """RFC 7644 §3.4.2.3: the order is that of the userName values returned, which carry
    their domain (``SECONDARY/amy``), index-paged or cursor-paged alike."""
    for name in ("bob", "SECONDARY/amy", "SECONDARY/zoe", "tom", "SECONDARY/sam"):
        await create(multi_gateway, "/Users", {"userName": name})
    for order in ("ascending", "descending"):
        got = await assert_walk_matches_index(multi_gateway, "/Users", (1, 2),
                                              sortBy="userName", sortOrder=order)
        keys = [u["userName"].lower() for u in got]
        assert keys == sorted(keys, reverse=order == "descending"), keys


# stability ------------------------------------------------------------------------------
RUNS = itertools.count()


class Churn:
    """Between two pages: delete one resource already returned and one not returned yet,
    and create new ones whose names sort before, among and after the others."""

    def __init__(self, client, resource: str, key: str, alive: list[dict],
                 new_names: list[list[str]], pages: list[dict]):
        self.client, self.resource, self.key = client, resource, key
        self.alive = {r["id"]: r for r in alive}
        self.new_names = new_names
        self.pages = pages  # the walk's pages so far
        self.deleted: set[str] = set()
        self.deleted_unseen: set[str] = set()
        self.protected = {r["id"] for r in alive if r[key] in (ROOT, "admin")}
        self.run = next(RUNS)  # new names differ from one walk to the next

    async def __call__(self, number: int) -> None:
        seen = set(ids(self.pages))
        candidates = sorted((rid for rid in self.alive if rid not in self.protected),
                            key=lambda rid: self.alive[rid][self.key].lower())
        done = [rid for rid in candidates if rid in seen]
        todo = [rid for rid in candidates if rid not in seen]
        for rid in done[:1] + todo[len(todo) // 2:][:1]:
            await delete(self.client, self.resource, rid)
            self.deleted.add(rid)
            if rid not in seen:
                self.deleted_unseen.add(rid)
            del self.alive[rid]
        attr = "userName" if self.resource == "/Users" else "displayName"
        for name in self.new_names[number % len(self.new_names)]:
            await create(self.client, self.resource, {attr: f"{name}{self.run}-{number}"})


async def churn_walk(client, resource: str, key: str, new_names: list[list[str]], count: int,
                     check_order: bool = True, **params) -> list[dict]:
    """A cursor walk with churn between pages: whatever existed throughout comes exactly
    once, nothing comes twice, and what was deleted before its page never comes."""
    alive = (await index_list(client, resource))["Resources"]
    pages: list[dict] = []
    churn = Churn(client, resource, key, alive, new_names, pages)
    cursor = ""
    for number in range(MAX_PAGES):
        body = await page(client, resource, params, cursor, count)
        pages.append(body)
        if "nextCursor" not in body:
            break
        cursor = body["nextCursor"]
        await churn(number)
    else:
        raise AssertionError("the walk did not end")
    got = ids(pages)
    assert len(pages) >= 3 and churn.deleted_unseen, "the churn needs several pages"
    assert len(got) == len(set(got)), ("a resource came twice", params, names(pages, key))
    survivors = {r["id"] for r in alive} - churn.deleted
    assert survivors <= set(got), ("skipped what existed throughout", params,
                                   [churn_name(alive, rid, key) for rid in survivors - set(got)])
    assert not churn.deleted_unseen & set(got), ("returned after its deletion", params)
    if check_order and params.get("sortBy") == key:  # in order, new resources included
        keys = [r[key].lower() for p in pages for r in p["Resources"]]
        assert keys == sorted(keys, reverse=params.get("sortOrder") == "descending"), keys
    return pages


def churn_name(alive: list[dict], rid: str, key: str) -> str:
    return next(r[key] for r in alive if r["id"] == rid)


async def index_page(client, start: int, count: int, **params) -> list[dict]:
    status, body, _ = await scim(client, "GET", "/Users?" + urlencode(
        dict(params, startIndex=start, count=count)))
    assert status == 200, body
    return body["Resources"]


async def test_users_created_and_deleted_between_pages_do_not_shift_a_walk(gateway):
    for i in range(12):
        await create(gateway, "/Users", {"userName": f"m{i:02d}"})
    # names sorting before, among and after the others
    new_names = [["a-early", "m05x"], ["zz-late", "m00x"], ["m08x"]]
    for params in ({}, {"sortBy": "userName"},
                   {"sortBy": "userName", "sortOrder": "descending"},
                   {"sortBy": "meta.created", "sortOrder": "descending"}):
        await churn_walk(gateway, "/Users", "userName", new_names, 3, **params)


async def test_index_paging_shifts_where_a_cursor_does_not(gateway):
    for i in range(8):
        await create(gateway, "/Users", {"userName": f"n{i:02d}"})
    alive = (await index_list(gateway, sortBy="userName"))["Resources"]
    first = await index_page(gateway, 1, 3, sortBy="userName")
    await delete(gateway, "/Users", first[0]["id"])
    second = await index_page(gateway, 4, 3, sortBy="userName")
    assert second[0]["id"] == alive[4]["id"]  # alive[3] was skipped
    assert alive[3]["id"] not in {u["id"] for u in first + second}

    alive = (await index_list(gateway, sortBy="userName"))["Resources"]
    start = await page(gateway, "/Users", {"sortBy": "userName"}, "", 3)
    assert ids([start]) == [u["id"] for u in alive[:3]]
    await delete(gateway, "/Users", alive[0]["id"])
    follow = await page(gateway, "/Users", {"sortBy": "userName"}, start["nextCursor"], 3)
    assert ids([follow]) == [u["id"] for u in alive[3:6]]


async def test_churn_across_stores(multi_gateway):
    for i in range(6):
        await create(multi_gateway, "/Users", {"userName": f"p{i:02d}"})
        await create(multi_gateway, "/Users", {"userName": f"SECONDARY/s{i:02d}"})
    new_names = [["a-new", "SECONDARY/a-new"], ["zz-new", "SECONDARY/p03x"]]
    for params in ({}, {"sortBy": "userName"}, {"sortBy": "userName",
                                                "sortOrder": "descending"}):
        await churn_walk(multi_gateway, "/Users", "userName", new_names, 3, check_order=False,
                         **params)


# groups ---------------------------------------------------------------------------------
async def test_groups_walk_and_churn(gateway):
    for name in ("beta", "Gamma", "alpha", "delta", "Epsilon", "zeta", "eta"):
        await create(gateway, "/Groups", {"displayName": name})
    got = await assert_walk_matches_index(gateway, "/Groups", (1, 3))
    assert len(got) == 8  # and the bootstrap 'admin' group
    for order in ("ascending", "descending"):
        got = await assert_walk_matches_index(gateway, "/Groups", (2, 3), via="POST",
                                              sortBy="displayName", sortOrder=order)
        keys = [g["displayName"].lower() for g in got]
        assert keys == sorted(keys, reverse=order == "descending")
    got = await assert_walk_matches_index(gateway, "/Groups", (1, 2),
                                          filter='displayName sw "e"')
    assert sorted(g["displayName"] for g in got) == ["Epsilon", "eta"]
    for params in ({}, {"sortBy": "displayName"}):
        await churn_walk(gateway, "/Groups", "displayName", [["aaa", "delta2-"], ["zzz"]], 2,
                         **params)


async def test_groups_across_stores(multi_gateway):
    for name in ("one", "two", "three"):
        await create(multi_gateway, "/Groups", {"displayName": name})
        await create(multi_gateway, "/Groups", {"displayName": f"SECONDARY/{name}"})
    got = await assert_walk_matches_index(multi_gateway, "/Groups", (1, 2, 4))
    assert len(got) == 7
    got = await assert_walk_matches_index(multi_gateway, "/Groups", (2, 3),
                                          sortBy="displayName", sortOrder="descending")
    assert len(got) == 7


# errors ---------------------------------------------------------------------------------
async def test_garbage_cursors_are_invalid_cursor(gateway):
    await create(gateway, "/Users", {"userName": "someone"})
    await create(gateway, "/Users", {"userName": "another"})
    import base64

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    first = await page(gateway, "/Users", {}, "", 1)
    good = first["nextCursor"]
    garbage = ["not-a-cursor", "x", "!!!", good[:-3], good + "AAAA", b64(b"[1, 2]"),
               b64(b'{"v": 1}'), b64(b'{"v": 99, "q": "x", "p": {}}'), b64(b"\xff\xfe"),
               b64(b'{"v": 1, "q": "0", "p": {"PRIMARY": null}}')]
    for cursor in garbage:
        status, body, _ = await scim(gateway, "GET", "/Users?" + urlencode(
            {"cursor": cursor, "count": 2}))
        assert_scim_error(status, body, 400, "invalidCursor")
        status, body, _ = await scim(gateway, "POST", "/Users/.search",
                                     {"cursor": cursor, "count": 2})
        assert_scim_error(status, body, 400, "invalidCursor")
    # a cursor of /Users does not continue a walk of /Groups
    status, body, _ = await scim(gateway, "GET", "/Groups?" + urlencode({"cursor": good}))
    assert_scim_error(status, body, 400, "invalidCursor")
    # a cursor must be a string
    status, body, _ = await scim(gateway, "POST", "/Users/.search", {"cursor": 5, "count": 2})
    assert_scim_error(status, body, 400)
    # the good one still works
    rest = await page(gateway, "/Users", {}, good, 5)
    assert len(ids([first, rest])) == 3


async def test_cursor_is_bound_to_its_query(gateway):
    for i in range(5):
        await create(gateway, "/Users", {"userName": f"bound{i}", "title": "x"})
    query = {"filter": 'title eq "x"', "sortBy": "userName", "sortOrder": "ascending"}
    first = await page(gateway, "/Users", query, "", 2)
    cursor = first["nextCursor"]
    changed = [
        {**query, "filter": 'title eq "y"'},
        {k: v for k, v in query.items() if k != "filter"},
        {**query, "sortBy": "meta.created"},
        {k: v for k, v in query.items() if k != "sortBy"},
        {**query, "sortOrder": "descending"},
    ]
    for other in changed:
        status, body, _ = await scim(gateway, "GET", "/Users?" + urlencode(
            {**other, "cursor": cursor, "count": 2}))
        assert_scim_error(status, body, 400, "invalidCursor")
        status, body, _ = await scim(gateway, "POST", "/Users/.search",
                                     {**other, "cursor": cursor, "count": 2})
        assert_scim_error(status, body, 400, "invalidCursor")
    # the same query (and another page size, or another attribute list) continues
    status, body, _ = await scim(gateway, "GET", "/Users?" + urlencode(
        {**query, "cursor": cursor, "count": 10, "attributes": "userName"}))
    assert status == 200, body
    assert [r["userName"] for r in first["Resources"] + body["Resources"]] == [
        f"bound{i}" for i in range(5)]


async def test_cursor_is_bound_to_its_domain(multi_gateway):
    for i in range(3):
        await create(multi_gateway, "/Users", {"userName": f"SECONDARY/d{i}"})
    first = await page(multi_gateway, "/Users", {"domain": "SECONDARY"}, "", 1)
    for other in ({}, {"domain": "PRIMARY"}):
        status, body, _ = await scim(multi_gateway, "GET", "/Users?" + urlencode(
            {**other, "cursor": first["nextCursor"], "count": 1}))
        assert_scim_error(status, body, 400, "invalidCursor")
    rest = await page(multi_gateway, "/Users", {"domain": "SECONDARY"}, first["nextCursor"], 5)
    assert [u["userName"] for u in first["Resources"] + rest["Resources"]] == [
        f"SECONDARY/d{i}" for i in range(3)]


async def test_cursor_with_start_index_is_refused(gateway):
    await create(gateway, "/Users", {"userName": "lonely"})
    await create(gateway, "/Users", {"userName": "lonelier"})
    first = await page(gateway, "/Users", {}, "", 1)
    for cursor in ("", first["nextCursor"]):
        for start in (1, 2):
            status, body, _ = await scim(gateway, "GET", "/Users?" + urlencode(
                {"cursor": cursor, "startIndex": start, "count": 1}))
            assert_scim_error(status, body, 400)
            status, body, _ = await scim(gateway, "POST", "/Users/.search",
                                         {"cursor": cursor, "startIndex": start, "count": 1})
            assert_scim_error(status, body, 400)
    status, body, _ = await scim(gateway, "GET", "/Groups?cursor=&startIndex=1")
    assert_scim_error(status, body, 400)


async def test_count_zero_with_a_cursor_gives_the_total_only(gateway):
    for i in range(4):
        await create(gateway, "/Users", {"userName": f"zero{i}", "title": "z"})
    for via in ("GET", "POST"):
        body = await page(gateway, "/Users", {}, "", 0, via)
        assert body["totalResults"] == 5 and body["itemsPerPage"] == 0
        assert body.get("Resources", []) == []
        body = await page(gateway, "/Users", {"filter": 'title eq "z"'}, "", 0, via)
        assert body["totalResults"] == 4 and body.get("Resources", []) == []
        if "nextCursor" in body:  # if offered, it continues from where nothing was taken
            rest = await walk_from(gateway, {"filter": 'title eq "z"'}, body["nextCursor"])
            assert sorted(u["userName"] for u in rest) == [f"zero{i}" for i in range(4)]
        # and mid-walk: the total, nothing skipped afterwards
        first = await page(gateway, "/Users", {"filter": 'title eq "z"'}, "", 1, via)
        body = await page(gateway, "/Users", {"filter": 'title eq "z"'},
                          first["nextCursor"], 0, via)
        assert body["totalResults"] == 4 and body.get("Resources", []) == []
        # nothing matches: a total of 0 and nothing more to fetch
        body = await page(gateway, "/Users", {"filter": 'title eq "none"'}, "", 0, via)
        assert body["totalResults"] == 0 and "nextCursor" not in body
        body = await page(gateway, "/Users", {"filter": 'title eq "none"'}, "", 5, via)
        assert body["totalResults"] == 0 and "nextCursor" not in body
        assert body.get("Resources", []) == []


async def walk_from(client, params: dict, cursor: str) -> list[dict]:
    out = []
    for _ in range(MAX_PAGES):
        body = await page(client, "/Users", params, cursor, 2)
        out += body["Resources"]
        if "nextCursor" not in body:
            return out
        cursor = body["nextCursor"]
    raise AssertionError("the walk did not end")


# discovery and limits -------------------------------------------------------------------
async def test_service_provider_config_advertises_both_paging_methods(gateway):
    status, body, _ = await scim(gateway, "GET", "/ServiceProviderConfig")
    assert status == 200, body
    pagination = body["pagination"]
    assert pagination["cursor"] is True
    assert pagination["index"] is True
    assert pagination.get("defaultPaginationMethod", "index") == "index"
    for key in ("defaultPageSize", "maxPageSize"):
        assert is_int(pagination[key]) and pagination[key] > 0, pagination
    assert pagination["defaultPageSize"] <= pagination["maxPageSize"]


async def test_page_sizes_follow_the_configured_limits(aiohttp_client, make_config, admin_env):
    cfg = await make_config(max_results=4, default_count=3)
    client = await aiohttp_client(create_app(cfg))
    status, body, _ = await scim(client, "GET", "/ServiceProviderConfig")
    assert body["pagination"]["defaultPageSize"] == 3
    assert body["pagination"]["maxPageSize"] == 4
    for i in range(9):
        await create(client, "/Users", {"userName": f"limited{i}"})
    pages = await walk(client, "/Users", None)  # no count: the default page size
    assert [p["itemsPerPage"] for p in pages] == [3, 3, 3, 1]
    pages = await walk(client, "/Users", 100)  # more than the maximum: the maximum
    assert [p["itemsPerPage"] for p in pages] == [4, 4, 2]
    assert len(set(ids(pages))) == 10
