"""SPML 2.0 on the wire, without I/O: requests built by zeep, replies read with lxml.

Requests are SOAP 1.1 document/literal envelopes built by zeep from the WSDL
and OASIS schemas in ``wsdl/spml/`` (loaded from disk only: the zeep
transport used here opens files inside that folder and nothing else), with
DSML profile content (``dsml:attr``, ``dsml:modification``) as lxml elements
in the ``##other`` wildcards. zeep also adds the WS-Security UsernameToken.

Replies are read from the raw XML with the hardened parser (``gateway.xmlsafe``), not from
zeep's objects: for SPML's ``##other`` wildcards zeep swallows ``spml:pso``
and ``errorMessage`` into ``_value_1``, and providers put their own
extension elements before them. :func:`interpret` turns an HTTP status and
body into a :class:`Reply` or a :class:`~connectors.base.DeliveryError` that
says whether trying again may help (the table is in docs of
:data:`ERROR_RETRYABLE` and :func:`fault_retryable`).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import zeep
from lxml import etree
from zeep.wsdl import Document

from gateway import xmlsafe
from gateway.errors import InvalidSyntax

from .base import DeliveryError

SPML = "urn:oasis:names:tc:SPML:2:0"
PASSWORD = "urn:oasis:names:tc:SPML:2:0:password"  # noqa: S105 - a namespace
DSML = "urn:oasis:names:tc:DSML:2:0:core"
DSML_PROFILE = "urn:oasis:names:tc:SPML:2:0:DSML"
SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"

WSDL_DIR = Path(__file__).resolve().parent.parent / "wsdl" / "spml"
WSDL_FILE = WSDL_DIR / "spml.wsdl"
CONTENT_TYPE = "text/xml; charset=utf-8"
ZEEP_SETTINGS = zeep.Settings(strict=True, forbid_dtd=True, forbid_entities=True,
                              forbid_external=True, xml_huge_tree=False)

# an LDAP attribute description, as DSMLv2.xsd's AttributeDescriptionValue allows it
ATTRIBUTE_NAME = re.compile(r"^(([0-2](\.[0-9]+)+)|([a-zA-Z][a-zA-Z0-9-]*))(;[a-zA-Z0-9-]+)*$")

# SPML 2.0 error codes (core schema, ErrorCode): True when trying the same request
# again may succeed. The connector handles noSuchIdentifier (modify: re-add;
# delete: done; lookup: absent) and alreadyExists (add: modify) before this table.
ERROR_RETRYABLE: dict[str, bool] = {
    "malformedRequest": False,  # our request is wrong; it will be wrong again
    "unsupportedOperation": False,
    "unsupportedIdentifierType": False,
    "noSuchIdentifier": False,  # where not handled: the object is gone
    "customError": True,  # the provider's catch-all, mostly the managed resource failing
    "unsupportedExecutionMode": False,
    "invalidContainment": False,  # the configured container is wrong
    "noSuchRequest": False,
    "unsupportedSelectionType": False,
    "resultSetTooLarge": False,
    "resultSetToLarge": False,  # the spelling of the OASIS schema
    "unsupportedProfile": False,
    "invalidIdentifier": False,
    "alreadyExists": False,  # where not handled
    "containerNotEmpty": True,  # queued deletes of the contents may empty it
}
NO_ERROR_CODE_RETRYABLE = True  # status="failure" without an error code: like customError
UNKNOWN_ERROR_CODE_RETRYABLE = False  # an error code the schema does not define
RETRYABLE_HTTP = frozenset({408, 409, 425, 429})  # 4xx that are worth another try
PERMANENT_FAULTS = frozenset({"Client", "Sender", "VersionMismatch", "MustUnderstand",
                              "DataEncodingUnknown"})

class _LocalFiles(zeep.Transport):
    """A zeep transport that opens the files of ``wsdl/spml/`` and nothing else."""

    _close_session = False

    def __init__(self):  # no requests.Session: this transport never goes on the network
        self.cache = None

    def load(self, url):
        path = Path(url).resolve()
        if path.parent != WSDL_DIR or not path.is_file():
            raise DeliveryError(f"the SPML WSDL may not load {url!r}", retryable=False)
        return path.read_bytes()

    def get(self, address, params, headers):
        raise DeliveryError("the SPML WSDL transport does not send", retryable=False)

    def post(self, address, message, headers):
        raise DeliveryError("the SPML WSDL transport does not send", retryable=False)

    def post_xml(self, address, envelope, headers):
        raise DeliveryError("the SPML WSDL transport does not send", retryable=False)


@cache
def wsdl_document() -> Document:
    """The parsed WSDL (blocking file I/O, once per process: call it off the event loop)."""
    return Document(str(WSDL_FILE), _LocalFiles(), settings=ZEEP_SETTINGS)


@dataclass(frozen=True)
class PsoId:
    """An SPML PSO identifier: the ID, and the target and container it lives in."""

    id: str
    target_id: str | None = None
    container_id: str | None = None

    def zeep(self) -> dict:
        out: dict = {"ID": self.id}
        if self.target_id:
            out["targetID"] = self.target_id
        if self.container_id:
            out["containerID"] = {"ID": self.container_id}
        return out


@dataclass(frozen=True)
class Request:
    operation: str  # the WSDL operation, also the body element's local name
    body: bytes  # the whole SOAP envelope
    request_id: str

    @property
    def reply_tag(self) -> str:
        ns = PASSWORD if self.operation.startswith("setPassword") else SPML
        return f"{{{ns}}}{self.operation.removesuffix('Request')}Response"


@dataclass(frozen=True)
class Reply:
    status: str  # success, failure, pending
    error: str | None = None
    messages: tuple[str, ...] = ()
    pso_id: str | None = None  # pso/psoID/@ID
    target_ids: tuple[str | None, ...] = ()  # listTargetsResponse: target/@targetID

    @property
    def ok(self) -> bool:
        return self.status == "success"

    def describe(self) -> str:
        text = f"status={self.status}"
        if self.error:
            text += f" error={self.error}"
        if self.messages:
            text += ": " + "; ".join(self.messages)
        return text


def dsml_attrs(values: dict[str, list[str]]) -> list[etree._Element]:
    """``<dsml:attr name=..><dsml:value>..`` for an add's ``<data>`` (empty ones left out)."""
    out = []
    for name, items in values.items():
        if not items:
            continue
        attr = etree.Element(f"{{{DSML}}}attr", name=name, nsmap={"dsml": DSML})
        for item in items:
            etree.SubElement(attr, f"{{{DSML}}}value").text = item
        out.append(attr)
    return out


