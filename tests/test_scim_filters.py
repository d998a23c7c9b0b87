"""SCIM 2.0 filters (RFC 7644 §3.4.2.2) over HTTP, on GET ?filter= and POST /.search.

Every filter is sent both ways and both answers must agree. The bootstrap
administrator (``root``, member of the ``admin`` group) is in every store, so
the expected sets name it wherever it matches.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

from conftest import ADMIN_USER, assert_scim_error, scim

SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
WSO2 = "urn:scim:wso2:schema"
ROOT = ADMIN_USER[0]


def lit(value: str) -> str:
    """A SCIM filter string literal (the grammar's strings are JSON strings)."""
    return json.dumps(value, ensure_ascii=False)


async def search(client, flt: str, resource: str = "/Users") -> set[str]:
    """The names a filter selects, asked over GET and over POST /.search (they must agree)."""
    key = "userName" if resource == "/Users" else "displayName"
    status, body, _ = await scim(client, "GET", f"{resource}?filter={quote(flt, safe='')}")
    assert status == 200, (flt, body)
    assert body["schemas"] == [LIST]
    got = [r[key] for r in body.get("Resources", [])]
    assert body["totalResults"] == len(got), (flt, body)
    status, body2, _ = await scim(client, "POST", f"{resource}/.search",
                                  {"schemas": [SEARCH], "filter": flt})
    assert status == 200, (flt, body2)
    got2 = [r[key] for r in body2.get("Resources", [])]
    assert sorted(got2) == sorted(got), (flt, got, got2)
    assert body2["totalResults"] == len(got2)
    assert len(set(got)) == len(got), f"{flt}: a resource was returned twice: {got}"
    return set(got)


async def check_all(client, cases, resource: str = "/Users") -> None:
    """Run (filter, expected names) cases and report every mismatch at once."""
    wrong = []
    for flt, expected in cases:
        try:
            got = await search(client, flt, resource)
        except AssertionError as exc:
            wrong.append(f"{flt[:120]!r}: {str(exc).splitlines()[0][:300]}")
            continue
        if got != set(expected):
            wrong.append(f"{flt[:120]!r}: expected {sorted(expected)}, got {sorted(got)}")
    assert not wrong, "\n".join(wrong)


async def create(client, path: str, body: dict) -> dict:
    status, out, _ = await scim(client, "POST", path, body)
    assert status == 201, (body, out)
    return out


async def seed(client) -> dict[str, dict]:
    """Five users (created in this order), two groups, one later change to bjensen."""
    users = {}
    users["bjensen"] = await create(client, "/Users", {
        "userName": "bjensen", "externalId": "ext-BJ",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "displayName": "Babs Jensen", "nickName": "Babs", "title": "Tour Guide", "active": True,
        "emails": [{"value": "bjensen@example.com", "type": "work", "primary": True},
                   {"value": "babs@x.org", "type": "home"}],
        ENTERPRISE: {"employeeNumber": "701", "department": "Tours"},
        WSO2: {"failedLoginAttempts": 3},
    })
    users["bbarker"] = await create(client, "/Users", {
        "userName": "bbarker", "externalId": "ext-bb",
        "name": {"givenName": "Bart", "familyName": "Barker"},
        "title": "Engineer", "active": True,
        "emails": [{"value": "bart@x.com", "type": "work"}],
        ENTERPRISE: {"employeeNumber": "702"},
        WSO2: {"failedLoginAttempts": 0},
    })
    users["jsmith"] = await create(client, "/Users", {
        "userName": "jsmith",
        "name": {"givenName": "John", "familyName": "Smith"},
        "title": "Engineer", "active": False,
        "emails": [{"value": "john@corp.com", "type": "work"},
                   {"value": "john@corp.net", "type": "other"}],
        ENTERPRISE: {"employeeNumber": "703"},
    })
    users["awong"] = await create(client, "/Users", {
        "userName": "awong",
        "name": {"givenName": "Alice", "familyName": "Wong"},
        "title": "Manager",
        ENTERPRISE: {"manager": {"value": users["bjensen"]["id"]}},
    })
    users["CamelCase.User"] = await create(client, "/Users", {
        "userName": "CamelCase.User",
        "name": {"givenName": "Zoë", "familyName": "Ünal"},
        "active": True,
    })
    return users


async def seed_groups(client, users) -> dict[str, dict]:
    eng = await create(client, "/Groups", {
        "displayName": "Engineering",
        "members": [{"value": users["bbarker"]["id"]}, {"value": users["jsmith"]["id"]}],
    })
    tours = await create(client, "/Groups", {
        "displayName": "Tours", "members": [{"value": users["bjensen"]["id"]}],
    })
    return {"Engineering": eng, "Tours": tours}


ALL = {ROOT, "bjensen", "bbarker", "jsmith", "awong", "CamelCase.User"}


# --- attribute operators -----------------------------------------------------------------

async def test_comparison_operators(gateway):
    await seed(gateway)
    await check_all(gateway, [
        ('userName eq "bjensen"', {"bjensen"}),
        ('userName ne "bjensen"', ALL - {"bjensen"}),
        ('title co "ngin"', {"bbarker", "jsmith"}),
        ('title sw "Tour"', {"bjensen"}),
        ('title ew "guide"', {"bjensen"}),
        ('userName sw "b"', {"bjensen", "bbarker"}),
        ('userName ew "SMITH"', {"jsmith"}),
        ('name.familyName gt "Jensen"', {"jsmith", "awong", "CamelCase.User"}),
        ('name.familyName ge "jensen"', {"bjensen", "jsmith", "awong", "CamelCase.User"}),
        ('name.familyName lt "Jensen"', {"bbarker"}),
        ('name.familyName le "JENSEN"', {"bbarker", "bjensen"}),
        ('userName gt "jsmith"', {ROOT}),
        ('userName le "awong"', {"awong"}),
        ('title eq "nobody has this"', set()),
    ])


async def test_present(gateway):
    await seed(gateway)
    await check_all(gateway, [
        ("title pr", {"bjensen", "bbarker", "jsmith", "awong"}),
        ("emails pr", {"bjensen", "bbarker", "jsmith"}),
        ("name.givenName pr", ALL - {ROOT}),
        ("externalId pr", {"bjensen", "bbarker"}),
        ("active pr", {"bjensen", "bbarker", "jsmith", "CamelCase.User"}),
        ("employeeNumber pr", {"bjensen", "bbarker", "jsmith"}),
        ("not (title pr)", {ROOT, "CamelCase.User"}),
    ])


async def test_integer_attribute(gateway):
    await seed(gateway)
    await check_all(gateway, [
        (f"{WSO2}:failedLoginAttempts gt 0", {"bjensen"}),
        ("failedLoginAttempts ge 0", {"bjensen", "bbarker"}),
        ("failedLoginAttempts lt 3", {"bbarker"}),
        ("failedLoginAttempts le 3", {"bjensen", "bbarker"}),
        ("failedLoginAttempts eq 3", {"bjensen"}),
        ("failedLoginAttempts gt 3", set()),
    ])


async def test_boolean_attribute(gateway):
    await seed(gateway)
    await check_all(gateway, [
        ("active eq true", {"bjensen", "bbarker", "CamelCase.User"}),
        ('active eq "True"', {"bjensen", "bbarker", "CamelCase.User"}),  # Entra ID
        ('active eq "true"', {"bjensen", "bbarker", "CamelCase.User"}),
        ("active eq false", {"jsmith"}),
        ('active eq "False"', {"jsmith"}),
        # ne is the negation of eq: a user without the attribute is "not equal"
        ("active ne true", {"jsmith", "awong", ROOT}),
        ('emails[primary eq true]', {"bjensen"}),
    ])


async def test_case_insensitive_names_operators_and_user_name(gateway):
    await seed(gateway)
    await check_all(gateway, [
        ('USERNAME EQ "bjensen"', {"bjensen"}),
        ('userName Eq "bjensen"', {"bjensen"}),
        ('username eq "BJENSEN"', {"bjensen"}),
        ('userName eq "camelcase.user"', {"CamelCase.User"}),
        ('userName eq "CAMELCASE.USER"', {"CamelCase.User"}),
        ('userName SW "CAMEL"', {"CamelCase.User"}),
        ('userName co "CASE.u"', {"CamelCase.User"}),
        ('NAME.GIVENNAME sw "ba"', {"bjensen", "bbarker"}),
        ('Title CO "NGIN"', {"bbarker", "jsmith"}),
        ('EMAILS[TYPE EQ "WORK" AND VALUE CO "@X"]', {"bbarker"}),
        ('title eq "engineer" AND NOT (active EQ true)', {"jsmith"}),
        ("ACTIVE PR and userName Ne \"bjensen\"", {"bbarker", "jsmith", "CamelCase.User"}),
        (f'{ENTERPRISE.upper()}:employeeNumber eq "703"', {"jsmith"}),
        (f'{ENTERPRISE}:EMPLOYEENUMBER eq "703"', {"jsmith"}),
    ])


# --- logical operators and grouping ---------------------------------------------------------

async def test_and_or_not(gateway):
    await seed(gateway)
    await check_all(gateway, [
        ('title eq "Engineer" and active eq true', {"bbarker"}),
        ('title eq "Engineer" or userName eq "awong"', {"bbarker", "jsmith", "awong"}),
        ('not (title eq "Engineer")', ALL - {"bbarker", "jsmith"}),
        ('not (active eq true) and not (userName eq "root")', {"jsmith", "awong"}),
        ('userName eq "bjensen" and userName eq "bbarker"', set()),
        ('userName eq "bjensen" or userName eq "bbarker" or userName eq "nobody"',
         {"bjensen", "bbarker"}),
    ])


async def test_precedence_and_grouping(gateway):
    await seed(gateway)
    await check_all(gateway, [
        # "and" binds tighter than "or"
        ('userName eq "awong" or title eq "Engineer" and active eq true', {"awong", "bbarker"}),
        ('title eq "Engineer" and active eq true or userName eq "awong"', {"bbarker", "awong"}),
        # parentheses change it
        ('(userName eq "awong" or title eq "Engineer") and active eq true', {"bbarker"}),
        ('title eq "Engineer" and (active eq true or userName eq "jsmith")',
         {"bbarker", "jsmith"}),
        ('not (userName eq "root") and (name.givenName sw "B" or name.familyName eq "smith")',
         {"bjensen", "bbarker", "jsmith"}),
        ('((userName eq "bjensen"))', {"bjensen"}),
        ('not (userName eq "bjensen" or userName eq "root")',
         {"bbarker", "jsmith", "awong", "CamelCase.User"}),
        ('not (not (userName eq "bjensen"))', {"bjensen"}),
    ])


# --- complex, multi-valued and extension attributes -----------------------------------------

async def test_value_path_needs_one_value_to_satisfy_every_part(gateway):
    await seed(gateway)
    await check_all(gateway, [
        # bjensen's work address has no "@x" but her home one does: she must not match
        ('emails[type eq "work" and value co "@x"]', {"bbarker"}),
        # without brackets the two parts may be satisfied by different values
        ('emails.type eq "work" and emails.value co "@x"', {"bjensen", "bbarker"}),
        ('emails[type eq "home" and value co "@x"]', {"bjensen"}),
        ('emails[type eq "work" and primary eq true]', {"bjensen"}),
        ('emails[type eq "home" and primary eq true]', set()),
        ('emails[type eq "home"]', {"bjensen"}),
        ('emails[not (type eq "work")]', {"bjensen", "jsmith"}),
        ('emails[type ne "work"]', {"bjensen", "jsmith"}),
        ('emails[type eq "other" or type eq "home"]', {"bjensen", "jsmith"}),
        ('emails[value ew ".net" and type eq "other"]', {"jsmith"}),
        ('emails[value ew ".net" and type eq "work"]', set()),
        ('emails[type eq "work"] and active eq false', {"jsmith"}),
        ('emails[type eq "home"] or emails[value sw "bart"]', {"bjensen", "bbarker"}),
    ])


async def test_sub_attributes(gateway):
    await seed(gateway)
    await check_all(gateway, [
        ('name.givenName sw "Ba"', {"bjensen", "bbarker"}),
        ('name.familyName eq "smith"', {"jsmith"}),
        ('emails.value eq "JOHN@corp.com"', {"jsmith"}),
        ('emails.value co "@x"', {"bjensen", "bbarker"}),
        ('emails.type eq "other"', {"jsmith"}),
        # a complex attribute compared directly compares its "value"
        ('emails eq "bart@x.com"', {"bbarker"}),
        ('emails co "corp"', {"jsmith"}),
    ])


async def test_extension_attributes(gateway):
    users = await seed(gateway)
    manager = users["bjensen"]["id"]
    await check_all(gateway, [
        (f'{ENTERPRISE}:employeeNumber eq "701"', {"bjensen"}),
        ('employeeNumber eq "702"', {"bbarker"}),
        ('employeeNumber sw "70"', {"bjensen", "bbarker", "jsmith"}),
        (f'{ENTERPRISE}:department eq "TOURS"', {"bjensen"}),
        ('department eq "tours"', {"bjensen"}),
        (f'{ENTERPRISE}:manager.value eq "{manager}"', {"awong"}),
        (f'{ENTERPRISE}:manager eq "{manager}"', {"awong"}),
        (f'{ENTERPRISE}:employeeNumber eq "701" and name.familyName eq "jensen"', {"bjensen"}),
        (f'{WSO2}:failedLoginAttempts eq 0', {"bbarker"}),
    ])


async def test_id_and_external_id_are_case_exact(gateway):
    users = await seed(gateway)
    uid = users["bjensen"]["id"]
    assert uid.upper() != uid, "the test needs an id with letters in it"
    await check_all(gateway, [
        (f'id eq "{uid}"', {"bjensen"}),
        (f'id eq "{uid.upper()}"', set()),
        (f'id ne "{uid}"', ALL - {"bjensen"}),
        (f'id sw "{uid[:8]}"', {"bjensen"}),
        ('externalId eq "ext-BJ"', {"bjensen"}),
        ('externalId eq "EXT-bj"', set()),
        ('externalId eq "ext-bj"', set()),
        ('externalId sw "ext-"', {"bjensen", "bbarker"}),
        ('externalId sw "EXT-"', set()),
        ('externalId co "BJ"', {"bjensen"}),
        ('externalId co "bj"', set()),
    ])


async def test_meta_timestamps(gateway):
    users = await seed(gateway)
    created = {name: u["meta"]["created"] for name, u in users.items()}
    order = list(users)
    assert len(set(created.values())) == len(order), "creation times must differ"
    jsmith = created["jsmith"]
    shifted = datetime.fromisoformat(jsmith.replace("Z", "+00:00")).astimezone(
        timezone(timedelta(hours=2))).isoformat()
    assert not shifted.endswith("Z") and "+02:00" in shifted

    await check_all(gateway, [
        (f'meta.created gt "{jsmith}"', {"awong", "CamelCase.User"}),
        (f'meta.created ge "{jsmith}"', {"jsmith", "awong", "CamelCase.User"}),
        (f'meta.created lt "{created["bbarker"]}"', {ROOT, "bjensen"}),
        (f'meta.created le "{created["bbarker"]}"', {ROOT, "bjensen", "bbarker"}),
        (f'meta.created eq "{jsmith}"', {"jsmith"}),
        # the same instant written with another offset
        (f'meta.created ge "{shifted}"', {"jsmith", "awong", "CamelCase.User"}),
        ('meta.created gt "2000-01-01T00:00:00Z"', ALL),
        ('meta.created lt "2000-01-01T00:00:00+02:00"', set()),
        ('meta.resourceType eq "User"', ALL),
    ])

    status, changed, _ = await scim(gateway, "PATCH", f"/Users/{users['bbarker']['id']}", {
        "schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "title",
                                               "value": "Chief Engineer"}]})
    assert status == 200, changed
    modified = changed["meta"]["lastModified"]
    assert modified > created["CamelCase.User"]
    await check_all(gateway, [
        (f'meta.lastModified ge "{modified}"', {"bbarker"}),
        (f'meta.lastModified gt "{modified}"', set()),
        (f'meta.lastModified lt "{modified}"', ALL - {"bbarker"}),
        (f'meta.lastModified gt "{created["CamelCase.User"]}"', {"bbarker"}),
    ])


