"""WSO2's hybrid roles (``Internal/…``, ``Application/…``) hold users of every store.

They are PRIMARY groups whose memberships reference users of other stores (a SECONDARY
SQL store, an LDAP store): over SOAP (RemoteUserStoreManagerService, posted by hand)
and SCIM (a group whose members come from several stores), with the outbound
provisioning of their membership changes, and the upgrade of a database made by the
schema before them.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from conftest import assert_scim_error, basic, scim, test_config
from test_ldap_store import ldap_store
from test_outbound import connector, eventually, outbound, target_groups, target_users
from test_soap_security import V1, V2, call, client_fault, op, returns

from gateway.app import create_app
from gateway.config import StoreConfig

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
EVERYONE = "Internal/everyone"
PASSWORD = "Carol-password-1"  # noqa: S105 - a test user's


async def ok(client, body: str) -> list[str]:
    status, text, _ = await call(client, body, path=V2)
    assert status == 200, text
    return returns(text)


async def refused(client, body: str) -> str:
    status, text, _ = await call(client, body, path=V1)
    return client_fault(status, text)


def add_user(name: str, roles=None) -> str:
    return op("addUser", ("userName", name), ("credential", PASSWORD), ("roleList", roles))


def roles_of(name: str) -> str:
    return op("getRoleListOfUser", ("userName", name))


def users_of(role: str) -> str:
    return op("getUserListOfRole", ("roleName", role))


async def scim_user(client, name: str) -> dict:
    status, body, _ = await scim(client, "GET", f'/Users?filter=userName eq "{name}"')
    assert status == 200 and body["totalResults"] == 1, body
    return body["Resources"][0]


async def scim_group(client, name: str) -> dict:
    status, body, _ = await scim(client, "GET", f'/Groups?filter=displayName eq "{name}"')
    assert status == 200 and body["totalResults"] == 1, body
    return body["Resources"][0]


async def soap_round_trip(gw, other: str) -> None:
    """The SOAP role operations with a user of the store ``other`` (SECONDARY)."""
    carol, dave = f"{other}/carol", f"{other}/dave"
    for name in (carol, dave, "alice"):
        await ok(gw, add_user(name))
    await ok(gw, op("addRole", ("roleName", "Internal/x"), ("userList", [carol, "alice"])))
    assert await ok(gw, users_of("Internal/x")) == ["alice", carol]
    assert await ok(gw, roles_of(carol)) == ["Internal/x", EVERYONE]
    assert "Internal/x" in await ok(gw, op("getHybridRoles"))
    # the roles claim reads the same
    assert await ok(gw, op("getUserClaimValue", ("userName", carol),
                           ("claim", "http://wso2.org/claims/role"),
                           ("profileName", None))) == [f"Internal/x,{EVERYONE}"]
    # members changed from the role's side and from the user's
    await ok(gw, op("updateUserListOfRole", ("roleName", "Internal/x"),
                    ("deletedUsers", "alice"), ("newUsers", dave)))
    assert await ok(gw, users_of("Internal/x")) == [carol, dave]
    await ok(gw, op("addRole", ("roleName", "Application/app"), ("userList", None)))
    await ok(gw, op("updateRoleListOfUser", ("userName", carol),
                    ("deletedRoles", "Internal/x"), ("newRoles", "Application/app")))
    assert await ok(gw, roles_of(carol)) == ["Application/app", EVERYONE]
    assert await ok(gw, users_of("Internal/x")) == [dave]
    assert await ok(gw, users_of("Application/app")) == [carol]
    # a new user of that store joins a hybrid role from the start
    await ok(gw, add_user(f"{other}/erin", roles=["Internal/x"]))
    assert await ok(gw, users_of("Internal/x")) == [dave, f"{other}/erin"]
    assert await ok(gw, roles_of(f"{other}/erin")) == ["Internal/x", EVERYONE]
    # other PRIMARY roles still hold PRIMARY users only
    await ok(gw, op("addRole", ("roleName", "eng"), ("userList", "alice")))
    fault = await refused(gw, op("addRole", ("roleName", "ops"), ("userList", carol)))
    assert "PRIMARY" in fault and other in fault
    fault = await refused(gw, op("updateRoleListOfUser", ("userName", carol),
                                 ("newRoles", "eng")))
    assert "eng" in fault
    # a deleted user leaves its hybrid roles
    await ok(gw, op("deleteUser", ("userName", dave)))
    assert await ok(gw, users_of("Internal/x")) == [f"{other}/erin"]
    await ok(gw, op("deleteRole", ("roleName", "Internal/x")))
    assert await ok(gw, op("isExistingRole", ("roleName", "Internal/x"))) == ["false"]
    assert await ok(gw, roles_of(f"{other}/erin")) == [EVERYONE]
    assert await ok(gw, roles_of(carol)) == ["Application/app", EVERYONE]


async def scim_round_trip(gw, other: str) -> None:
    """The hybrid role as a SCIM group with members of the store ``other``."""
    status, carol, _ = await scim(gw, "POST", "/Users", {"userName": f"{other}/carol"})
    assert status == 201, carol
    status, bob, _ = await scim(gw, "POST", "/Users", {"userName": "bob"})
    assert status == 201, bob
    status, group, _ = await scim(gw, "POST", "/Groups", {
        "displayName": "Internal/mixed", "members": [{"value": bob["id"]}]})
    assert status == 201, group
    status, patched, _ = await scim(gw, "PATCH", f"/Groups/{group['id']}", {
        "schemas": [PATCH], "Operations": [{"op": "add", "path": "members",
                                            "value": [{"value": carol["id"]}]}]})
    assert status in (200, 204), patched
    status, got, _ = await scim(gw, "GET", f"/Groups/{group['id']}")
    assert status == 200
    assert sorted((m["value"], m["display"], m["type"]) for m in got["members"]) == sorted(
        [(bob["id"], "bob", "User"), (carol["id"], f"{other}/carol", "User")])
    listed = await scim_group(gw, "Internal/mixed")
    assert {m.get("display") for m in listed["members"]} == {"bob", f"{other}/carol"}
    status, user, _ = await scim(gw, "GET", f"/Users/{carol['id']}")
    assert [(g["value"], g["display"]) for g in user["groups"]] == [
        (group["id"], "Internal/mixed")]
    assert [g["display"] for g in (await scim_user(gw, f"{other}/carol"))["groups"]] == [
        "Internal/mixed"]
    # a non-hybrid group is refused the member; the wrong type too
    status, body, _ = await scim(gw, "POST", "/Groups", {
        "displayName": "plain", "members": [{"value": carol["id"]}]})
    assert_scim_error(status, body, 400, "invalidValue")
    status, body, _ = await scim(gw, "PATCH", f"/Groups/{group['id']}", {
        "schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": [
            {"value": carol["id"], "type": "Group"}]}]})
    assert_scim_error(status, body, 400, "invalidValue")
    for bad in ("no-such-id", "6f1c1a52-0000-4000-8000-00000000dead"):  # nowhere
        status, body, _ = await scim(gw, "PATCH", f"/Groups/{group['id']}", {
            "schemas": [PATCH], "Operations": [{"op": "add", "path": "members",
                                                "value": [{"value": bad}]}]})
        assert_scim_error(status, body, 400, "invalidValue")
    # renaming it to a plain name while it holds her is refused
    status, body, _ = await scim(gw, "PATCH", f"/Groups/{group['id']}", {
        "schemas": [PATCH], "Operations": [{"op": "replace", "path": "displayName",
                                            "value": "mixed"}]})
    assert_scim_error(status, body, 400, "invalidValue")
    # removed by her id
    status, patched, _ = await scim(gw, "PATCH", f"/Groups/{group['id']}", {
        "schemas": [PATCH], "Operations": [
            {"op": "remove", "path": f'members[value eq "{carol["id"]}"]'}]})
    assert status in (200, 204), patched
    status, got, _ = await scim(gw, "GET", f"/Groups/{group['id']}")
    assert [m["value"] for m in got["members"]] == [bob["id"]]
    status, user, _ = await scim(gw, "GET", f"/Users/{carol['id']}")
    assert user.get("groups", []) == []
    # PUT with her again
    status, put, _ = await scim(gw, "PUT", f"/Groups/{group['id']}", {
        "displayName": "Internal/mixed", "members": [{"value": carol["id"]}]})
    assert status == 200, put
    assert [(m["value"], m["display"]) for m in put["members"]] == [
        (carol["id"], f"{other}/carol")]


# SECONDARY SQL ----------------------------------------------------------------------------------
async def test_soap_hybrid_roles_hold_secondary_users(multi_gateway):
    await soap_round_trip(multi_gateway, "SECONDARY")


async def test_scim_hybrid_role_is_a_group_of_several_stores(multi_gateway):
    await scim_round_trip(multi_gateway, "SECONDARY")


async def test_nested_group_and_permissions_through_a_hybrid_role(aiohttp_client, make_config,
                                                                  admin_env):
    """A hybrid role inside a PRIMARY group: the user of another store is an indirect
    member of it; and ``[roles]`` gives a SECONDARY user what its hybrid role confers."""
    cfg = await make_config(domains=("PRIMARY", "SECONDARY"))
    gw = await aiohttp_client(create_app(replace(cfg, roles={
        "Internal/readers": ("users:list", "users:view")})))
    await ok(gw, add_user("SECONDARY/carol"))
    await ok(gw, op("addRole", ("roleName", "Internal/readers"),
                    ("userList", "SECONDARY/carol")))
    readers = await scim_group(gw, "Internal/readers")
    status, outer, _ = await scim(gw, "POST", "/Groups", {
        "displayName": "outer", "members": [{"value": readers["id"], "type": "Group"}]})
    assert status == 201, outer
    carol = await scim_user(gw, "SECONDARY/carol")
    assert sorted((g["display"], g["type"]) for g in carol["groups"]) == [
        ("Internal/readers", "direct"), ("outer", "indirect")]
    as_carol = basic("SECONDARY/carol", PASSWORD)
    status, body, _ = await scim(gw, "GET", "/Users", auth=as_carol)
    assert status == 200, body
    status, body, _ = await scim(gw, "POST", "/Users", {"userName": "x"}, auth=as_carol)
    assert status == 403, body


async def test_outbound_carries_members_of_other_stores(aiohttp_client, make_config,
                                                        admin_env, tmp_path):
    """The hybrid role goes downstream with its SECONDARY member's remote id; the member's
    own copy there stays (PRIMARY's outbox has no row for a user it does not hold)."""
    from aiohttp.test_utils import TestServer
    from outbound_peers import start_proxy

    # a downstream gateway with a SECONDARY store too, which takes SECONDARY/carol
    target = TestServer(create_app(test_config({
        domain: StoreConfig(domain, f"sqlite:///{tmp_path / domain}-target.db")
        for domain in ("PRIMARY", "SECONDARY")}), bootstrap=False))
    await target.start_server()
    _proxy, proxy_server = await start_proxy(str(target.make_url("")).rstrip("/"))
    try:
        cfg = replace(await make_config(domains=("PRIMARY", "SECONDARY")),
                      outbound=outbound(connector(proxy_server)))
        gw = await aiohttp_client(create_app(cfg))
        status, carol, _ = await scim(gw, "POST", "/Users", {"userName": "SECONDARY/carol"})
        assert status == 201

        async def provisioned():
            return (await target_users(target)).get("SECONDARY/carol")
        remote_carol = await eventually(provisioned)
        status, group, _ = await scim(gw, "POST", "/Groups", {
            "displayName": "Internal/x", "members": [{"value": carol["id"]}]})
        assert status == 201, group

        async def remote_group():
            g = (await target_groups(target)).get("Internal/x")
            return g and g.get("members") and g
        assert [m["value"] for m in (await eventually(remote_group))["members"]] == [
            remote_carol["id"]]
        status, _, _ = await scim(gw, "PATCH", f"/Groups/{group['id']}", {
            "schemas": [PATCH], "Operations": [
                {"op": "remove", "path": f'members[value eq "{carol["id"]}"]'}]})
        assert status in (200, 204)

        async def emptied():
            g = (await target_groups(target)).get("Internal/x")
            return g is not None and not g.get("members")
        await eventually(emptied)
        assert "SECONDARY/carol" in await target_users(target)
    finally:
        await proxy_server.close()
        await target.close()


# LDAP --------------------------------------------------------------------------------------------
@pytest.fixture
async def sql_and_ldap(aiohttp_client, tmp_path, ldap_base, admin_env):
    """PRIMARY on SQLite, SECONDARY on the session's slapd."""
    cfg = test_config({"PRIMARY": StoreConfig("PRIMARY", f"sqlite:///{tmp_path / 'p.db'}"),
                       "SECONDARY": ldap_store(ldap_base, "SECONDARY")})
    return await aiohttp_client(create_app(cfg))


async def test_soap_hybrid_roles_hold_ldap_users(sql_and_ldap):
    await soap_round_trip(sql_and_ldap, "SECONDARY")


async def test_scim_hybrid_role_holds_ldap_users(sql_and_ldap):
    await scim_round_trip(sql_and_ldap, "SECONDARY")


async def test_hybrid_roles_of_an_ldap_primary_hold_its_users_only(aiohttp_client, tmp_path,
                                                                   ldap_base, admin_env):
    """A directory keeps no references to another store's users: refused, nothing kept."""
    cfg = test_config({"PRIMARY": ldap_store(ldap_base),
                       "SECONDARY": StoreConfig("SECONDARY",
                                                f"sqlite:///{tmp_path / 's.db'}")})
    gw = await aiohttp_client(create_app(cfg))
    await ok(gw, add_user("SECONDARY/carol"))
    fault = await refused(gw, op("addRole", ("roleName", "Internal/x"),
                                 ("userList", "SECONDARY/carol")))
    assert "PRIMARY" in fault
    assert await ok(gw, op("isExistingRole", ("roleName", "Internal/x"))) == ["false"]


# the schema upgrade ------------------------------------------------------------------------------
V1_MEMBERSHIPS = """CREATE TABLE memberships (
    group_seq INTEGER NOT NULL REFERENCES groups (seq) ON DELETE CASCADE,
    member_id VARCHAR(36) NOT NULL,
    member_type VARCHAR(8) NOT NULL,
    PRIMARY KEY (group_seq, member_id))"""


async def test_a_database_of_the_previous_schema_is_upgraded(aiohttp_client, make_config,
                                                            admin_env, backend):
    """A database made by schema 1 (memberships without member_domain) keeps its
    memberships and takes hybrid members after the upgrade."""
    cfg = await make_config(domains=("PRIMARY", "SECONDARY"))
    url = cfg.stores["PRIMARY"].url
    gw = await aiohttp_client(create_app(cfg))
    await ok(gw, add_user("alice"))
    await ok(gw, op("addRole", ("roleName", "Internal/old"), ("userList", "alice")))
    await gw.close()
    if backend == "postgres":
        await _downgrade_pg(url)
    else:  # SQLite drops no column: the table as schema 1 made it, its rows copied
        import sqlite3

        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            rows = db.execute("SELECT group_seq, member_id, member_type "
                              "FROM memberships").fetchall()
            db.execute("DROP TABLE memberships")
            db.execute(V1_MEMBERSHIPS)
            db.execute("CREATE INDEX ix_memberships_member ON memberships (member_id)")
            db.executemany("INSERT INTO memberships VALUES (?, ?, ?)", rows)
            db.execute("UPDATE gateway_schema SET version = 1")
        db.close()
    gw = await aiohttp_client(create_app(cfg))
    assert await ok(gw, users_of("Internal/old")) == ["alice"]
    await ok(gw, add_user("SECONDARY/carol"))
    await ok(gw, op("updateUserListOfRole", ("roleName", "Internal/old"),
                    ("newUsers", "SECONDARY/carol")))
    assert await ok(gw, users_of("Internal/old")) == ["alice", "SECONDARY/carol"]
    assert await _schema_version(url) == 2


async def _downgrade_pg(url: str) -> None:
    import asyncpg
    from conftest import _pg_dsn

    conn = await asyncpg.connect(_pg_dsn(url))
    try:
        await conn.execute("ALTER TABLE memberships DROP COLUMN member_domain")
        await conn.execute("UPDATE gateway_schema SET version = 1")
    finally:
        await conn.close()


async def _schema_version(url: str) -> int:
    if url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            return db.execute("SELECT version FROM gateway_schema").fetchone()[0]
    import asyncpg
    from conftest import _pg_dsn

    conn = await asyncpg.connect(_pg_dsn(url))
    try:
        return await conn.fetchval("SELECT version FROM gateway_schema")
    finally:
        await conn.close()




# the SQL store's side of it -----------------------------------------------------------------------
async def test_sql_store_keeps_foreign_members_only_in_groups_marked_hybrid(tmp_path):
    """A member of another domain is a reference the pipeline vouches for (``hybrid``);
    the outbox gets the group's row, never one for a user this store does not hold."""
    from gateway.errors import InvalidValue
    from userstores.sql.store import SQLUserStore

    store = SQLUserStore("PRIMARY", f"sqlite:///{tmp_path / 'p.db'}")
    await store.open()
    try:
        assert store.capabilities.foreign_members
        alice = await store.create_user({"userName": "alice"}, None)
        foreign = {"value": "6f1c1a52-0000-4000-8000-000000000001", "type": "User",
                   "domain": "SECONDARY"}
        with pytest.raises(InvalidValue):
            await store.create_group({"displayName": "plain"}, [foreign])
        await store.outbox.drain(1000)
        group = await store.create_group({"displayName": "Internal/x"},
                                         [foreign, {"value": alice.id}], hybrid=True)
        assert sorted((m["value"], m.get("domain"), m.get("display"))
                      for m in group.members) == sorted(
            [(foreign["value"], "SECONDARY", None), (alice.id, None, "alice")])
        rows = await store.outbox.take(100)
        assert sorted((r.kind, r.entity_id) for r in rows) == sorted(
            [("Group", group.id), ("User", alice.id)])
        found = await store.foreign_groups_of("secondary", [foreign["value"], "other"])
        assert found == {foreign["value"]: [{"value": group.id, "display": "Internal/x",
                                             "type": "direct"}], "other": []}
        assert await store.foreign_groups_of("THIRD", [foreign["value"]]) == {
            foreign["value"]: []}
        await store.outbox.drain(1000)
        await store.change_members(group.id, expected_version=None,
                                   remove=[foreign["value"]])
        assert [(r.kind, r.entity_id) for r in await store.outbox.take(100)] == [
            ("Group", group.id)]
        assert (await store.foreign_groups_of("SECONDARY", [foreign["value"]])) == {
            foreign["value"]: []}
        # alice's own groups are unchanged by references to others
        assert [g["display"] for g in (await store.get_user(alice.id)).groups] == [
            "Internal/x"]
    finally:
        await store.close()