def dsml_modifications(values: dict[str, list[str]]) -> list[etree._Element]:
    """``<dsml:modification operation="replace">`` for each attribute (no values: remove it)."""
    out = []
    for name, items in values.items():
        mod = etree.Element(f"{{{DSML}}}modification", name=name, operation="replace",
                            nsmap={"dsml": DSML})
        for item in items:
            etree.SubElement(mod, f"{{{DSML}}}value").text = item
        out.append(mod)
    return out


class Messages:
    """SPML requests as SOAP envelopes, built by zeep from ``wsdl/spml/spml.wsdl``."""

    def __init__(self, document: Document, wsse=None):
        self._client = zeep.Client(document, wsse=wsse, transport=_LocalFiles(),
                                   settings=ZEEP_SETTINGS)

    def _build(self, operation: str, **body) -> Request:
        request_id = f"gw-{uuid.uuid4().hex}"  # an xsd:ID: starts with a letter
        envelope = self._client.create_message(
            self._client.service, operation, requestID=request_id,
            executionMode="synchronous", **body)
        return Request(operation, etree.tostring(envelope, xml_declaration=True,
                                                 encoding="utf-8"), request_id)

    def add(self, pso: PsoId, attrs: dict[str, list[str]]) -> Request:
        container = {"ID": pso.container_id} if pso.container_id else None
        return self._build("addRequest", psoID=pso.zeep(), containerID=container,
                           data={"_value_1": dsml_attrs(attrs)}, targetID=pso.target_id,
                           returnData="identifier")

    def modify(self, pso: PsoId, attrs: dict[str, list[str]]) -> Request:
        return self._build("modifyRequest", psoID=pso.zeep(),
                           modification=[{"_value_1": dsml_modifications(attrs)}],
                           returnData="identifier")

    def delete(self, pso: PsoId) -> Request:
        return self._build("deleteRequest", psoID=pso.zeep())

    def lookup(self, pso: PsoId) -> Request:
        return self._build("lookupRequest", psoID=pso.zeep(), returnData="identifier")

    def list_targets(self, profile: str | None = DSML_PROFILE) -> Request:
        return self._build("listTargetsRequest", profile=profile)

    def set_password(self, pso: PsoId, password: str) -> Request:
        return self._build("setPasswordRequest", psoID=pso.zeep(), password=password)


