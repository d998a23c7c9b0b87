"""The e-mail of a directory user: ``mail`` is the primary e-mail (a work address), as WSO2
maps its ``emailaddress`` claim, over SOAP (``addUser`` with claims, the claim reads and
writes, ``getUserList``) and SCIM (POST, PUT, PATCH, filters), on OpenLDAP's
``inetOrgPerson`` and the AD shape. What the directory cannot hold (a home e-mail, a
second e-mail) is refused with a 400 naming it, unless the store says ``unmapped =
"ignore"``; the attribute map decides what ``mail`` holds.

Against the session's real slapd, over the wire, with the LDAP store as SECONDARY beside a
SQL PRIMARY (the WSO2 set-up of issue 16); every change is checked in the directory itself.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

import ldap3
import pytest
from conftest import ADMIN, assert_scim_error, scim, test_config
from lxml import etree
from test_ldap_store import ldap_store

from gateway.app import create_app
from gateway.config import StoreConfig

CLAIM = "http://wso2.org/claims/"
EMAIL = CLAIM + "emailaddress"
WORK_EMAIL = CLAIM + "emails.work"
HOME_EMAIL = CLAIM + "emails.home"
GIVEN = CLAIM + "givenname"
V1 = "/services/RemoteUserStoreManagerService"
TNS = "http://service.ws.um.carbon.wso2.org"
XSD = "http://common.mgt.user.carbon.wso2.org/xsd"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
PASSWORD = "Bob-pass-1"  # noqa: S105 (test directory)
FLAVORS = ["openldap", "ad"]


# the gateway and the directory --------------------------------------------------------------
@pytest.fixture
async def make_gateway(aiohttp_client, ldap_base, admin_env, tmp_path):
    """A factory: a gateway with PRIMARY on SQLite and SECONDARY on the test's directory."""

    async def make(flavor: str = "openldap", **options):
        primary = StoreConfig("PRIMARY", f"sqlite:///{tmp_path / f'p-{flavor}.db'}")
        cfg = test_config({"PRIMARY": primary,
                           "SECONDARY": ldap_store(ldap_base, "SECONDARY", flavor, **options)})
        return await aiohttp_client(create_app(cfg))

    return make


def mail_of(ldap_base, flavor: str, name: str) -> list[str] | None:
    """The ``mail`` values of a user's entry, read by the directory's administrator (None:
    no such entry)."""
    base, attr = ((ldap_base.users_dn, "uid") if flavor == "openldap"
                  else (ldap_base.ad_users_dn, "sAMAccountName"))
    conn = ldap_base.connection()
    try:
        conn.search(base, f"({attr}={name})", ldap3.SUBTREE, attributes=["mail"])
        if not conn.response:
            return None
        values = conn.response[0]["attributes"].get("mail") or []
        return sorted(values if isinstance(values, list) else [values])
    finally:
        conn.unbind()


# SOAP, as a WSO2 client sends it -------------------------------------------------------------
async def soap(gw, operation: str, *parts: tuple[str, object]) -> tuple[int, etree._Element]:
    """One V1 operation; (HTTP status, the reply's root). A part's value is text, a list of
    texts (the element repeated), or a dict of claims (``ClaimValue`` items)."""
    body = []
    for name, value in parts:
        if isinstance(value, dict):
            body += [f"<ser:{name}><xsd:claimURI>{escape(uri)}</xsd:claimURI>"
                     f"<xsd:value>{escape(v)}</xsd:value></ser:{name}>"
                     for uri, v in value.items()]
        else:
            body += [f"<ser:{name}>{escape(v)}</ser:{name}>"
                     for v in (value if isinstance(value, list) else [value])]
    resp = await gw.post(V1, headers={**ADMIN, "Content-Type": "text/xml; charset=utf-8",
                                      "SOAPAction": f"urn:{operation}"}, data=(
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        f'xmlns:ser="{TNS}" xmlns:xsd="{XSD}"><soapenv:Body>'
        f"<ser:{operation}>{''.join(body)}</ser:{operation}></soapenv:Body>"
        "</soapenv:Envelope>").encode())
    text = await resp.read()
    return resp.status, (etree.fromstring(text) if text else None)


