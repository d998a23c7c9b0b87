"""The WSO2-compatible SOAP user-admin service, driven end to end by real SOAP clients.

A legacy application talks to WSO2's ``RemoteUserStoreManagerService`` through a
client generated from WSDL. These tests do exactly that against a gateway
listening on 127.0.0.1 (``conftest.gateway``: PRIMARY on SQLite and on
PostgreSQL), with two independent SOAP stacks:

* zeep, from WSO2's own WSDLs (V1 and V2; only the address is changed to point
  at the gateway), from the WSDL the gateway publishes (``?wsdl``, SOAP 1.1 and
  1.2) and from the frozen copies in ``wsdl/``;
* suds, from WSO2's V1 WSDL and from the gateway's live V1 WSDL.

Matrix (each axis at least once, not everything times everything):

==========================  =====  ========  ============================================
test                        WSDL   SOAP      endpoint
==========================  =====  ========  ============================================
claims                      WSO2   1.1       /services/{S} (binding told by envelope)
listUsers / getUserList     WSO2   1.2       /services/{S} (binding told by envelope)
roles                       WSO2   1.2       {S}.{S}HttpsSoap12Endpoint/ (WSO2's own)
credentials                 WSO2   1.1       {S}.{S}HttpSoap11Endpoint
V2 voids and faults         WSO2   1.1, 1.2  plain and suffixed
our WSDL                    live,  1.1, 1.2  as published
                            frozen
suds                        WSO2,  1.1       plain
                            live
==========================  =====  ========  ============================================

Blocking clients run in threads (``asyncio.to_thread``): the server under test
runs in the test's own event loop. Every one of WSO2's 35 operations is called
at least once (``test_every_operation_is_exercised`` checks this module's
source). The WSO2 reference WSDLs are read from ``GATEWAY_WSO2_WSDL_DIR``
(default ``tests/data/wso2``, verbatim copies); a missing file fails the test.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import pytest
import requests
import zeep
from conftest import ADMIN, ADMIN_CLIENT, ADMIN_USER, READER_CLIENT, scim
from lxml import etree
from suds import WebFault
from suds.client import Client as SudsClient
from suds.transport.http import HttpAuthenticated
from zeep.exceptions import Fault
from zeep.helpers import serialize_object
from zeep.transports import Transport
from zeep.wsdl.bindings import Soap11Binding, Soap12Binding

from gateway.app import create_app
from gateway.soap.service import OPERATIONS

ROOT = Path(__file__).resolve().parents[1]
WSO2_DIR = Path(os.environ.get("GATEWAY_WSO2_WSDL_DIR",
                               Path(__file__).resolve().parent / "data" / "wso2"))
FROZEN_DIR = ROOT / "wsdl"

TNS = "http://service.ws.um.carbon.wso2.org"
NS_CORE = "http://core.user.carbon.wso2.org/xsd"
SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
CLAIM = "http://wso2.org/claims/"
GIVEN, LAST, EMAIL = CLAIM + "givenname", CLAIM + "lastname", CLAIM + "emailaddress"
MOBILE, ORG = CLAIM + "mobile", CLAIM + "organization"
DEPARTMENT, NICK, ROLE = CLAIM + "department", CLAIM + "nickname", CLAIM + "role"
EVERYONE = "Internal/everyone"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"

V1, V2 = "RemoteUserStoreManagerService", "RemoteUserStoreManagerServiceV2"
TIMEOUT = 30  # seconds, for every HTTP exchange a client makes
ZEEP_SETTINGS = zeep.Settings(strict=True, forbid_dtd=True, xml_huge_tree=False)
# the users the gateway creates itself (conftest's bootstrap administrator)
BOOTSTRAP_USERS = [ADMIN_USER[0]]
BOOTSTRAP_ROLES = ["admin"]


# clients --------------------------------------------------------------------------------------
def wso2_wsdl(service: str) -> Path:
    path = WSO2_DIR / f"{service}.wsdl"
    assert path.is_file(), f"WSO2's reference WSDL {path} is missing (GATEWAY_WSO2_WSDL_DIR)"
    return path


def binding_qname(service: str, soap12: bool) -> str:
    return f"{{{TNS}}}{service}{'Soap12' if soap12 else 'Soap11'}Binding"


def endpoint(service: str, suffix: str | None = None) -> str:
    """``/services/{S}``, or ``/services/{S}.{S}{suffix}`` (e.g. ``HttpsSoap12Endpoint/``)."""
    return f"/services/{service}" + (f".{service}{suffix}" if suffix else "")


def base_url(client) -> str:
    return f"http://127.0.0.1:{client.server.port}"


class Exchanges:
    """The HTTP responses a requests session received (status, body), in order."""

    def __init__(self, session: requests.Session):
        self.seen: list[tuple[int, bytes]] = []
        session.hooks["response"].append(self._record)

    def _record(self, response, *args, **kwargs):
        self.seen.append((response.status_code, response.content))

    @property
    def last(self) -> tuple[int, bytes]:
        assert self.seen, "no HTTP exchange was recorded"
        return self.seen[-1]


@pytest.fixture
def sessions():
    """requests sessions with Basic credentials, closed after the test."""
    made: list[requests.Session] = []

    def make(creds=ADMIN_CLIENT) -> requests.Session:
        session = requests.Session()
        session.auth = creds
        made.append(session)
        return session

    yield make
    for session in made:
        session.close()


async def zeep_client(wsdl: str | Path, session: requests.Session) -> zeep.Client:
    transport = Transport(session=session, timeout=TIMEOUT, operation_timeout=TIMEOUT)
    return await asyncio.to_thread(zeep.Client, str(wsdl), transport=transport,
                                   settings=ZEEP_SETTINGS)


async def wso2_service(gw, sessions, service: str = V1, soap12: bool = False,
                       suffix: str | None = None, creds=ADMIN_CLIENT):
    """A zeep service from WSO2's own WSDL, its address (only) moved to the gateway."""
    client = await zeep_client(wso2_wsdl(service), sessions(creds))
    return client.create_service(binding_qname(service, soap12),
                                 base_url(gw) + endpoint(service, suffix))


async def call(service, op: str, *args, **kwargs):
    """One operation of a blocking client (zeep or suds), run in a thread."""
    return await asyncio.to_thread(getattr(service, op), *args, **kwargs)


