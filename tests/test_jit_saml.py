"""Just-in-time provisioning from SAML 2.0 logins: ``POST /jit/{provider}`` with assertions
signed by a real SAML IdP (pysaml2 + xmlsec1, ``saml_idp.py``), over HTTP against the gateway
on SQLite.

Happy paths: the assertion signed, the whole Response signed, both, a bare Assertion;
attributes and groups mapped; NameID or an attribute as the username; later logins update;
the consent and username modes; key rotation.

Every refusal is its own test: the reply is a clear JSON error (401 for a login that
cannot be trusted, 400 for a malformed request) and no user was made (nor changed). The
attacks are built as an attacker would, from genuinely signed XML: tampering, another
key, another issuer or audience, times, replay, a failed status, signature wrapping
(XSW: the signed assertion moved into Extensions or a ds:Object, a second assertion, an
evil assertion in a signed Response, content hidden in the Signature), a comment in the
NameID, DOCTYPE/entities, encryption, size.
"""

from __future__ import annotations

import copy
import shutil
import time
import uuid
from dataclasses import replace

import orjson
import pytest
from conftest import ADMIN, READER, scim, test_config
from lxml import etree
from saml2 import saml as saml_mod
from saml2 import samlp
from saml2.xmldsig import DIGEST_SHA1, SIG_RSA_SHA1
from saml_idp import (
    DS,
    GIVEN_NAME,
    IDP_ENTITY,
    MAIL,
    MEMBER_OF,
    NS,
    OTHER_SP_ENTITY,
    SAML,
    SAMLP,
    SP_ENTITY,
    SURNAME,
    SamlIdP,
    assertion_only,
    b64,
    parse,
    saml_time,
    serialize,
)

from gateway.app import create_app
from gateway.config import StoreConfig
from gateway.jit.config import JitConfig, ProviderConfig

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ALICE = "alice@example.com"
ATTRS = {"givenName": ["Alice"], "sn": ["Liddell"], "mail": [ALICE],
         "isMemberOf": ["cn=engineering,ou=groups", "cn=unmapped,ou=groups"]}
CLAIMS = ((GIVEN_NAME, "name.givenName"), (SURNAME, "name.familyName"),
          (MAIL, 'emails[type eq "work"].value'))
ROLES = (("cn=engineering,ou=groups", "engineers"), ("cn=admins,ou=groups", "admins"))


# the IdPs ------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def idps(tmp_path_factory):
    """The trusted IdP; an attacker's IdP with the same entity id but its own key; another
    tenant of the same (multi-tenant) IdP: the same key, another entity id; the trusted
    IdP after a key rotation (same entity id, a new key)."""
    assert shutil.which("xmlsec1"), ("pysaml2 signs with the xmlsec1 binary: "
                                     "apt-get install xmlsec1")
    base = tmp_path_factory.mktemp("saml-idps")
    trusted = SamlIdP(base / "trusted")
    attacker = SamlIdP(base / "attacker", label="attacker")
    tenant = SamlIdP(base / "tenant", entity_id="https://idp.example.test/tenant-b/metadata",
                     key_pair=(trusted.key_file, trusted.cert_file))
    rotated = SamlIdP(base / "rotated", label="rotated")
    sp = SamlIdP(base / "sp", label="sp")  # only for its certificate (encryption)
    return {"trusted": trusted, "attacker": attacker, "tenant": tenant,
            "rotated": rotated, "sp": sp}


@pytest.fixture
def idp(idps) -> SamlIdP:
    return idps["trusted"]


def providers(idps) -> tuple[ProviderConfig, ...]:
    partner = ProviderConfig(
        name="partner", type="saml", issuer=IDP_ENTITY, audience=SP_ENTITY,
        certificates=(idps["trusted"].cert_pem,), username_claim="NameID",
        subject_claim="NameID", claims=CLAIMS, roles_claim=MEMBER_OF, roles=ROLES)
    return (
        partner,
        replace(partner, name="partner-consent", mode="consent"),
        replace(partner, name="partner-choose", mode="username"),
        replace(partner, name="partner-mail", username_claim=MAIL),
        replace(partner, name="partner-linking", link_existing=True),
        replace(partner, name="partner-rotating",
                certificates=(idps["trusted"].cert_pem, idps["rotated"].cert_pem)),
    )


