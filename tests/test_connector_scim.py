"""The SCIM outbound connector (``connectors.scim``) against real peers on loopback.

The target is a second gateway (``create_app`` on its own SQLite store, served on
127.0.0.1), spoken to over SCIM 2.0 (``/scim2``) and SCIM 1.1 (``/wso2/scim``); what
arrived is read back from it over SCIM 2.0. Faults come from ``Peer``, a small aiohttp
server that records every request and either answers from the test's script or
forwards to the real target (a proxy that can lose, delay or rewrite answers).
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import aiohttp
import orjson
import pytest
from aiohttp import web
from conftest import ADMIN_CLIENT, basic, scim, test_config

from connectors.base import Action, Change, Delivered, DeliveryError, EntityKind
from connectors.config import ConnectorConfig
from connectors.registry import build
from connectors.scim import ScimConnector
from connectors.scim_http import ScimDeliveryError, retry_after
from gateway.app import create_app
from gateway.config import StoreConfig
from gateway.errors import ConfigError
from gateway.outbound.config import parse_outbound

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ENTERPRISE11 = "urn:scim:schemas:extension:enterprise:1.0"
CORE11 = "urn:scim:schemas:core:1.0"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
PATHS = {"scim2": "/scim2", "scim11": "/wso2/scim"}
USER, GROUP = EntityKind.USER, EntityKind.GROUP


# peers -----------------------------------------------------------------------------------------
@dataclass
class Seen:
    method: str
    path: str
    query: dict
    headers: dict
    body: bytes

    def json(self):
        return orjson.loads(self.body)


Answer = Callable[[Seen], Awaitable[web.StreamResponse | None]]


class Peer:
    """Records every request; ``answer`` may reply; otherwise the request goes upstream
    (the real target) when there is one, else 404."""

    def __init__(self, upstream: str | None = None):
        self.upstream = upstream
        self.seen: list[Seen] = []
        self.answer: Answer | None = None
        self.session: aiohttp.ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)

        async def session_ctx(_app):
            self.session = aiohttp.ClientSession()
            yield
            await self.session.close()

        app.cleanup_ctx.append(session_ctx)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        seen = Seen(request.method, request.path, dict(request.query), dict(request.headers),
                    await request.read())
        self.seen.append(seen)
        if self.answer is not None:
            response = await self.answer(seen)
            if response is not None:
                return response
        if self.upstream is None:
            return web.json_response({"detail": "no such thing"}, status=404)
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() in ("authorization", "content-type", "accept")}
        async with self.session.request(request.method, self.upstream + request.path_qs,
                                        data=seen.body or None, headers=headers,
                                        allow_redirects=False) as up:
            body = await up.read()
            out = {k: v for k, v in up.headers.items()
                   if k.lower() in ("content-type", "location", "etag")}
            return web.Response(status=up.status, body=body, headers=out)


def json_reply(body, status: int = 200, **headers) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status,
                        content_type="application/scim+json", headers=headers)


def scripted(*replies: web.Response | None, default=None) -> Answer:
    """Answer the first requests with ``replies`` in order (None: forward), then ``default``."""
    queue = list(replies)

    async def answer(_seen: Seen):
        return queue.pop(0) if queue else default

    return answer


# fixtures --------------------------------------------------------------------------------------
@pytest.fixture
async def target(aiohttp_server, tmp_path, admin_env):
    """A second gateway, the outbound target, on 127.0.0.1."""
    cfg = test_config({"PRIMARY": StoreConfig("PRIMARY", f"sqlite:///{tmp_path / 'target.db'}")})
    return await aiohttp_server(create_app(cfg))


@pytest.fixture
async def reader(aiohttp_client, target):
    """A SCIM 2.0 client on the target, to check what arrived."""
    return await aiohttp_client(target)


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture(params=["scim2", "scim11"])
def version(request) -> str:
    return request.param


def base_of(server) -> str:
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
def connect(target, session, version):
    """A connector to the target (or to ``url``) in the version under test."""

    def make(url: str | None = None, **settings) -> ScimConnector:
        settings.setdefault("auth", "basic")
        settings.setdefault("username", ADMIN_CLIENT[0])
        settings.setdefault("password", ADMIN_CLIENT[1])
        settings.setdefault("timeout_seconds", 5.0)
        cfg = ConnectorConfig(name="downstream", type=settings.pop("type", version),
                              url=url or base_of(target) + PATHS[version], **settings)
        return ScimConnector(cfg, session)

    return make


@pytest.fixture
async def peer(aiohttp_server):
    """A Peer with no upstream: everything it answers comes from the test."""
    p = Peer()
    p.server = await aiohttp_server(p.app())
    p.url = base_of(p.server)
    return p


@pytest.fixture
async def proxy(aiohttp_server, target):
    """A Peer in front of the real target."""
    p = Peer(upstream=base_of(target))
    p.server = await aiohttp_server(p.app())
    p.url = base_of(p.server)
    return p


# changes ---------------------------------------------------------------------------------------
def alice(**over) -> dict:
    resource = {
        "schemas": [CORE_USER, ENTERPRISE], "id": "local-alice", "userName": "alice",
        "name": {"givenName": "Alice", "familyName": "Liddell"},
        "displayName": "Alice Liddell", "title": "Engineer", "active": True,
        "emails": [{"value": "alice@home.example", "type": "home"},
                   {"value": "alice@work.example", "type": "work", "primary": True}],
        ENTERPRISE: {"employeeNumber": "42", "department": "R&D"},
        "groups": [{"value": "local-g", "display": "staff", "type": "direct"}],
        "meta": {"resourceType": "User", "created": "2026-01-01T00:00:00Z",
                 "lastModified": "2026-01-01T00:00:00Z", "version": 'W/"1"'},
    }
    resource.update(over)
    return resource


def user_change(action=Action.CREATE, resource=None, *, name="alice", entity_id="local-alice",
                password=None) -> Change:
    if resource is None and action != Action.DELETE and action != Action.PASSWORD:
        resource = alice(userName=name, id=entity_id)
    return Change(USER, action, entity_id, "PRIMARY", resource, name, password=password)


def group_change(action=Action.CREATE, *, name="staff", members=(), remote=None,
                 entity_id="local-staff") -> Change:
    resource = None if action == Action.DELETE else {
        "schemas": [CORE_GROUP], "id": entity_id, "displayName": name,
        "members": [{"value": m, "type": "User", "display": m} for m in members],
        "meta": {"resourceType": "Group"}}
    return Change(GROUP, action, entity_id, "PRIMARY", resource, name, member_remote_ids=remote)


async def remote_user(reader, rid: str) -> dict | None:
    status, body, _ = await scim(reader, "GET", f"/Users/{rid}")
    assert status in (200, 404), body
    return body if status == 200 else None


async def count_named(reader, kind: EntityKind, name: str) -> int:
    attr = "userName" if kind == USER else "displayName"
    status, body, _ = await scim(reader, "GET", f'/{kind}s?filter={attr} eq "{name}"')
    assert status == 200, body
    return body["totalResults"]


async def fails(coro) -> ScimDeliveryError:
    with pytest.raises(DeliveryError) as info:
        await coro
    assert isinstance(info.value, ScimDeliveryError)
    return info.value


# the real target: users --------------------------------------------------------------------
async def test_create_returns_the_remote_id_and_the_user_arrives(connect, reader):
    conn = connect()
    done = await conn.deliver(user_change(), None)
    assert isinstance(done, Delivered) and done.remote_id
    assert done.remote_id != "local-alice"  # the target's id, not ours
    body = await remote_user(reader, done.remote_id)
    assert body["userName"] == "alice"
    assert body["name"] == {"givenName": "Alice", "familyName": "Liddell"}
    assert body["displayName"] == "Alice Liddell" and body["title"] == "Engineer"
    assert body["active"] is True
    assert {e["value"] for e in body["emails"]} == {"alice@home.example", "alice@work.example"}
    assert body[ENTERPRISE]["employeeNumber"] == "42"
    assert body[ENTERPRISE]["department"] == "R&D"
    assert "groups" not in body or body["groups"] == []  # memberships travel on groups
    assert await conn.lookup(USER, "alice") == done.remote_id


@pytest.mark.parametrize("mode", ["put", "patch"])
async def test_update_by_remote_id(connect, reader, mode):
    conn = connect(options={"update": mode})
    rid = (await conn.deliver(user_change(), None)).remote_id
    changed = alice(title="Architect", nickName="Al",
                    emails=[{"value": "al@work.example", "type": "work", "primary": True}])
    del changed["displayName"]
    done = await conn.deliver(user_change(Action.UPDATE, changed), rid)
    assert done.remote_id == rid
    body = await remote_user(reader, rid)
    assert body["title"] == "Architect" and body["nickName"] == "Al"
    assert [e["value"] for e in body["emails"]] == ["al@work.example"]  # replaced, not added
    if mode == "put":  # PUT replaces: what the resource no longer has is gone
        assert "displayName" not in body
    else:  # PATCH carries no "before": attributes removed locally stay (documented)
        assert body["displayName"] == "Alice Liddell"
    assert await count_named(reader, USER, "alice") == 1


async def test_update_without_remote_id_finds_the_user_by_name(connect, reader):
    conn = connect()
    rid = (await conn.deliver(user_change(), None)).remote_id
    done = await conn.deliver(user_change(Action.UPDATE, alice(title="CTO")), None)
    assert done.remote_id == rid
    assert (await remote_user(reader, rid))["title"] == "CTO"


async def test_create_retried_does_not_duplicate(connect, reader):
    conn = connect()
    first = await conn.deliver(user_change(), None)
    # the first answer was lost: the dispatcher has no remote id and delivers again
    again = await conn.deliver(user_change(resource=alice(title="Second try")), None)
    assert again.remote_id == first.remote_id
    assert await count_named(reader, USER, "alice") == 1
    assert (await remote_user(reader, first.remote_id))["title"] == "Second try"


async def test_create_answered_409_is_looked_up_and_updated(connect, proxy, reader, version):
    """The target already has the user (a create whose answer was lost): the POST answers
    a real 409, the user is looked up and updated, never created twice."""
    conn = connect()
    rid = (await conn.deliver(user_change(), None)).remote_id
    via_proxy = connect(url=proxy.url + PATHS[version])
    done = await via_proxy.deliver(user_change(resource=alice(title="After 409")), None)
    assert done.remote_id == rid
    assert [s.method for s in proxy.seen] == ["POST", "GET", "PUT"]
    assert await count_named(reader, USER, "alice") == 1
    assert (await remote_user(reader, rid))["title"] == "After 409"


async def test_update_of_a_vanished_user_creates_it_again(connect, reader):
    conn = connect()
    old = (await conn.deliver(user_change(), None)).remote_id
    status, _, _ = await scim(reader, "DELETE", f"/Users/{old}")  # removed at the target
    assert status == 204
    done = await conn.deliver(user_change(Action.UPDATE, alice(title="Back")), old)
    assert done.remote_id and done.remote_id != old
    assert (await remote_user(reader, done.remote_id))["title"] == "Back"
    assert await remote_user(reader, old) is None


async def test_delete(connect, reader):
    conn = connect()
    rid = (await conn.deliver(user_change(), None)).remote_id
    assert await conn.deliver(user_change(Action.DELETE), rid) == Delivered(None)
    assert await remote_user(reader, rid) is None
    # delivered again (the first answer was lost): already gone is success
    assert await conn.deliver(user_change(Action.DELETE), rid) == Delivered(None)
    # without a remote id: found by name, or nothing to do
    rid = (await conn.deliver(user_change(), None)).remote_id
    assert await conn.deliver(user_change(Action.DELETE), None) == Delivered(None)
    assert await remote_user(reader, rid) is None
    assert await conn.deliver(user_change(Action.DELETE), None) == Delivered(None)
    assert await conn.lookup(USER, "alice") is None


async def test_lookup(connect, reader):
    conn = connect()
    name = "o'hara+\"q\"@example.com"  # quotes, '+' and '@' survive the filter and the URL
    rid = (await conn.deliver(user_change(name=name, entity_id="l-2"), None)).remote_id
    await conn.deliver(user_change(), None)
    assert await conn.lookup(USER, name) == rid
    assert await conn.lookup(USER, name.upper()) == rid  # userName is not case-exact
    assert await conn.lookup(USER, "nobody") is None
    assert await conn.lookup(GROUP, "alice") is None  # a user is no group
    grid = (await conn.deliver(group_change(remote={}), None)).remote_id
    assert await conn.lookup(GROUP, "staff") == grid


# groups ----------------------------------------------------------------------------------------
async def test_groups_with_member_remote_ids(connect, reader):
    conn = connect()
    r1 = (await conn.deliver(user_change(name="u1", entity_id="l-u1"), None)).remote_id
    r2 = (await conn.deliver(user_change(name="u2", entity_id="l-u2"), None)).remote_id
    # l-u3 is not provisioned at this connector: left out
    change = group_change(members=("l-u1", "l-u2", "l-u3"), remote={"l-u1": r1, "l-u2": r2})
    grid = (await conn.deliver(change, None)).remote_id
    status, body, _ = await scim(reader, "GET", f"/Groups/{grid}")
    assert status == 200 and body["displayName"] == "staff"
    assert sorted(m["value"] for m in body["members"]) == sorted([r1, r2])
    assert [g["value"] for g in (await remote_user(reader, r1))["groups"]] == [grid]
    # a member leaves
    change = group_change(Action.UPDATE, members=("l-u1",), remote={"l-u1": r1})
    assert (await conn.deliver(change, grid)).remote_id == grid
    status, body, _ = await scim(reader, "GET", f"/Groups/{grid}")
    assert [m["value"] for m in body["members"]] == [r1]
    # the last one leaves
    await conn.deliver(group_change(Action.UPDATE, remote={}), grid)
    status, body, _ = await scim(reader, "GET", f"/Groups/{grid}")
    assert not body.get("members")
    # created twice: no duplicate; deleted by name
    await conn.deliver(group_change(remote={}), None)
    assert await count_named(reader, GROUP, "staff") == 1
    assert await conn.deliver(group_change(Action.DELETE), None) == Delivered(None)
    assert await count_named(reader, GROUP, "staff") == 0


async def test_group_update_by_patch(connect, reader):
    conn = connect(options={"update": "patch"})
    r1 = (await conn.deliver(user_change(name="u1", entity_id="l-u1"), None)).remote_id
    r2 = (await conn.deliver(user_change(name="u2", entity_id="l-u2"), None)).remote_id
    grid = (await conn.deliver(group_change(members=("l-u1",), remote={"l-u1": r1}),
                               None)).remote_id
    change = group_change(Action.UPDATE, name="staff2", members=("l-u2",), remote={"l-u2": r2})
    assert (await conn.deliver(change, grid)).remote_id == grid
    status, body, _ = await scim(reader, "GET", f"/Groups/{grid}")
    assert body["displayName"] == "staff2"
    assert [m["value"] for m in body["members"]] == [r2]  # members replaced, not added
    await conn.deliver(group_change(Action.UPDATE, name="staff2", remote={}), grid)
    status, body, _ = await scim(reader, "GET", f"/Groups/{grid}")
    assert not body.get("members")


# passwords -------------------------------------------------------------------------------------
async def can_log_in(reader, name: str, password: str) -> bool:
    status, _, _ = await scim(reader, "GET", "/Me", auth=basic(name, password))
    assert status in (200, 401)
    return status == 200


async def test_passwords_provisioned(connect, reader):
    conn = connect(provision_passwords=True)
    rid = (await conn.deliver(user_change(password="First-Passw0rd!"), None)).remote_id
    assert await can_log_in(reader, "alice", "First-Passw0rd!")
    # a password change alone (no resource): PATCH of the password only
    change = user_change(Action.PASSWORD, password="Second-Passw0rd!")
    assert (await conn.deliver(change, rid)).remote_id == rid
    assert await can_log_in(reader, "alice", "Second-Passw0rd!")
    assert not await can_log_in(reader, "alice", "First-Passw0rd!")
    # without a remote id: found by name
    await conn.deliver(user_change(Action.PASSWORD, password="Third-Passw0rd!"), None)
    assert await can_log_in(reader, "alice", "Third-Passw0rd!")
    # a user the target does not have: permanent
    err = await fails(conn.deliver(user_change(Action.PASSWORD, name="ghost",
                                               password="Whatever-1!"), None))
    assert err.retryable is False


async def test_passwords_not_provisioned(connect, reader):
    conn = connect()  # provision_passwords off: Change.password is not sent
    rid = (await conn.deliver(user_change(password="First-Passw0rd!"), None)).remote_id
    assert not await can_log_in(reader, "alice", "First-Passw0rd!")
    # a password change is then nothing to send
    change = user_change(Action.PASSWORD, password="Second-Passw0rd!")
    assert (await conn.deliver(change, rid)).remote_id == rid
    assert not await can_log_in(reader, "alice", "Second-Passw0rd!")


async def test_default_password_on_create_only(connect, reader):
    conn = connect(default_password="Default-Passw0rd!")
    rid = (await conn.deliver(user_change(), None)).remote_id
    assert await can_log_in(reader, "alice", "Default-Passw0rd!")
    # the user changes it at the target; an update must not reset it
    status, body, _ = await scim(reader, "PATCH", f"/Users/{rid}", {
        "schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "password",
                                               "value": "Own-Passw0rd!"}]})
    assert status == 200, body
    await conn.deliver(user_change(Action.UPDATE, alice(title="x")), rid)
    await conn.deliver(user_change(Action.CREATE, alice(title="y")), None)  # retried create
    assert await can_log_in(reader, "alice", "Own-Passw0rd!")
    # a provisioned password wins over the default
    conn = connect(default_password="Default-Passw0rd!", provision_passwords=True)
    await conn.deliver(user_change(name="bob", entity_id="l-bob", password="Bob-Passw0rd!"),
                       None)
    assert await can_log_in(reader, "bob", "Bob-Passw0rd!")
    assert not await can_log_in(reader, "bob", "Default-Passw0rd!")


# the attributes mapping ------------------------------------------------------------------
async def test_attributes_mapping(connect, reader, version):
    cost_center = (f"{ENTERPRISE}:costCenter" if version == "scim2"
                   else f"{ENTERPRISE11}:costCenter")  # the target's own names
    conn = connect(attributes=(
        ("externalId", "id"), ("nickName", "userName"), ("title", ""),
        ("userType", "'contractor'"), ("name.formatted", "displayName"),
        (cost_center, "emails.value"), ("profileUrl", "noSuchAttribute"),
        ("locale", "domain"),
    ))
    rid = (await conn.deliver(user_change(), None)).remote_id
    body = await remote_user(reader, rid)
    assert body["externalId"] == "local-alice"
    assert body["nickName"] == "alice"
    assert "title" not in body
    assert body["userType"] == "contractor"
    assert body["name"]["formatted"] == "Alice Liddell"
    assert body["name"]["givenName"] == "Alice"  # the rest of name is kept
    assert body[ENTERPRISE]["costCenter"] == "alice@work.example"  # the primary e-mail
    assert "profileUrl" not in body
    assert body["locale"] == "PRIMARY"


def test_attributes_mapping_is_checked():
    for bad in ((("id", "userName"),), (("a.b.c", "userName"),), (("x", "a.b.c"),),
                (("", "userName"),)):
        cfg = ConnectorConfig(name="c", type="scim2", url="http://127.0.0.1:1/scim2",
                              attributes=bad)
        with pytest.raises(ConfigError):
            ScimConnector(cfg, None)


# authentication ----------------------------------------------------------------------------
async def test_basic_auth_refused_is_permanent(connect):
    err = await fails(connect(password="wrong").deliver(user_change(), None))
    assert err.retryable is False and err.target_status == 401


@pytest.mark.parametrize("auth, settings, header, value", [
    ("bearer", {"token": "tok-123"}, "Authorization", "Bearer tok-123"),
    ("api_key", {"api_key": "k-456"}, "X-API-Key", "k-456"),
    ("api_key", {"api_key": "k-789", "api_key_header": "X-Target-Key"}, "X-Target-Key", "k-789"),
    ("basic", {"username": "zoë", "password": "pä:ss"}, "Authorization",
     "Basic " + base64.b64encode("zoë:pä:ss".encode()).decode()),
    ("none", {}, "Authorization", None),
])
async def test_auth_headers(connect, peer, version, auth, settings, header, value):
    async def answer(seen: Seen):
        if seen.headers.get(header) != value:
            return json_reply({"detail": "bad credentials"}, 401)
        return json_reply({"schemas": [], "totalResults": 0, "Resources": []})

    peer.answer = answer
    conn = connect(url=peer.url + "/scim", **{"auth": auth, "username": None, "password": None,
                                              **settings})
    assert await conn.lookup(USER, "alice") is None
    assert peer.seen[0].headers.get(header) == value
    if value is None:
        assert "Authorization" not in peer.seen[0].headers


def test_auth_settings_are_checked():
    for settings in ({"auth": "basic"}, {"auth": "bearer"}, {"auth": "api_key"},
                     {"auth": "wss", "username": "u"}, {"auth": "bearer", "token": "a\r\nX: y"},
                     {"type": "spml"}, {"url": "ftp://127.0.0.1/x"},
                     {"options": {"update": "merge"}}, {"options": {"colour": "red"}}):
        cfg = ConnectorConfig(**{"name": "c", "type": "scim2",
                                 "url": "http://127.0.0.1:1/scim2", **settings})
        with pytest.raises(ConfigError):
            ScimConnector(cfg, None)


async def test_built_from_configuration_by_the_registry(target, session, reader):
    out = parse_outbound({"connectors": [{
        "name": "down", "type": "scim11", "url": base_of(target) + "/wso2/scim/",
        "auth": "basic", "username": ADMIN_CLIENT[0], "password": ADMIN_CLIENT[1],
        "attributes": {"externalId": "id"}, "options": {"update": "patch"}}]})
    conn = build(out.connectors[0], session)
    assert isinstance(conn, ScimConnector) and conn.name == "down"
    rid = (await conn.deliver(user_change(), None)).remote_id
    assert (await remote_user(reader, rid))["externalId"] == "local-alice"
    await conn.close()


# what goes on the wire -------------------------------------------------------------------
async def test_wire_format(connect, peer, version):
    created = {"id": "r-1", "userName": "alice"}

    async def answer(seen: Seen):
        if seen.method == "GET":
            return json_reply({"totalResults": 0, "Resources": []})
        return json_reply(created, 201)

    peer.answer = answer
    conn = connect(url=peer.url + "/scim")
    change = group_change(members=("l-1", "l-2", "l-1"), remote={"l-1": "r-u1"})
    await conn.deliver(change, None)  # a create: straight to POST
    await conn.deliver(user_change(), None)
    await conn.lookup(EntityKind.GROUP, "staff")
    await conn.lookup(EntityKind.USER, "alice")
    post_group, post_user, get_group, get_user = peer.seen
    eq = "eq" if version == "scim2" else "Eq"
    assert get_group.path == "/scim/Groups" and get_user.path == "/scim/Users"
    assert get_group.query["filter"] == f'displayName {eq} "staff"'
    assert get_user.query["filter"] == f'userName {eq} "alice"'
    ctype = "application/scim+json" if version == "scim2" else "application/json"
    assert post_user.headers["Content-Type"] == ctype
    group, user = post_group.json(), post_user.json()
    assert group["members"] == [{"value": "r-u1"}]  # mapped, unprovisioned ones left out
    for held in ("id", "meta", "groups", "password"):
        assert held not in user
    if version == "scim2":
        assert group["schemas"] == [CORE_GROUP]
        assert user["schemas"] == [CORE_USER, ENTERPRISE]
        assert user[ENTERPRISE] == {"employeeNumber": "42", "department": "R&D"}
    else:
        assert group["schemas"] == [CORE11]
        assert user["schemas"] == [CORE11, ENTERPRISE11]
        assert user[ENTERPRISE11] == {"employeeNumber": "42", "department": "R&D"}


async def test_members_unknown_are_not_sent(connect, peer):
    peer.answer = scripted(default=json_reply({"id": "g-1"}, 201))
    conn = connect(url=peer.url + "/scim")
    await conn.deliver(group_change(members=("l-1",), remote=None), None)
    assert "members" not in peer.seen[0].json()


async def test_scim11_empty_list_as_404_is_not_found(connect, peer):
    """charon 1.x answers a filter matching nothing with 404 and an Errors body."""
    peer.answer = scripted(json_reply({"Errors": [{"description": "No results", "code": "404"}]},
                                      404))
    assert await connect(url=peer.url + "/scim", type="scim11").lookup(USER, "x") is None
    peer.answer = scripted(json_reply({"detail": "no such endpoint"}, 404))
    err = await fails(connect(url=peer.url + "/scim", type="scim2").lookup(USER, "x"))
    assert err.retryable is False and err.target_status == 404


# faults ----------------------------------------------------------------------------------------
async def test_target_down_is_retryable(connect):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conn = connect(url=f"http://127.0.0.1:{port}/scim2")
    err = await fails(conn.deliver(user_change(), None))
    assert err.retryable is True and err.target_status is None
    err = await fails(conn.health())
    assert err.retryable is True


async def test_slow_target_times_out_retryable(connect, peer):
    async def slow(_seen):
        await asyncio.sleep(3)
        return json_reply({"totalResults": 0, "Resources": []})

    peer.answer = slow
    conn = connect(url=peer.url + "/scim", timeout_seconds=0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    err = await fails(conn.deliver(user_change(), "r-1"))
    assert loop.time() - started < 2
    assert err.retryable is True and "0.3s" in err.detail


@pytest.mark.parametrize("status, retryable", [
    (500, True), (502, True), (503, True), (504, True), (408, True),
    (400, False), (401, False), (403, False), (413, False), (422, False), (501, False),
])
async def test_status_on_update(connect, peer, status, retryable):
    peer.answer = scripted(json_reply({"detail": f"status {status} here", "status": str(status)},
                                      status))
    err = await fails(connect(url=peer.url + "/scim").deliver(user_change(Action.UPDATE),
                                                                 "r-1"))
    assert err.retryable is retryable and err.target_status == status
    assert f"status {status} here" in err.detail and err.retry_after is None
    assert err.status == 502  # as a gateway error, it is a bad gateway


@pytest.mark.parametrize("value, expected", [("7", 7.0), ("http-date", 30.0)])
async def test_429_with_retry_after(connect, peer, value, expected):
    if value == "http-date":
        value = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    peer.answer = scripted(json_reply({"detail": "slow down"}, 429, **{"Retry-After": value}))
    err = await fails(connect(url=peer.url + "/scim").deliver(user_change(), None))
    assert err.retryable is True and err.target_status == 429
    assert err.retry_after == pytest.approx(expected, abs=2)


def test_retry_after_forms():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert retry_after({"Retry-After": "120"}, now) == 120
    assert retry_after({"Retry-After": "Thu, 01 Jan 2026 00:01:00 GMT"}, now) == 60
    assert retry_after({"Retry-After": "Wed, 31 Dec 2025 00:00:00 GMT"}, now) == 0
    assert retry_after({"Retry-After": "soon"}, now) is None
    assert retry_after({}, now) is None


async def test_503_with_retry_after_and_scim11_error_body(connect, peer):
    peer.answer = scripted(json_reply({"Errors": [{"description": "maintenance",
                                                   "code": "503"}]}, 503, **{"Retry-After": "5"}))
    err = await fails(connect(url=peer.url + "/scim", type="scim11").deliver(
        user_change(Action.DELETE), "r-1"))
    assert err.retryable is True and err.retry_after == 5 and "maintenance" in err.detail


async def test_409_on_update_and_delete_is_retryable(connect, peer):
    peer.answer = scripted(json_reply({"detail": "busy", "scimType": "uniqueness"}, 409))
    conn = connect(url=peer.url + "/scim")
    err = await fails(conn.deliver(user_change(Action.UPDATE), "r-1"))
    assert err.retryable is True and err.target_status == 409 and "uniqueness" in err.detail
    peer.answer = scripted(json_reply({"detail": "busy"}, 409))
    err = await fails(conn.deliver(user_change(Action.DELETE), "r-1"))
    assert err.retryable is True and err.target_status == 409


async def test_404_on_create_is_permanent(connect, peer):
    peer.answer = scripted(json_reply({"detail": "no /Users here"}, 404))
    err = await fails(connect(url=peer.url + "/scim").deliver(user_change(), None))
    assert err.retryable is False and err.target_status == 404
    assert [s.method for s in peer.seen] == ["POST"]  # no loop


async def test_redirect_is_permanent_and_not_followed(connect, peer):
    peer.answer = scripted(web.Response(status=302, headers={"Location": "http://127.0.0.1:9/x"}))
    err = await fails(connect(url=peer.url + "/scim").deliver(user_change(Action.DELETE), "r-1"))
    assert err.retryable is False and err.target_status == 302 and "redirect" in err.detail
    assert len(peer.seen) == 1


EMPTY = {"totalResults": 0, "Resources": []}


async def test_malformed_201_uses_location(connect, peer):
    peer.answer = scripted(web.Response(
        status=201, body=b"<html>created</html>", headers={"Location": "/scim/Users/r%2F77"}))
    done = await connect(url=peer.url + "/scim").deliver(user_change(), None)
    assert done == Delivered("r/77")


async def test_malformed_201_without_location_is_looked_up(connect, peer):
    found = {"totalResults": 1, "Resources": [{"id": "r-88", "userName": "alice"}]}
    peer.answer = scripted(web.Response(status=201, body=b"{not json"), json_reply(found))
    done = await connect(url=peer.url + "/scim").deliver(user_change(), None)
    assert done == Delivered("r-88")


async def test_malformed_201_not_found_is_retryable(connect, peer):
    peer.answer = scripted(web.Response(status=201, body=b"{not json"),
                           default=json_reply(EMPTY))
    err = await fails(connect(url=peer.url + "/scim").deliver(user_change(), None))
    assert err.retryable is True and err.target_status == 201 and "without an id" in err.detail


async def test_malformed_lookup_is_retryable(connect, peer):
    peer.answer = scripted(web.Response(status=200, body=b"<html>login page</html>"))
    err = await fails(connect(url=peer.url + "/scim").lookup(USER, "alice"))
    assert err.retryable is True
    peer.answer = scripted(json_reply({"unexpected": True}))
    err = await fails(connect(url=peer.url + "/scim").lookup(USER, "alice"))
    assert err.retryable is True


async def test_lookup_prefers_the_exact_name(connect, peer):
    peer.answer = scripted(json_reply({"totalResults": 3, "Resources": [
        {"id": "r-1", "userName": "ALICE"}, {"id": "r-2", "userName": "alice"},
        {"id": "r-3", "userName": "alice2"}]}))
    assert await connect(url=peer.url + "/scim").lookup(USER, "alice") == "r-2"
    peer.answer = scripted(json_reply({"totalResults": 1, "Resources": [
        {"id": "r-9", "userName": "alicia"}]}))
    assert await connect(url=peer.url + "/scim").lookup(USER, "alice") is None


async def test_vanishing_target_is_bounded(connect, peer):
    """Every update answers 404 and every create 409: the delivery stops, retryable."""
    async def answer(seen: Seen):
        if seen.method == "GET":
            return json_reply({"totalResults": 1, "Resources": [{"id": "r-1",
                                                                 "userName": "alice"}]})
        if seen.method == "POST":
            return json_reply({"detail": "exists"}, 409)
        return json_reply({"detail": "gone"}, 404)

    peer.answer = answer
    err = await fails(connect(url=peer.url + "/scim").deliver(user_change(Action.UPDATE), "r-1"))
    assert err.retryable is True and len(peer.seen) < 12


# health ----------------------------------------------------------------------------------------
async def test_health(connect, peer, version):
    text = await connect().health()
    assert text.startswith("SCIM 2.0" if version == "scim2" else "SCIM 1.1")
    assert "reachable" in text
    peer.answer = scripted(json_reply({"detail": "down"}, 503))
    err = await fails(connect(url=peer.url + "/scim").health())
    assert err.retryable is True and err.target_status == 503
    path = "/scim/ServiceProviderConfig" + ("s" if version == "scim11" else "")
    assert peer.seen[0].path == path


async def test_resource_not_json_is_permanent(connect, peer):
    peer.answer = scripted(default=json_reply(EMPTY))
    change = user_change(Action.UPDATE, alice(title={"a", "set"}))
    err = await fails(connect(url=peer.url + "/scim").deliver(change, "r-1"))
    assert err.retryable is False and "JSON" in err.detail
    assert peer.seen == []  # nothing was sent


def self_signed(tmp_path) -> ssl.SSLContext:
    """A server TLS context with a self-signed certificate for 127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=1)).not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert_file, key_file)
    return ctx


async def test_tls_verification(connect, aiohttp_server, tmp_path):
    tls = Peer()
    tls.answer = scripted(default=json_reply({"patch": {"supported": True}}))
    server = await aiohttp_server(tls.app(), ssl=self_signed(tmp_path))
    url = str(server.make_url("/scim"))
    assert url.startswith("https://127.0.0.1:")
    # verify_tls on (the default): an unknown certificate is refused, permanently
    err = await fails(connect(url=url).health())
    assert err.retryable is False and err.target_status is None
    assert tls.seen == []  # nothing reached the server, credentials included
    # verify_tls off: accepted
    assert "supports patch" in await connect(url=url, verify_tls=False).health()
    assert len(tls.seen) == 1