async def soap_ok(gw, operation: str, *parts) -> etree._Element | None:
    status, root = await soap(gw, operation, *parts)
    assert status in (200, 202), etree.tostring(root).decode() if root is not None else status
    return root


def local(el) -> str:
    return etree.QName(el).localname


def returns(root) -> list[str]:
    return [el.text or "" for el in root.iter() if local(el) == "return"]


def claims(root) -> dict[str, str]:
    """The claim items of a reply (``getUserClaimValues``, ``…ForClaims``): URI -> value."""
    out = {}
    for item in root.iter():
        if local(item) != "return":
            continue
        parts = {local(c): c.text or "" for c in item}
        uri = parts.get("claimURI") or parts.get("claimUri")
        if uri:
            out[uri] = parts.get("value", "")
    return out


def fault_text(root) -> str:
    found = [el.text or "" for el in root.iter() if local(el) == "faultstring"]
    assert found, etree.tostring(root).decode()
    return found[0]


async def claim(gw, name: str, uri: str) -> str | None:
    root = await soap_ok(gw, "getUserClaimValue", ("userName", name), ("claim", uri))
    got = returns(root)
    return got[0] if got and got[0] else None


# SOAP -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("flavor", FLAVORS)
async def test_a_wso2_client_adds_reads_and_changes_the_email_as_mail(make_gateway, ldap_base,
                                                                     flavor):
    gw = await make_gateway(flavor)
    # the AD shape takes no password outside a real AD (no unicodePwd): the user has none
    credential = PASSWORD if flavor == "openldap" else ""
    await soap_ok(gw, "addUser", ("userName", "SECONDARY/bob"), ("credential", credential),
                  ("claims", {EMAIL: "bob@x.org", GIVEN: "Bob"}))
    assert mail_of(ldap_base, flavor, "bob") == ["bob@x.org"]
    assert await claim(gw, "SECONDARY/bob", EMAIL) == "bob@x.org"
    # the primary e-mail is the work e-mail: both claims read mail
    assert await claim(gw, "SECONDARY/bob", WORK_EMAIL) == "bob@x.org"
    root = await soap_ok(gw, "getUserClaimValuesForClaims", ("userName", "SECONDARY/bob"),
                         ("claims", [EMAIL, GIVEN, HOME_EMAIL]))
    assert claims(root) == {EMAIL: "bob@x.org", GIVEN: "Bob"}
    root = await soap_ok(gw, "getUserClaimValues", ("userName", "SECONDARY/bob"))
    assert claims(root)[EMAIL] == "bob@x.org"
    root = await soap_ok(gw, "getUserList", ("claimUri", EMAIL), ("claimValue", "bob@x.org"))
    assert returns(root) == ["SECONDARY/bob"]

    await soap_ok(gw, "setUserClaimValue", ("userName", "SECONDARY/bob"),
                  ("claimURI", EMAIL), ("claimValue", "robert@x.org"))
    assert mail_of(ldap_base, flavor, "bob") == ["robert@x.org"]
    assert await claim(gw, "SECONDARY/bob", EMAIL) == "robert@x.org"
    await soap_ok(gw, "setUserClaimValues", ("userName", "SECONDARY/bob"),
                  ("claims", {WORK_EMAIL: "bob@work.x.org", GIVEN: "Robert"}))
    assert mail_of(ldap_base, flavor, "bob") == ["bob@work.x.org"]
    assert await claim(gw, "SECONDARY/bob", EMAIL) == "bob@work.x.org"
    root = await soap_ok(gw, "getUserList", ("claimUri", EMAIL), ("claimValue", "bob@x.org"))
    assert returns(root) in ([], [""])

    # a home e-mail has no attribute here: refused, naming it, and nothing changed
    status, root = await soap(gw, "setUserClaimValue", ("userName", "SECONDARY/bob"),
                              ("claimURI", HOME_EMAIL), ("claimValue", "bob@home.org"))
    assert status == 500 and 'emails (type "home")' in fault_text(root)
    assert mail_of(ldap_base, flavor, "bob") == ["bob@work.x.org"]

    await soap_ok(gw, "deleteUserClaimValue", ("userName", "SECONDARY/bob"),
                  ("claimURI", EMAIL))
    assert mail_of(ldap_base, flavor, "bob") == []
    assert await claim(gw, "SECONDARY/bob", EMAIL) is None


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_a_mail_set_in_the_directory_is_the_emailaddress_claim(make_gateway, ldap_base,
                                                                    flavor):
    conn = ldap_base.connection()
    try:
        if flavor == "openldap":
            ok = conn.add(f"uid=ext,{ldap_base.users_dn}", ["inetOrgPerson"],
                          {"uid": "ext", "cn": "Ext", "sn": "Ext", "mail": "ext@x.org"})
        else:
            ok = conn.add(f"cn=ext,{ldap_base.ad_users_dn}", ["user"],
                          {"cn": "ext", "sAMAccountName": "ext", "sn": "Ext",
                           "mail": "ext@x.org"})
        assert ok, conn.result
    finally:
        conn.unbind()
    gw = await make_gateway(flavor)
    assert await claim(gw, "SECONDARY/ext", EMAIL) == "ext@x.org"
    status, body, _ = await scim(gw, "GET", '/Users?filter=userName eq "SECONDARY/ext"')
    assert body["Resources"][0]["emails"] == [
        {"value": "ext@x.org", "type": "work", "primary": True}]