async def zeep_fault(service, op: str, *args, **kwargs) -> Fault:
    with pytest.raises(Fault) as info:
        await call(service, op, *args, **kwargs)
    return info.value


def claims(**values: str) -> list[dict]:
    """ClaimValue items for zeep: ``claims(givenname="Alice")``."""
    return [{"claimURI": CLAIM + name, "value": value} for name, value in values.items()]


def claim_map(items) -> dict[str, str | None]:
    """ClaimDTO (claimUri) or ClaimValue (claimURI) items -> {uri: value}."""
    out = {}
    for item in serialize_object(items) or []:
        uri = item.get("claimUri") or item.get("claimURI")
        assert uri not in out, f"claim {uri} returned twice"
        out[uri] = item["value"]
    return out


ALICE_CLAIMS = claims(givenname="Alice", lastname="Liddell", emailaddress="alice@example.com",
                      mobile="+1 555 0100", organization="Wonderland Ltd")


def v2_error_code(client: zeep.Client, fault: Fault) -> str:
    """The errorCode of a V2 fault, read through the WSDL's own fault element."""
    assert fault.detail is not None, "the fault carries no detail"
    name = f"{{{TNS}}}{V2}UserStoreException"
    found = fault.detail.find(name)
    assert found is not None, etree.tostring(fault.detail)
    parsed = client.get_element(name).parse(found, client.wsdl.types)
    return parsed.UserStoreException.errorCode


# every operation is exercised -----------------------------------------------------------------
def test_every_operation_is_exercised():
    """Each of WSO2's 35 operations appears as ``call(…, "op", …)`` in this module."""
    source = Path(__file__).read_text()
    called = set(re.findall(r'(?:call|zeep_fault|suds_fault)\(\s*\w+,\s*"(\w+)"', source))
    names = {op.name for op in OPERATIONS}
    assert len(names) == 35
    assert sorted(names - called) == []


# V1, WSO2's WSDL, SOAP 1.1: users and claims --------------------------------------------------
async def test_v1_soap11_user_and_claims(gateway, sessions):
    svc = await wso2_service(gateway, sessions, V1, soap12=False)
    assert await call(svc, "addRole", "readers", [], None) is None
    assert await call(svc, "addUser", "alice", "Alice-password-1", ["readers"], ALICE_CLAIMS,
                      "default", False) is None
    assert await call(svc, "isExistingUser", "alice") is True
    assert await call(svc, "isExistingUser", "alice2") is False

    values = claim_map(await call(svc, "getUserClaimValues", "alice", "default"))
    assert {uri: values.get(uri) for uri in (GIVEN, LAST, EMAIL, MOBILE, ORG)} == {
        GIVEN: "Alice", LAST: "Liddell", EMAIL: "alice@example.com", MOBILE: "+1 555 0100",
        ORG: "Wonderland Ltd"}
    assert values[CLAIM + "username"] == "alice"
    dtos = serialize_object(await call(svc, "getUserClaimValues", "alice", None))
    given = next(d for d in dtos if d["claimUri"] == GIVEN)
    assert given["dialectURI"] == "http://wso2.org/claims"
    assert given["displayTag"] == "givenname"

    chosen = await call(svc, "getUserClaimValuesForClaims", "alice", [GIVEN, MOBILE, ROLE],
                        "default")
    assert claim_map(chosen) == {GIVEN: "Alice", MOBILE: "+1 555 0100",
                                 ROLE: f"readers,{EVERYONE}"}
    assert await call(svc, "getUserClaimValue", "alice", EMAIL, "default") == \
        "alice@example.com"

    # set: one claim, several claims (an empty value removes the claim)
    assert await call(svc, "setUserClaimValue", "alice", LAST, "Pleasance", None) is None
    assert await call(svc, "getUserClaimValue", "alice", LAST, None) == "Pleasance"
    assert await call(svc, "setUserClaimValues", "alice",
                      claims(givenname="Alicia", department="R&D"), "default") is None
    got = claim_map(await call(svc, "getUserClaimValuesForClaims", "alice",
                               [GIVEN, LAST, DEPARTMENT], None))
    assert got == {GIVEN: "Alicia", LAST: "Pleasance", DEPARTMENT: "R&D"}

    # add: appended with ','; addUserClaimValue appends even a value already there,
    # addUserClaimValues skips a value already there (in any case)
    assert await call(svc, "addUserClaimValue", "alice", DEPARTMENT, "Ops", None) is None
    assert await call(svc, "getUserClaimValue", "alice", DEPARTMENT, None) == "R&D,Ops"
    await call(svc, "addUserClaimValue", "alice", DEPARTMENT, "Ops", None)
    assert await call(svc, "getUserClaimValue", "alice", DEPARTMENT, None) == "R&D,Ops,Ops"
    assert await call(svc, "addUserClaimValues", "alice",
                      claims(department="ops", nickname="Ally"), "default") is None
    got = claim_map(await call(svc, "getUserClaimValuesForClaims", "alice",
                               [DEPARTMENT, NICK], None))
    assert got == {DEPARTMENT: "R&D,Ops,Ops", NICK: "Ally"}
    await call(svc, "addUserClaimValues", "alice", claims(nickname="Al"), None)
    assert await call(svc, "getUserClaimValue", "alice", NICK, None) == "Ally,Al"

    # delete: one claim, several claims
    assert await call(svc, "deleteUserClaimValue", "alice", MOBILE, None) is None
    assert await call(svc, "getUserClaimValue", "alice", MOBILE, None) is None
    assert await call(svc, "deleteUserClaimValues", "alice", [DEPARTMENT, NICK],
                      "default") is None
    values = claim_map(await call(svc, "getUserClaimValues", "alice", None))
    assert MOBILE not in values and DEPARTMENT not in values and NICK not in values
    assert values[GIVEN] == "Alicia" and values[EMAIL] == "alice@example.com"

    # the user's roles were set by addUser's roleList
    assert await call(svc, "getRoleListOfUser", "alice") == ["readers", EVERYONE]

    # unknown claims and profiles are the caller's mistakes
    fault = await zeep_fault(svc, "getUserClaimValue", "alice", CLAIM + "nosuchclaim", None)
    assert "nosuchclaim" in fault.message and fault.code.endswith("Client")
    fault = await zeep_fault(svc, "getUserClaimValues", "alice", "work")
    assert "profile" in fault.message.lower()