async def test_user_groups_and_group_members(gateway):
    users = await seed(gateway)
    groups = await seed_groups(gateway, users)
    tours, eng = groups["Tours"]["id"], groups["Engineering"]["id"]
    root_filter = quote(f"userName eq {lit(ROOT)}", safe="")
    status, found, _ = await scim(gateway, "GET", f"/Users?filter={root_filter}")
    assert status == 200 and found["totalResults"] == 1
    root_id = found["Resources"][0]["id"]
    await check_all(gateway, [
        ('groups.display eq "Engineering"', {"bbarker", "jsmith"}),
        ('groups.display eq "engineering"', {"bbarker", "jsmith"}),
        ('groups.display sw "Tou"', {"bjensen"}),
        ('groups.display eq "admin"', {ROOT}),
        (f'groups.value eq "{tours}"', {"bjensen"}),
        (f'groups eq "{eng}"', {"bbarker", "jsmith"}),
        (f'groups.value eq "{eng}" and active eq true', {"bbarker"}),
        (f'not (groups.value eq "{eng}")', ALL - {"bbarker", "jsmith"}),
        ("groups pr", {ROOT, "bjensen", "bbarker", "jsmith"}),
    ])
    await check_all(gateway, [
        (f'members.value eq "{users["bbarker"]["id"]}"', {"Engineering"}),
        (f'members.value eq "{users["bjensen"]["id"]}"', {"Tours"}),
        (f'members.value eq "{root_id}"', {"admin"}),
        (f'members.value eq "{users["awong"]["id"]}"', set()),
        (f'members eq "{users["jsmith"]["id"]}"', {"Engineering"}),
        ('displayName sw "Eng"', {"Engineering"}),
        ('displayName sw "eng"', {"Engineering"}),
        ('displayName eq "TOURS"', {"Tours"}),
        ('displayName co "o"', {"Tours"}),
        (f'id eq "{tours}"', {"Tours"}),
        ('displayName ne "admin"', {"Engineering", "Tours"}),
    ], resource="/Groups")


