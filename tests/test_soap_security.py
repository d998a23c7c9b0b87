"""Security and bad input on the WSO2-compatible SOAP service, over raw HTTP.

Envelopes are written by hand (no SOAP library) so that malformed, hostile and
half-valid requests can be sent exactly as an attacker or a broken client would.
What is asserted:

- authentication: HTTP Basic and WS-Security UsernameToken (PasswordText for
  store users and API clients; PasswordDigest for API clients with a plain
  secret, with replay and age checks); every failure is a 401 SOAP fault;
- per-operation permissions (WSO2's ``services.xml`` mapped by
  ``gateway.soap.permissions``): a refused call is 403 + Client fault and
  leaves no trace;
- XML hardening (``gateway.soap.envelope.parse``): DOCTYPEs, entities, XXE,
  billion laughs, deep nesting, oversized bodies, XInclude, wrong envelopes and
  bad values are all Client/Sender faults (SOAP 1.1: HTTP 500, SOAP 1.2: HTTP
  400), never a Server fault and never a hang;
- the fault format WSO2's clients expect (typed ``UserStoreException`` detail,
  V2's ``errorCode``);
- V1's one-way operations (202, or a fault when they fail) and V2's ``true``;
- that a password sent in a request never reaches a log record;
- GET without ``?wsdl`` and unknown service paths.

Every test runs on both user store backends (the ``gateway`` fixture).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import logging
import os
import traceback
from dataclasses import replace
from xml.sax.saxutils import escape

import pytest
from argon2 import PasswordHasher
from conftest import ADMIN, ADMIN_CLIENT, ADMIN_USER, READER, basic, scim
from lxml import etree

from gateway.app import create_app
from gateway.config import ClientConfig
from gateway.keys import PIPELINE

TNS = "http://service.ws.um.carbon.wso2.org"
NS_CORE = "http://core.user.carbon.wso2.org/xsd"
NS_COMMON = "http://common.mgt.user.carbon.wso2.org/xsd"
SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
PROFILE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
PASSWORD_TEXT = PROFILE + "#PasswordText"
PASSWORD_DIGEST = PROFILE + "#PasswordDigest"
BASE64_BINARY = ("http://docs.oasis-open.org/wss/2004/01/"
                 "oasis-200401-wss-soap-message-security-1.0#Base64Binary")

V1 = "/services/RemoteUserStoreManagerService"
V2 = "/services/RemoteUserStoreManagerServiceV2"
V1_SOAP11 = V1 + ".RemoteUserStoreManagerServiceHttpsSoap11Endpoint"
V1_SOAP12 = V1 + ".RemoteUserStoreManagerServiceHttpsSoap12Endpoint"
V1_FAULT = f"{{{TNS}}}RemoteUserStoreManagerServiceUserStoreException"
V2_FAULT = f"{{{TNS}}}RemoteUserStoreManagerServiceV2UserStoreException"

TIMEOUT = 10  # seconds any single request may take: a hang is a failure
SECRET = "S3cr3t-Passw0rd!"  # the password that must never reach a log
CLAIM = "http://wso2.org/claims/"
PASSWD_MARKERS = ("root:x:0:0", "/bin/bash", "/usr/sbin/nologin", "daemon:")


# envelopes ----------------------------------------------------------------------------------
def op(name: str, *params: tuple[str, object]) -> str:
    """``<ns:name><ns:p>v</ns:p>...</ns:name>``; a list value repeats the element, None
    leaves it out, a value of type ``Raw`` is inserted unescaped."""
    parts = []
    for pname, value in params:
        values = value if isinstance(value, list) else [value]
        for v in values:
            if v is None:
                continue
            text = v if isinstance(v, Raw) else escape(str(v))
            parts.append(f"<ns:{pname}>{text}</ns:{pname}>")
    return f"<ns:{name}>{''.join(parts)}</ns:{name}>"


class Raw(str):
    """XML inserted as is into an envelope built by ``op``."""


def envelope(body: str, header: str = "", soap12: bool = False) -> bytes:
    env = SOAP12_ENV if soap12 else SOAP11_ENV
    head = f"<soapenv:Header>{header}</soapenv:Header>" if header else ""
    return (f'<?xml version="1.0" encoding="UTF-8"?>'
            f'<soapenv:Envelope xmlns:soapenv="{env}" xmlns:ns="{TNS}" '
            f'xmlns:xsd="{NS_COMMON}">{head}<soapenv:Body>{body}</soapenv:Body>'
            f"</soapenv:Envelope>").encode()


def content_type(soap12: bool) -> str:
    return "application/soap+xml; charset=utf-8" if soap12 else "text/xml; charset=utf-8"


async def post(client, data: bytes, path: str = V1, soap12: bool = False, auth=ADMIN,
               ctype: str | None = None, action: str = "urn:op"):
    """POST raw bytes; returns (status, body text, response). Fails if it takes too long."""
    headers = dict(auth or {})
    headers["Content-Type"] = ctype or content_type(soap12)
    if not soap12:
        headers["SOAPAction"] = action

    async def go():
        resp = await client.post(path, data=data, headers=headers)
        return resp.status, await resp.read(), resp

    status, raw, resp = await asyncio.wait_for(go(), TIMEOUT)
    return status, raw.decode("utf-8", "replace"), resp


async def call(client, body: str, *, path: str = V1, soap12: bool = False, auth=ADMIN,
               header: str = ""):
    return await post(client, envelope(body, header, soap12), path, soap12, auth)


def xml(text: str) -> etree._Element:
    return etree.fromstring(text.encode())


def returns(text: str) -> list[str]:
    """The texts of the ``return`` elements of a reply."""
    root = xml(text)
    return [el.text or "" for el in root.iter() if etree.QName(el).localname == "return"]


def fault(status: int, text: str, *, soap12: bool = False, v2: bool = False) -> dict:
    """Check a fault envelope's shape (WSO2's typed detail) and return its parts."""
    root = xml(text)
    env = SOAP12_ENV if soap12 else SOAP11_ENV
    assert root.tag == f"{{{env}}}Envelope", text
    found = root.find(f"{{{env}}}Body/{{{env}}}Fault")
    assert found is not None, text
    if soap12:
        value = found.find(f"{{{env}}}Code/{{{env}}}Value")
        reason = found.find(f"{{{env}}}Reason/{{{env}}}Text")
        detail = found.find(f"{{{env}}}Detail")
        assert value is not None and reason is not None and detail is not None, text
        code_text = value.text
    else:
        code_el, reason, detail = (found.find("faultcode"), found.find("faultstring"),
                                   found.find("detail"))
        assert code_el is not None and reason is not None and detail is not None, text
        code_text = code_el.text
    prefix, _, code = code_text.partition(":")
    # the prefix of the code resolves to the envelope namespace (a QName, as SOAP says)
    assert (value if soap12 else code_el).nsmap.get(prefix) == env, text
    outer = detail.find(V2_FAULT if v2 else V1_FAULT)
    assert outer is not None, text
    inner = outer.find(f"{{{TNS}}}UserStoreException")
    assert inner is not None, text
    xsi_type = inner.get(f"{{{XSI}}}type")
    assert xsi_type is not None, text
    type_prefix, _, type_name = xsi_type.partition(":")
    assert type_name == "UserStoreException" and inner.nsmap.get(type_prefix) == NS_CORE, text
    error_code = inner.find(f"{{{NS_CORE}}}errorCode")
    assert (error_code is not None) == v2, text
    return {"code": code, "reason": reason.text or "", "status": status,
            "error_code": None if error_code is None else error_code.text}


def client_fault(status: int, text: str, *, soap12: bool = False, v2: bool = False,
                 http: int | None = None) -> str:
    """A Client (1.1) / Sender (1.2) fault with the expected HTTP status; its reason."""
    expected = http if http is not None else (400 if soap12 else 500)
    assert status == expected, text
    parts = fault(status, text, soap12=soap12, v2=v2)
    assert parts["code"] == ("Sender" if soap12 else "Client"), text
    assert parts["reason"], text
    return parts["reason"]


# WS-Security ----------------------------------------------------------------------------------
def now_utc(offset: float = 0) -> str:
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def text_token(name: str, password: str) -> str:
    return (f'<wsse:Security xmlns:wsse="{WSSE}" soapenv:mustUnderstand="1">'
            f"<wsse:UsernameToken><wsse:Username>{escape(name)}</wsse:Username>"
            f'<wsse:Password Type="{PASSWORD_TEXT}">{escape(password)}</wsse:Password>'
            f"</wsse:UsernameToken></wsse:Security>")


def digest_token(name: str, secret: str, nonce: bytes | None = None,
                 created: str | None = None, nonce_text: str | None = None) -> str:
    nonce = os.urandom(16) if nonce is None else nonce
    created = now_utc() if created is None else created
    raw = hashlib.sha1(nonce + created.encode() + secret.encode()).digest()  # noqa: S324
    digest = base64.b64encode(raw).decode()
    nonce_text = base64.b64encode(nonce).decode() if nonce_text is None else nonce_text
    return (f'<wsse:Security xmlns:wsse="{WSSE}" xmlns:wsu="{WSU}">'
            f"<wsse:UsernameToken><wsse:Username>{escape(name)}</wsse:Username>"
            f'<wsse:Password Type="{PASSWORD_DIGEST}">{digest}</wsse:Password>'
            f'<wsse:Nonce EncodingType="{BASE64_BINARY}">'
            f"{nonce_text}</wsse:Nonce><wsu:Created>{created}</wsu:Created>"
            f"</wsse:UsernameToken></wsse:Security>")


IS_ROOT = op("isExistingUser", ("userName", ADMIN_USER[0]))


async def exists(client, name: str) -> bool:
    status, text, _ = await call(client, op("isExistingUser", ("userName", name)))
    assert status == 200, text
    return returns(text) == ["true"]


async def role_exists(client, name: str) -> bool:
    status, text, _ = await call(client, op("isExistingRole", ("roleName", name)))
    assert status == 200, text
    return returns(text) == ["true"]


async def can_login(client, name: str, password: str) -> bool:
    status, text, _ = await call(client, op("authenticate", ("userName", name),
                                            ("credential", password)))
    assert status == 200, text
    return returns(text) == ["true"]


async def scim_user_names(client) -> list[str]:
    status, body, _ = await scim(client, "GET", "/Users?count=1000")
    assert status == 200, body
    return sorted(r["userName"] for r in body["Resources"])


async def add_user(client, name: str, password: str = "Kim-password-1",  # noqa: S107
                   roles=None):
    status, text, _ = await call(client, op("addUser", ("userName", name),
                                            ("credential", password), ("roleList", roles)))
    assert status == 202 and text == "", text


# 1. authentication ---------------------------------------------------------------------------
async def test_no_credentials_is_401_fault_with_challenge(gateway):
    status, text, resp = await call(gateway, IS_ROOT, auth=None)
    reason = client_fault(status, text, http=401)
    assert "Authentication required" in reason
    assert resp.headers["WWW-Authenticate"].startswith("Basic ")
    assert resp.content_type == "text/xml"
    status, text, resp = await call(gateway, IS_ROOT, auth=None, soap12=True)
    client_fault(status, text, soap12=True, http=401)
    assert resp.headers["WWW-Authenticate"].startswith("Basic ")
    assert resp.content_type == "application/soap+xml"


async def test_wrong_basic_password_is_401(gateway):
    for auth in (basic(ADMIN_USER[0], "wrong-password"), basic(ADMIN_CLIENT[0], "wrong"),
                 basic("nobody", "x"), {"Authorization": "Basic !!!notbase64"},
                 {"Authorization": "Digest username=root"}):
        status, text, resp = await call(gateway, IS_ROOT, auth=auth)
        reason = client_fault(status, text, http=401)
        assert "credentials" in reason.lower() or "scheme" in reason.lower(), reason
        assert "WWW-Authenticate" in resp.headers
        assert "wrong" not in text


async def test_password_text_token_store_user_and_client(gateway):
    for name, password in (ADMIN_USER, ADMIN_CLIENT):
        status, text, _ = await call(gateway, IS_ROOT, auth=None,
                                     header=text_token(name, password))
        assert status == 200, text
        assert returns(text) == ["true"]
        # SOAP 1.2 as well
        status, text, _ = await call(gateway, IS_ROOT, auth=None, soap12=True,
                                     header=text_token(name, password))
        assert status == 200, text
        assert returns(text) == ["true"]
    status, text, _ = await call(gateway, IS_ROOT, auth=None,
                                 header=text_token(ADMIN_USER[0], "wrong-password"))
    assert "Invalid credentials" in client_fault(status, text, http=401)


async def test_token_wins_over_authorization_header(gateway):
    status, text, _ = await call(gateway, IS_ROOT, auth=ADMIN,
                                 header=text_token(ADMIN_USER[0], "wrong-password"))
    client_fault(status, text, http=401)
    status, text, _ = await call(gateway, op("addUser", ("userName", "kim"),
                                             ("credential", "Kim-password-1")),
                                 auth=ADMIN, header=text_token("test-reader", "test-reader-secret"))
    assert status == 500 and "users:create" in text, text  # a Client fault
    assert not await exists(gateway, "kim")


async def test_password_digest_from_client_with_plain_secret(gateway):
    status, text, _ = await call(gateway, IS_ROOT, auth=None,
                                 header=digest_token(*ADMIN_CLIENT))
    assert status == 200, text
    assert returns(text) == ["true"]
    # a write with the digest works too (it is the admin client)
    status, text, _ = await call(gateway, op("addUser", ("userName", "digest-made"),
                                             ("credential", "Kim-password-1")),
                                 auth=None, header=digest_token(*ADMIN_CLIENT))
    assert status == 202 and text == "", text
    assert "digest-made" in await scim_user_names(gateway)


async def test_password_digest_replay_to_another_worker_is_401(aiohttp_client, make_config,
                                                                 admin_env):
    """Two gateways on one database, as two workers or two hosts are: a nonce used at one
    is refused at the other (the nonces live in the shared state database)."""
    cfg = await make_config()
    first = await aiohttp_client(create_app(cfg))
    second = await aiohttp_client(create_app(cfg))
    for attempt in range(6):
        token = digest_token(*ADMIN_CLIENT)
        one, other = (first, second) if attempt % 2 else (second, first)
        status, text, _ = await call(one, IS_ROOT, auth=None, header=token)
        assert status == 200, text
        status, text, _ = await call(other, IS_ROOT, auth=None, header=token)
        assert "nonce was used already" in client_fault(status, text, http=401)
        status, text, _ = await call(one, IS_ROOT, auth=None, header=token)
        assert "nonce was used already" in client_fault(status, text, http=401)


async def test_password_digest_wrong_secret_is_401(gateway):
    status, text, _ = await call(gateway, IS_ROOT, auth=None,
                                 header=digest_token(ADMIN_CLIENT[0], "not-the-secret"))
    assert "Invalid credentials" in client_fault(status, text, http=401)


async def test_password_digest_replay_is_401(gateway):
    nonce, created = os.urandom(16), now_utc()
    token = digest_token(*ADMIN_CLIENT, nonce=nonce, created=created)
    status, text, _ = await call(gateway, IS_ROOT, auth=None, header=token)
    assert status == 200, text
    status, text, _ = await call(gateway, IS_ROOT, auth=None, header=token)
    assert "nonce was used already" in client_fault(status, text, http=401)
    # a replayed write is refused as well, and does nothing
    name = "replayed"
    body = op("addUser", ("userName", name), ("credential", "Kim-password-1"))
    token = digest_token(*ADMIN_CLIENT)
    status, text, _ = await call(gateway, body, auth=None, header=token)
    assert status == 202, text
    status, text, _ = await call(gateway, op("deleteUser", ("userName", name)))
    assert status == 202, text
    status, text, _ = await call(gateway, body, auth=None, header=token)
    client_fault(status, text, http=401)
    assert not await exists(gateway, name)


async def test_password_digest_too_old_or_from_the_future_is_401(gateway):
    for offset in (-600, 600):
        status, text, _ = await call(gateway, IS_ROOT, auth=None,
                                     header=digest_token(*ADMIN_CLIENT,
                                                         created=now_utc(offset)))
        assert "too old" in client_fault(status, text, http=401)
    status, text, _ = await call(gateway, IS_ROOT, auth=None,
                                 header=digest_token(*ADMIN_CLIENT, created="yesterday"))
    assert "Created" in client_fault(status, text, http=401)


async def test_password_digest_for_store_user_is_401_with_explanation(gateway):
    status, text, _ = await call(gateway, IS_ROOT, auth=None,
                                 header=digest_token(*ADMIN_USER))
    reason = client_fault(status, text, http=401)
    assert "PasswordDigest" in reason and "plain secret" in reason, reason


async def test_password_digest_for_client_with_hashed_secret_is_401(aiohttp_client, make_config,
                                                                     admin_env):
    hashed = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("hashed-secret")
    cfg = await make_config()
    cfg = replace(cfg, clients=cfg.clients + (ClientConfig("hashed", ("*",), secret_hash=hashed),))
    client = await aiohttp_client(create_app(cfg))
    status, text, _ = await call(client, IS_ROOT, auth=basic("hashed", "hashed-secret"))
    assert status == 200, text
    status, text, _ = await call(client, IS_ROOT, auth=None,
                                 header=digest_token("hashed", "hashed-secret"))
    assert "plain secret" in client_fault(status, text, http=401)


@pytest.mark.parametrize("token, message", [
    (f'<wsse:Security xmlns:wsse="{WSSE}"><wsse:UsernameToken>'
     f"<wsse:Username>test-admin</wsse:Username></wsse:UsernameToken></wsse:Security>",
     "needs a Username and a Password"),
    (f'<wsse:Security xmlns:wsse="{WSSE}"><wsse:UsernameToken>'
     f'<wsse:Password Type="{PASSWORD_TEXT}">test-admin-secret</wsse:Password>'
     f"</wsse:UsernameToken></wsse:Security>",
     "needs a Username and a Password"),
    (digest_token(*ADMIN_CLIENT, nonce_text="%%%not base64%%%"), "not Base64"),
    (f'<wsse:Security xmlns:wsse="{WSSE}"><wsse:UsernameToken>'
     f"<wsse:Username>test-admin</wsse:Username>"
     f'<wsse:Password Type="{PROFILE}#PasswordFancy">test-admin-secret</wsse:Password>'
     f"</wsse:UsernameToken></wsse:Security>",
     "Unsupported UsernameToken password type"),
    (f'<wsse:Security xmlns:wsse="{WSSE}"><wsse:UsernameToken>'
     f"<wsse:Username>test-admin</wsse:Username>"
     f'<wsse:Password Type="{PASSWORD_DIGEST}">AAAA</wsse:Password>'
     f"</wsse:UsernameToken></wsse:Security>",
     "needs a Nonce and a Created"),
], ids=["no-password", "no-username", "bad-nonce", "unknown-type", "digest-no-nonce"])
async def test_malformed_username_token_is_401(gateway, token, message):
    # a valid Basic header does not rescue a broken token: the token is what counts
    for auth in (None, ADMIN):
        status, text, _ = await call(gateway, IS_ROOT, auth=auth, header=token)
        assert message in client_fault(status, text, http=401)


# 2. permissions -------------------------------------------------------------------------------
async def test_reader_may_read(gateway):
    status, text, _ = await call(gateway, IS_ROOT, auth=READER)
    assert status == 200 and returns(text) == ["true"], text
    status, text, _ = await call(gateway, op("getUserClaimValues", ("userName", ADMIN_USER[0]),
                                             ("profileName", "default")), auth=READER)
    assert status == 200, text
    assert f"{CLAIM}username" in text and ADMIN_USER[0] in text
    status, text, _ = await call(gateway, op("listUsers", ("filter", "*"),
                                             ("maxItemLimit", 10)), auth=READER)
    assert status == 200 and ADMIN_USER[0] in returns(text), text
    status, text, _ = await call(gateway, op("getRoleNames"), auth=READER)
    assert status == 200 and "admin" in returns(text), text



async def test_reader_may_not_write_and_nothing_changes(gateway):
    await add_user(gateway, "victim", "Victim-password-1")
    users_before = await scim_user_names(gateway)
    refused = [
        (op("addUser", ("userName", "intruder"), ("credential", "Intruder-password-1")),
         "users:create"),
        (op("deleteUser", ("userName", "victim")), "users:delete"),
        (op("addRole", ("roleName", "intruders"), ("userList", "victim")), "groups:create"),
        (op("setUserClaimValue", ("userName", "victim"), ("claimURI", CLAIM + "lastname"),
            ("claimValue", "Pwned"), ("profileName", "default")), "users:update"),
        (op("updateCredentialByAdmin", ("userName", "victim"),
            ("newCredential", "Hijacked-password-1")), "users:update"),
        (op("authenticate", ("userName", "victim"), ("credential", "Victim-password-1")),
         "users:authenticate"),
    ]
    for body, permission in refused:
        for soap12 in (False, True):
            status, text, _ = await call(gateway, body, auth=READER, soap12=soap12)
            reason = client_fault(status, text, soap12=soap12)  # a fault like any other
            assert permission in reason and "test-reader" in reason, reason
    assert await scim_user_names(gateway) == users_before
    assert not await exists(gateway, "intruder")
    assert await exists(gateway, "victim")
    assert not await role_exists(gateway, "intruders")
    status, text, _ = await call(gateway, op("getUserClaimValue", ("userName", "victim"),
                                             ("claim", CLAIM + "lastname"),
                                             ("profileName", "default")))
    assert status == 200 and "Pwned" not in text, text
    assert await can_login(gateway, "victim", "Victim-password-1")
    assert not await can_login(gateway, "victim", "Hijacked-password-1")


async def test_authenticate_only_client(aiohttp_client, make_config, admin_env):
    cfg = await make_config()
    cfg = replace(cfg, clients=cfg.clients + (
        ClientConfig("login-only", ("users:authenticate",), secret="login-secret"),))
    client = await aiohttp_client(create_app(cfg))
    auth = basic("login-only", "login-secret")
    status, text, _ = await call(client, op("authenticate", ("userName", ADMIN_USER[0]),
                                            ("credential", ADMIN_USER[1])), auth=auth)
    assert status == 200 and returns(text) == ["true"], text
    status, text, _ = await call(client, op("authenticate", ("userName", ADMIN_USER[0]),
                                            ("credential", "wrong")), auth=auth)
    assert status == 200 and returns(text) == ["false"], text
    for body, permission in ((IS_ROOT, "users:view"),
                             (op("listUsers", ("filter", "*"), ("maxItemLimit", 5)),
                              "users:list"),
                             (op("getRoleNames"), "users:view"),
                             (op("getUserClaimValues", ("userName", ADMIN_USER[0])),
                              "users:view"),
                             (op("addUser", ("userName", "x"), ("credential", "X-password-1")),
                              "users:create"),
                             (op("deleteUser", ("userName", ADMIN_USER[0])), "users:delete")):
        status, text, _ = await call(client, body, auth=auth)
        assert permission in client_fault(status, text)
    assert not await exists(client, "x")
    assert await exists(client, ADMIN_USER[0])


async def test_store_user_role_permissions(aiohttp_client, make_config, admin_env):
    cfg = await make_config(roles={"admin": ("*",), "helpdesk": ("users:view", "users:list")})
    client = await aiohttp_client(create_app(cfg))
    status, text, _ = await call(client, op("addRole", ("roleName", "helpdesk")))
    assert status == 202, text
    await add_user(client, "hd", "Helpdesk-password-1", roles=["helpdesk"])
    auth = basic("hd", "Helpdesk-password-1")
    status, text, _ = await call(client, op("listUsers", ("filter", "*"),
                                            ("maxItemLimit", 10)), auth=auth)
    assert status == 200, text
    assert sorted(returns(text)) == sorted(["hd", ADMIN_USER[0]])
    status, text, _ = await call(client, IS_ROOT, auth=auth)
    assert status == 200 and returns(text) == ["true"], text
    # the same user over a UsernameToken
    status, text, _ = await call(client, IS_ROOT, auth=None,
                                 header=text_token("hd", "Helpdesk-password-1"))
    assert status == 200 and returns(text) == ["true"], text
    for body, permission in (
            (op("addUser", ("userName", "made-by-hd"), ("credential", "Made-password-1")),
             "users:create"),
            (op("addRole", ("roleName", "hd-role")), "groups:create"),
            (op("authenticate", ("userName", ADMIN_USER[0]), ("credential", ADMIN_USER[1])),
             "users:authenticate"),
            (op("deleteUser", ("userName", ADMIN_USER[0])), "users:delete")):
        status, text, _ = await call(client, body, auth=auth)
        assert permission in client_fault(status, text)
    assert not await exists(client, "made-by-hd")
    assert not await role_exists(client, "hd-role")
    assert await exists(client, ADMIN_USER[0])
    assert sorted(await scim_user_names(client)) == sorted(["hd", ADMIN_USER[0]])


# 3. XML hardening ---------------------------------------------------------------------------
def _with_prolog(prolog: str, user: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>{prolog}'
            f'<soapenv:Envelope xmlns:soapenv="{SOAP11_ENV}" xmlns:ns="{TNS}">'
            f"<soapenv:Body><ns:addUser><ns:userName>{user}</ns:userName>"
            f"<ns:credential>Kim-password-1</ns:credential></ns:addUser></soapenv:Body>"
            f"</soapenv:Envelope>").encode()


BILLION_LAUGHS = (
    '<!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
              for i in range(1, 10))
    + "]>")

DOCTYPES = {
    "plain": ("<!DOCTYPE soapenv:Envelope>", "kim"),
    "internal-entity": ('<!DOCTYPE e [<!ENTITY who "kim">]>', "&who;"),
    "xxe-file": ('<!DOCTYPE e [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>', "k&xxe;"),
    "xxe-parameter": ('<!DOCTYPE e [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>', "kim"),
    "external-dtd": ('<!DOCTYPE e SYSTEM "file:///etc/passwd">', "kim"),
    "billion-laughs": (BILLION_LAUGHS, "k&lol9;"),
}


@pytest.mark.parametrize("kind", list(DOCTYPES))
async def test_any_doctype_is_a_client_fault(gateway, kind):
    prolog, user = DOCTYPES[kind]
    status, text, _ = await post(gateway, _with_prolog(prolog, user))
    assert client_fault(status, text) == "A DOCTYPE is not allowed in a SOAP message"
    for marker in PASSWD_MARKERS:
        assert marker not in text
    assert "lollol" not in text
    assert len(text) < 4000
    assert [n for n in await scim_user_names(gateway) if n.startswith("k")] == []


@pytest.mark.parametrize("encode", [
    pytest.param(lambda text: text.encode(), id="utf8"),
    pytest.param(lambda text: b"\xef\xbb\xbf" + text.encode(), id="utf8-bom"),
    pytest.param(lambda text: text.replace('"UTF-8"', '"UTF-16"').encode("utf-16"), id="utf16"),
    pytest.param(lambda text: text.replace('"UTF-8"', '"UTF-16"').encode("utf-16-be"),
                 id="utf16be-no-bom"),
])
async def test_doctype_behind_comments_and_in_utf16_is_refused(gateway, encode):
    # comments, processing instructions and white space before the DOCTYPE, and the other
    # encodings a SOAP message may use, do not hide it from the gateway's own check
    prolog = "\n<!-- a comment -->\n<?pi x?>" + BILLION_LAUGHS
    data = encode(_with_prolog(prolog, "k&lol9;").decode())
    status, text, _ = await post(gateway, data)
    assert client_fault(status, text) == "A DOCTYPE is not allowed in a SOAP message"
    assert "lollol" not in text
    assert [n for n in await scim_user_names(gateway) if n.startswith("k")] == []


async def test_utf32_is_an_unsupported_encoding(gateway):
    data = envelope(IS_ROOT).decode().replace('encoding="UTF-8"', 'encoding="UTF-32"')
    status, text, _ = await post(gateway, data.encode("utf-32"))
    assert "unsupported encoding (UTF-8 or UTF-16 expected)" in client_fault(status, text)


async def test_deeply_nested_xml_is_a_client_fault(gateway):
    depth = 10_000
    nested = "<a>" * depth + "x" + "</a>" * depth
    for soap12 in (False, True):
        body = op("isExistingUser", ("userName", Raw(nested)))
        status, text, _ = await call(gateway, body, soap12=soap12)
        reason = client_fault(status, text, soap12=soap12)
        assert reason == "The XML is nested deeper than 64 levels", reason


async def test_nesting_within_the_limit_is_not_refused_as_too_deep(gateway):
    # 40 levels inside the operation: a plain Client fault about the value at most,
    # not the depth limit (the limit is not so low that real envelopes hit it)
    nested = "<a>" * 40 + "x" + "</a>" * 40
    status, text, _ = await call(gateway, op("isExistingUser", ("userName", Raw(nested))))
    reason = client_fault(status, text)
    assert "nested" not in reason and "user name is required" in reason, reason
    nested = "<a>" * 70 + "x" + "</a>" * 70
    status, text, _ = await call(gateway, op("isExistingUser", ("userName", Raw(nested))))
    assert "nested deeper than 64 levels" in client_fault(status, text)


@pytest.mark.parametrize("soap12", [False, True], ids=["soap11", "soap12"])
async def test_body_over_max_body_bytes(aiohttp_client, make_config, admin_env, soap12):
    limit = 2048
    cfg = await make_config(max_body_bytes=limit)
    client = await aiohttp_client(create_app(cfg))
    filler = "x" * (limit + 100)
    data = envelope(op("addUser", ("userName", "bigkim"), ("credential", "Kim-password-1"),
                       ("profileName", filler)), soap12=soap12)
    status, text, _ = await post(client, data, soap12=soap12)
    reason = client_fault(status, text, soap12=soap12)
    assert "larger than 2048 bytes" in reason
    # the same without a Content-Length (chunked): the limit holds while reading

    async def chunks():
        for i in range(0, len(data), 512):
            yield data[i:i + 512]

    headers = {**ADMIN, "Content-Type": content_type(soap12)}
    resp = await asyncio.wait_for(client.post(V1, data=chunks(), headers=headers), TIMEOUT)
    text = (await resp.read()).decode()
    assert "larger than 2048 bytes" in client_fault(resp.status, text, soap12=soap12)
    # a request under the limit still works
    status, text, _ = await call(client, IS_ROOT, soap12=soap12)
    assert status == 200, text
    assert not await exists(client, "bigkim")


@pytest.mark.parametrize("data, message", [
    (b"", "no body"),
    (b"   \n  ", "no body"),
    (b"this is not xml", "well-formed"),
    (b'{"userName": "kim"}', "well-formed"),
    (b"<unclosed><soapenv:Envelope>", "well-formed"),
    (f'<soapenv:Envelope xmlns:soapenv="{SOAP11_ENV}"><soapenv:Body>'.encode(), "well-formed"),
    (b"<userName>kim</userName>", "not a SOAP envelope"),
    (b'<?xml version="1.0"?>', "well-formed"),
    (b"\xff\xfe\x00garbage", "well-formed"),
], ids=["empty", "blank", "text", "json", "unclosed", "truncated", "not-envelope",
        "declaration-only", "binary"])
async def test_broken_requests_are_client_faults(gateway, data, message):
    status, text, _ = await post(gateway, data)
    assert message in client_fault(status, text)
    # before the envelope is known, the Content-Type says which SOAP version answers
    status, text, _ = await post(gateway, data, soap12=True)
    assert message in client_fault(status, text, soap12=True)


async def test_envelope_without_body_or_operation(gateway):
    for data in (f'<soapenv:Envelope xmlns:soapenv="{SOAP11_ENV}"/>'.encode(),
                 envelope(""),
                 envelope("just text")):
        status, text, _ = await post(gateway, data)
        client_fault(status, text)


def version_mismatch(status: int, text: str) -> str:
    """A SOAP 1.1 ``VersionMismatch`` fault (SOAP 1.1 §4.4.1, SOAP 1.2 part 1 §5.4.7 and
    appendix A: in SOAP 1.1, which both versions' senders read) with HTTP 500, SOAP
    1.2's Upgrade header block listing the envelopes the service takes, and no detail
    (the fault is not about the Body); its reason."""
    assert status == 500, text
    root = xml(text)
    assert root.tag == f"{{{SOAP11_ENV}}}Envelope", text
    found = root.find(f"{{{SOAP11_ENV}}}Body/{{{SOAP11_ENV}}}Fault")
    assert found is not None, text
    code = found.find("faultcode")
    prefix, _, local = code.text.partition(":")
    assert local == "VersionMismatch" and code.nsmap.get(prefix) == SOAP11_ENV, text
    assert found.find("detail") is None, text
    upgrade = root.findall(f"{{{SOAP11_ENV}}}Header/{{{SOAP12_ENV}}}Upgrade")
    assert len(upgrade) == 1, text
    supported = []
    for el in upgrade[0].findall(f"{{{SOAP12_ENV}}}SupportedEnvelope"):
        qprefix, _, qlocal = el.get("qname").partition(":")
        supported.append((el.nsmap[qprefix], qlocal))
    assert supported == [(SOAP12_ENV, "Envelope"), (SOAP11_ENV, "Envelope")], text
    reason = found.find("faultstring").text
    assert reason, text
    return reason


ENDPOINTS = [V1, V1_SOAP11, V1_SOAP12, V1_SOAP11.replace("Https", "Http") + "/"]


async def test_soap_version_is_the_content_types_and_the_envelope_must_match_it(gateway):
    """As in WSO2 (Axis2), the Content-Type says which SOAP version a request is, on every
    endpoint (``…Soap11Endpoint`` and ``…Soap12Endpoint`` are WSO2's port names, and
    generated clients post either version to either address); an envelope of the other
    version is a VersionMismatch fault, a Content-Type of no SOAP binding HTTP 415."""
    for path in ENDPOINTS:
        # the right pairs work everywhere
        status, text, resp = await post(gateway, envelope(IS_ROOT), path)
        assert status == 200 and returns(text) == ["true"], (path, text)
        assert resp.content_type == "text/xml"
        assert xml(text).tag == f"{{{SOAP11_ENV}}}Envelope"
        status, text, resp = await post(gateway, envelope(IS_ROOT, soap12=True), path,
                                        soap12=True)
        assert status == 200 and returns(text) == ["true"], (path, text)
        assert resp.content_type == "application/soap+xml"
        assert xml(text).tag == f"{{{SOAP12_ENV}}}Envelope"
        # a SOAP 1.2 envelope posted as text/xml (SOAP 1.1's media type)
        status, text, resp = await post(gateway, envelope(IS_ROOT, soap12=True), path,
                                        ctype="text/xml; charset=utf-8")
        assert "is SOAP 1.2 but the Content-Type text/xml" in version_mismatch(status, text)
        assert resp.content_type == "text/xml"
        # a SOAP 1.1 envelope posted as application/soap+xml (SOAP 1.2's)
        status, text, resp = await post(gateway, envelope(IS_ROOT), path,
                                        ctype="application/soap+xml; charset=utf-8")
        assert "is SOAP 1.1 but the Content-Type application/soap+xml" in version_mismatch(
            status, text)
        assert resp.content_type == "text/xml"
        # an Envelope of no SOAP version
        status, text, _ = await post(gateway, b'<Envelope xmlns="urn:not-soap"><Body/>'
                                     b"</Envelope>", path)
        assert "urn:not-soap is no SOAP version's" in version_mismatch(status, text)
        # a Content-Type of no SOAP binding: 415, a Client fault of the endpoint's version
        soap12 = path == V1_SOAP12
        for ctype in ("application/json", "application/xml", "text/plain; charset=utf-8",
                      "multipart/related; type=\"application/xop+xml\""):
            status, text, _ = await post(gateway, envelope(IS_ROOT, soap12=soap12), path,
                                         ctype=ctype)
            reason = client_fault(status, text, soap12=soap12, http=415)
            assert f"not {ctype}" in reason and "text/xml" in reason, reason
        resp = await asyncio.wait_for(gateway.post(
            path, data=envelope(IS_ROOT), headers=ADMIN,
            skip_auto_headers=["Content-Type"]), TIMEOUT)
        text = (await resp.read()).decode()
        assert "has no Content-Type" in client_fault(resp.status, text, soap12=soap12, http=415)
    # the version is checked before the caller is: no credentials, still the mismatch
    status, text, _ = await post(gateway, envelope(IS_ROOT, soap12=True), V1, auth=None)
    version_mismatch(status, text)
    # a refused write did nothing
    for soap12, ctype in ((True, "text/xml"), (False, "application/soap+xml"),
                          (False, "application/json")):
        body = op("addUser", ("userName", "wrongversion"), ("credential", "Kim-password-1"))
        status, _, _ = await post(gateway, envelope(body, soap12=soap12), V1, ctype=ctype)
        assert status in (415, 500)
    assert not await exists(gateway, "wrongversion")
    assert "wrongversion" not in await scim_user_names(gateway)


async def test_unknown_operation_and_wrong_namespace(gateway):
    for soap12 in (False, True):
        status, text, _ = await call(gateway, op("dropAllUsers", ("userName", "x")),
                                     soap12=soap12)
        assert "Unknown operation" in client_fault(status, text, soap12=soap12)
        wrong_ns = ('<x:isExistingUser xmlns:x="http://evil.example.org">'
                    f"<x:userName>{ADMIN_USER[0]}</x:userName></x:isExistingUser>")
        status, text, _ = await call(gateway, wrong_ns, soap12=soap12)
        client_fault(status, text, soap12=soap12)
        # an operation element without a namespace is dispatched by its local name, as
        # Axis2 (WSO2) does: lenient, documented here so that a change is noticed
        no_ns = f"<isExistingUser><userName>{ADMIN_USER[0]}</userName></isExistingUser>"
        status, text, _ = await call(gateway, no_ns, soap12=soap12)
        assert status == 200 and returns(text) == ["true"], text
    wrong_ns_add = ('<x:addUser xmlns:x="http://evil.example.org"><x:userName>nsuser'
                    "</x:userName><x:credential>Kim-password-1</x:credential></x:addUser>")
    status, text, _ = await call(gateway, wrong_ns_add)
    client_fault(status, text)
    assert not await exists(gateway, "nsuser")


async def test_bad_integer_is_a_client_fault(gateway):
    for soap12 in (False, True):
        for value in ("abc", "1.5", "99999999999999999999", "", "0x10"):
            status, text, _ = await call(gateway, op("listUsers", ("filter", "*"),
                                                     ("maxItemLimit", value)), soap12=soap12)
            assert "Invalid request" in client_fault(status, text, soap12=soap12), value


async def test_bad_boolean_is_a_client_fault(gateway):
    for soap12 in (False, True):
        for value in ("maybe", "yes", "TRUE!"):
            status, text, _ = await call(gateway, op(
                "addUser", ("userName", "maybe"), ("credential", "Kim-password-1"),
                ("requirePasswordChange", value)), soap12=soap12)
            assert "Invalid request" in client_fault(status, text, soap12=soap12), value
    assert not await exists(gateway, "maybe")
    assert "maybe" not in await scim_user_names(gateway)
    # the valid lexical forms of xs:boolean are accepted
    for i, value in enumerate(("true", "false", "1", "0")):
        await add_user_with(gateway, f"bool{i}", value)


async def add_user_with(client, name: str, require_change: str) -> None:
    status, text, _ = await call(client, op("addUser", ("userName", name),
                                            ("credential", "Kim-password-1"),
                                            ("requirePasswordChange", require_change)))
    assert status == 202, text
    assert await exists(client, name)


XI = "http://www.w3.org/2001/XInclude"


async def test_xinclude_is_not_processed(gateway):
    include = Raw(f'kim<xi:include xmlns:xi="{XI}" href="file:///etc/passwd" parse="text"/>')
    status, text, _ = await call(gateway, op("addUser", ("userName", include),
                                             ("credential", "Kim-password-1")))
    for marker in PASSWD_MARKERS:
        assert marker not in text
    # the xi:include element is ignored: the user name is the text around it
    assert status == 202, text
    assert await scim_user_names(gateway) == sorted(["kim", ADMIN_USER[0]])
    # in a read: the element is not replaced by the file either
    status, text, _ = await call(gateway, op("getUserClaimValues", ("userName", Raw(
        f'<xi:include xmlns:xi="{XI}" href="file:///etc/passwd" parse="text"/>'))))
    for marker in PASSWD_MARKERS:
        assert marker not in text
    assert "user name is required" in client_fault(status, text)
    # in the header: ignored, the call goes on
    header = f'<xi:include xmlns:xi="{XI}" href="file:///etc/passwd" parse="text"/>'
    status, text, _ = await call(gateway, IS_ROOT, header=header)
    assert status == 200 and returns(text) == ["true"], text
    # as the whole body: an xi:include element is not an operation
    body = f'<xi:include xmlns:xi="{XI}" href="file:///etc/passwd" parse="xml"/>'
    status, text, _ = await call(gateway, body)
    assert "Unknown operation" in client_fault(status, text)
    for marker in PASSWD_MARKERS:
        assert marker not in text


async def test_comments_and_processing_instructions_are_harmless(gateway):
    data = (f'<?xml version="1.0" encoding="UTF-8"?><?xml-stylesheet href="file:///etc/passwd"?>'
            f"<!-- a comment before the envelope -->"
            f'<soapenv:Envelope xmlns:soapenv="{SOAP11_ENV}" xmlns:ns="{TNS}"><!-- c -->'
            f"<soapenv:Body><?app do-something?><ns:isExistingUser><!-- c -->"
            f"<ns:userName>{ADMIN_USER[0]}</ns:userName><?pi x?></ns:isExistingUser>"
            f"</soapenv:Body></soapenv:Envelope><!-- after -->").encode()
    status, text, _ = await post(gateway, data)
    assert status == 200, text
    assert returns(text) == ["true"]
    for marker in PASSWD_MARKERS:
        assert marker not in text
    # a comment inside a value is dropped and the text around it joined
    split = ADMIN_USER[0][:2] + "<!-- split -->" + ADMIN_USER[0][2:]
    status, text, _ = await call(gateway, op("isExistingUser", ("userName", Raw(split))))
    assert status == 200, text
    assert returns(text) == ["true"]


async def test_utf16_envelope(gateway):
    """A UTF-16 envelope (with BOM and declaration) works like UTF-8."""
    text8 = envelope(op("addUser", ("userName", "jürgen"), ("credential", "Kim-password-1")))
    data = text8.decode().replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16")
    assert data[:2] in (b"\xff\xfe", b"\xfe\xff")
    status, text, _ = await post(gateway, data, ctype="text/xml; charset=utf-16")
    assert status == 202, text
    assert "jürgen" in await scim_user_names(gateway)
    data = envelope(op("isExistingUser", ("userName", "jürgen"))).decode().replace(
        'encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16")
    status, text, resp = await post(gateway, data, ctype="text/xml; charset=utf-16")
    assert status == 200 and returns(text) == ["true"], text
    assert resp.charset.lower() == "utf-8"


async def test_utf16_declared_but_utf8_sent_is_a_client_fault(gateway):
    data = envelope(IS_ROOT).decode().replace('encoding="UTF-8"', 'encoding="UTF-16"').encode()
    status, text, _ = await post(gateway, data)
    assert "not well-formed" in client_fault(status, text)


# 4. fault format ---------------------------------------------------------------------------
async def test_soap11_fault_format(gateway):
    status, text, resp = await call(gateway, op("deleteUser", ("userName", "ghost")))
    assert status == 500
    assert resp.content_type == "text/xml"
    parts = fault(status, text)
    assert parts["code"] == "Client"
    assert "30007" in parts["reason"] and "ghost" in parts["reason"]
    root = xml(text)
    # faultcode/faultstring/detail are unqualified, as SOAP 1.1 has them
    found = root.find(f"{{{SOAP11_ENV}}}Body/{{{SOAP11_ENV}}}Fault")
    assert [c.tag for c in found] == ["faultcode", "faultstring", "detail"]


async def test_v2_fault_has_error_code(gateway):
    status, text, _ = await call(gateway, op("deleteUser", ("userName", "ghost")), path=V2)
    parts = fault(status, text, v2=True)
    assert status == 500 and parts["code"] == "Client"
    assert parts["error_code"] == "30007"
    status, text, _ = await call(gateway, op("deleteUser", ("userName", "ghost")), path=V2,
                                 soap12=True)
    parts = fault(status, text, v2=True, soap12=True)
    assert status == 400 and parts["code"] == "Sender" and parts["error_code"] == "30007"
    # a fault without a WSO2 code names the error class
    status, text, _ = await call(gateway, op("listUsers", ("maxItemLimit", "abc")), path=V2)
    parts = fault(status, text, v2=True)
    assert parts["error_code"] and not parts["error_code"].isdigit()


async def test_soap12_fault_format(gateway):
    status, text, resp = await call(gateway, op("deleteUser", ("userName", "ghost")),
                                    soap12=True)
    assert status == 400
    assert resp.content_type == "application/soap+xml"
    parts = fault(status, text, soap12=True)
    assert parts["code"] == "Sender" and "30007" in parts["reason"]
    root = xml(text)
    reason = root.find(f".//{{{SOAP12_ENV}}}Reason/{{{SOAP12_ENV}}}Text")
    assert reason.get("{http://www.w3.org/XML/1998/namespace}lang") == "en"


async def test_server_fault_hides_the_internal_error(gateway, monkeypatch, caplog):
    pipeline = gateway.server.app[PIPELINE]

    async def broken(principal, operation):
        raise RuntimeError("database exploded at /secret/internal/path")

    monkeypatch.setattr(pipeline, "execute", broken)
    caplog.set_level(logging.ERROR, logger="gateway.soap")
    for soap12, code, http in ((False, "Server", 500), (True, "Receiver", 500)):
        status, text, _ = await call(gateway, op("getRoleNames"), soap12=soap12)
        assert status == http, text
        parts = fault(status, text, soap12=soap12)
        assert parts["code"] == code
        assert parts["reason"] == "Internal error"
        assert "exploded" not in text and "/secret/internal" not in text
    status, text, _ = await call(gateway, op("getRoleNames"), path=V2)
    parts = fault(status, text, v2=True)
    assert parts["code"] == "Server" and parts["error_code"] == "GatewayError"
    assert any("exploded" in (r.exc_text or "") or r.exc_info for r in caplog.records)


# 5. one-way operations ----------------------------------------------------------------------
async def test_v1_one_way_success_is_202_empty(gateway):
    for soap12 in (False, True):
        name = f"oneway{int(soap12)}"
        status, text, resp = await call(gateway, op("addUser", ("userName", name),
                                                    ("credential", "Kim-password-1")),
                                        soap12=soap12)
        assert status == 202 and text == "", text
        assert await exists(gateway, name)
        status, text, _ = await call(gateway, op("deleteUser", ("userName", name)),
                                     soap12=soap12)
        assert status == 202 and text == "", text
        assert not await exists(gateway, name)


async def test_v1_one_way_failure_is_a_fault_not_202(gateway):
    status, text, _ = await call(gateway, op("deleteUser", ("userName", "ghost")))
    assert "30007" in client_fault(status, text)
    await add_user(gateway, "twice")
    status, text, _ = await call(gateway, op("addUser", ("userName", "twice"),
                                             ("credential", "Kim-password-1")))
    assert "30004" in client_fault(status, text)
    status, text, _ = await call(gateway, op("addUser", ("userName", "norole"),
                                             ("credential", "Kim-password-1"),
                                             ("roleList", "no-such-role")))
    assert "no-such-role" in client_fault(status, text)
    assert not await exists(gateway, "norole")


async def test_v2_void_operations_return_true(gateway):
    for soap12 in (False, True):
        name = f"v2user{int(soap12)}"
        status, text, _ = await call(gateway, op("addUser", ("userName", name),
                                                 ("credential", "Kim-password-1")),
                                     path=V2, soap12=soap12)
        assert status == 200, text
        assert returns(text) == ["true"]
        root = xml(text)
        env = SOAP12_ENV if soap12 else SOAP11_ENV
        response = root.find(f"{{{env}}}Body/{{{TNS}}}addUserResponse")
        assert response is not None, text
        status, text, _ = await call(gateway, op("deleteUser", ("userName", name)),
                                     path=V2, soap12=soap12)
        assert status == 200 and returns(text) == ["true"], text
        assert not await exists(gateway, name)


# 6. logging -----------------------------------------------------------------------------------
def _record_texts(records) -> list[str]:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    out = []
    for record in records:
        out.append(formatter.format(record))
        out.append(record.getMessage())
        if record.exc_info and record.exc_info[1] is not None:
            out.append("".join(traceback.format_exception(*record.exc_info)))
        out.append(record.exc_text or "")
        out.append(str(record.args))
    return out


async def test_passwords_never_reach_the_logs(gateway, caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("gateway", "spyne", "aiohttp", "sqlalchemy", "asyncio"):
        caplog.set_level(logging.DEBUG, logger=name)
    # a malformed envelope carrying the credential (body, Basic header, token)
    broken = (f'<soapenv:Envelope xmlns:soapenv="{SOAP11_ENV}" xmlns:ns="{TNS}">'
              f"<soapenv:Body><ns:addUser><ns:userName>leak</ns:userName>"
              f"<ns:credential>{SECRET}</ns:credential></ns:addUser>").encode()
    status, text, _ = await post(gateway, broken)
    client_fault(status, text)
    status, text, _ = await post(gateway, broken, auth=basic(ADMIN_USER[0], SECRET))
    client_fault(status, text, http=401) if status == 401 else client_fault(status, text)
    # valid envelopes that fail: unknown role, bad boolean, wrong password, bad token
    status, text, _ = await call(gateway, op("addUser", ("userName", "leak"),
                                             ("credential", SECRET),
                                             ("roleList", "no-such-role")))
    client_fault(status, text)
    status, text, _ = await call(gateway, op("addUser", ("userName", "leak-bool"),
                                             ("credential", SECRET),
                                             ("requirePasswordChange", "maybe")))
    assert status in (202, 500), text  # a Client fault is expected: see test_bad_values...
    status, text, _ = await call(gateway, op("authenticate", ("userName", ADMIN_USER[0]),
                                             ("credential", SECRET)))
    assert status == 200 and returns(text) == ["false"], text
    status, text, _ = await call(gateway, IS_ROOT, auth=basic(ADMIN_USER[0], SECRET))
    client_fault(status, text, http=401)
    status, text, _ = await call(gateway, IS_ROOT, auth=None,
                                 header=text_token(ADMIN_USER[0], SECRET))
    client_fault(status, text, http=401)
    status, text, _ = await call(gateway, IS_ROOT, auth=None,
                                 header=digest_token(ADMIN_USER[0], SECRET))
    client_fault(status, text, http=401)
    status, text, _ = await call(gateway, op("updateCredential", ("userName", ADMIN_USER[0]),
                                             ("newCredential", "New-password-1"),
                                             ("oldCredential", SECRET)))
    assert status in (403, 500), text
    status, text, _ = await call(gateway, op("updateCredentialByAdmin", ("userName", "ghost"),
                                             ("newCredential", SECRET)))
    client_fault(status, text)
    # a server-side failure logs an error with a traceback: still no password in it
    pipeline = gateway.server.app[PIPELINE]
    original = pipeline.execute

    async def broken_execute(principal, operation):
        raise RuntimeError("store down")

    pipeline.execute = broken_execute
    try:
        status, text, _ = await call(gateway, op("addUser", ("userName", "leak"),
                                                 ("credential", SECRET)))
        assert status == 500 and fault(status, text)["code"] == "Server", text
    finally:
        pipeline.execute = original
    assert caplog.records, "expected log records (the failures above are logged)"
    for entry in _record_texts(caplog.records):
        assert SECRET not in entry, entry
        assert base64.b64encode(f"{ADMIN_USER[0]}:{SECRET}".encode()).decode() not in entry
    assert not await exists(gateway, "leak")
    assert SECRET not in caplog.text


# 7. GET -------------------------------------------------------------------------------------
async def test_get_without_wsdl_is_405_fault(gateway):
    for path in (V1, V2, V1_SOAP11, V1_SOAP12):
        resp = await asyncio.wait_for(gateway.get(path, headers=ADMIN), TIMEOUT)
        text = (await resp.read()).decode()
        assert resp.status == 405, (path, resp.status, text)
        assert "wsdl" in text
        if path != V1_SOAP12:  # (which SOAP version the 1.2 endpoint answers is not fixed)
            assert "?wsdl" in client_fault(resp.status, text, http=405, v2=path == V2)


async def test_get_with_wsdl_works(gateway):
    for path in (V1, V2):
        resp = await gateway.get(path + "?wsdl")
        assert resp.status == 200
        assert b"definitions" in await resp.read()


async def test_unknown_service_path_is_404(gateway):
    for path in ("/services/NoSuchService", "/services/NoSuchService?wsdl",
                 "/services/RemoteUserStoreManagerService.Bogus",
                 "/services/UserAdmin"):
        resp = await asyncio.wait_for(gateway.get(path, headers=ADMIN), TIMEOUT)
        assert resp.status == 404, path
        assert b"root:" not in await resp.read()
    status, text, _ = await post(gateway, envelope(IS_ROOT), "/services/NoSuchService")
    assert status == 404, text


async def test_locked_and_disabled_users_do_not_authenticate(gateway):
    """SOAP ``authenticate`` (V1 and V2) and a UsernameToken refuse a locked or disabled
    account with its right password, as they refuse a wrong password."""
    await add_user(gateway, "lockedkim", "Kim-password-1", roles=["admin"])
    status, body, _ = await scim(gateway, "GET", '/Users?filter=userName eq "lockedkim"')
    uid = body["Resources"][0]["id"]
    login = op("authenticate", ("userName", "lockedkim"), ("credential", "Kim-password-1"))
    for path in (V1, V2):
        status, text, _ = await call(gateway, login, path=path)
        assert status == 200 and returns(text) == ["true"], text
    for change in ({"path": "urn:scim:wso2:schema:accountLocked", "value": True},
                   {"path": "active", "value": False}):
        status, body, _ = await scim(gateway, "PATCH", f"/Users/{uid}", {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", **change}]})
        assert status == 200, body
        for path in (V1, V2):
            status, text, _ = await call(gateway, login, path=path)
            assert status == 200 and returns(text) == ["false"], text
        status, text, _ = await call(gateway, IS_ROOT, auth=None,
                                     header=text_token("lockedkim", "Kim-password-1"))
        assert status in (401, 500) and "Fault" in text, text
        status, text, _ = await call(gateway, IS_ROOT, auth=basic("lockedkim", "Kim-password-1"))
        assert status == 401, text
        status, body, _ = await scim(gateway, "PATCH", f"/Users/{uid}", {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": change["path"],
                            "value": not change["value"]}]})
        assert status == 200, body
    status, text, _ = await call(gateway, login, path=V2)
    assert status == 200 and returns(text) == ["true"], text


XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
XS_NS = "http://www.w3.org/2001/XMLSchema"


@pytest.mark.parametrize(("xsi_type", "value", "expected"), [
    ("xs:string", "abc", "maxItemLimit takes an xs:int"),
    ("xs:long", "99999999999", "maxItemLimit takes an xs:int (32 bits)"),
    ("xs:string", "10", None),  # read by the schema's type, as WSO2 does
])
async def test_values_typed_otherwise_by_xsi_type(gateway, xsi_type, value, expected):
    body = (f'<ns:listUsers><ns:filter>*</ns:filter><ns:maxItemLimit xmlns:xsi="{XSI_NS}" '
            f'xmlns:xs="{XS_NS}" xsi:type="{xsi_type}">{value}</ns:maxItemLimit>'
            "</ns:listUsers>")
    status, text, _ = await call(gateway, body)
    if expected is None:
        assert status == 200 and ADMIN_USER[0] in returns(text), text
    else:
        assert expected in client_fault(status, text)


async def test_everyone_cannot_be_removed_from_a_user(gateway):
    status, text, _ = await call(gateway, op("updateRoleListOfUser",
                                             ("userName", ADMIN_USER[0]),
                                             ("deletedRoles", ["Internal/everyone"])),
                                 path=V2)
    assert client_fault(status, text, v2=True) == "30009 - Cannot update everyone role"
    status, text, _ = await call(gateway, op("getRoleListOfUser",
                                             ("userName", ADMIN_USER[0])), path=V2)
    assert "Internal/everyone" in returns(text)


async def test_wsdl_address_follows_base_url_not_a_forged_host(aiohttp_client, make_config,
                                                               admin_env):
    cfg = replace(await make_config(), base_url="https://idm.example.com/")
    client = await aiohttp_client(create_app(cfg))
    resp = await client.get(V1 + "?wsdl", headers={"Host": "evil.example.net"})
    text = await resp.text()
    assert resp.status == 200
    assert "evil.example.net" not in text
    assert 'location="https://idm.example.com/services/' in text
    # without base_url, a Host that is no host name is not echoed either
    resp = await gateway_without_base(aiohttp_client, make_config)
    assert "<script>" not in resp and "services/" in resp


async def gateway_without_base(aiohttp_client, make_config) -> str:
    client = await aiohttp_client(create_app(await make_config()))
    resp = await client.get(V1 + "?wsdl", headers={"Host": "x\"><script>"})
    return await resp.text()


@pytest.mark.parametrize("soap12", [False, True], ids=["soap11", "soap12"])
async def test_mandatory_header_blocks_not_understood_are_a_must_understand_fault(gateway,
                                                                                  soap12):
    """SOAP 1.1 §4.2.3, SOAP 1.2 part 1 §5.2.3: nothing of the request is done."""
    yes = "true" if soap12 else "1"
    role = "role" if soap12 else "actor"
    body = op("addUser", ("userName", "mu-kim"), ("credential", "Kim-password-1"))
    strange = f'<x:Trace xmlns:x="urn:example:trace" soapenv:mustUnderstand="{yes}"/>'
    status, text, _ = await call(gateway, body, soap12=soap12, header=strange)
    assert status == 500, text
    parts = fault(status, text, soap12=soap12)
    assert parts["code"] == "MustUnderstand" and "urn:example:trace" in parts["reason"]
    assert not await exists(gateway, "mu-kim")
    # the same block, optional, or for another node; and WS-Addressing, which is understood
    for header in (strange.replace(f'mustUnderstand="{yes}"', 'mustUnderstand="0"'),
                   strange.replace("soapenv:mustUnderstand",
                                   f'soapenv:{role}="urn:another:node" soapenv:mustUnderstand'),
                   '<wsa:Action xmlns:wsa="http://www.w3.org/2005/08/addressing" '
                   f'soapenv:mustUnderstand="{yes}">urn:isExistingUser</wsa:Action>'):
        status, text, _ = await call(gateway, IS_ROOT, soap12=soap12, header=header)
        assert status == 200 and returns(text) == ["true"], (header, text)