# V1, WSO2's WSDL, SOAP 1.2 on the plain path: listUsers, getUserList ------------------------
async def bulk_users(gw, names: list[str]) -> None:
    """Create users over SCIM Bulk (fast set-up of many users)."""
    ops = [{"method": "POST", "path": "/Users", "bulkId": f"u{i}",
            "data": {"schemas": [CORE_USER], "userName": name}} for i, name in enumerate(names)]
    status, body, _ = await scim(gw, "POST", "/Bulk", {"schemas": [BULK_REQUEST],
                                                       "Operations": ops})
    assert status == 200, body
    assert [op["status"] for op in body["Operations"]] == ["201"] * len(names), body


async def test_v1_soap12_list_users_wildcards_and_limits(gateway, sessions):
    svc = await wso2_service(gateway, sessions, V1, soap12=True)
    for name in ("alice", "a1ice", "alfred", "alicia", "bob", "grace"):
        await call(svc, "addUser", name, None, [], claims(givenname=name.title()), None, False)

    async def names(pattern, limit=50):
        return sorted(await call(svc, "listUsers", pattern, limit) or [])

    everyone = sorted(["alice", "a1ice", "alfred", "alicia", "bob", "grace", *BOOTSTRAP_USERS])
    assert await names("*") == everyone
    assert await names("al*") == ["alfred", "alice", "alicia"]
    assert await names("*ce") == ["a1ice", "alice", "grace"]
    assert await names("a?ice") == ["a1ice", "alice"]
    assert await names("a*i*a") == ["alicia"]
    assert await names("bob") == ["bob"]
    assert await names("nobody*") == []
    assert await names("PRIMARY/al*") == ["alfred", "alice", "alicia"]

    # maxItemLimit: 0 is nothing; a positive limit caps; negative is WSO2's default (100)
    assert await call(svc, "listUsers", "*", 0) in ([], None)
    two = await call(svc, "listUsers", "*", 2)
    assert len(two) == 2 and set(two) <= set(everyone)
    await bulk_users(gateway, [f"bulk{i:03d}" for i in range(105)])
    assert len(await call(svc, "listUsers", "bulk*", -1)) == 100
    assert len(await call(svc, "listUsers", "*", -1)) == 100
    assert await names("bulk10?", -1) == [f"bulk10{i}" for i in range(5)]


async def test_v1_soap12_get_user_list_by_claim(gateway, sessions):
    svc = await wso2_service(gateway, sessions, V1, soap12=True)
    await call(svc, "addRole", "staff", [], None)
    await call(svc, "addUser", "alice", "Alice-password-1", ["staff"], ALICE_CLAIMS, None, False)
    await call(svc, "addUser", "bob", "Bob-password-1", [],
               claims(givenname="Bob", emailaddress="bob@example.com",
                      organization="Wonderland Ltd"), None, False)
    await call(svc, "addUser", "carol", "Carol-password-1", ["staff"],
               claims(givenname="Carol", organization="Looking Glass"), None, False)

    async def users(claim, value):
        return sorted(await call(svc, "getUserList", claim, value, "default") or [])

    assert await users(ORG, "Wonderland Ltd") == ["alice", "bob"]
    assert await users(EMAIL, "bob@example.com") == ["bob"]
    assert await users(EMAIL, "*@example.com") == ["alice", "bob"]
    assert await users(GIVEN, "Ca*") == ["carol"]
    assert await users(ORG, "*Glass") == ["carol"]
    assert await users(MOBILE, "+1 555 0100") == ["alice"]
    assert await users(GIVEN, "Nobody") == []
    assert await users(ROLE, "staff") == ["alice", "carol"]


# V1, WSO2's WSDL, SOAP 1.2 at WSO2's own suffixed address: roles ----------------------------
async def test_v1_soap12_roles(gateway, sessions):
    svc = await wso2_service(gateway, sessions, V1, soap12=True,
                             suffix="HttpsSoap12Endpoint/")
    for name in ("alice", "bob", "carol"):
        await call(svc, "addUser", name, f"{name.title()}-password-1", None, None, None, False)
    permission = [{"action": "ui.execute", "resourceId": "/permission/admin/login"}]
    assert await call(svc, "addRole", "eng", ["alice", "bob"], None) is None
    assert await call(svc, "addRole", "ops", ["carol"], permission) is None
    assert await call(svc, "addRole", "Internal/auditors", ["alice"], None) is None

    assert await call(svc, "isExistingRole", "eng") is True
    assert await call(svc, "isExistingRole", "nope") is False
    assert await call(svc, "isExistingRole", EVERYONE) is True
    roles = await call(svc, "getRoleNames")
    assert sorted(roles) == sorted([*BOOTSTRAP_ROLES, "eng", "ops", "Internal/auditors",
                                    EVERYONE])
    assert await call(svc, "getHybridRoles") == ["Internal/auditors", EVERYONE]
    assert await call(svc, "getRoleListOfUser", "alice") == ["eng", "Internal/auditors",
                                                            EVERYONE]
    assert await call(svc, "getUserListOfRole", "eng") == ["alice", "bob"]
    assert sorted(await call(svc, "getUserListOfRole", EVERYONE)) == sorted(
        ["alice", "bob", "carol", *BOOTSTRAP_USERS])

    assert await call(svc, "updateRoleName", "eng", "engineering") is None
    assert await call(svc, "isExistingRole", "eng") is False
    assert await call(svc, "getRoleListOfUser", "bob") == ["engineering", EVERYONE]

    assert await call(svc, "updateUserListOfRole", "engineering", ["bob"], ["carol"]) is None
    assert await call(svc, "getUserListOfRole", "engineering") == ["alice", "carol"]

    assert await call(svc, "updateRoleListOfUser", "bob", None, ["engineering", "ops"]) is None
    assert await call(svc, "updateRoleListOfUser", "alice", ["engineering"], ["ops"]) is None
    assert await call(svc, "getRoleListOfUser", "bob") == ["engineering", "ops", EVERYONE]
    assert await call(svc, "getUserListOfRole", "ops") == ["alice", "bob", "carol"]
    assert await call(svc, "getUserListOfRole", "engineering") == ["bob", "carol"]

    assert await call(svc, "deleteRole", "ops") is None
    assert await call(svc, "isExistingRole", "ops") is False
    assert await call(svc, "getRoleListOfUser", "bob") == ["engineering", EVERYONE]

    fault = await zeep_fault(svc, "deleteRole", "ops")
    assert fault.message.startswith("31806")
    fault = await zeep_fault(svc, "deleteRole", EVERYONE)
    assert fault.message == "31805 - Cannot delete everyone role"
    fault = await zeep_fault(svc, "addRole", "engineering", [], None)
    assert fault.message == ("30012 - RoleExistingRole name: engineering exists in the system. "
                             "Please pick another role name.")
    fault = await zeep_fault(svc, "updateRoleListOfUser", "bob", None, ["nope"])
    assert "nope" in fault.message
    assert await call(svc, "getRoleListOfUser", "bob") == ["engineering", EVERYONE]
    fault = await zeep_fault(svc, "addRole", "qa", ["alice", "ghost"], None)
    assert fault.message.startswith("30007") and "ghost" in fault.message
    assert await call(svc, "isExistingRole", "qa") is False


