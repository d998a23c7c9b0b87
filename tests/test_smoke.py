"""The gateway starts, answers health checks, and creates and finds a user over SCIM."""

from conftest import ADMIN_USER, assert_scim_error, basic, scim


async def test_health(gateway):
    resp = await gateway.get("/health")
    assert resp.status == 200
    body = await resp.json()
    assert body == {"status": "up", "stores": {"PRIMARY": "up"}}


async def test_create_then_find(gateway):
    status, body, resp = await scim(gateway, "POST", "/Users", {"userName": "bjensen"})
    assert status == 201, body
    assert resp.headers["ETag"] == 'W/"1"'
    status, found, _ = await scim(gateway, "GET", '/Users?filter=userName eq "BJensen"')
    assert status == 200
    assert found["totalResults"] == 1
    assert found["Resources"][0]["id"] == body["id"]


async def test_bootstrap_admin_has_every_permission(gateway):
    auth = basic(*ADMIN_USER)
    status, body, _ = await scim(gateway, "POST", "/Groups", {"displayName": "eng"}, auth=auth)
    assert status == 201, body
    status, body, _ = await scim(gateway, "GET", "/Users", auth=basic(ADMIN_USER[0], "nope"))
    assert_scim_error(status, body, 401)
