"""Bad SCIM input: every case is a clear SCIM error (never a 500) and stores nothing.

Status codes and ``scimType`` values follow RFC 7644 §3.12: a body that is not
a JSON object, or does not fit the schema (unknown attributes), is
``invalidSyntax``; a missing required value or a value of the wrong type is
``invalidValue``.

Each test sends many cases to one gateway (a fresh database per test is the
expensive part) and lists every case that went wrong, not just the first.
"""

from __future__ import annotations

import json

from conftest import ADMIN, ADMIN_USER, SCIM_JSON, assert_scim_error, scim

from gateway.app import create_app

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def error_problem(status, body, expected_status, scim_type=None) -> str | None:
    """What is wrong with a response that should be a SCIM error (None when it is right)."""
    if status != expected_status:
        return f"status {status}, not {expected_status}: {body}"
    if not isinstance(body, dict) or body.get("schemas") != [ERROR]:
        return f"not a SCIM Error body: {body}"
    if body.get("status") != str(expected_status) or not body.get("detail"):
        return f"status/detail missing: {body}"
    if scim_type is not None and body.get("scimType") != scim_type:
        return f"scimType {body.get('scimType')!r}, not {scim_type!r}: {body}"
    return None


async def expect_errors(client, requests, expected_status: int,
                        scim_type: str | None = None, headers=None) -> None:
    """Send each (case id, method, path, body); fail listing every case that went wrong."""
    failures = []
    for case_id, method, path, payload in requests:
        status, body, _ = await scim(client, method, path, payload, headers=headers)
        problem = error_problem(status, body, expected_status, scim_type)
        if problem:
            failures.append(f"{case_id} ({method} {path}): {problem}")
    assert not failures, "\n".join(failures)


async def user_names(client) -> list[str]:
    status, body, _ = await scim(client, "GET", "/Users?count=1000")
    assert status == 200, body
    assert body["totalResults"] == len(body["Resources"])
    return sorted(u["userName"] for u in body["Resources"])


async def assert_nothing_stored(client, *users: str) -> None:
    """Only the bootstrap administrator (and ``users``) exist; no group was made half-way."""
    assert await user_names(client) == sorted([ADMIN_USER[0], *users])
    status, groups, _ = await scim(client, "GET", "/Groups")
    assert status == 200
    assert [g["displayName"] for g in groups["Resources"]] == ["admin"]


async def make_user(client, name: str = "victim") -> dict:
    status, body, _ = await scim(client, "POST", "/Users",
                                 {"userName": name, "title": "original",
                                  "emails": [{"value": f"{name}@example.com", "primary": True}]})
    assert status == 201, body
    return body


async def assert_unchanged(client, user: dict) -> None:
    status, got, resp = await scim(client, "GET", f"/Users/{user['id']}")
    assert status == 200, got
    assert resp.headers["ETag"] == 'W/"1"'
    assert got["title"] == "original"
    assert got["emails"] == user["emails"]
    assert got["userName"] == user["userName"]