# V1, WSO2's WSDL, SOAP 1.1 at the Http…Soap11Endpoint: credentials, deletion ----------------
async def test_v1_soap11_credentials_and_delete(gateway, sessions):
    svc = await wso2_service(gateway, sessions, V1, soap12=False, suffix="HttpSoap11Endpoint")
    await call(svc, "addUser", "dave", "Dave-password-1", None,
               claims(givenname="Dave"), None, False)
    assert await call(svc, "authenticate", "dave", "Dave-password-1") is True
    assert await call(svc, "authenticate", "dave", "wrong-password") is False
    assert await call(svc, "authenticate", "ghost", "Dave-password-1") is False

    assert await call(svc, "updateCredential", "dave", "Dave-password-2",
                      "Dave-password-1") is None
    assert await call(svc, "authenticate", "dave", "Dave-password-2") is True
    assert await call(svc, "authenticate", "dave", "Dave-password-1") is False

    fault = await zeep_fault(svc, "updateCredential", "dave", "Dave-password-3",
                             "not-the-password")
    assert fault.message.startswith("30006"), fault.message
    assert await call(svc, "authenticate", "dave", "Dave-password-2") is True

    assert await call(svc, "updateCredentialByAdmin", "dave", "Dave-password-4") is None
    assert await call(svc, "authenticate", "dave", "Dave-password-4") is True
    assert await call(svc, "authenticate", "dave", "Dave-password-2") is False

    fault = await zeep_fault(svc, "addUser", "dave", "Dave-password-5", None, None, None, False)
    assert fault.message.startswith("30004"), fault.message
    assert await call(svc, "authenticate", "dave", "Dave-password-4") is True

    assert await call(svc, "deleteUser", "dave") is None
    assert await call(svc, "isExistingUser", "dave") is False
    assert await call(svc, "authenticate", "dave", "Dave-password-4") is False
    fault = await zeep_fault(svc, "deleteUser", "dave")
    assert fault.message.startswith("30007 - UserNotFound"), fault.message
    assert "dave" in fault.message


# V1 one-way operations: what the client and the wire see --------------------------------------
async def test_v1_one_way_operations_answer_202_and_faults(gateway, sessions):
    session = sessions()
    exchanges = Exchanges(session)
    client = await zeep_client(wso2_wsdl(V1), session)
    svc = client.create_service(binding_qname(V1, False), base_url(gateway) + endpoint(V1))
    svc12 = client.create_service(binding_qname(V1, True),
                                  base_url(gateway) + endpoint(V1, "HttpsSoap12Endpoint"))

    assert await call(svc, "addUser", "erin", "Erin-password-1", None,
                      claims(givenname="Erin"), None, False) is None
    assert exchanges.last == (202, b"")
    assert await call(svc12, "setUserClaimValue", "erin", LAST, "Example", None) is None
    assert exchanges.last == (202, b"")
    assert await call(svc, "getUserClaimValue", "erin", LAST, None) == "Example"

    # a failing one-way operation: the fault reaches the client
    fault = await zeep_fault(svc, "setUserClaimValue", "ghost", LAST, "x", None)
    assert fault.message.startswith("30007 - UserNotFound")
    status, body = exchanges.last
    assert status == 500 and b"Fault" in body
    fault = await zeep_fault(svc12, "deleteUser", "ghost")
    assert fault.message.startswith("30007") and fault.code.endswith("Sender")
    assert exchanges.last[0] == 400
    assert fault.detail.find(f"{{{TNS}}}{V1}UserStoreException") is not None

    # the raw exchange, whatever the client: 202 and an empty body
    envelope = (
        f'<soapenv:Envelope xmlns:soapenv="{SOAP11_ENV}" xmlns:ser="{TNS}">'
        "<soapenv:Body><ser:setUserClaimValue><ser:userName>erin</ser:userName>"
        f"<ser:claimURI>{GIVEN}</ser:claimURI><ser:claimValue>Erinna</ser:claimValue>"
        "</ser:setUserClaimValue></soapenv:Body></soapenv:Envelope>")
    resp = await gateway.post(endpoint(V1), data=envelope.encode(), headers={
        **ADMIN, "Content-Type": "text/xml; charset=utf-8", "SOAPAction": "urn:setUserClaimValue"})
    assert resp.status == 202
    assert await resp.read() == b""
    envelope12 = (
        f'<soap:Envelope xmlns:soap="{SOAP12_ENV}" xmlns:ser="{TNS}">'
        "<soap:Body><ser:deleteUserClaimValue><ser:userName>erin</ser:userName>"
        f"<ser:claimURI>{LAST}</ser:claimURI></ser:deleteUserClaimValue></soap:Body>"
        "</soap:Envelope>")
    resp = await gateway.post(endpoint(V1, "HttpsSoap12Endpoint"), data=envelope12.encode(),
                              headers={**ADMIN, "Content-Type": 'application/soap+xml; '
                                       'charset=utf-8; action="urn:deleteUserClaimValue"'})
    assert resp.status == 202
    assert await resp.read() == b""
    got = claim_map(await call(svc, "getUserClaimValuesForClaims", "erin", [GIVEN, LAST], None))
    assert got == {GIVEN: "Erinna"}


