"""SOAP envelopes in and out: a hardened parser, and faults as WSO2 sends them.

Requests are parsed by the hardened parser (``gateway.xmlsafe``: no DOCTYPE, no
entity expansion, network access, DTD loading or XInclude, at most ``MAX_DEPTH``
levels). Every parse failure is a SOAP Client fault.

Faults carry WSO2's detail element (``<ns:{service}UserStoreException>`` with a
typed ``UserStoreException``; V2's holds ``errorCode``), so clients generated
from WSO2's WSDL map them to their typed exception. The fault code says who
was wrong: ``Client``/``Sender`` for the caller's mistakes, ``Server``/
``Receiver`` for ours (WSO2 says ``Server`` for everything). An envelope of another
SOAP version than its Content-Type's is a ``VersionMismatch`` fault (``WrongVersion``),
written in SOAP 1.1 with SOAP 1.2's ``Upgrade`` header block and no detail.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree

from .. import xmlsafe
from ..errors import GatewayError, InvalidSyntax
from .models import NS_CORE, TNS

SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SOAP11_MEDIA_TYPE = "text/xml"  # the SOAP 1.1 HTTP binding's (SOAP 1.1 §6)
SOAP12_MEDIA_TYPE = "application/soap+xml"  # the SOAP 1.2 HTTP binding's (RFC 3902)
SOAP11_CONTENT_TYPE = f"{SOAP11_MEDIA_TYPE}; charset=utf-8"
SOAP12_CONTENT_TYPE = f"{SOAP12_MEDIA_TYPE}; charset=utf-8"
MAX_DEPTH = 64

@dataclass(frozen=True)
class Binding:
    """SOAP 1.1 or 1.2: envelope namespace, content type, fault codes."""

    soap12: bool

    @property
    def env(self) -> str:
        return SOAP12_ENV if self.soap12 else SOAP11_ENV

    @property
    def media_type(self) -> str:
        return SOAP12_MEDIA_TYPE if self.soap12 else SOAP11_MEDIA_TYPE

    @property
    def content_type(self) -> str:
        return SOAP12_CONTENT_TYPE if self.soap12 else SOAP11_CONTENT_TYPE

    @property
    def name(self) -> str:
        return "SOAP 1.2" if self.soap12 else "SOAP 1.1"

    def fault_code(self, error: GatewayError) -> str:
        if error.soap_fault in (MUST_UNDERSTAND, VERSION_MISMATCH):  # the same in both
            return error.soap_fault
        client = error.soap_fault == "Client"
        if self.soap12:
            return "Sender" if client else "Receiver"
        return "Client" if client else "Server"

    def fault_status(self, error: GatewayError) -> int:
        """SOAP 1.1 faults are HTTP 500 (WS-I Basic Profile R1126), SOAP 1.2 Sender faults
        400 and Receiver faults 500 (SOAP 1.2 part 2 §7.5.1.2): a refused permission or a
        wrong old password is a fault like any other. Kept: 401, the HTTP challenge a
        client answers with credentials, 405 for a GET that is no SOAP exchange, and 415
        for a Content-Type that is no SOAP binding's (the SOAP 1.2 HTTP binding's status
        for an unsupported media type)."""
        if error.status in (401, 405, 415):
            return error.status
        if self.soap12 and error.soap_fault == "Client":
            return 400
        return 500


SOAP11, SOAP12 = Binding(False), Binding(True)

MUST_UNDERSTAND = "MustUnderstand"
VERSION_MISMATCH = "VersionMismatch"
# header blocks the services understand: WS-Security (the UsernameToken), and WS-Addressing,
# whose blocks (To, Action, MessageID, ReplyTo) Axis2 and WCF clients mark mustUnderstand
# and whose meaning here is the endpoint and operation the request already names
UNDERSTOOD = frozenset({
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd",
    "http://www.w3.org/2005/08/addressing",
    "http://schemas.xmlsoap.org/ws/2004/08/addressing",
})
# the roles (SOAP 1.1 actors) that name this node: absent, next, ultimate receiver
_OURS = (None, "http://schemas.xmlsoap.org/soap/actor/next",
         "http://www.w3.org/2003/05/soap-envelope/role/next",
         "http://www.w3.org/2003/05/soap-envelope/role/ultimateReceiver")


class NotUnderstood(GatewayError):
    """A header block for this node, marked mustUnderstand, that it does not understand
    (SOAP 1.1 §4.2.3, SOAP 1.2 part 1 §5.2.3): nothing of the request is done."""

    status = 500
    soap_fault = MUST_UNDERSTAND


def check_headers(binding: Binding, header: etree._Element | None) -> None:
    """NotUnderstood for the first mandatory header block this node does not understand."""
    if header is None:
        return
    env = binding.env
    role = f"{{{env}}}role" if binding.soap12 else f"{{{env}}}actor"
    for block in header:
        if not isinstance(block.tag, str):
            continue
        if (block.get(f"{{{env}}}mustUnderstand") or "").strip() not in ("1", "true"):
            continue
        if block.get(role) not in _OURS or etree.QName(block).namespace in UNDERSTOOD:
            continue
        raise NotUnderstood(f"The header block {etree.QName(block).text} is not understood")


class WrongVersion(GatewayError):
    """An envelope of a SOAP version other than the one its HTTP binding (Content-Type)
    says, or of no SOAP version (SOAP 1.1 §4.4.1, SOAP 1.2 part 1 §5.4.7): answered with a
    SOAP 1.1 VersionMismatch fault carrying SOAP 1.2's Upgrade header block, which both a
    SOAP 1.1 and a SOAP 1.2 sender understand (SOAP 1.2 part 1 appendix A). HTTP 500."""

    status = 500
    soap_fault = VERSION_MISMATCH


def parse(body: bytes) -> etree._Element:
    """The request envelope's root element; InvalidSyntax for anything unsafe or broken."""
    if not body.strip():
        raise InvalidSyntax("The request has no body")
    return xmlsafe.parse(body, "a SOAP message", MAX_DEPTH)