# bodies that are not a JSON object --------------------------------------------------------
NOT_AN_OBJECT = [
    ("truncated-json", b'{"userName": "x",'),
    ("not-json", b"{userName: 'x'}"),
    ("array", b'[{"userName": "x"}]'),
    ("string", b'"userName"'),
    ("number", b"42"),
    ("null", b"null"),
    ("empty", b""),
    ("whitespace", b"   \n "),
    ("invalid-utf8", b'{"userName": "\xff\xfe"}'),
    ("trailing-garbage", b'{"userName": "x"} trailing'),
    ("deeply-nested", b'{"userName": "x", "title": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
]


async def test_post_body_not_a_json_object_is_invalid_syntax(gateway):
    await expect_errors(gateway, [(case, "POST", path, raw) for case, raw in NOT_AN_OBJECT
                                  for path in ("/Users", "/Groups")], 400, "invalidSyntax")
    await assert_nothing_stored(gateway)


async def test_put_patch_search_body_not_a_json_object_is_invalid_syntax(gateway):
    user = await make_user(gateway)
    uid = user["id"]
    await expect_errors(gateway, [
        (case, method, path, raw) for case, raw in NOT_AN_OBJECT
        for method, path in (("PUT", f"/Users/{uid}"), ("PATCH", f"/Users/{uid}"),
                             ("POST", "/Users/.search"))], 400, "invalidSyntax")
    await assert_unchanged(gateway, user)


# wrong types --------------------------------------------------------------------------------
WRONG_TYPES = [
    ("userName-number", {"userName": 42}),
    ("userName-array", {"userName": ["a", "b"]}),
    ("userName-object", {"userName": {"value": "x"}}),
    ("userName-boolean", {"userName": True}),
    ("active-object", {"userName": "ok", "active": {"yes": True}}),
    ("active-bad-string", {"userName": "ok", "active": "yes"}),
    ("active-number", {"userName": "ok", "active": 1}),
    ("emails-string", {"userName": "ok", "emails": "garbage"}),
    ("emails-item-number", {"userName": "ok", "emails": [42]}),
    ("emails-item-array", {"userName": "ok", "emails": [["a@example.com"]]}),
    ("emails-value-number", {"userName": "ok", "emails": [{"value": 7}]}),
    ("emails-primary-bad", {"userName": "ok",
                            "emails": [{"value": "a@example.com", "primary": "yes"}]}),
    ("name-string", {"userName": "ok", "name": "Barbara Jensen"}),
    ("name-array", {"userName": "ok", "name": ["Barbara"]}),
    ("name-sub-number", {"userName": "ok", "name": {"givenName": 1}}),
    ("displayName-object", {"userName": "ok", "displayName": {"a": 1}}),
    ("externalId-number", {"userName": "ok", "externalId": 12}),
    ("extension-not-object", {"userName": "ok", ENTERPRISE: "E-1"}),
    # (a plain string for manager is accepted: Entra ID sends it; see test_client_entra.py)
    ("manager-number", {"userName": "ok", ENTERPRISE: {"manager": 42}}),
    ("string-too-long", {"userName": "ok", "title": "x" * 10_000}),
]


async def test_wrong_types_are_invalid_value(gateway):
    await expect_errors(gateway, [(case, "POST", "/Users", rep) for case, rep in WRONG_TYPES],
                        400, "invalidValue")
    await assert_nothing_stored(gateway)


async def test_wrong_types_on_put_change_nothing(gateway):
    user = await make_user(gateway)
    puts = [(case, "PUT", f"/Users/{user['id']}",
             {**rep, "userName": rep["userName"] if rep["userName"] != "ok" else "victim"})
            for case, rep in WRONG_TYPES]
    await expect_errors(gateway, puts, 400, "invalidValue")
    await assert_unchanged(gateway, user)


# unknown attributes ------------------------------------------------------------------------
UNKNOWN = [
    ("top-level", {"userName": "ok", "favouriteColour": "blue"}),
    ("unknown-sub-attribute", {"userName": "ok", "name": {"givenName": "A", "nickname": "B"}}),
    ("unknown-sub-attribute-multi",
     {"userName": "ok", "emails": [{"value": "a@example.com", "label": "x"}]}),
    ("unknown-extension-urn",
     {"userName": "ok", "urn:example:params:scim:schemas:extension:acme:User": {"badge": "1"}}),
    ("unknown-extension-attribute", {"userName": "ok", ENTERPRISE: {"shoeSize": "44"}}),
    ("unknown-urn-qualified-attribute", {"userName": "ok", f"{ENTERPRISE}:shoeSize": "44"}),
    ("group-attribute-on-user", {"userName": "ok", "members": [{"value": "x"}]}),
]


async def test_unknown_attributes_are_invalid_syntax(gateway):
    user = await make_user(gateway)
    await expect_errors(gateway, [(case, "POST", "/Users", rep) for case, rep in UNKNOWN],
                        400, "invalidSyntax")
    await expect_errors(gateway, [(case, "PUT", f"/Users/{user['id']}",
                                   {**rep, "userName": "victim"}) for case, rep in UNKNOWN],
                        400, "invalidSyntax")
    await expect_errors(gateway, [("unknown-group-attribute", "POST", "/Groups",
                                   {"displayName": "g", "userName": "x"})], 400, "invalidSyntax")
    await assert_nothing_stored(gateway, "victim")
    await assert_unchanged(gateway, user)


# required and multi-valued rules ---------------------------------------------------------------
MISSING_NAME = [
    ("empty-object", {}),
    ("absent", {"displayName": "No Name"}),
    ("null", {"userName": None}),
    ("empty-string", {"userName": ""}),
    ("blank", {"userName": "   "}),
]


async def test_missing_user_name_is_invalid_value(gateway):
    await expect_errors(gateway, [(case, "POST", "/Users", rep) for case, rep in MISSING_NAME],
                        400, "invalidValue")
    await assert_nothing_stored(gateway)


async def test_missing_group_display_name_is_invalid_value(gateway):
    await expect_errors(gateway, [
        ("absent", "POST", "/Groups", {"members": []}),
        ("null", "POST", "/Groups", {"displayName": None}),
        ("empty-string", "POST", "/Groups", {"displayName": ""}),
    ], 400, "invalidValue")
    await assert_nothing_stored(gateway)


async def test_more_than_one_primary_email_is_invalid_value(gateway):
    user = await make_user(gateway)
    two = [{"value": "a@example.com", "primary": True},
           {"value": "b@example.com", "primary": "true"}]
    await expect_errors(gateway, [
        ("post", "POST", "/Users", {"userName": "twoprimaries", "emails": two}),
        ("put", "PUT", f"/Users/{user['id']}", {"userName": "victim", "emails": two}),
    ], 400, "invalidValue")
    await assert_nothing_stored(gateway, "victim")
    await assert_unchanged(gateway, user)


async def test_nul_character_is_refused_not_a_server_error(gateway):
    # PostgreSQL cannot store U+0000 in text; no store should: it is a 400, never a 500/503
    await expect_errors(gateway, [
        ("in-userName", "POST", "/Users", {"userName": "nul\u0000name"}),
        ("in-title", "POST", "/Users", {"userName": "ok1", "title": "a\u0000b"}),
        ("in-externalId", "POST", "/Users", {"userName": "ok2", "externalId": "a\u0000"}),
        ("in-group-name", "POST", "/Groups", {"displayName": "g\u0000"}),
    ], 400, "invalidValue")
    await assert_nothing_stored(gateway)


# transport-level problems ----------------------------------------------------------------------
async def test_oversized_body_is_413(aiohttp_client, make_config, admin_env):
    client = await aiohttp_client(create_app(await make_config(max_body_bytes=2048)))
    big = {"userName": "big", "title": "x" * 4096}
    user = await make_user(client)  # a body under the limit works
    await expect_errors(client, [
        ("post-user", "POST", "/Users", big),
        ("post-group", "POST", "/Groups", {"displayName": "g" * 4096}),
        ("put", "PUT", f"/Users/{user['id']}", {**big, "userName": "victim"}),
        ("patch", "PATCH", f"/Users/{user['id']}", {
            "schemas": [PATCH_OP],
            "Operations": [{"op": "replace", "path": "title", "value": "x" * 4096}]}),
        ("search", "POST", "/Users/.search", {"filter": f'title eq "{"x" * 4096}"'}),
    ], 413)
    await assert_unchanged(client, user)
    await assert_nothing_stored(client, "victim")

    async def chunks():
        yield b'{"userName": "chunky", "title": "'
        for _ in range(8):
            yield b"x" * 1024
        yield b'"}'

    # without a Content-Length, the limit holds as well
    resp = await client.post("/scim2/Users", data=chunks(),
                             headers={**ADMIN, "Content-Type": SCIM_JSON})
    assert_scim_error(resp.status, await resp.json(content_type=None), 413)
    await assert_nothing_stored(client, "victim")


async def test_unsupported_content_type_is_415(gateway):
    user = await make_user(gateway)
    for ctype in ("text/xml", "application/xml", "multipart/form-data",
                  "application/x-www-form-urlencoded", "image/png"):
        await expect_errors(gateway, [
            ("post", "POST", "/Users", b'{"userName": "xml"}'),
            ("put", "PUT", f"/Users/{user['id']}", b'{"userName": "victim", "title": "x"}'),
            ("patch", "PATCH", f"/Users/{user['id']}", b'{"Operations": [{"op": "remove", '
                                                       b'"path": "title"}]}'),
        ], 415, headers={"Content-Type": ctype})
    await assert_unchanged(gateway, user)
    await assert_nothing_stored(gateway, "victim")
    # the JSON types are fine
    for i, ctype in enumerate(("application/scim+json", "application/json",
                               "application/scim+json; charset=utf-8")):
        status, body, _ = await scim(gateway, "POST", "/Users", {"userName": f"ok{i}"},
                                     headers={"Content-Type": ctype})
        assert status == 201, (ctype, body)


# routes and methods ----------------------------------------------------------------------------
async def test_unknown_route_is_scim_404(gateway):
    for path in ("/Nope", "/users/extra/segment", "/Users/x/y", "/Bulkk", "/", "/Groups/a/b/c",
                 "/ResourceTypes/Nope", "/Schemas/urn:nope"):
        status, body, resp = await scim(gateway, "GET", path)
        assert error_problem(status, body, 404) is None, (path, status, body)
        assert resp.content_type == SCIM_JSON, path
    status, body, _ = await scim(gateway, "POST", "/Nope", {"userName": "x"})
    assert_scim_error(status, body, 404)
    await assert_nothing_stored(gateway)


async def test_wrong_method_is_scim_405(gateway):
    for method, path in (("DELETE", "/Users"), ("PUT", "/Users"), ("PATCH", "/Users"),
                         ("POST", "/Users/some-id"), ("DELETE", "/Groups"),
                         ("POST", "/ServiceProviderConfig"), ("DELETE", "/Schemas"),
                         ("PUT", "/ResourceTypes")):
        status, body, resp = await scim(gateway, method, path)
        assert error_problem(status, body, 405) is None, (method, path, status, body)
        assert resp.content_type == SCIM_JSON, (method, path)
    await assert_nothing_stored(gateway)


async def test_non_integer_paging_is_invalid_value(gateway):
    queries = ("startIndex=abc", "startIndex=1.5", "count=ten", "count=2.0", "count=1e3",
               "startIndex=0x10", "count=%00", "count=-", "count=1;2")
    await expect_errors(gateway, [(q, "GET", f"{endpoint}?{q}", None) for q in queries
                                  for endpoint in ("/Users", "/Groups")], 400, "invalidValue")
    await expect_errors(gateway, [
        (repr(params), "POST", "/Users/.search", params)
        for params in ({"startIndex": "abc"}, {"count": [1]}, {"count": {"n": 1}},
                       {"startIndex": 1.5}, {"count": True})], 400, "invalidValue")
    # an empty parameter is "not given"; integers work
    status, body, _ = await scim(gateway, "GET", "/Users?startIndex=&count=1")
    assert status == 200, body
    assert body["startIndex"] == 1 and body["itemsPerPage"] == 1


SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
HUGE = 2**70


async def test_wrong_types_and_huge_integers_are_400_not_500(gateway):
    await expect_errors(gateway, [
        ("search-domain-number", "POST", "/Users/.search", {"schemas": [SEARCH], "domain": 5}),
        ("search-attributes-string", "POST", "/Users/.search",
         {"schemas": [SEARCH], "attributes": "userName"}),
        ("search-attributes-numbers", "POST", "/Users/.search",
         {"schemas": [SEARCH], "attributes": [1]}),
        ("search-excluded-object", "POST", "/Users/.search",
         {"schemas": [SEARCH], "excludedAttributes": {"a": 1}}),
        ("search-cursor-number", "POST", "/Users/.search", {"schemas": [SEARCH], "cursor": 3}),
        ("query-startIndex-huge", "GET", f"/Users?startIndex={HUGE}", None),
        ("query-count-huge", "GET", f"/Groups?count={HUGE}", None),
        ("query-startIndex-long-text", "GET", "/Users?startIndex=" + "9" * 5000, None),
        ("filter-integer-huge", "GET",
         f"/Users?filter=urn:scim:wso2:schema:failedLoginAttempts gt {HUGE}", None),
    ], 400)
    # integers beyond 64 bits in a body (json, as orjson does not write them)
    resp = await gateway.post("/scim2/Users", headers={**ADMIN, "Content-Type": SCIM_JSON},
                              data=json.dumps({"userName": "big", "urn:scim:wso2:schema": {
                                  "failedLoginAttempts": HUGE}}))
    assert error_problem(resp.status, await resp.json(), 400, "invalidValue") is None
    await assert_nothing_stored(gateway)


async def test_invalid_schemas_and_single_values_for_arrays_are_400(gateway):
    await expect_errors(gateway, [
        ("schemas-string", "POST", "/Users", {"schemas": CORE_USER, "userName": "s1"}),
        ("schemas-number", "POST", "/Users", {"schemas": [1], "userName": "s2"}),
        ("schemas-empty", "POST", "/Users", {"schemas": [], "userName": "s3"}),
        ("schemas-unknown", "POST", "/Users", {"schemas": ["urn:x:unknown"], "userName": "s4"}),
        ("group-schemas-user", "POST", "/Groups", {"schemas": [CORE_USER],
                                                   "displayName": "g1"}),
        ("phoneNumbers-object", "POST", "/Users",
         {"userName": "s5", "phoneNumbers": {"value": "+1 555 0100"}}),
        ("emails-string", "POST", "/Users", {"userName": "s6", "emails": "a@example.com"}),
    ], 400)
    await assert_nothing_stored(gateway)
    # the right shapes are still taken
    status, body, _ = await scim(gateway, "POST", "/Users", {
        "schemas": [CORE_USER, ENTERPRISE], "userName": "ok",
        "phoneNumbers": [{"value": "+1 555 0100"}]})
    assert status == 201, body


async def test_content_encodings(gateway):
    import asyncio
    import gzip

    from test_secrets_out import raw_exchange

    body = b'{"userName": "zipped"}'
    for coding, data, status in (("gzip", b"this is not gzip", 400), ("compress", body, 415),
                                 ("br", body, 415)):
        # sent whole before the answer is read: the gateway answers and closes at once
        reply = await asyncio.to_thread(raw_exchange, gateway.server.port, (
            f"POST /scim2/Users HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            f"Authorization: {ADMIN['Authorization']}\r\nContent-Type: {SCIM_JSON}\r\n"
            f"Content-Encoding: {coding}\r\nContent-Length: {len(data)}\r\n\r\n").encode() + data)
        head, _, answer = reply.partition(b"\r\n\r\n")
        assert f" {status} ".encode() in head.split(b"\r\n")[0], (coding, reply)
        assert error_problem(status, json.loads(answer), status) is None, (coding, answer)
    resp = await gateway.post("/scim2/Users", data=gzip.compress(body), headers={
        **ADMIN, "Content-Type": SCIM_JSON, "Content-Encoding": "gzip"})
    assert resp.status == 201, await resp.text()
    await assert_nothing_stored(gateway, "zipped")


async def test_admin_api_errors_are_json(gateway):
    for path in (f"/admin/outbound/events?before={HUGE}", f"/admin/outbound/events/{HUGE}",
                 "/admin/outbound/nothing-here"):
        resp = await gateway.get(path, headers=ADMIN)
        body = await resp.json(content_type=None)
        assert resp.status in (400, 404), (path, resp.status, body)
        assert resp.content_type == "application/json" and body["error"], (path, body)