async def test_an_unmapped_claim_of_a_new_user_is_refused_and_no_user_is_left(make_gateway,
                                                                           ldap_base):
    gw = await make_gateway()
    status, root = await soap(gw, "addUser", ("userName", "SECONDARY/eve"),
                              ("credential", PASSWORD),
                              ("claims", {EMAIL: "eve@x.org", HOME_EMAIL: "eve@home.org"}))
    assert status == 500 and 'emails (type "home")' in fault_text(root)
    assert mail_of(ldap_base, "openldap", "eve") is None


# SCIM -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("sent", [
    {"value": "bob@x.org", "primary": True},
    {"value": "bob@x.org", "type": "work"},
    {"value": "bob@x.org", "type": "work", "primary": True},
    {"value": "bob@x.org"},
    {"value": "bob@x.org", "type": "Work"},  # types match case-insensitively
])
async def test_scim_emails_land_in_mail_and_read_back_primary_and_work(make_gateway, ldap_base,
                                                                      flavor, sent):
    gw = await make_gateway(flavor)
    status, body, _ = await scim(gw, "POST", "/Users", {"userName": "SECONDARY/bob",
                                                        "name": {"familyName": "B"},
                                                        "emails": [sent]})
    assert status == 201, body
    assert body["emails"] == [{"value": "bob@x.org", "type": "work", "primary": True}]
    assert mail_of(ldap_base, flavor, "bob") == ["bob@x.org"]
    status, got, _ = await scim(gw, "GET", f"/Users/{body['id']}")
    assert got["emails"] == body["emails"]
    assert await claim(gw, "SECONDARY/bob", EMAIL) == "bob@x.org"


async def test_scim_put_and_patch_change_mail(make_gateway, ldap_base):
    gw = await make_gateway()
    status, user, _ = await scim(gw, "POST", "/Users", {
        "userName": "SECONDARY/bob", "emails": [{"value": "bob@x.org", "type": "work"}]})
    assert status == 201, user
    uid = user["id"]
    status, body, _ = await scim(gw, "PUT", f"/Users/{uid}", {
        "userName": "SECONDARY/bob", "emails": [{"value": "put@x.org", "primary": True}]})
    assert status == 200 and body["emails"] == [
        {"value": "put@x.org", "type": "work", "primary": True}], body
    assert mail_of(ldap_base, "openldap", "bob") == ["put@x.org"]
    for path, value in (('emails[type eq "work"].value', "work@x.org"),
                        ("emails[primary eq true].value", "primary@x.org")):
        status, body, _ = await scim(gw, "PATCH", f"/Users/{uid}", {
            "schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": path,
                                                   "value": value}]})
        assert status == 200 and [e["value"] for e in body["emails"]] == [value], body
        assert mail_of(ldap_base, "openldap", "bob") == [value]
    # a home e-mail added beside it: no attribute holds it
    status, body, _ = await scim(gw, "PATCH", f"/Users/{uid}", {
        "schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "emails", "value": [
            {"value": "bob@home.org", "type": "home"}]}]})
    assert_scim_error(status, body, 400, "invalidValue")
    assert 'emails (type "home")' in body["detail"]
    assert mail_of(ldap_base, "openldap", "bob") == ["primary@x.org"]
    # the e-mail removed: mail goes
    status, body, _ = await scim(gw, "PATCH", f"/Users/{uid}", {
        "schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": "emails"}]})
    assert status == 200 and "emails" not in body, body
    assert mail_of(ldap_base, "openldap", "bob") == []