def binding_of(root: etree._Element) -> Binding | None:
    """Which SOAP version an envelope is, by its namespace (None: not an envelope);
    WrongVersion for an ``Envelope`` of another namespace (what SOAP says a version
    mismatch is)."""
    if root.tag == f"{{{SOAP11_ENV}}}Envelope":
        return SOAP11
    if root.tag == f"{{{SOAP12_ENV}}}Envelope":
        return SOAP12
    if etree.QName(root).localname == "Envelope":
        raise WrongVersion(f"The envelope's namespace {etree.QName(root).namespace or '(none)'}"
                           f" is no SOAP version's: SOAP 1.1 is {SOAP11_ENV}, SOAP 1.2 "
                           f"{SOAP12_ENV}")
    return None


def check_version(envelope_binding: Binding, transport: Binding) -> None:
    """WrongVersion unless the envelope is of the version its Content-Type names."""
    if envelope_binding is not transport:
        raise WrongVersion(
            f"The envelope is {envelope_binding.name} but the Content-Type "
            f"{transport.media_type} is {transport.name}'s: send SOAP 1.1 as "
            f"{SOAP11_MEDIA_TYPE}, SOAP 1.2 as {SOAP12_MEDIA_TYPE}")


def _upgrade(root: etree._Element, env: str) -> None:
    """SOAP 1.2's Upgrade header block: the envelopes this node takes, preferred first."""
    header = etree.SubElement(root, f"{{{env}}}Header")
    upgrade = etree.SubElement(header, f"{{{SOAP12_ENV}}}Upgrade", nsmap={"upg": SOAP12_ENV})
    for prefix, namespace in (("ns1", SOAP12_ENV), ("ns2", SOAP11_ENV)):
        supported = etree.SubElement(upgrade, f"{{{SOAP12_ENV}}}SupportedEnvelope",
                                     nsmap={prefix: namespace})
        supported.set("qname", f"{prefix}:Envelope")


_CODE = re.compile(r"^(\d{5}) - ")


def fault(binding: Binding, error: GatewayError, service_name: str, v2: bool) -> bytes:
    """A fault envelope for an error, with WSO2's typed detail."""
    env = binding.env
    nsmap = {"soapenv": env}
    root = etree.Element(f"{{{env}}}Envelope", nsmap=nsmap)
    mismatch = error.soap_fault == VERSION_MISMATCH
    if mismatch:
        _upgrade(root, env)
    body = etree.SubElement(root, f"{{{env}}}Body")
    fault_el = etree.SubElement(body, f"{{{env}}}Fault")
    code = binding.fault_code(error)
    message = error.detail
    wso2_code = getattr(error, "wso2_code", None)  # WSO2's code for it: "30003 - ..."
    if wso2_code and not _CODE.match(message):  # as WSO2 writes it: "{code} - {message}"
        message = f"{wso2_code.split()[0]} - {message}"
    if binding.soap12:
        value = etree.SubElement(etree.SubElement(fault_el, f"{{{env}}}Code"), f"{{{env}}}Value")
        value.text = f"soapenv:{code}"
        text = etree.SubElement(etree.SubElement(fault_el, f"{{{env}}}Reason"), f"{{{env}}}Text")
        text.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
        text.text = message
        if mismatch:  # no detail: the fault is not about the Body (SOAP 1.1 §4.4)
            return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
        detail = etree.SubElement(fault_el, f"{{{env}}}Detail")
    else:
        etree.SubElement(fault_el, "faultcode").text = f"soapenv:{code}"
        etree.SubElement(fault_el, "faultstring").text = message
        if mismatch:
            return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
        detail = etree.SubElement(fault_el, "detail")
    outer = etree.SubElement(detail, f"{{{TNS}}}{service_name}UserStoreException",
                             nsmap={"ns": TNS})
    inner = etree.SubElement(outer, f"{{{TNS}}}UserStoreException",
                             nsmap={"xsi": XSI, "ax": NS_CORE})
    inner.set(f"{{{XSI}}}type", "ax:UserStoreException")
    if v2:
        found = _CODE.match(message)
        etree.SubElement(inner, f"{{{NS_CORE}}}errorCode").text = (
            found.group(1) if found else type(error).__name__)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
