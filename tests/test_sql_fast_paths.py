"""The SQL store answers the commonest searches (eq on an indexed column, eq on a string
of the values table, the plain page) with prebuilt statements; each must give exactly
what the general compiled search gives for the same query."""

from __future__ import annotations

import pytest

from gateway.model.parsing import parse_filter
from gateway.model.registry import DEFAULT
from userstores.base import Query
from userstores.sql import search as sql_search
from userstores.sql.store import SQLUserStore

USERS = [
    {"userName": "ann", "externalId": "X-1", "emails": [{"value": "Ann@Example.com",
                                                          "type": "work"}],
     "name": {"familyName": "Smith"}, "title": "Engineer"},
    {"userName": "bob", "externalId": "X-1", "emails": [{"value": "bob@example.com"}],
     "name": {"familyName": "smith"}, "title": "Engineer"},
    {"userName": "cy", "externalId": "x-1", "emails": [{"value": "cy@example.com"},
                                                        {"value": "ann@example.com"}],
     "name": {"familyName": "Jones"}, "title": "engineer"},
    {"userName": "dee", "name": {"familyName": "SMITH"}},
]
FILTERS = ['userName eq "ANN"', 'externalId eq "X-1"', 'externalId eq "x-1"',
           'id eq "none"', 'emails.value eq "ann@example.com"', 'emails eq "ANN@EXAMPLE.COM"',
           'name.familyName eq "smith"', 'title eq "Engineer"', 'title eq "nobody"',
           'emails.value eq "bob@example.com"']
PAGES = [(0, 100), (1, 1), (0, 1), (2, 5), (5, 5), (0, 0)]


@pytest.fixture
async def store(tmp_path):
    s = SQLUserStore("PRIMARY", f"sqlite:///{tmp_path / 'fast.db'}")
    await s.open()
    try:
        ids = [(await s.create_user(dict(u), None)).id for u in USERS]
        group = await s.create_group({"displayName": "team"}, [{"value": ids[1]}])
        await s.create_group({"displayName": "all"}, [{"value": group.id}])
        yield s
    finally:
        await s.close()


def shape(page):
    return ([(r.id, r.data, r.groups) for r in page.records], page.total)


async def test_fast_searches_answer_as_the_compiled_search(store):
    compared = 0
    for text in FILTERS:
        node = parse_filter(DEFAULT.user, text)
        for offset, limit in PAGES:
            for relations in (True, False):
                for total in (True, False):
                    query = Query(node, None, False, offset, limit, total, relations)
                    fast = await store.search_users(query)
                    general = await store._read(sql_search.search, query, store._users)
                    assert shape(fast) == shape(general), (text, offset, limit)
                    compared += 1
    assert compared == len(FILTERS) * len(PAGES) * 4
    # the plain page (no filter) too
    for offset, limit in PAGES:
        for descending in (False, True):
            query = Query(None, None, descending, offset, limit, True, True)
            general = await store._read(sql_search.search, query, store._users)
            assert shape(await store.search_users(query)) == shape(general)


async def test_the_fast_paths_are_taken(store):
    """The statements above are what these filters use (else the comparison proves
    nothing about them)."""
    users = store._users
    assert users.point(parse_filter(DEFAULT.user, 'userName eq "ANN"')) == ("name", "ann")
    assert users.point(parse_filter(DEFAULT.user, 'externalId eq "X-1"')) == (
        "external", "X-1")
    assert users.value_point(parse_filter(DEFAULT.user, 'emails.value eq "A@b.c"')) == (
        "emails", "value", "a@b.c")
    assert users.value_point(parse_filter(DEFAULT.user, 'title eq "Engineer"')) == (
        "title", "", "engineer")
    assert users.value_point(parse_filter(DEFAULT.user, 'title co "x"')) is None
    assert users.value_point(parse_filter(DEFAULT.user, 'userName eq "x"')) is None