# --- replies -------------------------------------------------------------------------


def _short(text: str | None, limit: int = 300) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[:limit] + "..."


def _local(el) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def _ns(el) -> str | None:
    return etree.QName(el).namespace if isinstance(el.tag, str) else None


def _children(el, name: str, namespaces=(SPML, PASSWORD, None)) -> list:
    """Child elements by local name, in SPML's namespaces or none (sloppy providers)."""
    return [c for c in el if _local(c) == name and _ns(c) in namespaces]


def parse_envelope(body: bytes) -> etree._Element:
    """The SOAP Body's first element; ValueError when the reply is not a sound envelope."""
    try:
        root = xmlsafe.parse(body, "an SPML reply")
    except InvalidSyntax as exc:
        raise ValueError(_short(exc.detail, 160)) from None
    env = _ns(root)
    if _local(root) != "Envelope" or env not in (SOAP11_ENV, SOAP12_ENV):
        raise ValueError(f"not a SOAP envelope (<{_local(root)}>)")
    bodies = [c for c in root if c.tag == f"{{{env}}}Body"]
    if len(bodies) != 1:
        raise ValueError("no SOAP Body")
    payload = [c for c in bodies[0] if isinstance(c.tag, str)]
    if not payload:
        raise ValueError("an empty SOAP Body")
    return payload[0]


@dataclass(frozen=True)
class Fault:
    code: str  # local name of the fault code (SOAP 1.1 faultcode, SOAP 1.2 Code/Value)
    namespace: str | None
    reason: str
    subcode: str | None = None  # SOAP 1.2: the innermost Subcode/Value
    sub_namespace: str | None = None

    def __str__(self) -> str:
        sub = f"/{self.subcode}" if self.subcode else ""
        return f"SOAP fault {self.code}{sub}: {self.reason}"


def _qname(el) -> tuple[str, str | None]:
    text = (el.text or "").strip() if el is not None else ""
    prefix, _, local = text.rpartition(":")
    return local or "?", (el.nsmap.get(prefix or None) if el is not None else None)


def read_fault(el: etree._Element) -> Fault:
    env = _ns(el)
    if env == SOAP12_ENV:
        code, namespace = _qname(el.find(f"{{{env}}}Code/{{{env}}}Value"))
        subs = el.findall(f"{{{env}}}Code/{{{env}}}Subcode//{{{env}}}Value")
        subcode, sub_ns = _qname(subs[-1]) if subs else (None, None)
        reason = el.findtext(f"{{{env}}}Reason/{{{env}}}Text") or ""
        return Fault(code, namespace, _short(reason), subcode, sub_ns)
    code_el = next((c for c in el if _local(c) == "faultcode"), None)
    code, namespace = _qname(code_el)
    reason = next((c.text for c in el if _local(c) == "faultstring"), None)
    return Fault(code, namespace, _short(reason))