@pytest.mark.parametrize("emails", [
    [{"value": "a@x.org", "type": "work", "primary": True}, {"value": "b@x.org", "type": "work"}],
    [{"value": "a@x.org", "type": "work"}, {"value": "b@x.org", "primary": True}],
    [{"value": "a@x.org"}, {"value": "b@x.org"}],
])
async def test_a_second_email_is_refused_unless_unmapped_is_ignore(make_gateway, ldap_base,
                                                                   emails):
    gw = await make_gateway()
    status, body, _ = await scim(gw, "POST", "/Users", {"userName": "SECONDARY/two",
                                                        "emails": emails})
    assert_scim_error(status, body, 400, "invalidValue")
    assert "emails (2 values; it holds 1)" in body["detail"]
    assert mail_of(ldap_base, "openldap", "two") is None

    lenient = await make_gateway(unmapped="ignore")
    status, body, _ = await scim(lenient, "POST", "/Users", {"userName": "SECONDARY/two",
                                                             "emails": emails})
    assert status == 201, body
    # the one kept is the primary e-mail (or the first, when none is)
    kept = next((e["value"] for e in emails if e.get("primary")), emails[0]["value"])
    assert mail_of(ldap_base, "openldap", "two") == [kept]
    assert body["emails"] == [{"value": kept, "type": "work", "primary": True}]


async def test_email_filters(make_gateway):
    gw = await make_gateway()
    for name, email in (("bob", "bob@x.org"), ("amy", "amy@x.org")):
        status, body, _ = await scim(gw, "POST", "/Users", {
            "userName": f"SECONDARY/{name}", "emails": [{"value": email, "primary": True}]})
        assert status == 201, body
    status, body, _ = await scim(gw, "POST", "/Users", {"userName": "SECONDARY/none"})
    assert status == 201, body

    async def matching(flt: str) -> list[str]:
        status, body, _ = await scim(gw, "GET", f"/Users?filter={flt}&sortBy=userName")
        assert status == 200, body
        return [u["userName"] for u in body.get("Resources", [])]

    bob, both = ["SECONDARY/bob"], ["SECONDARY/amy", "SECONDARY/bob"]
    assert await matching('emails.value eq "bob@x.org"') == bob
    assert await matching('emails eq "BOB@x.org"') == bob
    assert await matching('emails[primary eq true].value eq "bob@x.org"') == bob
    assert await matching('emails[primary eq true and value sw "bob"]') == bob
    assert await matching('emails[type eq "work" and value eq "bob@x.org"]') == bob
    assert await matching('emails[value eq "bob@x.org" or primary eq true]') == both
    assert await matching("emails[primary eq true]") == both
    assert await matching("emails.primary eq true") == both
    assert await matching('emails.type eq "work"') == both
    assert await matching("emails pr") == both
    assert await matching('emails[type eq "home"]') == []
    assert await matching("emails[primary eq false]") == []
    assert await matching('not (emails.value eq "bob@x.org") and userName sw "SECONDARY/"') \
        == ["SECONDARY/amy", "SECONDARY/none"]