# --- injection: every value is data --------------------------------------------------------

TRICKY = [
    "100%_real", "under_score", "plain", "back\\slash", "o'brien", 'say "hi"', "star*",
    "ünïcødé-日本", "robert'); DROP TABLE users; --", "emoji🙂",
]


async def test_values_are_data_not_sql_or_wildcards(gateway):
    titles = {"plain": "50% off", "under_score": "a_b", "back\\slash": "c:\\dir",
              "star*": "x*y"}
    for name in TRICKY:
        body = {"userName": name}
        if name in titles:
            body["title"] = titles[name]
        if name == "plain":
            body["emails"] = [{"value": "p%q@x.org", "type": "work"}]
        await create(gateway, "/Users", body)

    await check_all(gateway, [
        ('userName co "%"', {"100%_real"}),
        ('userName co "_"', {"100%_real", "under_score"}),
        ('userName co "%_"', {"100%_real"}),
        ('userName sw "%"', set()),
        ('userName ew "%"', set()),
        ('userName eq "%"', set()),
        ('userName sw "_"', set()),
        ('userName sw "under_"', {"under_score"}),
        ('userName sw "under%"', set()),
        ('userName ew "_score"', {"under_score"}),
        (f'userName co {lit(chr(92))}', {"back\\slash"}),
        (f'userName co {lit(chr(92) + "s")}', {"back\\slash"}),
        (f'userName eq {lit("back" + chr(92) + "slash")}', {"back\\slash"}),
        (f'userName co {lit(chr(92) + "%")}', set()),
        ("userName co \"'\"", {"o'brien", "robert'); DROP TABLE users; --"}),
        ("userName eq \"o'brien\"", {"o'brien"}),
        ("userName eq \"O'BRIEN\"", {"o'brien"}),
        (f"userName co {lit(chr(34))}", {'say "hi"'}),
        ("userName eq " + lit('say "hi"'), {'say "hi"'}),
        ("userName eq \"'; DROP TABLE users; --\"", set()),
        ("userName co \"'); DROP TABLE users; --\"", {"robert'); DROP TABLE users; --"}),
        ("userName eq \"x' OR '1'='1\"", set()),
        ('userName co "*"', {"star*"}),
        ('userName eq "*"', set()),
        ('userName sw "*"', set()),
        ('userName eq "ÜNÏCØDÉ-日本"', {"ünïcødé-日本"}),
        ('userName sw "ünï"', {"ünïcødé-日本"}),
        ('userName co "日本"', {"ünïcødé-日本"}),
        ('userName ew "🙂"', {"emoji🙂"}),
        ('userName sw "emoji🙂"', {"emoji🙂"}),
        ('userName co "🙂"', {"emoji🙂"}),
        # the same over the values table
        ('title co "%"', {"plain"}),
        ('title co "_"', {"under_score"}),
        ('title sw "50%"', {"plain"}),
        ('title sw "5_"', set()),
        ('title ew "_b"', {"under_score"}),
        ('title co "*"', {"star*"}),
        (f'title co {lit(chr(92))}', {"back\\slash"}),
        (f'title eq {lit("c:" + chr(92) + "dir")}', {"back\\slash"}),
        ('emails[value co "%"]', {"plain"}),
        ('emails[value co "_"]', set()),
        ('emails.value sw "p%"', {"plain"}),
        ('emails.value sw "p_"', set()),
    ])

    # every row is still there, and still found by its exact name
    status, body, _ = await scim(gateway, "GET", "/Users?count=100")
    assert status == 200
    assert {r["userName"] for r in body["Resources"]} == set(TRICKY) | {ROOT}
    assert body["totalResults"] == len(TRICKY) + 1
    for name in TRICKY:
        assert await search(gateway, f"userName eq {lit(name)}") == {name}