# V1: the rest of the read-only operations -----------------------------------------------------
async def test_v1_soap11_tenant_profile_and_misc(gateway, sessions):
    svc = await wso2_service(gateway, sessions, V1, soap12=False, suffix="HttpsSoap11Endpoint")
    await call(svc, "addUser", "frank", "Frank-password-1", None, None, None, False)
    await call(svc, "addUser", "gina", "Gina-password-1", None, None, None, False)
    assert await call(svc, "getTenantId") == -1234
    assert await call(svc, "getTenantIdofUser", "frank") == -1234
    frank_id = await call(svc, "getUserId", "frank")
    assert isinstance(frank_id, int) and frank_id >= 0
    assert await call(svc, "getUserId", "frank") == frank_id
    assert await call(svc, "getUserId", "gina") != frank_id
    assert await call(svc, "getPasswordExpirationTime", "frank") == -1
    assert await call(svc, "getProperties", None) in ([], None)
    assert await call(svc, "isReadOnly") is False
    assert await call(svc, "getProfileNames", "frank") == ["default"]
    assert await call(svc, "getAllProfileNames") == ["default"]
    for op in ("getTenantIdofUser", "getUserId", "getPasswordExpirationTime",
               "getProfileNames"):
        fault = await zeep_fault(svc, op, "ghost")
        assert fault.message.startswith("30007"), (op, fault.message)


async def test_permissions_and_authentication_are_faults(gateway, sessions):
    admin = await wso2_service(gateway, sessions, V1)
    await call(admin, "addUser", "hank", "Hank-password-1", None, None, None, False)
    reader = await wso2_service(gateway, sessions, V1, creds=READER_CLIENT)
    assert await call(reader, "isExistingUser", "hank") is True
    assert "hank" in await call(reader, "listUsers", "h*", 10)
    fault = await zeep_fault(reader, "addUser", "ivy", "Ivy-password-1", None, None, None,
                             False)
    assert "addUser" in fault.message
    assert await call(admin, "isExistingUser", "ivy") is False
    stranger = await wso2_service(gateway, sessions, V1, creds=("test-admin", "wrong-secret"))
    fault = await zeep_fault(stranger, "isExistingUser", "hank")
    assert fault.message


# V2, WSO2's WSDL: void operations answer true, faults carry errorCode -----------------------
async def test_v2_soap11_voids_return_true_and_typed_faults(gateway, sessions):
    session = sessions()
    client = await zeep_client(wso2_wsdl(V2), session)
    svc = client.create_service(binding_qname(V2, False), base_url(gateway) + endpoint(V2))
    assert await call(svc, "addRole", "eng", [], None) is True
    assert await call(svc, "addUser", "alice", "Alice-password-1", ["eng"], ALICE_CLAIMS,
                      "default", False) is True
    assert await call(svc, "setUserClaimValue", "alice", LAST, "Pleasance", None) is True
    assert await call(svc, "addUserClaimValue", "alice", DEPARTMENT, "R&D", None) is True
    assert await call(svc, "getUserClaimValue", "alice", LAST, None) == "Pleasance"
    assert await call(svc, "updateRoleName", "eng", "engineering") is True
    assert await call(svc, "getRoleListOfUser", "alice") == ["engineering", EVERYONE]
    assert await call(svc, "updateCredentialByAdmin", "alice", "Alice-password-2") is True
    assert await call(svc, "authenticate", "alice", "Alice-password-2") is True
    assert await call(svc, "getTenantId") == -1234

    fault = await zeep_fault(svc, "deleteUser", "ghost")
    assert fault.message.startswith("30007 - UserNotFound")
    assert fault.code.endswith("Client")
    assert v2_error_code(client, fault) == "30007"
    fault = await zeep_fault(svc, "updateCredential", "alice", "Alice-password-3", "wrong")
    assert v2_error_code(client, fault) == "30006"
    fault = await zeep_fault(svc, "addUser", "alice", "Alice-password-1", None, None, None,
                             False)
    assert v2_error_code(client, fault) == "30004"

    assert await call(svc, "deleteUser", "alice") is True
    assert await call(svc, "isExistingUser", "alice") is False


async def test_v2_soap12_voids_return_true_and_typed_faults(gateway, sessions):
    session = sessions()
    exchanges = Exchanges(session)
    client = await zeep_client(wso2_wsdl(V2), session)
    svc = client.create_service(binding_qname(V2, True),
                                base_url(gateway) + endpoint(V2, "HttpsSoap12Endpoint/"))
    assert await call(svc, "addUser", "bob", "Bob-password-1", None,
                      claims(givenname="Bob", mobile="+1 555 0199"), None, False) is True
    assert exchanges.last[0] == 200
    assert await call(svc, "addRole", "ops", ["bob"], None) is True
    assert await call(svc, "updateUserListOfRole", "ops", ["bob"], None) is True
    assert await call(svc, "getUserListOfRole", "ops") in ([], None)
    assert await call(svc, "updateRoleListOfUser", "bob", None, ["ops"]) is True
    assert await call(svc, "getUserListOfRole", "ops") == ["bob"]
    assert await call(svc, "setUserClaimValues", "bob", claims(lastname="Builder"),
                      None) is True
    assert await call(svc, "addUserClaimValues", "bob", claims(nickname="Bobby"), None) is True
    assert await call(svc, "deleteUserClaimValue", "bob", MOBILE, None) is True
    assert await call(svc, "deleteUserClaimValues", "bob", [NICK], None) is True
    got = claim_map(await call(svc, "getUserClaimValuesForClaims", "bob",
                               [GIVEN, LAST, MOBILE, NICK], None))
    assert got == {GIVEN: "Bob", LAST: "Builder"}
    assert await call(svc, "updateCredential", "bob", "Bob-password-2", "Bob-password-1") is True
    assert await call(svc, "deleteRole", "ops") is True
    assert await call(svc, "getRoleListOfUser", "bob") == [EVERYONE]

    fault = await zeep_fault(svc, "getUserClaimValues", "ghost", None)
    assert fault.code.endswith("Sender")
    assert exchanges.last[0] == 400
    assert v2_error_code(client, fault) == "30007"
    fault = await zeep_fault(svc, "deleteRole", "ops")
    assert v2_error_code(client, fault) == "31806"
    assert await call(svc, "deleteUser", "bob") is True


# our own WSDL: live ?wsdl and the frozen files, both versions, SOAP 1.1 and 1.2 ---------------
# "live"/"frozen": the document of one binding (…HttpsSoap11Endpoint?wsdl, …Soap12…);
# "live-both"/"frozen-both": the document at ?wsdl, with both bindings, through the port of
# the SOAP version, at the address it publishes
OUR_WSDLS = [(source, service, soap12)
             for source in ("live", "frozen", "live-both", "frozen-both")
             for service in (V1, V2) for soap12 in (False, True)]