# the attribute map decides --------------------------------------------------------------------
async def test_the_map_can_make_mail_the_primary_email_of_no_type(make_gateway, ldap_base):
    gw = await make_gateway(attributes=(("mail", "emails[primary eq true].value"),))
    await soap_ok(gw, "addUser", ("userName", "SECONDARY/bob"), ("credential", PASSWORD),
                  ("claims", {EMAIL: "bob@x.org"}))
    assert mail_of(ldap_base, "openldap", "bob") == ["bob@x.org"]
    assert await claim(gw, "SECONDARY/bob", EMAIL) == "bob@x.org"
    assert await claim(gw, "SECONDARY/bob", WORK_EMAIL) is None
    status, body, _ = await scim(gw, "GET", '/Users?filter=emails[primary eq true].value eq '
                                 '"bob@x.org"')
    assert [u["emails"] for u in body["Resources"]] == [[{"value": "bob@x.org",
                                                          "primary": True}]]
    # a typed e-mail would lose its type here: refused, naming it
    status, body, _ = await scim(gw, "POST", "/Users", {
        "userName": "SECONDARY/amy", "emails": [{"value": "amy@x.org", "type": "work"}]})
    assert_scim_error(status, body, 400, "invalidValue")
    assert 'emails (type "work")' in body["detail"]


async def test_the_map_can_give_home_emails_an_attribute_of_their_own(make_gateway, ldap_base):
    # inetOrgPerson has no second mail attribute: a custom map puts the home e-mail in
    # `carLicense` (any free attribute will do for the test)
    gw = await make_gateway(attributes=(("carLicense", 'emails[type eq "home"].value'),))
    status, body, _ = await scim(gw, "POST", "/Users", {
        "userName": "SECONDARY/bob", "emails": [{"value": "bob@home.org", "type": "home"},
                                                {"value": "bob@x.org", "primary": True}]})
    assert status == 201, body
    assert sorted(body["emails"], key=lambda e: e["value"]) == [
        {"value": "bob@home.org", "type": "home"},
        {"value": "bob@x.org", "type": "work", "primary": True}]
    assert mail_of(ldap_base, "openldap", "bob") == ["bob@x.org"]
    assert await claim(gw, "SECONDARY/bob", EMAIL) == "bob@x.org"
    assert await claim(gw, "SECONDARY/bob", HOME_EMAIL) == "bob@home.org"
    status, body, _ = await scim(gw, "GET", '/Users?filter=emails[type eq "home"].value eq '
                                 '"bob@home.org"')
    assert [u["userName"] for u in body["Resources"]] == ["SECONDARY/bob"]


async def test_further_mail_values_set_in_the_directory_are_kept(make_gateway, ldap_base):
    """An entry with two mail values shows the first; a change of something else, or of
    nothing, leaves both in the directory."""
    conn = ldap_base.connection()
    try:
        assert conn.add(f"uid=two,{ldap_base.users_dn}", ["inetOrgPerson"],
                        {"uid": "two", "cn": "Two", "sn": "Two",
                         "mail": ["one@x.org", "two@x.org"]}), conn.result
    finally:
        conn.unbind()
    gw = await make_gateway()
    status, body, _ = await scim(gw, "GET", '/Users?filter=userName eq "SECONDARY/two"')
    user = body["Resources"][0]
    assert [e["value"] for e in user["emails"]] == ["one@x.org"]
    status, body, _ = await scim(gw, "PATCH", f"/Users/{user['id']}", {
        "schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "title",
                                               "value": "Lead"}]})
    assert status == 200 and body["title"] == "Lead", body
    assert mail_of(ldap_base, "openldap", "two") == ["one@x.org", "two@x.org"]
    await soap_ok(gw, "setUserClaimValue", ("userName", "SECONDARY/two"), ("claimURI", GIVEN),
                  ("claimValue", "Tuo"))
    assert mail_of(ldap_base, "openldap", "two") == ["one@x.org", "two@x.org"]
    # a new primary e-mail replaces them: the user shows one, the directory holds one
    await soap_ok(gw, "setUserClaimValue", ("userName", "SECONDARY/two"), ("claimURI", EMAIL),
                  ("claimValue", "new@x.org"))
    assert mail_of(ldap_base, "openldap", "two") == ["new@x.org"]