class Gateway:
    def __init__(self, client, baseline: set[str]):
        self.client = client
        self.baseline = baseline  # the users there before any login (the bootstrap admin)


@pytest.fixture
async def gw(aiohttp_client, tmp_path, idps, admin_env) -> Gateway:
    stores = {"PRIMARY": StoreConfig("PRIMARY", f"sqlite:///{tmp_path / 'primary.db'}")}
    cfg = replace(test_config(stores), jit=JitConfig(providers(idps)))
    client = await aiohttp_client(create_app(cfg))
    for role in ("engineers", "admins"):
        status, body, _ = await scim(client, "POST", "/Groups", {"displayName": role})
        assert status == 201, body
    return Gateway(client, await user_names(client))


# calls ---------------------------------------------------------------------------------------
async def login(gw: Gateway, response: str | bytes, provider: str = "partner", *,
                auth=ADMIN, encode: bool = True, **extra) -> tuple[int, dict]:
    body = {"saml_response": b64(response) if encode else response, **extra}
    resp = await gw.client.post(f"/jit/{provider}", data=orjson.dumps(body),
                                headers={**auth, "Content-Type": "application/json"})
    assert resp.content_type == "application/json", await resp.text()
    return resp.status, orjson.loads(await resp.read())


async def user_names(client) -> set[str]:
    status, body, _ = await scim(client, "GET", "/Users?count=200")
    assert status == 200, body
    return {u["userName"] for u in body.get("Resources", [])}


async def get_user(gw: Gateway, name: str) -> dict:
    status, body, _ = await scim(gw.client, "GET", f'/Users?filter=userName eq "{name}"')
    assert status == 200 and body["totalResults"] == 1, body
    return body["Resources"][0]


def roles_of(user: dict) -> set[str]:
    return {g["display"] for g in user.get("groups") or []}


async def refused(gw: Gateway, response: str | bytes, status: int, fragment: str,
                  provider: str = "partner", **kwargs) -> dict:
    """The login is refused with ``status`` and an error naming the reason; no user was made."""
    got, body = await login(gw, response, provider, **kwargs)
    assert got == status, body
    assert body["status"] == status
    assert fragment.lower() in body["error"].lower(), body
    assert await user_names(gw.client) == gw.baseline, "a refused login made a user"
    return body


# XML surgery, as an attacker --------------------------------------------------------------------
def q(ns: str, tag: str) -> str:
    return f"{{{ns}}}{tag}"


def the_assertion(root: etree._Element) -> etree._Element:
    found = root.find("saml:Assertion", NS) if root.tag != q(SAML, "Assertion") else root
    assert found is not None
    return found


def evil_copy(signed: etree._Element, name_id: str = "admin@example.com",
              keep_id: bool = False) -> etree._Element:
    """The signed assertion copied, its signature dropped, NameID and groups changed."""
    evil = copy.deepcopy(signed)
    for sig in evil.findall("ds:Signature", NS):
        evil.remove(sig)
    if not keep_id:
        evil.set("ID", f"id-evil-{uuid.uuid4().hex}")
    evil.find("saml:Subject/saml:NameID", NS).text = name_id
    for value in evil.iter(q(SAML, "AttributeValue")):
        if value.text and value.text.startswith("cn="):
            value.text = "cn=admins,ou=groups"
    return evil


def extensions_after_issuer(response: etree._Element) -> etree._Element:
    ext = etree.Element(q(SAMLP, "Extensions"))
    response.find("saml:Issuer", NS).addnext(ext)
    return ext


# happy paths ----------------------------------------------------------------------------------
@pytest.mark.parametrize("signing", [
    pytest.param(dict(sign_assertion=True, sign_response=False), id="assertion-signed"),
    pytest.param(dict(sign_assertion=False, sign_response=True), id="response-signed"),
    pytest.param(dict(sign_assertion=True, sign_response=True), id="both-signed"),
])
async def test_signed_login_creates_the_user_from_the_assertion(gw, idp, signing):
    xml = idp.response(ALICE, ATTRS, **signing)
    root = parse(xml)
    assert (root.find("ds:Signature", NS) is not None) == signing["sign_response"]
    assert (the_assertion(root).find("ds:Signature", NS) is not None) == \
        signing["sign_assertion"]
    status, body = await login(gw, xml)
    assert status == 201, body
    assert body["result"] == "created"
    user = body["user"]
    assert user["userName"] == ALICE  # the NameID
    assert user["name"]["givenName"] == "Alice"
    assert user["name"]["familyName"] == "Liddell"
    assert [e["value"] for e in user["emails"] if e.get("type") == "work"] == [ALICE]
    assert roles_of(await get_user(gw, ALICE)) == {"engineers"}
    assert await user_names(gw.client) == gw.baseline | {ALICE}