async def test_injection_in_group_filters_and_relations(gateway):
    eng = await create(gateway, "/Groups", {"displayName": "50%_off"})
    await create(gateway, "/Groups", {"displayName": "plain"})
    await check_all(gateway, [
        ('displayName co "%"', {"50%_off"}),
        ('displayName co "_"', {"50%_off"}),
        ('displayName sw "%"', set()),
        ("displayName eq \"x'; DROP TABLE groups; --\"", set()),
        ('members.value eq "%"', set()),
        ('members.value co "%"', set()),
    ], resource="/Groups")
    await check_all(gateway, [
        ('groups.display co "%"', set()),
        ('groups.value co "%"', set()),
        ("groups.display eq \"'; DROP TABLE memberships; --\"", set()),
    ])
    status, body, _ = await scim(gateway, "GET", f"/Groups/{eng['id']}")
    assert status == 200 and body["displayName"] == "50%_off"
    status, body, _ = await scim(gateway, "GET", "/Groups")
    assert body["totalResults"] == 3  # admin, 50%_off, plain


# --- invalid filters ---------------------------------------------------------------------

INVALID = [
    # syntax
    'userName eq',
    'userName eq "unterminated',
    '(userName eq "a"',
    'userName eq "a")',
    'userName "a"',
    'and userName eq "a"',
    'userName eq "a" and',
    'userName eq "a" or "1"="1"',
    "userName eq 'a'",
    'emails[type eq "work"',
    'userName pr "x"',
    '"a" eq userName',
    # unknown attributes
    'nosuch eq "x"',
    'name.nosuch eq "x"',
    'urn:example:params:nosuch:2.0:User:attr eq "x"',
    f'{ENTERPRISE}:nosuch eq "x"',
    'emails[nosuch eq "x"]',
    'emails.nosuch eq "x"',
    # unknown operators
    'userName xx "a"',
    'userName like "a"',
    'userName == "a"',
    'userName regex "a.*"',
    # operators that do not fit the attribute or value
    'active gt true',
    'active ge false',
    'active co "t"',
    'active sw "t"',
    'failedLoginAttempts co "1"',
    'failedLoginAttempts eq "abc"',
    'meta.created gt "yesterday"',
    'userName eq true',
    'userName gt null',
    'name eq "x"',
    # refused on purpose
    'password eq "secret"',
    'emails[type eq "work" and emails[value eq "x"]]',
    # nesting too deep
    "not (" * 40 + 'userName eq "a"' + ")" * 40,
    '(userName eq "a" or ' * 40 + 'userName eq "b"' + ")" * 40,
    # too long
    'userName eq "' + "a" * 4100 + '"',
]


