"""What only an LDAP user store does: its attribute map, the AD shape, entries made outside
the gateway, a directory that goes down and comes back. Against a real slapd."""

from __future__ import annotations

import asyncio

import pytest
from conftest import ADMIN, assert_scim_error, basic, scim, test_config

from gateway.app import create_app
from gateway.config import LdapConfig, StoreConfig


def ldap_store(base, domain="PRIMARY", flavor="openldap", **options) -> StoreConfig:
    users, groups = ((base.users_dn, base.groups_dn) if flavor == "openldap"
                     else (base.ad_users_dn, base.ad_groups_dn))
    cfg = LdapConfig(bind_dn=base.bind_dn, bind_password=base.password, users_base=users,
                     groups_base=groups, flavor=flavor, timeout_seconds=2,
                     **({"id_attribute": "entryUUID"} if flavor == "ad" else {}), **options)
    return StoreConfig(domain, base.url, "ldap", ldap=cfg)


@pytest.fixture
async def ldap_gateway(aiohttp_client, ldap_base, admin_env):
    async def make(**options):
        cfg = test_config({"PRIMARY": ldap_store(ldap_base, **options)})
        # the AD shape cannot take the bootstrap administrator's password (no unicodePwd
        # outside a real AD): the tests administer it with the API client
        bootstrap = options.get("flavor", "openldap") != "ad"
        return await aiohttp_client(create_app(cfg, bootstrap=bootstrap))

    return make


async def test_unmapped_attributes_are_refused_not_dropped(ldap_gateway, ldap_base):
    gw = await ldap_gateway()
    status, body, _ = await scim(gw, "POST", "/Users", {"userName": "u1", "nickName": "x",
                                                        "externalId": "e-1"})
    assert_scim_error(status, body, 400, "invalidValue")
    assert "externalId" in body["detail"] and "nickName" in body["detail"]
    status, body, _ = await scim(gw, "GET", '/Users?filter=userName eq "u1"')
    assert body["totalResults"] == 0
    # active: true is what every entry of a store without account state is
    status, body, _ = await scim(gw, "POST", "/Users", {"userName": "u2", "active": True})
    assert status == 201, body
    status, body, _ = await scim(gw, "POST", "/Users", {"userName": "u3", "active": False})
    assert_scim_error(status, body, 400, "invalidValue")


async def test_attribute_map_can_be_extended_or_told_to_ignore(ldap_gateway, ldap_base):
    gw = await ldap_gateway(attributes=(("carLicense", "externalId"),))
    status, body, _ = await scim(gw, "POST", "/Users", {"userName": "u1", "externalId": "e-1"})
    assert status == 201, body
    status, body, _ = await scim(gw, "GET", '/Users?filter=externalId eq "e-1"')
    assert [u["userName"] for u in body["Resources"]] == ["u1"]
    conn = ldap_base.connection()
    try:
        conn.search(ldap_base.users_dn, "(uid=u1)", attributes=["carLicense"])
        assert conn.entries[0].carLicense.value == "e-1"
    finally:
        conn.unbind()
    gw2 = await ldap_gateway(unmapped="ignore")
    status, body, _ = await scim(gw2, "POST", "/Users", {"userName": "u2", "nickName": "x"})
    assert status == 201 and "nickName" not in body, body


async def test_entries_made_outside_the_gateway_are_served(ldap_gateway, ldap_base):
    conn = ldap_base.connection()
    try:
        conn.add(f"uid=ext,{ldap_base.users_dn}", ["inetOrgPerson"],
                 {"uid": "ext", "cn": "Ext Ernal", "sn": "Ernal", "givenName": "Ext",
                  "mail": "ext@example.org", "userPassword": "Ext-pass-1"})
        conn.add(f"cn=ops,{ldap_base.groups_dn}", ["groupOfNames"],
                 {"cn": "ops", "member": [f"uid=ext,{ldap_base.users_dn}"]})
    finally:
        conn.unbind()
    gw = await ldap_gateway()
    status, body, _ = await scim(gw, "GET", '/Users?filter=userName eq "ext"')
    user = body["Resources"][0]
    assert user["name"] == {"formatted": "Ext Ernal", "familyName": "Ernal", "givenName": "Ext"}
    assert [e["value"] for e in user["emails"]] == ["ext@example.org"]
    assert [g["display"] for g in user["groups"]] == ["ops"]
    status, _, _ = await scim(gw, "GET", "/Me", auth=basic("ext", "Ext-pass-1"))
    assert status == 200