async def test_a_bare_signed_assertion_is_accepted(gw, idp):
    bare = assertion_only(idp.response(ALICE, ATTRS))
    assert etree.fromstring(bare).tag == q(SAML, "Assertion")
    status, body = await login(gw, bare)
    assert status == 201, body
    assert body["user"]["userName"] == ALICE


async def test_username_from_an_attribute(gw, idp):
    xml = idp.response("opaque-id-8812", {**ATTRS, "mail": ["alice.mail@example.com"]})
    status, body = await login(gw, xml, "partner-mail")
    assert status == 201, body
    assert body["user"]["userName"] == "alice.mail@example.com"


async def test_later_logins_update_attributes_and_roles(gw, idp):
    status, body = await login(gw, idp.response(ALICE, ATTRS))
    assert status == 201, body
    user_id = body["user"]["id"]
    # a new login (a new assertion ID): new name, other groups
    changed = {**ATTRS, "givenName": ["Alicia"], "isMemberOf": ["cn=admins,ou=groups"]}
    status, body = await login(gw, idp.response(ALICE, changed))
    assert status == 200, body
    assert body["result"] == "updated"
    assert body["user"]["id"] == user_id
    assert body["user"]["name"]["givenName"] == "Alicia"
    assert roles_of(await get_user(gw, ALICE)) == {"admins"}
    # the same again: nothing to change
    status, body = await login(gw, idp.response(ALICE, changed))
    assert status == 200, body
    assert body["result"] == "unchanged"
    assert await user_names(gw.client) == gw.baseline | {ALICE}


async def test_consent_mode(gw, idp):
    xml = idp.response(ALICE, ATTRS)
    await refused(gw, xml, 403, "consent", "partner-consent")
    await refused(gw, xml, 403, "consent", "partner-consent", consent="yes")  # only true
    # the user agrees: the same login is sent again, now with consent
    status, body = await login(gw, xml, "partner-consent", consent=True)
    assert status == 201, body
    assert body["user"]["userName"] == ALICE
    # once made, later logins need no consent
    status, body = await login(gw, idp.response(ALICE, ATTRS), "partner-consent")
    assert status == 200 and body["result"] == "unchanged", body


async def test_username_mode(gw, idp):
    xml = idp.response(ALICE, ATTRS)
    await refused(gw, xml, 400, "username", "partner-choose")
    await refused(gw, xml, 400, "username", "partner-choose", username="   ")
    # the user chose a name: the same login is sent again with it
    status, body = await login(gw, xml, "partner-choose", username="wonderland")
    assert status == 201, body
    assert body["user"]["userName"] == "wonderland"
    # the NameID is linked to the chosen name: found again without a username
    status, body = await login(gw, idp.response(ALICE, {**ATTRS, "givenName": ["Al"]}),
                               "partner-choose")
    assert status == 200, body
    assert body["user"]["userName"] == "wonderland"
    assert body["user"]["name"]["givenName"] == "Al"
    assert await user_names(gw.client) == gw.baseline | {"wonderland"}


async def test_a_large_genuine_response_is_accepted(gw, idp):
    # ~150 KB of XML (~200 KB of Base64): under the 256 KiB limit, so it must be read whole
    xml = idp.response(ALICE, {**ATTRS, "displayName": ["x" * 150_000]})
    assert 150_000 < len(xml) < 262_144
    status, body = await login(gw, xml)
    assert status == 201, body
    assert body["user"]["userName"] == ALICE


async def test_key_rotation_any_listed_certificate(gw, idps):
    status, body = await login(gw, idps["rotated"].response(ALICE, ATTRS), "partner-rotating")
    assert status == 201, body
    status, body = await login(gw, idps["trusted"].response(ALICE, ATTRS), "partner-rotating")
    assert status == 200, body