async def test_invalid_filters_are_400_invalid_filter(gateway):
    await create(gateway, "/Users", {"userName": "a", "active": True})
    wrong = []
    for flt in INVALID:
        for method in ("GET", "POST"):
            if method == "GET":
                status, body, _ = await scim(gateway, "GET", f"/Users?filter={quote(flt, safe='')}")
            else:
                status, body, _ = await scim(gateway, "POST", "/Users/.search",
                                             {"schemas": [SEARCH], "filter": flt})
            ok = (status == 400 and isinstance(body, dict)
                  and body.get("scimType") == "invalidFilter" and body.get("detail")
                  and body.get("status") == "400")
            if not ok:
                wrong.append(f"{method} {flt[:80]!r}: {status} {str(body)[:200]}")
    assert not wrong, "\n".join(wrong)
    # a filter error leaves the data alone
    status, body, _ = await scim(gateway, "GET", "/Users")
    assert status == 200 and body["totalResults"] == 2


async def test_invalid_group_filters(gateway):
    for flt in ('displayName xx "a"', 'userName eq "a"', 'members.nosuch eq "a"',
                'displayName eq "a" and'):
        status, body, _ = await scim(gateway, "GET", f"/Groups?filter={quote(flt, safe='')}")
        assert_scim_error(status, body, 400, "invalidFilter")
        status, body, _ = await scim(gateway, "POST", "/Groups/.search", {"filter": flt})
        assert_scim_error(status, body, 400, "invalidFilter")