def _our_wsdl_id(item) -> str:
    source, service, soap12 = item
    return f"{source}-{'V2' if service == V2 else 'V1'}-soap{'12' if soap12 else '11'}"


@pytest.mark.parametrize("source, service, soap12", OUR_WSDLS,
                         ids=[_our_wsdl_id(w) for w in OUR_WSDLS])
async def test_our_wsdl_drives_the_service(gateway, sessions, source, service, soap12):
    session = sessions()
    exchanges = Exchanges(session)
    suffix = "HttpsSoap12Endpoint" if soap12 else "HttpsSoap11Endpoint"
    published = endpoint(service, suffix)
    if source == "live":
        client = await zeep_client(base_url(gateway) + published + "?wsdl", session)
        assert len(client.wsdl.services[service].ports) == 1
        svc = client.service  # the published address: back where the WSDL came from
        assert svc._binding_options["address"] == base_url(gateway) + published
    elif source.endswith("-both"):
        wsdl = (base_url(gateway) + endpoint(service) + "?wsdl" if source == "live-both"
                else FROZEN_DIR / f"{service}.wsdl")
        client = await zeep_client(wsdl, session)
        assert list(client.wsdl.services[service].ports) == [
            f"{service}HttpsSoap11Endpoint", f"{service}HttpsSoap12Endpoint"]
        if source == "live-both":  # the port of that version, at the address it publishes
            svc = client.bind(service, f"{service}{suffix}")
            assert svc._binding_options["address"] == base_url(gateway) + published
        else:  # the frozen copy's addresses are placeholders: the same path on the gateway
            port = client.wsdl.services[service].ports[f"{service}{suffix}"]
            assert port.binding_options["address"].endswith(published)
            svc = client.create_service(port.binding.name, base_url(gateway) + published)
    else:
        path = FROZEN_DIR / f"{service}.soap{'12' if soap12 else '11'}.wsdl"
        assert path.is_file(), f"frozen WSDL {path} is missing"
        client = await zeep_client(path, session)
        svc = client.create_service(binding_qname(service, soap12),
                                    base_url(gateway) + endpoint(service, suffix))
    assert isinstance(svc._binding, Soap12Binding if soap12 else Soap11Binding)
    void = True if service == V2 else None

    assert await call(svc, "addRole", "staff", [], None) is void
    assert await call(svc, "addUser", "alice", "Alice-password-1", ["staff"], ALICE_CLAIMS,
                      "default", False) is void
    assert exchanges.last[0] == (200 if service == V2 else 202)
    assert await call(svc, "isExistingUser", "alice") is True
    assert await call(svc, "authenticate", "alice", "Alice-password-1") is True
    assert await call(svc, "getUserClaimValue", "alice", ORG, None) == "Wonderland Ltd"
    values = claim_map(await call(svc, "getUserClaimValues", "alice", None))
    assert values[EMAIL] == "alice@example.com" and values[MOBILE] == "+1 555 0100"
    assert await call(svc, "setUserClaimValue", "alice", GIVEN, "Alicia", None) is void
    assert claim_map(await call(svc, "getUserClaimValuesForClaims", "alice", [GIVEN, ROLE],
                                None)) == {GIVEN: "Alicia", ROLE: f"staff,{EVERYONE}"}
    assert await call(svc, "listUsers", "ali*", 10) == ["alice"]
    assert await call(svc, "getRoleListOfUser", "alice") == ["staff", EVERYONE]
    assert await call(svc, "getUserListOfRole", "staff") == ["alice"]
    assert await call(svc, "getTenantId") == -1234
    assert await call(svc, "deleteUser", "alice") is void
    fault = await zeep_fault(svc, "deleteUser", "alice")
    assert fault.message.startswith("30007 - UserNotFound")
    assert fault.code.endswith("Sender" if soap12 else "Client")
    if service == V2:
        assert v2_error_code(client, fault) == "30007"
    else:
        assert fault.detail.find(f"{{{TNS}}}{V1}UserStoreException") is not None


# suds, SOAP 1.1 -------------------------------------------------------------------------------
async def suds_client(wsdl_url: str, location: str | None = None) -> SudsClient:
    transport = HttpAuthenticated(username=ADMIN_CLIENT[0], password=ADMIN_CLIENT[1],
                                  timeout=TIMEOUT)
    options = {"location": location} if location else {}
    return await asyncio.to_thread(SudsClient, wsdl_url, cache=None, transport=transport,
                                   timeout=TIMEOUT, **options)


async def suds_fault(service, op: str, *args) -> WebFault:
    with pytest.raises(WebFault) as info:
        await call(service, op, *args)
    return info.value


@pytest.mark.parametrize("source", ["wso2", "live"])
async def test_suds_v1(gateway, source):
    if source == "wso2":
        client = await suds_client(wso2_wsdl(V1).as_uri(), base_url(gateway) + endpoint(V1))
    else:
        client = await suds_client(base_url(gateway) + endpoint(V1) + "?wsdl")
    svc = client.service
    items = []
    for uri, value in ((GIVEN, "Kim"), (EMAIL, "kim@example.com"), (ORG, "Suds & Co")):
        item = client.factory.create("{http://common.mgt.user.carbon.wso2.org/xsd}ClaimValue")
        item.claimURI, item.value = uri, value
        items.append(item)
    assert await call(svc, "addRole", "sudsers", [], []) is None
    assert await call(svc, "addUser", "kim", "Kim-password-1", ["sudsers"], items, "default",
                      False) is None
    assert await call(svc, "isExistingUser", "kim") is True
    assert await call(svc, "isExistingUser", "kimberly") is False
    dtos = await call(svc, "getUserClaimValues", "kim", "default")
    values = {d.claimUri: d.value for d in dtos}
    assert values[GIVEN] == "Kim" and values[EMAIL] == "kim@example.com"
    assert values[ORG] == "Suds & Co"
    assert list(await call(svc, "listUsers", "k*", 10)) == ["kim"]
    assert list(await call(svc, "getRoleListOfUser", "kim")) == ["sudsers", EVERYONE]
    fault = await suds_fault(svc, "deleteUser", "ghost")
    assert fault.fault.faultstring.startswith("30007 - UserNotFound")
    assert await call(svc, "deleteUser", "kim") is None
    assert await call(svc, "isExistingUser", "kim") is False