async def test_clock_skew_within_the_leeway_is_accepted(gw, idp):
    def skewed(_response, assertion):  # the IdP's clock 30 s ahead (leeway: 60 s)
        assertion.conditions.not_before = saml_time(30)

    status, body = await login(gw, idp.response(ALICE, ATTRS, tweak=skewed))
    assert status == 201, body


# signature -----------------------------------------------------------------------------------
async def test_unsigned_assertion(gw, idp):
    xml = idp.response(ALICE, ATTRS, sign_assertion=False, sign_response=False)
    assert "Signature" not in xml
    await refused(gw, xml, 401, "not signed")


async def test_signed_by_another_key(gw, idps):
    # the attacker's IdP claims the trusted entity id and embeds its own certificate
    xml = idps["attacker"].response(ALICE, ATTRS)
    assert "X509Certificate" in xml
    await refused(gw, xml, 401, "signature does not verify")


async def test_signed_by_another_key_whole_response(gw, idps):
    xml = idps["attacker"].response(ALICE, ATTRS, sign_assertion=False, sign_response=True)
    await refused(gw, xml, 401, "signature does not verify")


@pytest.mark.parametrize("where", ["NameID", "attribute", "conditions"])
async def test_tampered_after_signing(gw, idp, where):
    root = parse(idp.response(ALICE, ATTRS))
    assertion = the_assertion(root)
    if where == "NameID":
        assertion.find("saml:Subject/saml:NameID", NS).text = "admin@example.com"
    elif where == "attribute":
        for value in assertion.iter(q(SAML, "AttributeValue")):
            if value.text == "cn=engineering,ou=groups":
                value.text = "cn=admins,ou=groups"
    else:
        assertion.find("saml:Conditions", NS).set("NotOnOrAfter", saml_time(86400 * 365))
    await refused(gw, serialize(root), 401, "signature does not verify")


async def test_tampered_signed_response(gw, idp):
    root = parse(idp.response(ALICE, ATTRS, sign_assertion=False, sign_response=True))
    the_assertion(root).find("saml:Subject/saml:NameID", NS).text = "admin@example.com"
    await refused(gw, serialize(root), 401, "signature does not verify")


async def test_sha1_signature_refused(gw, idp):
    xml = idp.response(ALICE, ATTRS, sign_alg=SIG_RSA_SHA1, digest_alg=DIGEST_SHA1)
    assert "rsa-sha1" in xml
    await refused(gw, xml, 401, "signature does not verify")


# issuer, audience, times, status ---------------------------------------------------------------
async def test_wrong_issuer(gw, idps):
    # another tenant of the same IdP: the same signing key, so only the Issuer tells
    xml = idps["tenant"].response(ALICE, ATTRS)
    assert "tenant-b" in xml
    await refused(gw, xml, 401, "another issuer")


async def test_wrong_audience(gw, idp):
    # a genuine assertion the IdP made for another application
    xml = idp.response(ALICE, ATTRS, audience=OTHER_SP_ENTITY)
    assert OTHER_SP_ENTITY in xml
    await refused(gw, xml, 401, "AudienceRestriction")


async def test_no_audience_restriction(gw, idp):
    def drop(_response, assertion):
        assertion.conditions.audience_restriction = []

    xml = idp.response(ALICE, ATTRS, tweak=drop)
    assert "AudienceRestriction" not in xml
    await refused(gw, xml, 401, "AudienceRestriction")


async def test_every_audience_restriction_must_name_us(gw, idp):
    """SAML core 2.5.1.4: several AudienceRestriction elements are each evaluated (AND);
    the audiences within one are alternatives (OR). Here one names only another SP."""
    def two(_response, assertion):
        assertion.conditions.audience_restriction = [
            saml_mod.AudienceRestriction(audience=[saml_mod.Audience(text=SP_ENTITY)]),
            saml_mod.AudienceRestriction(audience=[saml_mod.Audience(text=OTHER_SP_ENTITY)]),
        ]

    xml = idp.response(ALICE, ATTRS, tweak=two)
    assert len(the_assertion(parse(xml)).findall(
        "saml:Conditions/saml:AudienceRestriction", NS)) == 2
    await refused(gw, xml, 401, "AudienceRestriction")