async def test_filter_length_limit_is_4096(gateway):
    name = "a" * (4096 - len('userName eq ""'))
    flt = f'userName eq "{name}"'
    assert len(flt) == 4096
    assert await search(gateway, flt) == set()
    status, body, _ = await scim(gateway, "POST", "/Users/.search", {"filter": flt + " "})
    assert_scim_error(status, body, 400, "invalidFilter")
    status, body, _ = await scim(gateway, "POST", "/Users/.search",
                                 {"filter": 'userName eq "' + "b" * 20000 + '"'})
    assert_scim_error(status, body, 400, "invalidFilter")


async def test_wide_but_shallow_filters_work(gateway):
    """Many terms side by side are not "deep": a long or-list is a valid filter."""
    await seed(gateway)
    names = ["bjensen", "jsmith"] + [f"nobody{i}" for i in range(100)]
    flt = " or ".join(f"userName eq {lit(n)}" for n in names)
    assert len(flt) < 4096
    assert await search(gateway, flt) == {"bjensen", "jsmith"}
    flt = " and ".join(['active pr'] * 50 + ['userName sw "b"'])
    assert await search(gateway, flt) == {"bjensen", "bbarker"}


async def test_filter_must_be_a_string_in_search_body(gateway):
    status, body, _ = await scim(gateway, "POST", "/Users/.search", {"filter": 42})
    assert_scim_error(status, body, 400)