# user store domains -----------------------------------------------------------------------------
async def test_domains_qualified_names(multi_gateway, sessions):
    svc = await wso2_service(multi_gateway, sessions, V1)
    await call(svc, "addUser", "SECONDARY/alice", "Alice-password-1", None,
               claims(givenname="Secondary Alice"), None, False)
    await call(svc, "addUser", "SECONDARY/bob", "Bob-password-1", None, None, None, False)
    await call(svc, "addUser", "carol", "Carol-password-1", None, None, None, False)

    assert sorted(await call(svc, "listUsers", "*", 50)) == sorted(
        ["SECONDARY/alice", "SECONDARY/bob", "carol", *BOOTSTRAP_USERS])
    assert sorted(await call(svc, "listUsers", "SECONDARY/*", 50)) == [
        "SECONDARY/alice", "SECONDARY/bob"]
    assert await call(svc, "listUsers", "SECONDARY/a*", 50) == ["SECONDARY/alice"]
    assert sorted(await call(svc, "listUsers", "PRIMARY/*o*", 50)) == sorted(
        ["carol", *BOOTSTRAP_USERS])
    # an unqualified pattern lists every store's matches, qualified (as WSO2 does)
    assert await call(svc, "listUsers", "a*", 50) == ["SECONDARY/alice"]
    assert await call(svc, "listUsers", "a?ice", 50) == ["SECONDARY/alice"]
    assert sorted(await call(svc, "listUsers", "*o*", 50)) == ["SECONDARY/bob", "carol",
                                                               *BOOTSTRAP_USERS]

    # a bare name is PRIMARY's, always (WSO2's rule), even when only SECONDARY has it
    assert await call(svc, "isExistingUser", "alice") is False
    fault = await zeep_fault(svc, "getUserClaimValue", "alice", GIVEN, None)
    assert fault.message == "30007 - UserNotFound: User alice does not exist in: PRIMARY"
    assert await call(svc, "authenticate", "alice", "Alice-password-1") is False
    assert await call(svc, "isExistingUser", "SECONDARY/carol") is False
    assert await call(svc, "getUserList", GIVEN, "Secondary*", None) == ["SECONDARY/alice"]
    assert await call(svc, "getUserList", CLAIM + "username", "SECONDARY/alice", None) == [
        "SECONDARY/alice"]
    assert await call(svc, "getUserList", CLAIM + "username", "SECONDARY/b*", None) == [
        "SECONDARY/bob"]

    # the same bare name in PRIMARY wins
    await call(svc, "addUser", "alice", "Alice-password-2", None,
               claims(givenname="Primary Alice"), None, False)
    assert await call(svc, "getUserClaimValue", "alice", GIVEN, None) == "Primary Alice"
    assert await call(svc, "getUserClaimValue", "SECONDARY/alice", GIVEN, None) == \
        "Secondary Alice"
    assert await call(svc, "authenticate", "alice", "Alice-password-2") is True
    assert await call(svc, "authenticate", "alice", "Alice-password-1") is False
    assert await call(svc, "authenticate", "SECONDARY/alice", "Alice-password-1") is True

    fault = await zeep_fault(svc, "addUser", "NOWHERE/dan", "Dan-password-1", None, None, None,
                             False)
    assert "NOWHERE" in fault.message
    fault = await zeep_fault(svc, "deleteUser", "SECONDARY/ghost")
    # WSO2 passes the call on to SECONDARY's store with the name without its domain
    assert fault.message == "30007 - UserNotFound: User ghost does not exist in: SECONDARY"


async def test_domains_roles_stay_in_their_store(multi_gateway, sessions):
    svc = await wso2_service(multi_gateway, sessions, V1, soap12=True)
    await call(svc, "addUser", "alice", "Alice-password-1", None, None, None, False)
    await call(svc, "addUser", "SECONDARY/bob", "Bob-password-1", None, None, None, False)
    await call(svc, "addRole", "eng", ["alice"], None)
    await call(svc, "addRole", "SECONDARY/ops", ["SECONDARY/bob"], None)

    assert sorted(await call(svc, "getRoleNames")) == sorted(
        [*BOOTSTRAP_ROLES, "eng", "SECONDARY/ops", EVERYONE])
    assert await call(svc, "getRoleListOfUser", "SECONDARY/bob") == ["SECONDARY/ops", EVERYONE]
    fault = await zeep_fault(svc, "getRoleListOfUser", "bob")  # PRIMARY's bob: none
    assert fault.message.startswith("30007 - UserNotFound")
    assert await call(svc, "getUserListOfRole", "SECONDARY/ops") == ["SECONDARY/bob"]
    assert await call(svc, "isExistingRole", "SECONDARY/ops") is True
    assert await call(svc, "isExistingRole", "SECONDARY/eng") is False

    fault = await zeep_fault(svc, "addRole", "SECONDARY/qa", ["alice"], None)
    assert "PRIMARY" in fault.message and "SECONDARY" in fault.message
    assert await call(svc, "isExistingRole", "SECONDARY/qa") is False
    fault = await zeep_fault(svc, "updateRoleListOfUser", "SECONDARY/bob", None, ["eng"])
    assert "eng" in fault.message and "SECONDARY" in fault.message
    fault = await zeep_fault(svc, "updateUserListOfRole", "eng", None, ["SECONDARY/bob"])
    assert "SECONDARY/bob" in fault.message
    fault = await zeep_fault(svc, "addUser", "SECONDARY/carol", "Carol-password-1", ["eng"],
                             None, None, False)
    assert "eng" in fault.message
    assert await call(svc, "isExistingUser", "SECONDARY/carol") is False
    assert await call(svc, "getUserListOfRole", "eng") == ["alice"]
    assert await call(svc, "getRoleListOfUser", "SECONDARY/bob") == ["SECONDARY/ops", EVERYONE]

    assert await call(svc, "updateRoleName", "SECONDARY/ops", "operations") is None
    assert await call(svc, "getRoleListOfUser", "SECONDARY/bob") == [
        "SECONDARY/operations", EVERYONE]


@pytest.fixture
async def three_domains(aiohttp_client, make_config, admin_env):
    """PRIMARY, SECONDARY and THIRD, with [soap] unqualified_names = "any_store"."""
    cfg = await make_config(domains=("PRIMARY", "SECONDARY", "THIRD"),
                            soap_unqualified_names="any_store")
    return await aiohttp_client(create_app(cfg))


