"""The SPML 2.0 connector against a real SPML target on loopback (tests/spml_target.py).

The target validates every request against the OASIS schemas and answers per
the spec; each test also checks that it rejected nothing and that its own
replies were valid.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import aiohttp
import pytest
from lxml import etree
from spml_target import DATA, DSML, ERROR_CODES, PASSWORD, SOAP, SPML, SpmlTarget, validate

from connectors import spml_wire
from connectors.base import Action, Change, Delivered, DeliveryError, EntityKind
from connectors.config import ConnectorConfig
from connectors.registry import build
from connectors.spml import SpmlConnector
from gateway.errors import ConfigError

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
USER, GROUP = EntityKind.USER, EntityKind.GROUP
REPO = Path(__file__).resolve().parent.parent

ALICE = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
    "id": "u-alice",
    "userName": "alice",
    "displayName": "Alice",
    "title": "Explorer",
    "name": {"formatted": "Alice Liddell", "familyName": "Liddell", "givenName": "Alice"},
    "emails": [{"value": "alice@work.example", "type": "work", "primary": True},
               {"value": "alice@home.example", "type": "home"}],
    "phoneNumbers": [{"value": "+44 1865 000000", "type": "work"}],
    ENTERPRISE: {"employeeNumber": "701", "department": "Looking Glass"},
    "active": True,
}
BASE_OPTIONS = {"target_id": "target1", "container_id": "ou=people",
                "group_container_id": "ou=groups"}


def user(action=Action.CREATE, name="alice", resource=ALICE, password=None) -> Change:
    return Change(USER, action, "u-" + name, "PRIMARY",
                  None if action is Action.DELETE else resource, name, password)


def group(action=Action.CREATE, name="admins", members=None) -> Change:
    resource = None if action is Action.DELETE else {"id": "g-1", "displayName": name}
    return Change(GROUP, action, "g-1", "PRIMARY", resource, name,
                  member_remote_ids=members)


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def make_target(aiohttp_server):
    made: list[SpmlTarget] = []

    async def make(**kw) -> SpmlTarget:
        target = SpmlTarget(**kw)
        server = await aiohttp_server(target.app())
        target.url = str(server.make_url("/spml"))
        made.append(target)
        return target

    yield make
    for target in made:  # nothing the connector sent was schema-invalid; nor were our replies
        assert target.invalid == []
        assert target.reply_errors == []


@pytest.fixture
async def target(make_target):
    return await make_target()


def connector(session, url: str, options=None, **kw) -> SpmlConnector:
    kw.setdefault("timeout_seconds", 5.0)
    cfg = ConnectorConfig(name="spml-test", type="spml", url=url,
                          options={**BASE_OPTIONS, **(options or {})}, **kw)
    return SpmlConnector(cfg, session)


def sent(target: SpmlTarget, op: str) -> etree._Element:
    """The last request of a kind the target received."""
    return [el for name, el in target.requests if name == op][-1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def failing(coro) -> DeliveryError:
    with pytest.raises(DeliveryError) as info:
        await coro
    return info.value


# --- users: create, update, delete, lookup ------------------------------------------------


async def test_create_adds_a_pso_named_after_the_user(session, target):
    conn = build(ConnectorConfig(name="spml", type="spml", url=target.url,
                                 options=BASE_OPTIONS), session)
    assert isinstance(conn, SpmlConnector)
    assert await conn.deliver(user(), None) == Delivered("alice")
    assert target.ops() == ["lookupRequest", "addRequest"]
    pso = target.psos["alice"]
    assert pso.container == "ou=people"
    assert pso.attrs["objectclass"] == ["inetOrgPerson"]
    assert pso.attrs["uid"] == ["alice"]
    add = sent(target, "addRequest")
    assert add.get("targetID") == "target1"
    assert add.get("executionMode") == "synchronous"
    assert add.get("returnData") == "identifier"
    assert add.get("requestID").startswith("gw-")
    assert add.find(f"{{{SPML}}}psoID").get("ID") == "alice"
    assert add.find(f"{{{SPML}}}psoID").get("targetID") == "target1"
    assert add.find(f"{{{SPML}}}containerID").get("ID") == "ou=people"


async def test_default_attribute_mapping(session, target):
    await connector(session, target.url).deliver(user(), None)
    assert target.psos["alice"].attrs == {
        "objectclass": ["inetOrgPerson"],
        "uid": ["alice"],
        "cn": ["Alice Liddell"],
        "sn": ["Liddell"],
        "givenname": ["Alice"],
        "displayname": ["Alice"],
        "mail": ["alice@work.example"],  # the primary e-mail
        "telephonenumber": ["+44 1865 000000"],
        "title": ["Explorer"],
        "employeenumber": ["701"],
        "ou": ["Looking Glass"],
    }


async def test_configured_attributes_override_the_defaults(session, target):
    conn = connector(session, target.url, attributes=(
        ("mail", 'emails[type eq "home"].value'),  # replaces a default
        ("sn", ""),  # drops a default
        ("description", "title"),  # adds one
        ("mailAlternateAddress", "emails.value"),  # multi-valued
        ("x-active", "active"),  # a boolean
    ))
    await conn.deliver(user(), None)
    attrs = target.psos["alice"].attrs
    assert attrs["mail"] == ["alice@home.example"]
    assert "sn" not in attrs
    assert attrs["description"] == ["Explorer"]
    assert attrs["mailalternateaddress"] == ["alice@work.example", "alice@home.example"]
    assert attrs["x-active"] == ["true"]
    values = sent(target, "addRequest").findall(
        f".//{{{DSML}}}attr[@name='mailAlternateAddress']/{{{DSML}}}value")
    assert [v.text for v in values] == ["alice@work.example", "alice@home.example"]


async def test_update_with_remote_id_replaces_every_mapped_attribute(session, target):
    conn = connector(session, target.url)
    await conn.deliver(user(), None)
    changed = {**ALICE, "emails": [{"value": "new@work.example", "primary": True}]}
    del changed["title"]
    target.requests.clear()
    assert await conn.deliver(user(Action.UPDATE, resource=changed), "alice") == \
        Delivered("alice")
    assert target.ops() == ["modifyRequest"]
    attrs = target.psos["alice"].attrs
    assert attrs["mail"] == ["new@work.example"]
    assert "title" not in attrs  # replace without values removes it
    assert attrs["objectclass"] == ["inetOrgPerson"]  # not touched by a modify
    mods = sent(target, "modifyRequest").findall(f".//{{{DSML}}}modification")
    assert {m.get("operation") for m in mods} == {"replace"}
    assert "title" in {m.get("name") for m in mods}


async def test_update_without_remote_id_looks_up_then_modifies(session, target):
    target.add_pso("alice", uid=["alice"], objectclass=["inetOrgPerson"])
    conn = connector(session, target.url)
    assert await conn.deliver(user(Action.UPDATE), None) == Delivered("alice")
    assert target.ops() == ["lookupRequest", "modifyRequest"]
    assert target.psos["alice"].attrs["cn"] == ["Alice Liddell"]
    assert list(target.psos) == ["alice"]


async def test_create_of_an_existing_pso_modifies_it(session, target):
    target.add_pso("alice", uid=["alice"], cn=["Old"], objectclass=["inetOrgPerson"])
    assert await connector(session, target.url).deliver(user(), None) == Delivered("alice")
    assert target.ops() == ["lookupRequest", "modifyRequest"]
    assert target.psos["alice"].attrs["cn"] == ["Alice Liddell"]


async def test_retried_create_after_a_lost_reply_adds_nothing_twice(session, target):
    conn = connector(session, target.url)
    target.inject("lose_reply", op="addRequest")  # applied, but the reply is an HTTP 502
    error = await failing(conn.deliver(user(), None))
    assert error.retryable
    assert "alice" in target.psos
    assert await conn.deliver(user(), None) == Delivered("alice")  # the dispatcher's retry
    assert target.ops() == ["lookupRequest", "addRequest", "lookupRequest", "modifyRequest"]
    assert list(target.psos) == ["alice"]


async def test_add_answered_already_exists_becomes_a_modify(session, target):
    target.add_pso("alice", uid=["alice"], objectclass=["inetOrgPerson"])
    # the lookup misses it (made by someone else in between): the add says alreadyExists
    target.inject("status", op="lookupRequest", error="noSuchIdentifier")
    assert await connector(session, target.url).deliver(user(), None) == Delivered("alice")
    assert target.ops() == ["lookupRequest", "addRequest", "modifyRequest"]
    assert target.psos["alice"].attrs["cn"] == ["Alice Liddell"]


async def test_modify_of_a_vanished_pso_adds_it_again(session, target):
    conn = connector(session, target.url)
    assert await conn.deliver(user(Action.UPDATE), "alice") == Delivered("alice")
    assert target.ops() == ["modifyRequest", "addRequest"]
    assert target.psos["alice"].attrs["uid"] == ["alice"]


async def test_delete_and_delete_again(session, target):
    conn = connector(session, target.url)
    await conn.deliver(user(), None)
    assert await conn.deliver(user(Action.DELETE), "alice") == Delivered(None)
    assert target.psos == {}
    assert await conn.deliver(user(Action.DELETE), "alice") == Delivered(None)
    assert await conn.deliver(user(Action.DELETE), None) == Delivered(None)  # by name
    assert target.ops()[-3:] == ["deleteRequest"] * 3
    assert sent(target, "deleteRequest").find(f"{{{SPML}}}psoID").get("ID") == "alice"


async def test_lookup(session, target):
    conn = connector(session, target.url)
    assert await conn.lookup(USER, "alice") is None
    await conn.deliver(user(), None)
    assert await conn.lookup(USER, "alice") == "alice"
    assert sent(target, "lookupRequest").get("returnData") == "identifier"


async def test_an_id_the_target_chose_is_the_remote_id(session, make_target):
    target = await make_target(assign_ids=True)
    conn = connector(session, target.url)
    assert await conn.deliver(user(), None) == Delivered("pso-1")
    changed = {**ALICE, "title": "Queen"}
    assert await conn.deliver(user(Action.UPDATE, resource=changed), "pso-1") == \
        Delivered("pso-1")
    assert target.psos["pso-1"].attrs["title"] == ["Queen"]
    assert list(target.psos) == ["pso-1"]


async def test_dn_id_format_escapes_the_name(session, target):
    conn = connector(session, target.url,
                     options={"id_format": "uid={name},ou=people,dc=example"})
    name = "o'neil, jr+1"
    resource = {**ALICE, "userName": name}
    dn = "uid=o'neil\\, jr\\+1,ou=people,dc=example"
    assert await conn.deliver(user(name=name, resource=resource), None) == Delivered(dn)
    assert list(target.psos) == [dn]
    assert await conn.lookup(USER, name) == dn


# --- groups -------------------------------------------------------------------------------


async def test_groups_are_skipped_when_the_target_keeps_none(session, target):
    conn = connector(session, target.url)
    assert await conn.deliver(group(members={"u-alice": "alice"}), None) == Delivered(None)
    assert await conn.deliver(group(Action.DELETE), "admins") == Delivered(None)
    assert await conn.lookup(GROUP, "admins") is None
    assert target.requests == []


async def test_groups_as_dsml_objects_with_member_references(session, target):
    conn = connector(session, target.url, options={"groups": True})
    members = {"u-bob": "bob", "u-alice": "alice"}
    assert await conn.deliver(group(members=members), None) == Delivered("admins")
    pso = target.psos["admins"]
    assert pso.container == "ou=groups"
    assert pso.attrs == {"objectclass": ["groupOfNames"], "cn": ["admins"],
                         "member": ["alice", "bob"]}
    await conn.deliver(group(Action.UPDATE, members={"u-bob": "bob"}), "admins")
    assert pso.attrs["member"] == ["bob"]
    await conn.deliver(group(Action.UPDATE, members=None), "admins")  # members not known
    assert pso.attrs["member"] == ["bob"]
    assert await conn.lookup(GROUP, "admins") == "admins"
    assert await conn.deliver(group(Action.DELETE), "admins") == Delivered(None)
    assert target.psos == {}


async def test_groups_follow_provision_groups(session, target):
    conn = connector(session, target.url, options={"groups": True}, provision_groups=False)
    assert await conn.deliver(group(members={}), None) == Delivered(None)
    assert target.requests == []


# --- passwords ----------------------------------------------------------------------------


async def test_passwords_are_not_sent_unless_provisioned(session, target):
    conn = connector(session, target.url, default_password="Default-1")
    await conn.deliver(user(password="Secret-1"), None)
    assert await conn.deliver(user(Action.PASSWORD, password="Secret-2"), "alice") == \
        Delivered("alice")
    assert "setPasswordRequest" not in target.ops()
    assert target.psos["alice"].password is None
    assert all(b"Secret-" not in etree.tostring(el) for _, el in target.requests)


async def test_password_capability(session, target):
    conn = connector(session, target.url, provision_passwords=True)
    await conn.deliver(user(password="Secret-1"), None)
    assert target.ops() == ["lookupRequest", "addRequest", "setPasswordRequest"]
    assert target.psos["alice"].password == "Secret-1"
    request = sent(target, "setPasswordRequest")
    assert request.tag == f"{{{PASSWORD}}}setPasswordRequest"
    assert request.find(f"{{{PASSWORD}}}psoID/{{{SPML}}}containerID").get("ID") == "ou=people"
    assert b"Secret-1" not in etree.tostring(sent(target, "addRequest"))
    assert await conn.deliver(user(Action.PASSWORD, password="Secret-2"), "alice") == \
        Delivered("alice")
    assert target.psos["alice"].password == "Secret-2"
    await conn.deliver(user(Action.UPDATE, password="Secret-3"), "alice")
    assert target.psos["alice"].password == "Secret-3"


async def test_default_password_only_for_accounts_this_delivery_added(session, target):
    conn = connector(session, target.url, provision_passwords=True,
                     default_password="Default-1")
    await conn.deliver(user(), None)
    assert target.psos["alice"].password == "Default-1"
    target.add_pso("bob", uid=["bob"], objectclass=["inetOrgPerson"]).password = "Bobs-own"
    await conn.deliver(user(name="bob", resource={**ALICE, "userName": "bob"}), None)
    assert target.psos["bob"].password == "Bobs-own"  # an existing account keeps its own


async def test_a_password_never_appears_in_an_error(session, target):
    conn = connector(session, target.url, provision_passwords=True)
    await conn.deliver(user(), None)
    target.inject("status", op="setPasswordRequest", error="customError",
                  message="password Secret-9 is too weak")
    error = await failing(conn.deliver(user(Action.PASSWORD, password="Secret-9"), "alice"))
    assert "Secret-9" not in str(error) and "***" in str(error)
    assert error.retryable
    error = await failing(conn.deliver(user(Action.PASSWORD, password="Secret-9"), "bob"))
    assert not error.retryable  # noSuchIdentifier: no such account
    assert "noSuchIdentifier" in str(error)


# --- authentication -----------------------------------------------------------------------


async def test_basic_auth(session, make_target):
    target = await make_target(auth="basic")
    good = connector(session, target.url, auth="basic", username="spml-admin",
                     password="spml-secret")
    assert await good.deliver(user(), None) == Delivered("alice")
    assert target.auth_seen == ["basic", "basic"]
    bad = connector(session, target.url, auth="basic", username="spml-admin",
                    password="wrong")
    error = await failing(bad.deliver(user(), None))
    assert not error.retryable and "HTTP 401" in str(error)
    error = await failing(connector(session, target.url).health())
    assert not error.retryable


@pytest.mark.parametrize("digest", [False, True])
async def test_ws_security_username_token(session, make_target, digest):
    target = await make_target(auth="wss")
    conn = connector(session, target.url, auth="wss", username="spml-admin",
                     password="spml-secret", options={"wss_password_digest": digest})
    assert await conn.deliver(user(), None) == Delivered("alice")
    assert target.auth_seen == ["wss-digest" if digest else "wss-text"] * 2


async def test_ws_security_failures_are_permanent(session, make_target):
    target = await make_target(auth="wss")
    bad = connector(session, target.url, auth="wss", username="spml-admin",
                    password="not-the-secret")
    error = await failing(bad.deliver(user(), None))
    assert not error.retryable
    assert "FailedAuthentication" in str(error) and "not-the-secret" not in str(error)
    error = await failing(connector(session, target.url).lookup(USER, "alice"))
    assert not error.retryable
    assert target.psos == {}


# --- failures ---------------------------------------------------------------------------------

# the documented table: SPML error codes where the connector has no special handling
EXPECTED_RETRYABLE = {
    "malformedRequest": False, "unsupportedOperation": False,
    "unsupportedIdentifierType": False, "noSuchIdentifier": False, "customError": True,
    "unsupportedExecutionMode": False, "invalidContainment": False, "noSuchRequest": False,
    "unsupportedSelectionType": False, "resultSetToLarge": False, "unsupportedProfile": False,
    "invalidIdentifier": False, "alreadyExists": False, "containerNotEmpty": True,
}


def test_the_error_table_covers_every_schema_error_code():
    assert set(EXPECTED_RETRYABLE) == set(ERROR_CODES)
    for code, retryable in EXPECTED_RETRYABLE.items():
        assert spml_wire.ERROR_RETRYABLE[code] is retryable
    assert spml_wire.ERROR_RETRYABLE["resultSetTooLarge"] is False  # the other spelling


@pytest.mark.parametrize("code", [c for c in ERROR_CODES if c != "noSuchIdentifier"])
async def test_modify_failures(session, target, code):
    target.add_pso("alice", uid=["alice"], objectclass=["inetOrgPerson"])
    target.inject("status", op="modifyRequest", error=code)
    error = await failing(connector(session, target.url).deliver(user(Action.UPDATE), "alice"))
    assert error.retryable is EXPECTED_RETRYABLE[code]
    assert f"error={code}" in str(error) and "modifyRequest" in str(error)


@pytest.mark.parametrize("code", [c for c in ERROR_CODES if c != "alreadyExists"])
async def test_add_failures(session, target, code):
    target.inject("status", op="addRequest", error=code)
    error = await failing(connector(session, target.url).deliver(user(), None))
    assert error.retryable is EXPECTED_RETRYABLE[code]
    assert target.psos == {}


@pytest.mark.parametrize("code", ERROR_CODES)
async def test_delete_failures(session, target, code):
    target.add_pso("alice")
    target.inject("status", op="deleteRequest", error=code)
    conn = connector(session, target.url)
    if code == "noSuchIdentifier":
        assert await conn.deliver(user(Action.DELETE), "alice") == Delivered(None)
        return
    error = await failing(conn.deliver(user(Action.DELETE), "alice"))
    assert error.retryable is EXPECTED_RETRYABLE[code]


@pytest.mark.parametrize("code", ERROR_CODES)
async def test_lookup_failures(session, target, code):
    target.add_pso("alice")
    target.inject("status", op="lookupRequest", error=code)
    conn = connector(session, target.url)
    if code == "noSuchIdentifier":
        assert await conn.lookup(USER, "alice") is None
        return
    error = await failing(conn.lookup(USER, "alice"))
    assert error.retryable is EXPECTED_RETRYABLE[code]


async def test_failure_without_an_error_code_and_pending_are_retryable(session, target):
    conn = connector(session, target.url)
    target.inject("status", op="addRequest", error=None)
    assert (await failing(conn.deliver(user(), None))).retryable
    target.inject("pending", op="addRequest")
    error = await failing(conn.deliver(user(), None))
    assert error.retryable and "pending" in str(error)


@pytest.mark.parametrize(("status", "retryable"), [
    (500, True), (502, True), (503, True), (504, True),
    (400, False), (401, False), (403, False), (404, False), (405, False), (413, False),
    (408, True), (409, True), (429, True), (301, False),
])
async def test_http_statuses(session, target, status, retryable):
    target.inject("http", status=status)
    error = await failing(connector(session, target.url).deliver(user(), None))
    assert error.retryable is retryable
    assert f"HTTP {status}" in str(error)


async def test_a_session_that_raises_for_status_changes_nothing(target):
    async with aiohttp.ClientSession(raise_for_status=True) as strict:
        conn = connector(strict, target.url)
        target.inject("http", status=404)
        assert not (await failing(conn.deliver(user(), None))).retryable
        target.inject("soap_fault", code="Server")
        assert (await failing(conn.deliver(user(), None))).retryable
        target.add_pso("alice")
        target.inject("status", op="modifyRequest", error="noSuchIdentifier")
        assert await conn.deliver(user(), None) == Delivered("alice")


async def test_concurrent_deliveries_on_first_use(session, target):
    conn = connector(session, target.url)
    names = [f"user{i}" for i in range(8)]
    results = await asyncio.wait_for(asyncio.gather(*(
        conn.deliver(user(name=n, resource={**ALICE, "userName": n}), None) for n in names)),
        timeout=20)
    assert results == [Delivered(n) for n in names]
    assert sorted(target.psos) == sorted(names)


@pytest.mark.parametrize(("code", "status", "retryable"), [
    ("Server", 500, True),
    ("Server", 200, True),
    ("Client", 500, False),
    ("VersionMismatch", 500, False),
    ("MustUnderstand", 500, False),
    ("wsse:FailedAuthentication", 500, False),
    ("wsse:InvalidSecurity", 500, False),
    ("wsse:MessageExpired", 500, True),
])
async def test_soap_faults(session, target, code, status, retryable):
    target.inject("soap_fault", code=code, status=status, message="it broke")
    error = await failing(connector(session, target.url).lookup(USER, "alice"))
    assert error.retryable is retryable
    assert code.split(":")[-1] in str(error) and "it broke" in str(error)


@pytest.mark.parametrize(("kind", "words"), [
    ("malformed", "not well-formed"),
    ("doctype", "DOCTYPE"),
    ("wrong_element", "was expected"),
    ("wrong_request_id", "someone-else"),
])
async def test_broken_replies_are_retryable(session, target, kind, words):
    target.inject(kind)
    error = await failing(connector(session, target.url).lookup(USER, "alice"))
    assert error.retryable
    assert words in str(error)
    assert "EXPANDED" not in str(error)


async def test_a_slow_target_times_out_retryably(session, target):
    target.inject("slow", delay=5.0)
    conn = connector(session, target.url, timeout_seconds=0.3)
    started = asyncio.get_running_loop().time()
    error = await failing(conn.deliver(user(), None))
    assert error.retryable and "0.3s" in str(error)
    assert asyncio.get_running_loop().time() - started < 3


async def test_a_down_target_is_retryable(session):
    conn = connector(session, f"http://127.0.0.1:{free_port()}/spml")
    error = await failing(conn.deliver(user(), None))
    assert error.retryable
    error = await failing(conn.health())
    assert error.retryable


@pytest.mark.parametrize("chunked", [False, True])
async def test_an_oversized_reply_is_refused(session, target, chunked):
    conn = connector(session, target.url, options={"max_reply_bytes": 1024})
    target.inject("status", op="lookupRequest", error="customError", message="x" * 4000,
                  chunked=chunked)
    error = await failing(conn.lookup(USER, "alice"))
    assert error.retryable and "1024" in str(error)
    assert ("over 1024 bytes" in str(error)) is chunked  # no Content-Length: read, counted


async def test_the_target_rejects_schema_invalid_requests(session, target):
    # proves the validation the other tests rely on: an attr without a name is refused
    body = (f'<s:Envelope xmlns:s="{SOAP}"><s:Body><addRequest xmlns="{SPML}" '
            f'xmlns:dsml="{DSML}"><data><dsml:attr><dsml:value>x</dsml:value></dsml:attr>'
            '</data></addRequest></s:Body></s:Envelope>')
    async with session.post(target.url, data=body,
                            headers={"Content-Type": "text/xml"}) as resp:
        assert resp.status == 500
        text = await resp.text()
    assert "soapenv:Client" in text and "'name' is required" in text
    assert len(target.invalid) == 1
    target.invalid.clear()


# --- health ------------------------------------------------------------------------------------


async def test_health(session, target):
    status = await connector(session, target.url).health()
    assert "target1" in status and "1 target" in status
    assert sent(target, "listTargetsRequest").get("profile") == spml_wire.DSML_PROFILE
    error = await failing(connector(session, target.url, options={"target_id": "other"})
                          .health())
    assert not error.retryable and "'other'" in str(error)
    target.inject("status", op="listTargetsRequest", error="unsupportedProfile")
    assert not (await failing(connector(session, target.url).health())).retryable


# --- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(("kw", "words"), [
    ({"options": {"bogus": 1}}, "unknown keys"),
    ({"options": {"id_format": "uid=x"}}, "{name}"),
    ({"options": {"id_format": "{name}-{domain}"}}, "placeholder"),
    ({"options": {"groups": "yes"}}, "true or false"),
    ({"options": {"objectclass": 3}}, "objectclass"),
    ({"options": {"max_reply_bytes": 10}}, "max_reply_bytes"),
    ({"options": {"group_attributes": {"cn": "userName"}}}, "group_attributes"),
    ({"attributes": (("mail", "emails[type eq"),)}, "attributes"),
    ({"attributes": (("bad name", "title"),)}, "LDAP attribute name"),
    ({"attributes": (("userPassword", "password"),)}, "secret"),
    ({"attributes": (("objectClass", "title"),)}, "set by the connector"),
    ({"auth": "wss", "username": "u"}, "needs password"),
    ({"auth": "basic"}, "needs username, password"),
    ({"auth": "bearer"}, "needs token"),
])
def test_bad_configuration(kw, words):
    with pytest.raises(ConfigError) as info:
        connector(None, "http://127.0.0.1:1/spml", **kw)
    assert words in str(info.value)


# --- the wire, without I/O ------------------------------------------------------------------------

WSO2_MOCK_ADD_RESPONSE = b"""<?xml version="1.0"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>
<addResponse xmlns="urn:oasis:names:tc:SPML:2:0" status="success" requestID="rid-spmlv2">
   <openspml:operationalNameValuePair xmlns:openspml="urn:org:openspml:v2:util:xml"
        name="session" value="AAALPgAAYD0A..."/>
   <pso>
      <psoID ID="anSpml2Person"><containerID/></psoID>
      <data>
         <dsml:attr xmlns:dsml="urn:oasis:names:tc:DSML:2:0:core" name="accountId">
            <dsml:value>21212</dsml:value>
         </dsml:attr>
      </data>
   </pso>