async def test_more_negations(gateway):
    await seed(gateway)
    await check_all(gateway, [
        ('not (emails[type eq "work"])', {ROOT, "awong", "CamelCase.User"}),
        ("failedLoginAttempts ne 3", ALL - {"bjensen"}),
        ('not (name.familyName lt "m")', {ROOT, "jsmith", "awong", "CamelCase.User"}),
        ('emails[value pr and type eq "home"]', {"bjensen"}),
        ('emails[primary eq "True"]', {"bjensen"}),
    ])


async def test_long_values_compare_in_full(gateway):
    """Two values sharing a long prefix are still two different values."""
    prefix = "x" * 600
    await create(gateway, "/Users", {"userName": "long-a", "title": prefix + "A"})
    await create(gateway, "/Users", {"userName": "long-b", "title": prefix + "B"})
    await check_all(gateway, [
        (f'title eq "{prefix}A"', {"long-a"}),
        (f'title ne "{prefix}A"', {ROOT, "long-b"}),
        (f'title ew "{"x" * 10}B"', {"long-b"}),
        ('title ew "B"', {"long-b"}),
        ('title co "xA"', {"long-a"}),
        (f'title gt "{prefix}A"', {"long-b"}),
        (f'title sw "{prefix}"', {"long-a", "long-b"}),
    ])


async def test_value_paths_on_user_groups(gateway):
    """groups[...] on users (and members[...] on groups) are value paths like any other."""
    users = await seed(gateway)
    groups = await seed_groups(gateway, users)
    eng = groups["Engineering"]["id"]
    await check_all(gateway, [
        ('groups[display eq "Tours"]', {"bjensen"}),
        (f'groups[value eq "{eng}" and display eq "engineering"]', {"bbarker", "jsmith"}),
        ('groups[display eq "Tours" and value eq "nope"]', set()),
    ])


async def test_member_filters_on_groups(gateway):
    users = await seed(gateway)
    groups = await seed_groups(gateway, users)
    eng = groups["Engineering"]["id"]
    await check_all(gateway, [
        (f'members[value eq "{users["bbarker"]["id"]}"]', {"Engineering"}),
        (f'id eq "{eng}" and members eq "{users["jsmith"]["id"]}"', {"Engineering"}),  # Entra ID
        (f'id eq "{eng}" and members eq "{users["bjensen"]["id"]}"', set()),
        ('members.display eq "BBARKER"', {"Engineering"}),
        ('members.type eq "User"', {"Engineering", "Tours", "admin"}),
    ], resource="/Groups")