async def test_one_audience_restriction_with_us_among_others_is_accepted(gw, idp):
    def several(_response, assertion):
        assertion.conditions.audience_restriction = [saml_mod.AudienceRestriction(audience=[
            saml_mod.Audience(text=OTHER_SP_ENTITY), saml_mod.Audience(text=SP_ENTITY)])]

    status, body = await login(gw, idp.response(ALICE, ATTRS, tweak=several))
    assert status == 201, body


async def test_no_conditions(gw, idp):
    def drop(_response, assertion):
        assertion.conditions = None

    await refused(gw, idp.response(ALICE, ATTRS, tweak=drop), 401, "no Conditions")


async def test_expired(gw, idp):
    def expired(_response, assertion):
        assertion.conditions.not_before = saml_time(-3600)
        assertion.conditions.not_on_or_after = saml_time(-600)  # beyond the 60 s leeway

    await refused(gw, idp.response(ALICE, ATTRS, tweak=expired), 401, "expired")


async def test_not_yet_valid(gw, idp):
    def early(_response, assertion):
        assertion.conditions.not_before = saml_time(600)
        assertion.conditions.not_on_or_after = saml_time(1200)

    await refused(gw, idp.response(ALICE, ATTRS, tweak=early), 401, "not valid yet")


async def test_subject_confirmation_expired(gw, idp):
    def expired(_response, assertion):
        data = assertion.subject.subject_confirmation[0].subject_confirmation_data
        data.not_on_or_after = saml_time(-600)

    await refused(gw, idp.response(ALICE, ATTRS, tweak=expired), 401,
                  "subject confirmation has expired")


@pytest.mark.parametrize("sign_response", [False, True], ids=["assertion-signed", "both-signed"])
async def test_response_status_not_success(gw, idp, sign_response):
    def failed(response, _assertion):
        response.status = samlp.Status(status_code=samlp.StatusCode(
            value=samlp.STATUS_RESPONDER,
            status_code=samlp.StatusCode(value=samlp.STATUS_AUTHN_FAILED)))

    xml = idp.response(ALICE, ATTRS, tweak=failed, sign_response=sign_response)
    assert samlp.STATUS_AUTHN_FAILED in xml
    await refused(gw, xml, 401, "does not report success")


# replay --------------------------------------------------------------------------------------
async def test_replay(gw, idp):
    xml = idp.response(ALICE, ATTRS)
    status, body = await login(gw, xml)
    assert status == 201, body
    version = body["user"]["meta"]["version"]
    gw.baseline = await user_names(gw.client)
    await refused(gw, xml, 401, "replay")
    assert (await get_user(gw, ALICE))["meta"]["version"] == version


async def test_replay_in_another_envelope(gw, idp):
    # the signed assertion of a used Response, resent on its own
    xml = idp.response(ALICE, ATTRS)
    status, body = await login(gw, xml)
    assert status == 201, body
    gw.baseline = await user_names(gw.client)
    await refused(gw, assertion_only(xml), 401, "replay")


# signature wrapping -----------------------------------------------------------------------------
async def test_xsw_signed_assertion_moved_into_extensions(gw, idp):
    """XSW: the genuine signed assertion hidden in samlp:Extensions, an evil unsigned one
    in its place as the Response's assertion."""
    root = parse(idp.response(ALICE, ATTRS))
    signed = the_assertion(root)
    evil = evil_copy(signed)
    signed.addprevious(evil)
    extensions_after_issuer(root).append(signed)
    await refused(gw, serialize(root), 401, "exactly one assertion")
    assert "admin@example.com" not in await user_names(gw.client)


async def test_xsw_signed_assertion_moved_into_signature_object(gw, idp):
    """XSW: an evil assertion carries the genuine Signature, whose ds:Object holds the
    genuine assertion (its Reference still resolves there, the digest still matches)."""
    root = parse(idp.response(ALICE, ATTRS))
    signed = the_assertion(root)
    signature = signed.find("ds:Signature", NS)
    evil = evil_copy(signed)
    signed.remove(signature)
    evil.find("saml:Issuer", NS).addnext(signature)
    obj = etree.SubElement(signature, q(DS, "Object"))
    root.replace(signed, evil)
    obj.append(signed)
    await refused(gw, serialize(root), 401, "exactly one assertion")