async def test_domains_any_store_bare_names(three_domains, sessions):
    """With [soap] unqualified_names = "any_store", a bare name PRIMARY does not hold is
    the user (or role) of the one other store that has it."""
    svc = await wso2_service(three_domains, sessions, V1)
    await call(svc, "addUser", "SECONDARY/alice", "Alice-password-1", None,
               claims(givenname="Secondary Alice"), None, False)
    await call(svc, "addRole", "SECONDARY/ops", ["SECONDARY/alice"], None)
    assert await call(svc, "isExistingUser", "alice") is True
    assert await call(svc, "getUserClaimValue", "alice", GIVEN, None) == "Secondary Alice"
    values = claim_map(await call(svc, "getUserClaimValues", "alice", None))
    assert values[GIVEN] == "Secondary Alice"
    assert await call(svc, "authenticate", "alice", "Alice-password-1") is True
    assert await call(svc, "getRoleListOfUser", "alice") == ["SECONDARY/ops", EVERYONE]
    assert await call(svc, "isExistingRole", "ops") is True
    # the same bare name in PRIMARY wins
    await call(svc, "addUser", "alice", "Alice-password-2", None,
               claims(givenname="Primary Alice"), None, False)
    assert await call(svc, "getUserClaimValue", "alice", GIVEN, None) == "Primary Alice"
    assert await call(svc, "authenticate", "alice", "Alice-password-2") is True
    assert await call(svc, "authenticate", "alice", "Alice-password-1") is False


async def test_domains_ambiguous_bare_name(three_domains, sessions):
    svc = await wso2_service(three_domains, sessions, V2)
    await call(svc, "addUser", "SECONDARY/sam", "Sam-password-1", None,
               claims(givenname="Sam Two"), None, False)
    await call(svc, "addUser", "THIRD/sam", "Sam-password-2", None,
               claims(givenname="Sam Three"), None, False)
    await call(svc, "addUser", "THIRD/tess", "Tess-password-1", None, None, None, False)

    fault = await zeep_fault(svc, "getUserClaimValue", "sam", GIVEN, None)
    assert "several user stores" in fault.message
    assert "SECONDARY" in fault.message and "THIRD" in fault.message
    fault = await zeep_fault(svc, "isExistingUser", "sam")
    assert "several user stores" in fault.message
    assert await call(svc, "getUserClaimValue", "THIRD/sam", GIVEN, None) == "Sam Three"
    assert await call(svc, "isExistingUser", "tess") is True
    assert sorted(await call(svc, "listUsers", "*s*", 50)) == [
        "SECONDARY/sam", "THIRD/sam", "THIRD/tess"]

    # the same name in PRIMARY settles it
    await call(svc, "addUser", "sam", "Sam-password-0", None, claims(givenname="Sam One"),
               None, False)
    assert await call(svc, "getUserClaimValue", "sam", GIVEN, None) == "Sam One"


# SOAP and SCIM are one store ------------------------------------------------------------------
async def test_soap_user_read_over_scim(gateway, sessions):
    svc = await wso2_service(gateway, sessions, V1)
    await call(svc, "addRole", "eng", [], None)
    await call(svc, "addUser", "alice", "Alice-password-1", ["eng"], ALICE_CLAIMS, None, False)

    status, body, _ = await scim(gateway, "GET", '/Users?filter=userName%20eq%20%22alice%22')
    assert status == 200, body
    assert body["totalResults"] == 1
    user = body["Resources"][0]
    assert user["userName"] == "alice"
    assert user["name"]["givenName"] == "Alice"
    assert user["name"]["familyName"] == "Liddell"
    assert [e["value"] for e in user["emails"] if e.get("primary")] == ["alice@example.com"]
    assert [p["value"] for p in user["phoneNumbers"] if p.get("type") == "mobile"] == [
        "+1 555 0100"]
    assert user[ENTERPRISE]["organization"] == "Wonderland Ltd"
    assert [g["display"] for g in user["groups"]] == ["eng"]
    assert "password" not in user

    # a change over SOAP is seen over SCIM, and the other way round
    await call(svc, "setUserClaimValue", "alice", ORG, "Looking Glass", None)
    status, body, _ = await scim(gateway, "GET", f"/Users/{user['id']}")
    assert status == 200 and body[ENTERPRISE]["organization"] == "Looking Glass"
    status, body, _ = await scim(gateway, "PATCH", f"/Users/{user['id']}", {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "name.givenName", "value": "Alicia"}]})
    assert status == 200, body
    assert await call(svc, "getUserClaimValue", "alice", GIVEN, None) == "Alicia"


async def test_scim_user_read_over_soap(gateway, sessions):
    status, user, _ = await scim(gateway, "POST", "/Users", {
        "schemas": [CORE_USER, ENTERPRISE], "userName": "bjensen", "password": "Bj-password-1",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "emails": [{"value": "bjensen@example.com", "type": "work", "primary": True}],
        "phoneNumbers": [{"value": "+1 555 0142", "type": "mobile"}],
        ENTERPRISE: {"organization": "Example Corp", "department": "Tour Operations"}})
    assert status == 201, user
    status, group, _ = await scim(gateway, "POST", "/Groups", {
        "schemas": [CORE_GROUP], "displayName": "tour-guides",
        "members": [{"value": user["id"]}]})
    assert status == 201, group

    svc = await wso2_service(gateway, sessions, V2, soap12=True, suffix="HttpSoap12Endpoint")
    assert await call(svc, "isExistingUser", "bjensen") is True
    values = claim_map(await call(svc, "getUserClaimValues", "bjensen", "default"))
    assert {uri: values.get(uri) for uri in (GIVEN, LAST, EMAIL, MOBILE, ORG, DEPARTMENT)} == {
        GIVEN: "Barbara", LAST: "Jensen", EMAIL: "bjensen@example.com", MOBILE: "+1 555 0142",
        ORG: "Example Corp", DEPARTMENT: "Tour Operations"}
    assert values[CLAIM + "emails.work"] == "bjensen@example.com"
    assert values[CLAIM + "userid"] == user["id"]
    assert await call(svc, "getRoleListOfUser", "bjensen") == ["tour-guides", EVERYONE]
    assert await call(svc, "getUserListOfRole", "tour-guides") == ["bjensen"]
    assert await call(svc, "authenticate", "bjensen", "Bj-password-1") is True
    assert await call(svc, "getUserList", EMAIL, "bjensen@example.com", None) == ["bjensen"]
