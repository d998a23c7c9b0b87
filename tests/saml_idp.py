"""A test SAML 2.0 identity provider: pysaml2's IdP, signing with xmlsec1 and a key made here.

``SamlIdP`` is pysaml2's ``saml2.server.Server`` configured as an IdP with a
fresh RSA key and self-signed certificate (made with ``cryptography`` when the
tests start; no private key is kept in the repository). ``response()`` makes a
Response as an IdP answers an SP, with ``create_authn_response``: the assertion
and/or the whole Response signed (RSA-SHA256, exclusive c14n) by xmlsec1.

A test that needs an assertion an honest IdP would not send (expired, no
AudienceRestriction, a failed status...) passes ``tweak``: the Response is made
unsigned, the tweak changes pysaml2's objects, and then it is signed the way
pysaml2 signs its own (``pre_signature_part`` + ``sign_statement``), so the
signature is still real and valid and only the tweaked rule can refuse it.

The rest (``assertion_only``, ``b64``, the XML surgery of the attacks) works on
the serialized XML with lxml, after signing, as an attacker would.
"""

from __future__ import annotations

import base64
import datetime as dt
import shutil
import uuid
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from saml2 import BINDING_HTTP_REDIRECT, class_name, samlp
from saml2 import saml as saml_mod
from saml2.config import IdPConfig
from saml2.saml import NAMEID_FORMAT_EMAILADDRESS, NameID
from saml2.server import Server
from saml2.sigver import pre_signature_part
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

XMLSEC1 = shutil.which("xmlsec1") or "/usr/bin/xmlsec1"  # apt-get install xmlsec1
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
DS = "http://www.w3.org/2000/09/xmldsig#"
NS = {"saml": SAML, "samlp": SAMLP, "ds": DS}

IDP_ENTITY = "https://idp.example.test/saml/metadata"
SP_ENTITY = "https://gateway.example.test/sp"
ACS_URL = "https://gateway.example.test/sp/acs"
OTHER_SP_ENTITY = "https://other-app.example.test/sp"

# the attribute names pysaml2 sends (its saml_uri map: name format URI, OIDs)
GIVEN_NAME = "urn:oid:2.5.4.42"
SURNAME = "urn:oid:2.5.4.4"
MAIL = "urn:oid:0.9.2342.19200300.100.1.3"
MEMBER_OF = "urn:oid:1.3.6.1.4.1.5923.1.5.1.1"  # isMemberOf


def make_key_pair(directory: Path, label: str, common_name: str) -> tuple[Path, Path, str]:
    """(key file, certificate file, certificate PEM): a 2048-bit RSA key, self-signed."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    key_file, cert_file = directory / f"{label}.key", directory / f"{label}.crt"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    cert_file.write_text(pem)
    return key_file, cert_file, pem


def sp_metadata(entity_id: str) -> str:
    """The SP's metadata as the IdP knows it (where to send the Response)."""
    md = "urn:oasis:names:tc:SAML:2.0:metadata"
    return (f'<md:EntityDescriptor xmlns:md="{md}" entityID="{entity_id}">'
            '<md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
            f'<md:NameIDFormat>{NAMEID_FORMAT_EMAILADDRESS}</md:NameIDFormat>'
            '<md:AssertionConsumerService index="0" isDefault="true" '
            'Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" '
            f'Location="{entity_id}/acs"/>'
            '</md:SPSSODescriptor></md:EntityDescriptor>')


def saml_time(offset_seconds: float) -> str:
    """A SAML (UTC) dateTime, this many seconds from now."""
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset_seconds)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