@pytest.mark.parametrize("evil_first", [True, False], ids=["evil-first", "evil-second"])
@pytest.mark.parametrize("same_id", [False, True], ids=["new-id", "same-id"])
async def test_xsw_two_assertions(gw, idp, evil_first, same_id):
    root = parse(idp.response(ALICE, ATTRS))
    signed = the_assertion(root)
    evil = evil_copy(signed, keep_id=same_id)
    (signed.addprevious if evil_first else signed.addnext)(evil)
    await refused(gw, serialize(root), 401, "exactly one assertion")


async def test_xsw_evil_assertion_in_a_signed_response(gw, idp):
    root = parse(idp.response(ALICE, ATTRS, sign_assertion=False, sign_response=True))
    signed = the_assertion(root)
    signed.addprevious(evil_copy(signed))
    await refused(gw, serialize(root), 401, "exactly one assertion")


async def test_xsw_signed_response_wrapped_in_an_evil_response(gw, idp):
    """XSW1/2: a new, evil Response (with an evil assertion) carrying the genuine signed
    Response in its Extensions."""
    genuine = parse(idp.response(ALICE, ATTRS, sign_assertion=False, sign_response=True))
    evil_root = copy.deepcopy(genuine)
    evil_root.set("ID", f"id-evil-{uuid.uuid4().hex}")
    evil_root.remove(evil_root.find("ds:Signature", NS))
    old = the_assertion(evil_root)
    evil_root.replace(old, evil_copy(old))
    extensions_after_issuer(evil_root).append(genuine)
    await refused(gw, serialize(evil_root), 401, "exactly one assertion")


async def test_xsw_evil_assertion_alone_with_the_signature_copied(gw, idp):
    """The only assertion is the evil one (same ID), with the genuine signature pasted in."""
    root = parse(idp.response(ALICE, ATTRS))
    signed = the_assertion(root)
    evil = evil_copy(signed, keep_id=True)
    evil.find("saml:Issuer", NS).addnext(copy.deepcopy(signed.find("ds:Signature", NS)))
    root.replace(signed, evil)
    await refused(gw, serialize(root), 401, "signature does not verify")


async def test_content_hidden_in_the_signature_is_never_read(gw, idp):
    """An attribute and a NameID placed inside the assertion's own ds:Signature (which the
    enveloped-signature transform leaves out of the digest, so the signature still
    verifies) must not be read: only what the signature covers counts."""
    root = parse(idp.response(ALICE, ATTRS))
    signature = the_assertion(root).find("ds:Signature", NS)
    obj = etree.SubElement(signature, q(DS, "Object"))
    statement = etree.SubElement(obj, q(SAML, "AttributeStatement"))
    attribute = etree.SubElement(statement, q(SAML, "Attribute"), Name=MEMBER_OF)
    etree.SubElement(attribute, q(SAML, "AttributeValue")).text = "cn=admins,ou=groups"
    given = etree.SubElement(statement, q(SAML, "Attribute"), Name=GIVEN_NAME)
    etree.SubElement(given, q(SAML, "AttributeValue")).text = "Mallory"
    subject = etree.SubElement(obj, q(SAML, "Subject"))
    etree.SubElement(subject, q(SAML, "NameID")).text = "admin@example.com"
    status, body = await login(gw, serialize(root))
    if status == 401:  # refusing the message is as safe as ignoring the injection
        assert await user_names(gw.client) == gw.baseline
        return
    assert status == 201, body
    assert body["user"]["userName"] == ALICE
    assert body["user"]["name"]["givenName"] == "Alice"
    assert roles_of(await get_user(gw, ALICE)) == {"engineers"}
    assert "admin@example.com" not in await user_names(gw.client)


async def test_comment_in_nameid_reads_the_signed_value(gw, idp):
    """The IdP signed the NameID alice@example.com.evil.com (the attacker's own account);
    a comment injected after alice@example.com leaves the signature valid (c14n drops
    comments). The login must be the signed name, never the truncated alice@example.com,
    which exists locally here and would be taken over (link_existing)."""
    status, body, _ = await scim(gw.client, "POST", "/Users", {"userName": ALICE})
    assert status == 201, body
    alice_version = body["meta"]["version"]
    gw.baseline = await user_names(gw.client)
    signed_name = ALICE + ".evil.com"
    xml = idp.response(signed_name, {**ATTRS, "givenName": ["Mallory"]})
    assert f">{signed_name}<" in xml
    injected = xml.replace(f">{signed_name}<", f">{ALICE}<!---->.evil.com<")
    assert injected != xml
    status, body = await login(gw, injected, "partner-linking")
    if status == 401:  # refusing is safe too
        assert await user_names(gw.client) == gw.baseline
    else:
        assert status == 201, body
        assert body["user"]["userName"] == signed_name
        assert await user_names(gw.client) == gw.baseline | {signed_name}
    alice = await get_user(gw, ALICE)
    assert alice["meta"]["version"] == alice_version
    assert "name" not in alice or alice["name"].get("givenName") != "Mallory"