def fault_retryable(fault: Fault) -> bool:
    """Our message or our credentials (Client/Sender, WS-Security) will not get better."""
    if WSSE in (fault.namespace, fault.sub_namespace):
        # a WS-Security failure is a credentials problem, except an expired message:
        # the next one carries a new timestamp
        return "MessageExpired" in (fault.code, fault.subcode)
    return fault.code not in PERMANENT_FAULTS


def read_reply(el: etree._Element, expected_tag: str, request_id: str) -> Reply:
    """An SPML response element; ValueError when it is not the one asked for."""
    if el.tag != expected_tag:
        raise ValueError(f"<{_local(el)}> where <{etree.QName(expected_tag).localname}> "
                         "was expected")
    status = el.get("status")
    if status not in ("success", "failure", "pending"):
        raise ValueError(f"a response with status {status!r}")
    echoed = el.get("requestID")
    if echoed is not None and echoed != request_id:
        raise ValueError(f"the reply is for request {echoed!r}, not {request_id!r}")
    messages = tuple(_short(m.text, 200) for m in _children(el, "errorMessage") if m.text)
    pso_id = None
    for pso in _children(el, "pso"):
        ids = _children(pso, "psoID")
        if ids and ids[0].get("ID"):
            pso_id = ids[0].get("ID")
            break
    targets = tuple(t.get("targetID") for t in _children(el, "target"))
    return Reply(status, el.get("error"), messages[:5], pso_id, targets)


def interpret(http_status: int, body: bytes, request: Request) -> Reply:
    """An HTTP exchange as an SPML reply, or the DeliveryError it amounts to.

    * HTTP 2xx: the body must be a SOAP envelope holding the expected response
      (or a fault, judged by :func:`fault_retryable`).
    * HTTP 5xx: a SOAP fault is judged by its code (Server/Receiver retryable,
      Client/Sender and WS-Security failures permanent); anything else is retryable.
    * HTTP 4xx: permanent, except 408, 409, 425 and 429.
    * HTTP 1xx/3xx (redirects are not followed): permanent.
    * A 2xx reply that is not sound XML, has a DOCTYPE, is not an envelope or
      answers another request: retryable (the target may have applied the
      request; every request is safe to repeat).
    A ``status="failure"`` reply is returned as is: its meaning depends on the
    operation (see :func:`failure`).
    """
    op = request.operation
    if 200 <= http_status < 300 or http_status >= 500:
        try:
            payload = parse_envelope(body)
        except ValueError as exc:
            if http_status >= 500:
                raise DeliveryError(f"{op}: HTTP {http_status} from the SPML target",
                                    retryable=True) from None
            raise DeliveryError(f"{op}: unusable reply: {exc}", retryable=True) from None
        if _local(payload) == "Fault" and _ns(payload) in (SOAP11_ENV, SOAP12_ENV):
            fault = read_fault(payload)
            raise DeliveryError(f"{op}: {fault} (HTTP {http_status})",
                                retryable=fault_retryable(fault))
        if http_status >= 500:
            raise DeliveryError(f"{op}: HTTP {http_status} from the SPML target",
                                retryable=True)
        try:
            return read_reply(payload, request.reply_tag, request.request_id)
        except ValueError as exc:
            raise DeliveryError(f"{op}: unusable reply: {exc}", retryable=True) from None
    detail = f"{op}: HTTP {http_status} from the SPML target"
    if 300 <= http_status < 400:
        detail += " (redirects are not followed)"
    raise DeliveryError(detail, retryable=http_status in RETRYABLE_HTTP)


def failure(operation: str, reply: Reply) -> DeliveryError:
    """The DeliveryError for a reply that did not succeed (see ERROR_RETRYABLE)."""
    if reply.status == "pending":  # we asked for synchronous execution
        return DeliveryError(f"{operation}: the target answered pending to a synchronous "
                             "request", retryable=True)
    if reply.error is None:
        retryable = NO_ERROR_CODE_RETRYABLE
    else:
        retryable = ERROR_RETRYABLE.get(reply.error, UNKNOWN_ERROR_CODE_RETRYABLE)
    return DeliveryError(f"{operation}: {reply.describe()}", retryable=retryable)