async def test_rfc_7644_examples(gateway):
    """The example filters of RFC 7644 §3.4.2.2, as written there."""
    await create(gateway, "/Users", {
        "userName": "J.Employee1", "userType": "Employee", "title": "Boss",
        "emails": [{"value": "a@example.com", "type": "work"}],
        ENTERPRISE: {"employeeNumber": "1"}})
    await create(gateway, "/Users", {
        "userName": "employee2", "userType": "Employee",
        "emails": [{"value": "b@example.org", "type": "home"}]})
    await create(gateway, "/Users", {
        "userName": "jintern", "userType": "Intern", "name": {"familyName": "O'Malley"},
        "ims": [{"value": "i@foo.com", "type": "xmpp"}]})
    await check_all(gateway, [
        ('userName eq "bjensen"', set()),
        ('name.familyName co "O\'Malley"', {"jintern"}),
        ('userName sw "J"', {"J.Employee1", "jintern"}),
        ('urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J"',
         {"J.Employee1", "jintern"}),
        ("title pr", {"J.Employee1"}),
        ('meta.lastModified gt "2011-05-13T04:42:34Z"', {ROOT, "J.Employee1", "employee2",
                                                          "jintern"}),
        ('meta.lastModified lt "2011-05-13T04:42:34Z"', set()),
        ('title pr and userType eq "Employee"', {"J.Employee1"}),
        ('title pr or userType eq "Intern"', {"J.Employee1", "jintern"}),
        (f'schemas eq "{ENTERPRISE}"', {"J.Employee1"}),
        ('userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")',
         {"J.Employee1", "employee2"}),
        ('userType ne "Employee" and not (emails co "example.com" or '
         'emails.value co "example.org")', {"jintern", ROOT}),
        ('userType eq "Employee" and (emails.type eq "work")', {"J.Employee1"}),
        ('userType eq "Employee" and emails[type eq "work" and value co "@example.com"]',
         {"J.Employee1"}),
        ('emails[type eq "work" and value co "@example.com"] or '
         'ims[type eq "xmpp" and value co "@foo.com"]', {"J.Employee1", "jintern"}),
    ])


async def test_eq_on_an_indexed_column_pages_like_any_filter(gateway):
    """``eq`` on id, externalId, userName and displayName is a direct lookup: its pages,
    totals, groups and count=0 answer like any other filter's (several users may share an
    externalId; they come in the order they were created)."""
    ids = []
    for name in ("shared-1", "shared-2", "shared-3"):
        status, body, _ = await scim(gateway, "POST", "/Users",
                                     {"userName": name, "externalId": "EXT-shared"})
        assert status == 201, body
        ids.append(body["id"])
    status, group, _ = await scim(gateway, "POST", "/Groups",
                                  {"displayName": "Shared Group",
                                   "members": [{"value": ids[1]}]})
    assert status == 201, group
    flt = quote('externalId eq "EXT-shared"', safe="")
    status, body, _ = await scim(gateway, "GET", f"/Users?filter={flt}")
    assert body["totalResults"] == 3
    assert [r["userName"] for r in body["Resources"]] == ["shared-1", "shared-2", "shared-3"]
    status, body, _ = await scim(gateway, "GET", f"/Users?filter={flt}&startIndex=2&count=1")
    assert body["totalResults"] == 3 and body["startIndex"] == 2
    assert [r["userName"] for r in body["Resources"]] == ["shared-2"]
    assert [g["value"] for g in body["Resources"][0]["groups"]] == [group["id"]]
    status, body, _ = await scim(gateway, "GET", f"/Users?filter={flt}&count=0")
    assert body["totalResults"] == 3 and not body.get("Resources")
    # externalId is caseExact; userName and displayName are not
    assert await search(gateway, 'externalId eq "ext-shared"') == set()
    assert await search(gateway, 'userName eq "SHARED-2"') == {"shared-2"}
    assert await search(gateway, f'id eq "{ids[2]}"') == {"shared-3"}
    assert await search(gateway, 'id eq "no-such-id"') == set()
    assert await search(gateway, 'displayName eq "shared group"', "/Groups") == {"Shared Group"}
    by_name = quote('displayName eq "shared group"', safe="")
    status, body, _ = await scim(gateway, "GET",
                                 f"/Groups?filter={by_name}&excludedAttributes=members")
    assert body["totalResults"] == 1 and "members" not in body["Resources"][0]
    status, body, _ = await scim(gateway, "GET", f"/Users?filter={flt}&startIndex=5")
    assert body["totalResults"] == 3 and not body.get("Resources")