# malformed and hostile XML ----------------------------------------------------------------------
@pytest.mark.parametrize("doctype", [
    pytest.param('<!DOCTYPE r [<!ENTITY who "admin@example.com">]>', id="internal-entity"),
    pytest.param('<!DOCTYPE r [<!ENTITY who SYSTEM "file:///etc/passwd">]>', id="xxe"),
    pytest.param('<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;'
                 '&a;&a;&a;"><!ENTITY who "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>', id="laughs"),
])
async def test_doctype_and_entities_refused(gw, idp, doctype):
    xml = idp.response(ALICE, ATTRS).replace('<?xml version="1.0"?>', "").lstrip()
    hostile = doctype + xml.replace(f">{ALICE}</", ">&who;</", 1)
    assert "&who;" in hostile
    body = await refused(gw, hostile, 401, "not acceptable XML")
    assert "root:" not in body["error"]


async def test_deeply_nested_xml_refused(gw, idp):
    root = parse(idp.response(ALICE, ATTRS))
    node = the_assertion(root).find("saml:AttributeStatement", NS)
    for _ in range(100):
        node = etree.SubElement(node, q(SAML, "Advice"))
    await refused(gw, serialize(root), 401, "not acceptable XML")


async def test_encrypted_assertion_refused(gw, idps):
    xml = idps["trusted"].encrypted_response(ALICE, idps["sp"].cert_pem)
    assert "EncryptedAssertion" in xml and "EncryptedData" in xml
    await refused(gw, xml, 401, "Encrypted assertions are not supported")


async def test_not_a_saml_message(gw):
    await refused(gw, b"<html><body>hello</body></html>", 401, "neither a Response nor")
    await refused(gw, b"plain text, not XML", 401, "not acceptable XML")


@pytest.mark.parametrize("value", ["not base64 at all!", "PHNhbWw+" + "*", "%%%"])
async def test_not_base64(gw, value):
    await refused(gw, value, 400, "not Base64", encode=False)


@pytest.mark.parametrize("body", [{}, {"saml_response": 12}, {"saml_response": None},
                                  {"id_token": "x.y.z"}])
async def test_missing_saml_response(gw, body):
    resp = await gw.client.post("/jit/partner", data=orjson.dumps(body),
                                headers={**ADMIN, "Content-Type": "application/json"})
    assert resp.status == 400
    assert "saml_response" in (await resp.json())["error"]
    assert await user_names(gw.client) == gw.baseline


async def test_huge_saml_response_bounded(gw, idp):
    # a genuine signed Response padded past 256 KiB (a huge attribute value)
    started = time.monotonic()
    xml = idp.response(ALICE, {**ATTRS, "sn": ["x" * 300_000]})
    assert len(xml) > 262_144
    await refused(gw, xml, 400, "at most 256 KiB")
    # past the body limit: refused before it is parsed
    resp = await gw.client.post(
        "/jit/partner", data=orjson.dumps({"saml_response": "A" * 600_000}),
        headers={**ADMIN, "Content-Type": "application/json"})
    assert resp.status == 413
    assert (await resp.json())["status"] == 413
    assert await user_names(gw.client) == gw.baseline
    assert time.monotonic() - started < 30


# callers and providers ------------------------------------------------------------------------
async def test_caller_without_the_jit_permission(gw, idp):
    await refused(gw, idp.response(ALICE, ATTRS), 403, "", auth=READER)


async def test_unauthenticated_caller(gw, idp):
    await refused(gw, idp.response(ALICE, ATTRS), 401, "", auth={})


async def test_unknown_provider(gw, idp):
    await refused(gw, idp.response(ALICE, ATTRS), 404, "no identity provider", "nobody")

