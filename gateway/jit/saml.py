"""Verifying a SAML 2.0 Response or Assertion (signed by the IdP) as a service provider must.

- Parsed with the hardened parser (no DTD, no entities, no network, bounded
  depth); an encrypted assertion, or more than one assertion, is refused.
- The XML signature (signxml) must verify with one of the provider's
  certificates and cover the assertion, or the whole Response that holds it.
  Everything read afterwards is read from what the signature covered
  (``VerifyResult.signed_xml``), never from the document as received: an
  attacker who wraps a forged assertion around or beside a signed one
  (signature wrapping) gets only the signed one read, or a refusal.
- The assertion's Issuer must be the provider's entity id; Conditions
  ``NotBefore``/``NotOnOrAfter`` hold (with the configured leeway); an
  ``AudienceRestriction`` must name our SP entity id; a bearer
  ``SubjectConfirmationData NotOnOrAfter`` holds; a Response must say
  ``Success``.
- An assertion is accepted once: its ID is remembered until it expires (the
  service marks it when it acts on the login).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import time

from lxml import etree
from signxml import XMLVerifier
from signxml.exceptions import InvalidInput, InvalidSignature

from ..errors import GatewayError, InvalidValue
from ..xmlsafe import parse as parse_xml
from .config import ProviderConfig
from .errors import InvalidLogin

SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
DS = "http://www.w3.org/2000/09/xmldsig#"
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
MAX_RESPONSE = 262_144


def _q(ns: str, tag: str) -> str:
    return f"{{{ns}}}{tag}"


def _time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:  # SAML times are UTC, with or without the Z
            parsed = parsed.replace(tzinfo=dt.UTC)
        return parsed.timestamp()
    except ValueError:
        raise InvalidLogin(f"The assertion has an invalid time {value!r}") from None


class SamlVerifier:
    def __init__(self, cfg: ProviderConfig):
        self.cfg = cfg

    def verify(self, encoded: str) -> tuple[str, dict[str, list[str]], tuple[str, float]]:
        """(the NameID, the attributes, the replay key and its expiry) of a verified
        assertion; the service marks the key when it acts on the login."""
        if not isinstance(encoded, str) or len(encoded) > MAX_RESPONSE * 4 // 3 + 4:
            raise InvalidValue("saml_response must be Base64 of at most 256 KiB")
        try:  # IdPs often wrap their Base64 at 76 columns
            raw = base64.b64decode("".join(encoded.split()), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidValue("saml_response is not Base64") from None
        try:
            root = parse_xml(raw, "a SAML message")
        except GatewayError as exc:
            raise InvalidLogin(f"The SAML message is not acceptable XML: {exc.detail}") from None
        if root.tag not in (_q(SAMLP, "Response"), _q(SAML, "Assertion")):
            raise InvalidLogin("The SAML message is neither a Response nor an Assertion")
        if root.find(f".//{_q(SAML, 'EncryptedAssertion')}") is not None:
            raise InvalidLogin("Encrypted assertions are not supported")
        assertions = list(root.iter(_q(SAML, "Assertion")))
        if len(assertions) != 1:
            raise InvalidLogin("The SAML message must hold exactly one assertion")
        signed = self._signed(root)
        if signed.tag == _q(SAMLP, "Response"):
            self._status(signed)
            inner = [a for a in signed.iter(_q(SAML, "Assertion"))]
            if len(inner) != 1:
                raise InvalidLogin("The signed Response must hold exactly one assertion")
            assertion = inner[0]
        elif signed.tag == _q(SAML, "Assertion"):
            if root.tag == _q(SAMLP, "Response"):
                self._status(root)
            assertion = signed
        else:
            raise InvalidLogin("The signature covers neither the Response nor the assertion")
        return self._assertion(assertion)

    def _signed(self, root: etree._Element) -> etree._Element:
        if root.find(f".//{_q(DS, 'Signature')}") is None:
            raise InvalidLogin("The SAML message is not signed")
        data = etree.tostring(root)
        errors = []
        for pem in self.cfg.certificates:
            try:
                result = XMLVerifier().verify(data, x509_cert=pem, id_attribute="ID",
                                              ignore_ambiguous_key_info=True)
            except (InvalidSignature, InvalidInput) as exc:
                errors.append(str(exc))
                continue
            except Exception as exc:  # noqa: BLE001 - any other failure is not a valid signature
                errors.append(type(exc).__name__)
                continue
            result = result[0] if isinstance(result, list) else result
            signed = result.signed_xml
            if signed is None:
                break
            return signed
        raise InvalidLogin("The SAML signature does not verify with the provider's "
                           f"certificates ({'; '.join(errors)[:300] or 'no certificate'})")

    @staticmethod
    def _status(response: etree._Element) -> None:
        code = response.find(f"{_q(SAMLP, 'Status')}/{_q(SAMLP, 'StatusCode')}")
        if code is None or code.get("Value") != SUCCESS:
            raise InvalidLogin("The SAML Response does not report success")

    def _assertion(self, a: etree._Element
                   ) -> tuple[str, dict[str, list[str]], tuple[str, float]]:
        cfg, now, skew = self.cfg, time.time(), self.cfg.leeway_seconds
        issuer = a.findtext(_q(SAML, "Issuer"))
        if (issuer or "").strip() != cfg.issuer:
            raise InvalidLogin("The assertion comes from another issuer")
        conditions = a.find(_q(SAML, "Conditions"))
        if conditions is None:
            raise InvalidLogin("The assertion has no Conditions")
        before = _time(conditions.get("NotBefore"))
        after = _time(conditions.get("NotOnOrAfter"))
        if after is None:
            raise InvalidLogin("The assertion has no expiry (NotOnOrAfter)")
        if before is not None and before > now + skew:
            raise InvalidLogin("The assertion is not valid yet")
        if after <= now - skew:
            raise InvalidLogin("The assertion has expired")
        restrictions = conditions.findall(_q(SAML, "AudienceRestriction"))
        if not restrictions or any(  # each restriction must name us (SAML core 2.5.1.4)
                cfg.audience not in [(x.text or "").strip()
                                     for x in r.findall(_q(SAML, "Audience"))]
                for r in restrictions):
            raise InvalidLogin("The assertion is not meant for this service provider "
                               "(AudienceRestriction)")
        subject = a.find(_q(SAML, "Subject"))
        name_id = subject.findtext(_q(SAML, "NameID")) if subject is not None else None
        if not name_id or not name_id.strip():
            raise InvalidLogin("The assertion has no NameID")
        bearer = [c for c in subject.findall(_q(SAML, "SubjectConfirmation"))
                  if c.get("Method") == BEARER]
        if not bearer:
            raise InvalidLogin("The assertion has no bearer subject confirmation")
        for data in subject.iter(_q(SAML, "SubjectConfirmationData")):
            until = _time(data.get("NotOnOrAfter"))
            if until is not None and until <= now - skew:
                raise InvalidLogin("The assertion's subject confirmation has expired")
        assertion_id = a.get("ID")
        if not assertion_id:
            raise InvalidLogin("The assertion has no ID")
        issued = _time(a.get("IssueInstant"))
        if issued is not None:
            if issued < now - cfg.max_age_seconds - skew:
                raise InvalidLogin(f"The assertion was issued more than {cfg.max_age_seconds} s "
                                   "ago (max_age_seconds)")
            after = min(after, issued + cfg.max_age_seconds + skew)  # refused later anyway
        attributes: dict[str, list[str]] = {}
        for attr in a.iter(_q(SAML, "Attribute")):
            name = attr.get("Name")
            if name:
                attributes.setdefault(name, []).extend(
                    (v.text or "") for v in attr.iter(_q(SAML, "AttributeValue")))
        attributes["NameID"] = [name_id.strip()]
        return name_id.strip(), attributes, (f"saml:{cfg.issuer}:{assertion_id}", after)
