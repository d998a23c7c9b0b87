"""Many writes at once: each gets its own answer, as if it had been alone.

On SQLite, writes that arrive while the writer is busy share one transaction (one
savepoint each); a refused one must not take the others with it, nor leave traces.
"""

import asyncio

from conftest import assert_scim_error, scim


async def test_concurrent_writes_succeed_or_fail_alone(gateway):
    status, victim, _ = await scim(gateway, "POST", "/Users", {"userName": "victim",
                                                                "title": "v1"})
    assert status == 201, victim
    stale = victim["meta"]["version"]
    status, victim, _ = await scim(gateway, "PUT", f"/Users/{victim['id']}",
                                   {"userName": "victim", "title": "v2"})
    assert status == 200, victim

    calls = []
    for i in range(30):
        calls.append(scim(gateway, "POST", "/Users", {"userName": f"fresh{i}"}))
    for _ in range(5):
        calls.append(scim(gateway, "POST", "/Users", {"userName": "VICTIM"}))  # taken
    for i in range(5):
        calls.append(scim(gateway, "PATCH", f"/Users/{victim['id']}", {
            "Operations": [{"op": "replace", "path": "title", "value": f"stale{i}"}]},
            headers={"If-Match": stale}))
    for i in range(5):
        calls.append(scim(gateway, "POST", "/Users", {"userName": f"bad{i}", "emails": "x"}))
    results = await asyncio.gather(*calls)

    fresh, taken, stale_patches, bad = (results[:30], results[30:35], results[35:40],
                                        results[40:])
    assert [s for s, _b, _r in fresh] == [201] * 30
    assert len({b["id"] for _s, b, _r in fresh}) == 30
    for status, body, _ in taken:
        assert_scim_error(status, body, 409, "uniqueness")
    for status, body, _ in stale_patches:
        assert_scim_error(status, body, 412)
    for status, body, _ in bad:
        assert_scim_error(status, body, 400)

    status, listing, _ = await scim(gateway, "GET", '/Users?filter=userName sw "fresh"&count=0')
    assert listing["totalResults"] == 30
    status, listing, _ = await scim(gateway, "GET", '/Users?filter=userName sw "bad"&count=0')
    assert listing["totalResults"] == 0
    status, now, _ = await scim(gateway, "GET", f"/Users/{victim['id']}")
    assert now["title"] == "v2" and now["meta"]["version"] == victim["meta"]["version"]
    for _s, body, _r in fresh[:3]:
        status, got, _ = await scim(gateway, "GET", f"/Users/{body['id']}")
        assert status == 200 and got["userName"] == body["userName"]


async def test_concurrent_patches_of_one_user_all_apply(gateway):
    """Without If-Match, concurrent PATCHes each apply to the latest version: none lost."""
    status, user, _ = await scim(gateway, "POST", "/Users", {"userName": "busy"})
    assert status == 201, user
    calls = [scim(gateway, "PATCH", f"/Users/{user['id']}", {
        "Operations": [{"op": "add", "path": "phoneNumbers",
                        "value": [{"value": f"+1 555 {i:04d}", "type": "work"}]}]})
        for i in range(12)]
    results = await asyncio.gather(*calls)
    assert [s for s, _b, _r in results] == [200] * 12
    status, got, _ = await scim(gateway, "GET", f"/Users/{user['id']}")
    assert len(got["phoneNumbers"]) == 12
    assert got["meta"]["version"] == 'W/"13"'


PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


async def test_a_hundred_concurrent_member_adds_all_succeed(gateway):
    """Member adds and removes without If-Match are applied in the store's transaction, on
    whatever version is there: none is refused as concurrent (62 of 100 were)."""
    status, group, _ = await scim(gateway, "POST", "/Groups", {"displayName": "crowd"})
    assert status == 201, group
    users = await asyncio.gather(*(scim(gateway, "POST", "/Users", {"userName": f"m{i}"})
                                   for i in range(100)))
    assert all(s == 201 for s, _b, _r in users)
    ids = [b["id"] for _s, b, _r in users]
    results = await asyncio.gather(*(scim(gateway, "PATCH", f"/Groups/{group['id']}", {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}]})
        for uid in ids))
    assert sorted({s for s, _b, _r in results}) in ([200], [204], [200, 204]), [
        b for s, b, _r in results if s not in (200, 204)][:3]
    status, got, _ = await scim(gateway, "GET", f"/Groups/{group['id']}")
    assert {m["value"] for m in got["members"]} == set(ids)
    # and as many removes, with a rename among them by If-Match
    results = await asyncio.gather(*(scim(gateway, "PATCH", f"/Groups/{group['id']}", {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "remove", "path": f'members[value eq "{uid}"]'}]})
        for uid in ids[:50]))
    assert all(s in (200, 204) for s, _b, _r in results)
    status, got, _ = await scim(gateway, "GET", f"/Groups/{group['id']}")
    assert {m["value"] for m in got["members"]} == set(ids[50:])


async def test_concurrent_patches_from_two_workers_all_apply(aiohttp_client, make_config,
                                                             admin_env):
    """Two gateways on one database (two workers): 2 x 30 concurrent PATCHes of one user
    all apply."""
    from gateway.app import create_app

    cfg = await make_config()
    first = await aiohttp_client(create_app(cfg))
    second = await aiohttp_client(create_app(cfg))
    status, user, _ = await scim(first, "POST", "/Users", {"userName": "shared"})
    assert status == 201, user
    calls = [scim(first if i % 2 else second, "PATCH", f"/Users/{user['id']}", {
        "Operations": [{"op": "add", "path": "emails",
                        "value": [{"value": f"u{i}@example.com"}]}]}) for i in range(60)]
    results = await asyncio.gather(*calls)
    assert [s for s, _b, _r in results] == [200] * 60, [b for s, b, _r in results
                                                         if s != 200][:3]
    status, got, _ = await scim(second, "GET", f"/Users/{user['id']}")
    assert len(got["emails"]) == 60


async def test_a_failed_write_among_concurrent_ones_leaves_nothing_behind(tmp_path):
    """SQLite writes arriving together share one transaction, each in a savepoint of its
    own: one that fails after writing something leaves none of it, the others commit."""
    from sqlalchemy import text

    from gateway.database.engine import make_runner

    runner = make_runner(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        await runner.write(lambda conn: conn.execute(text("CREATE TABLE t (v TEXT)")))

        def insert(conn, value, fail):
            conn.execute(text("INSERT INTO t VALUES (:v)"), {"v": value})
            if fail:
                raise ValueError(f"refused {value}")
            return value

        results = await asyncio.gather(
            *(runner.write(insert, f"v{i}", i % 3 == 1) for i in range(30)),
            return_exceptions=True)
        kept = await runner.read(
            lambda conn: sorted(r[0] for r in conn.execute(text("SELECT v FROM t"))))
    finally:
        await runner.close()
    assert [str(r) for r in results if isinstance(r, Exception)] == [
        f"refused v{i}" for i in range(30) if i % 3 == 1]
    assert kept == sorted(f"v{i}" for i in range(30) if i % 3 != 1)