async def test_directory_down_and_back(ldap_gateway, ldap_base):
    gw = await ldap_gateway()
    status, made, _ = await scim(gw, "POST", "/Users", {"userName": "keep"})
    assert status == 201
    ldap_base.server.stop()
    try:
        status, body, _ = await asyncio.wait_for(
            scim(gw, "GET", f"/Users/{made['id']}"), timeout=20)
        assert_scim_error(status, body, 503)
        status, body, _ = await asyncio.wait_for(
            scim(gw, "POST", "/Users", {"userName": "lost"}), timeout=20)
        assert_scim_error(status, body, 503)
        resp = await gw.get("/health")
        assert resp.status == 503
    finally:
        ldap_base.server.start()
    status, body, _ = await scim(gw, "GET", f"/Users/{made['id']}")
    assert status == 200 and body["userName"] == "keep"
    status, body, _ = await scim(gw, "GET", '/Users?filter=userName eq "lost"')
    assert body["totalResults"] == 0
    resp = await gw.get("/health")
    assert resp.status == 200


async def test_active_directory_shape(ldap_gateway, ldap_base):
    gw = await ldap_gateway(flavor="ad")
    status, body, _ = await scim(gw, "POST", "/Users", {
        "userName": "jdoe", "active": False, "name": {"givenName": "John", "familyName": "Doe"},
        "emails": [{"value": "jdoe@corp.example", "type": "work"}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D"}})
    assert status == 201, body
    user = body
    assert user["active"] is False
    conn = ldap_base.connection()
    try:
        conn.search(ldap_base.ad_users_dn, "(sAMAccountName=jdoe)",
                    attributes=["userAccountControl", "objectClass", "department", "cn"])
        entry = conn.entries[0]
        assert int(entry.userAccountControl.value) & 2
        assert "user" in entry.objectClass.values
        assert entry.department.value == "R&D" and entry.cn.value == "jdoe"
    finally:
        conn.unbind()
    status, body, _ = await scim(gw, "GET", "/Users?filter=active eq false")
    assert [u["userName"] for u in body["Resources"]] == ["jdoe"]
    status, body, _ = await scim(gw, "PATCH", f"/Users/{user['id']}", {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": True}]})
    assert status == 200 and body["active"] is True, body
    status, body, _ = await scim(gw, "GET", "/Users?filter=active eq false")
    assert body["totalResults"] == 0
    status, group, _ = await scim(gw, "POST", "/Groups", {"displayName": "staff"})
    assert status == 201 and group.get("members", []) == [], group
    status, body, _ = await scim(gw, "PATCH", f"/Groups/{group['id']}", {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": user["id"]}]}]})
    assert status in (200, 204), body
    status, body, _ = await scim(gw, "GET", f"/Users/{user['id']}")
    assert [g["display"] for g in body["groups"]] == ["staff"]
    # unicodePwd exists only in a real Active Directory: a password is refused here, and the
    # user it came with is not left behind
    status, body, _ = await scim(gw, "POST", "/Users", {"userName": "pw", "password":
                                                        "Secret-pass-1",
                                                        "name": {"familyName": "P"}})
    assert status >= 400, body
    status, body, _ = await scim(gw, "GET", '/Users?filter=userName eq "pw"')
    assert body["totalResults"] == 0


async def test_ldap_secondary_beside_sql_primary(aiohttp_client, ldap_base, tmp_path,
                                                 admin_env):
    primary = StoreConfig("PRIMARY", f"sqlite:///{tmp_path / 'p.db'}")
    cfg = test_config({"PRIMARY": primary, "CORP": ldap_store(ldap_base, "CORP")})
    gw = await aiohttp_client(create_app(cfg))
    status, body, _ = await scim(gw, "POST", "/Users", {"userName": "CORP/alice",
                                                        "password": "Alice-pass-1"})
    assert status == 201 and body["userName"] == "CORP/alice", body
    status, body, _ = await scim(gw, "POST", "/Users", {"userName": "alice"})
    assert status == 201
    status, body, _ = await scim(gw, "GET", '/Users?filter=userName sw "alice" or '
                                 'userName sw "CORP/"&sortBy=userName')
    names = [u["userName"] for u in body["Resources"]]
    assert sorted(names) == ["CORP/alice", "alice"] and body["totalResults"] == 2
    status, _, _ = await scim(gw, "GET", "/Me", auth=basic("CORP/alice", "Alice-pass-1"))
    assert status == 200
    resp = await gw.post("/services/RemoteUserStoreManagerService", headers={
        **ADMIN, "Content-Type": "text/xml"}, data=(
        '<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:ns="http://service.ws.um.carbon.wso2.org"><e:Body><ns:listUsers>'
        '<ns:filter>CORP/*</ns:filter><ns:maxItemLimit>10</ns:maxItemLimit>'
        '</ns:listUsers></e:Body></e:Envelope>'))
    text = await resp.text()
    assert resp.status == 200 and "CORP/alice" in text and ">alice<" not in text, text


async def test_config_check_reports_each_store(ldap_base, tmp_path):
    from gateway.cli import main

    conf = tmp_path / "gw.toml"
    conf.write_text(f"""
[userstores.PRIMARY]
url = "sqlite:///{tmp_path / 'p.db'}"

[userstores.CORP]
type = "ldap"
url = "{ldap_base.url}"
bind_dn = "{ldap_base.bind_dn}"
bind_password = "{ldap_base.password}"
users_base = "{ldap_base.users_dn}"
groups_base = "{ldap_base.groups_dn}"
""")
    code = await asyncio.to_thread(_run_cli, main, ["config", "check", "--config", str(conf)])
    assert code == 0


def _run_cli(main, argv):
    try:
        return main(argv) or 0
    except SystemExit as exc:
        return exc.code



async def test_default_order_lists_use_the_directorys_list_view(ldap_gateway, ldap_base):
    """Index and cursor pages in id order are sorted, windowed and counted by slapd
    (server-side sort + VLV), and still give every user exactly once."""
    from gateway.keys import STORES

    gw = await ldap_gateway()
    made = set()
    for i in range(25):
        status, body, _ = await scim(gw, "POST", "/Users", {"userName": f"v{i:02d}"})
        made.add(body["id"])
    _, root, _ = await scim(gw, "GET", '/Users?filter=userName eq "root"')
    everyone = made | {u["id"] for u in root["Resources"]}
    seen = []
    for start in (1, 11, 21):
        status, body, _ = await scim(gw, "GET", f"/Users?startIndex={start}&count=10")
        assert status == 200 and body["totalResults"] == len(everyone)
        seen += [u["id"] for u in body["Resources"]]
    assert seen == sorted(everyone)  # id order, each once
    status, body, _ = await scim(gw, "GET", "/Users?startIndex=100&count=10")
    assert body["totalResults"] == len(everyone) and body.get("Resources", []) == []
    cursor, pages = "", []
    for _ in range(10):
        status, body, _ = await scim(gw, "GET", f"/Users?count=7&cursor={cursor}")
        pages += [u["id"] for u in body["Resources"]]
        cursor = body.get("nextCursor")
        if not cursor:
            break
    assert pages == sorted(everyone)
    assert gw.app[STORES].primary.listing.vlv is True  # the list view, not the key walk


async def test_readiness_with_a_secondary_directory_down(aiohttp_client, ldap_base, admin_env,
                                                         tmp_path):
    """A node whose PRIMARY works stays ready when a secondary directory is down, unless
    that store is marked required; /health/live never asks the stores."""
    from dataclasses import replace

    primary = StoreConfig("PRIMARY", f"sqlite:///{tmp_path / 'primary.db'}")
    directory = ldap_store(ldap_base, domain="DIRECTORY")
    gw = await aiohttp_client(create_app(test_config({"PRIMARY": primary,
                                                      "DIRECTORY": directory})))
    strict = await aiohttp_client(create_app(test_config(
        {"PRIMARY": primary, "DIRECTORY": replace(directory, required=True)}),
        bootstrap=False))
    for path in ("/health", "/health/ready", "/health/live"):
        assert (await gw.get(path)).status == 200, path
    ldap_base.server.stop()
    try:
        resp = await asyncio.wait_for(gw.get("/health/ready"), timeout=20)
        body = await resp.json()
        assert resp.status == 200, body
        assert body["required"] == ["PRIMARY"] and body["stores"]["PRIMARY"] == "up"
        assert body["stores"]["DIRECTORY"].startswith("down")
        assert (await asyncio.wait_for(gw.get("/health"), timeout=20)).status == 503
        assert (await gw.get("/health/live")).status == 200
        resp = await asyncio.wait_for(strict.get("/health/ready"), timeout=20)
        assert resp.status == 503 and (await resp.json())["required"] == ["PRIMARY",
                                                                          "DIRECTORY"]
    finally:
        ldap_base.server.start()
    assert (await strict.get("/health/ready")).status == 200