</addResponse></soapenv:Body></soapenv:Envelope>"""


def _request(op="addRequest", request_id="rid-spmlv2"):
    return spml_wire.Request(op, b"", request_id)


def test_reply_with_extension_elements_before_the_pso():
    # the reply shape of WSO2's own SPML mock target: zeep would file the pso under _value_1
    reply = spml_wire.interpret(200, WSO2_MOCK_ADD_RESPONSE, _request())
    assert reply.ok and reply.pso_id == "anSpml2Person"
    with pytest.raises(DeliveryError) as info:
        spml_wire.interpret(200, WSO2_MOCK_ADD_RESPONSE, _request(request_id="other"))
    assert info.value.retryable


def test_soap12_faults_and_non_envelopes():
    env = "http://www.w3.org/2003/05/soap-envelope"
    wsse = spml_wire.WSSE

    def fault(code, sub=None):
        subcode = f"<e:Subcode><e:Value>{sub}</e:Value></e:Subcode>" if sub else ""
        return (f'<e:Envelope xmlns:e="{env}" xmlns:wsse="{wsse}"><e:Body><e:Fault><e:Code>'
                f"<e:Value>e:{code}</e:Value>{subcode}</e:Code><e:Reason><e:Text>why"
                "</e:Text></e:Reason></e:Fault></e:Body></e:Envelope>").encode()

    cases = [(fault("Sender"), False), (fault("Receiver"), True),
             (fault("Sender", "wsse:FailedAuthentication"), False),
             (fault("Sender", "wsse:MessageExpired"), True),
             (b"<html>oops</html>", True), (b"", True)]
    for body, retryable in cases:
        with pytest.raises(DeliveryError) as info:
            spml_wire.interpret(200, body, _request())
        assert info.value.retryable is retryable, body


def test_unknown_error_codes_are_permanent():
    assert not spml_wire.failure("addRequest", spml_wire.Reply("failure", "bogus")).retryable
    assert spml_wire.failure("addRequest", spml_wire.Reply("failure")).retryable


def test_every_request_the_wsdl_builds_is_valid_spml():
    messages = spml_wire.Messages(spml_wire.wsdl_document())
    pso = spml_wire.PsoId("alice", "target1", "ou=people")
    requests = [messages.add(pso, {"objectclass": ["inetOrgPerson"], "cn": ["A"]}),
                messages.modify(pso, {"cn": ["B"], "title": []}),
                messages.delete(pso), messages.lookup(pso), messages.list_targets(),
                messages.set_password(pso, "Secret-1"),
                messages.lookup(spml_wire.PsoId("bare"))]
    for request in requests:
        root = etree.fromstring(request.body)
        payload = root.find(f"{{{SOAP}}}Body")[0]
        assert etree.QName(payload).localname == request.operation
        assert validate(payload) is None, request.operation
        assert payload.get("requestID") == request.request_id


def test_the_wsdl_is_loaded_from_wsdl_spml_only():
    transport = spml_wire._LocalFiles()
    for url in ("http://docs.oasis-open.org/x.xsd", str(REPO / "setup.cfg"),
                str(spml_wire.WSDL_DIR / ".." / "README.md")):
        with pytest.raises(DeliveryError):
            transport.load(url)
    with pytest.raises(DeliveryError):
        transport.post("http://127.0.0.1:1/", b"", {})
    assert transport.load(str(spml_wire.WSDL_FILE)).startswith(b"<?xml")


def test_the_shipped_schemas_are_the_oasis_ones():
    # core: the OASIS text with its ##other wildcards (the reference copy says ##local)
    shipped = (spml_wire.WSDL_DIR / "pstc_spmlv2_core.xsd").read_bytes()
    reference = (DATA / "pstc_spmlv2_core.xsd").read_bytes()
    assert shipped == reference.replace(b'namespace="##local"', b'namespace="##other"')
    assert shipped.count(b"##other") == 2
    assert (spml_wire.WSDL_DIR / "pstc_spmlv2_password.xsd").read_bytes() == \
        (DATA / "pstc_spmlv2_password.xsd").read_bytes()