class SamlIdP:
    """pysaml2's IdP with its own signing key (and entity id)."""

    def __init__(self, directory: Path, entity_id: str = IDP_ENTITY, label: str = "idp",
                 key_pair: tuple[Path, Path] | None = None):
        """``key_pair`` (key file, certificate file): sign with another IdP's key."""
        directory.mkdir(parents=True, exist_ok=True)
        if key_pair is None:
            self.key_file, self.cert_file, self.cert_pem = make_key_pair(
                directory, label, f"test IdP {label}")
        else:
            self.key_file, self.cert_file = key_pair
            self.cert_pem = Path(self.cert_file).read_text()
        self.entity_id = entity_id
        config = IdPConfig()
        config.load({
            "entityid": entity_id,
            "service": {"idp": {
                "endpoints": {"single_sign_on_service": [
                    (entity_id.replace("/metadata", "/sso"), BINDING_HTTP_REDIRECT)]},
                "policy": {"default": {"lifetime": {"minutes": 5},
                                       "attribute_restrictions": None}},
            }},
            "key_file": str(self.key_file),
            "cert_file": str(self.cert_file),
            "xmlsec_binary": XMLSEC1,
            "metadata": {"inline": [sp_metadata(sp) for sp in (SP_ENTITY, OTHER_SP_ENTITY)]},
        })
        self.server = Server(config=config)

    def response(self, name_id: str, attributes: dict[str, list[str]] | None = None, *,
                 audience: str = SP_ENTITY, sign_assertion: bool = True,
                 sign_response: bool = False, tweak=None, sign_alg: str = SIG_RSA_SHA256,
                 digest_alg: str = DIGEST_SHA256, **kwargs) -> str:
        """The XML of a Response for ``name_id`` with these (pysaml2 friendly-named)
        attributes, meant for ``audience``; signed as asked. ``tweak(response,
        assertion)`` changes pysaml2's objects before anything is signed."""
        args = dict(
            identity=attributes or {}, in_response_to=f"id-req-{uuid.uuid4().hex}",
            destination=ACS_URL, sp_entity_id=audience,
            name_id=NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=name_id),
            authn={"class_ref": saml_mod.AUTHN_PASSWORD, "authn_auth": self.entity_id},
            sign_alg=sign_alg, digest_alg=digest_alg, **kwargs)
        if tweak is None:
            return str(self.server.create_authn_response(
                sign_assertion=sign_assertion, sign_response=sign_response, **args))
        unsigned = str(self.server.create_authn_response(
            sign_assertion=False, sign_response=False, **args))
        response = samlp.response_from_string(unsigned)
        assertion = response.assertion[0] if response.assertion else None
        tweak(response, assertion)
        return self.sign(response, assertion if sign_assertion else None, sign_response,
                         sign_alg, digest_alg)

    def sign(self, response, assertion, sign_response: bool,
             sign_alg: str = SIG_RSA_SHA256, digest_alg: str = DIGEST_SHA256) -> str:
        """Sign pysaml2's Response object (its assertion, and/or itself) as pysaml2's
        IdP does: a signature template, then xmlsec1."""
        to_sign = []
        if assertion is not None:
            assertion.signature = pre_signature_part(assertion.id, self.server.sec.my_cert, 2,
                                                     sign_alg=sign_alg, digest_alg=digest_alg)
            to_sign.append((class_name(assertion), assertion.id))
        if sign_response:
            response.signature = pre_signature_part(response.id, self.server.sec.my_cert, 1,
                                                    sign_alg=sign_alg, digest_alg=digest_alg)
            to_sign.append((class_name(response), response.id))
        xml = response.to_string().decode()
        for node_name, node_id in to_sign:
            xml = self.server.sec.sign_statement(xml, node_name=node_name, node_id=node_id)
        return xml

    def encrypted_response(self, name_id: str, sp_cert_pem: str) -> str:
        """A Response whose (signed) assertion is encrypted for the SP (EncryptedAssertion)."""
        return str(self.server.create_authn_response(
            identity={"givenName": ["Enc"]}, in_response_to=f"id-req-{uuid.uuid4().hex}",
            destination=ACS_URL, sp_entity_id=SP_ENTITY,
            name_id=NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=name_id),
            authn={"class_ref": saml_mod.AUTHN_PASSWORD, "authn_auth": self.entity_id},
            sign_assertion=True, sign_response=False, encrypt_assertion=True,
            encrypt_assertion_self_contained=True, encrypt_cert_assertion=sp_cert_pem,
            sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256))


# XML as an attacker handles it ----------------------------------------------------------------

def b64(xml: str | bytes) -> str:
    return base64.b64encode(xml.encode() if isinstance(xml, str) else xml).decode()


def parse(xml: str | bytes) -> etree._Element:
    data = xml.encode() if isinstance(xml, str) else xml
    return etree.fromstring(data, etree.XMLParser(remove_blank_text=False))


def serialize(root: etree._Element) -> bytes:
    return etree.tostring(root)


def assertion_only(xml: str) -> bytes:
    """The signed Assertion element of a Response, on its own (a bare Assertion)."""
    assertion = parse(xml).find("saml:Assertion", NS)
    return etree.tostring(assertion)
