"""A real SPML 2.0 target for the connector tests: aiohttp and lxml on loopback.

It does what a provider does, per the OASIS SPML 2.0 core, password
capability and DSML profile: parses each SOAP 1.1 request with a hardened
lxml parser, checks HTTP Basic or WS-Security UsernameToken credentials
(PasswordText or PasswordDigest, nonces not replayable), VALIDATES the SPML
body against the OASIS schemas in ``tests/data/spml/`` (core + DSML content,
or core + password capability; see PROVENANCE.md there), keeps PSOs in
memory and answers ``add``/``modify``/``delete``/``lookup``/``listTargets``/
``setPassword`` with the statuses and error codes the spec gives. Its own
replies are validated too (``reply_errors`` stays empty).

Faults are injected with :meth:`SpmlTarget.inject`: plain HTTP statuses, SOAP
faults, ``status="failure"`` with any error code, ``pending``, malformed XML,
a DOCTYPE, a reply for another request, a slow reply, and a lost reply (the
request is applied, the reply is an HTTP 502).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import itertools
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from aiohttp import web
from lxml import etree

DATA = Path(__file__).resolve().parent / "data" / "spml"
SPML = "urn:oasis:names:tc:SPML:2:0"
PASSWORD = "urn:oasis:names:tc:SPML:2:0:password"
DSML = "urn:oasis:names:tc:DSML:2:0:core"
DSML_PROFILE = "urn:oasis:names:tc:SPML:2:0:DSML"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
TOKEN_PROFILE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"

PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                         dtd_validation=False, huge_tree=False, remove_comments=True,
                         remove_pis=True)

ERROR_CODES = ("malformedRequest", "unsupportedOperation", "unsupportedIdentifierType",
               "noSuchIdentifier", "customError", "unsupportedExecutionMode",
               "invalidContainment", "noSuchRequest", "unsupportedSelectionType",
               "resultSetToLarge", "unsupportedProfile", "invalidIdentifier", "alreadyExists",
               "containerNotEmpty")


@cache
def schemas() -> dict[str, etree.XMLSchema]:
    """Validators by request namespace (two sets: see data/spml/PROVENANCE.md)."""
    def load(name: str) -> etree.XMLSchema:
        return etree.XMLSchema(etree.parse(str(DATA / name), PARSER))

    return {SPML: load("spml_dsml.xsd"), PASSWORD: load("pstc_spmlv2_password.xsd")}


def validate(element: etree._Element) -> str | None:
    """None when an SPML request or response element is valid, else the first error."""
    schema = schemas().get(etree.QName(element).namespace)
    if schema is None:
        return f"no SPML schema for {element.tag}"
    doc = etree.fromstring(etree.tostring(element), PARSER)  # its own document
    if schema.validate(doc):
        return None
    error = schema.error_log.last_error
    return f"{error.message} (line {error.line})"


@dataclass
class Pso:
    id: str
    container: str | None
    attrs: dict[str, list[str]]  # DSML attribute name (lower case) -> values
    password: str | None = None


@dataclass
class Fault:
    kind: str
    op: str | None = None  # the request element's local name, None: any request
    status: int = 500
    code: str = "Server"
    error: str | None = None
    delay: float = 0.0
    times: int = 1
    message: str = "injected failure"
    chunked: bool = False  # send the reply without a Content-Length


@dataclass
class SpmlTarget:
    auth: str = "none"  # none, basic, wss
    username: str = "spml-admin"
    password: str = "spml-secret"
    target_id: str = "target1"
    containers: tuple[str, ...] = ("ou=people", "ou=groups")
    assign_ids: bool = False  # ignore requested psoIDs and hand out its own
    url: str = ""  # set by the test once the server listens
    psos: dict[str, Pso] = field(default_factory=dict)
    requests: list[tuple[str, etree._Element]] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)  # requests the schemas rejected
    reply_errors: list[str] = field(default_factory=list)  # our own invalid replies
    auth_seen: list[str] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _nonces: set = field(default_factory=set)
    _stop: asyncio.Event | None = None

    # --- for the tests ------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 20)
        app.router.add_post("/spml", self.handle)
        self._stop = asyncio.Event()

        async def stop(_app):
            self._stop.set()

        app.on_shutdown.append(stop)
        return app

    def inject(self, kind: str, op: str | None = None, **kw) -> None:
        self.faults.append(Fault(kind, op, **kw))

    def ops(self) -> list[str]:
        return [op for op, _ in self.requests]

    def add_pso(self, pso_id: str, container: str | None = "ou=people", **attrs) -> Pso:
        pso = Pso(pso_id, container, {k.lower(): list(v) for k, v in attrs.items()})
        self.psos[pso_id] = pso
        return pso

    # --- HTTP -----------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        if self.auth == "basic":
            expected = "Basic " + base64.b64encode(
                f"{self.username}:{self.password}".encode()).decode()
            if not hmac.compare_digest(request.headers.get("Authorization", ""), expected):
                return web.Response(status=401, text="unauthorized",
                                    headers={"WWW-Authenticate": 'Basic realm="spml"'})
            self.auth_seen.append("basic")
        if not request.content_type.startswith("text/xml"):
            return web.Response(status=415, text="SOAP 1.1 wants text/xml")
        raw = await request.read()
        try:
            root = etree.fromstring(raw, PARSER)
        except etree.XMLSyntaxError as exc:
            return self.soap_fault("Client", f"not XML: {exc.msg}")
        if root.getroottree().docinfo.doctype:
            return self.soap_fault("Client", "a DOCTYPE is not allowed")
        body = root.find(f"{{{SOAP}}}Body") if root.tag == f"{{{SOAP}}}Envelope" else None
        if body is None or len(body) != 1:
            return self.soap_fault("Client", "not a SOAP 1.1 envelope with one body element")
        if self.auth == "wss":
            problem = self.check_wss(root.find(f"{{{SOAP}}}Header"))
            if problem:
                return self.soap_fault("wsse:FailedAuthentication", problem,
                                       nsmap={"wsse": WSSE})
        payload = body[0]
        op = etree.QName(payload).localname
        problem = validate(payload)
        if problem:
            self.invalid.append(f"{op}: {problem}")
            return self.soap_fault("Client", f"the {op} is not valid SPML 2.0: {problem}")
        self.requests.append((op, payload))
        fault = self.take_fault(op)
        if fault is not None:
            early = await self.early_fault(fault, op, payload)
            if early is not None:
                return early
        if fault is not None and fault.kind == "status":
            reply = self.response(payload, "failure", fault.error, fault.message)
        elif fault is not None and fault.kind == "pending":
            reply = self.response(payload, "pending")
        else:
            handler = getattr(self, f"op_{op}", None)
            if handler is None or etree.QName(payload).namespace not in (SPML, PASSWORD):
                return self.soap_fault("Client", f"unsupported request {payload.tag}")
            reply = handler(payload)
        problem = validate(reply)
        if problem:
            self.reply_errors.append(f"{op}: {problem}")
        if fault is not None and fault.kind == "lose_reply":
            return web.Response(status=502, text="<html>Bad gateway</html>",
                                content_type="text/html")
        if fault is not None and fault.kind == "wrong_request_id":
            reply.set("requestID", "someone-else")
        if fault is not None and fault.kind == "wrong_element":
            reply.tag = f"{{{SPML}}}listTargetsResponse"
        response = self.envelope(reply)
        if fault is not None and fault.chunked:
            response.enable_chunked_encoding()
        return response

    def take_fault(self, op: str) -> Fault | None:
        for fault in self.faults:
            if fault.op in (None, op):
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    async def early_fault(self, fault: Fault, op: str, payload) -> web.Response | None:
        if fault.kind == "slow":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), fault.delay)
            return None
        if fault.kind == "http":
            return web.Response(status=fault.status, text=f"<html>HTTP {fault.status}</html>",
                                content_type="text/html")
        if fault.kind == "soap_fault":
            return self.soap_fault(fault.code, fault.message, status=fault.status,
                                   nsmap={"wsse": WSSE} if fault.code.startswith("wsse:") else None)
        if fault.kind == "malformed":
            return web.Response(body=b"<soapenv:Envelope><oops", content_type="text/xml")
        if fault.kind == "doctype":
            resp = self.response(payload, "success", message="&x;")
            text = etree.tostring(self.envelope_element(resp)).decode()
            evil = ('<?xml version="1.0"?>\n<!DOCTYPE d [<!ENTITY x "EXPANDED">]>\n'
                    + text.replace("&amp;x;", "&x;"))
            return web.Response(body=evil.encode(), content_type="text/xml")
        return None

    # --- SOAP --------------------------------------------------------------------------------

    def envelope_element(self, reply: etree._Element) -> etree._Element:
        env = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"soapenv": SOAP})
        etree.SubElement(env, f"{{{SOAP}}}Body").append(reply)
        return env

    def envelope(self, reply: etree._Element) -> web.Response:
        body = etree.tostring(self.envelope_element(reply), xml_declaration=True,
                              encoding="utf-8")
        return web.Response(body=body, content_type="text/xml", charset="utf-8")

    def soap_fault(self, code: str, text: str, status: int = 500,
                   nsmap: dict | None = None) -> web.Response:
        env = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"soapenv": SOAP, **(nsmap or {})})
        fault = etree.SubElement(etree.SubElement(env, f"{{{SOAP}}}Body"), f"{{{SOAP}}}Fault")
        etree.SubElement(fault, "faultcode").text = code if ":" in code else f"soapenv:{code}"
        etree.SubElement(fault, "faultstring").text = text
        return web.Response(status=status, body=etree.tostring(env), content_type="text/xml")

    def check_wss(self, header) -> str | None:
        token = header.find(f"{{{WSSE}}}Security/{{{WSSE}}}UsernameToken") \
            if header is not None else None
        if token is None:
            return "no WS-Security UsernameToken"
        user = token.findtext(f"{{{WSSE}}}Username") or ""
        password = token.find(f"{{{WSSE}}}Password")
        if password is None or not hmac.compare_digest(user, self.username):
            return "the security token could not be authenticated"
        given = (password.text or "").strip()
        if password.get("Type") == f"{TOKEN_PROFILE}#PasswordDigest":
            nonce = token.findtext(f"{{{WSSE}}}Nonce") or ""
            created = token.findtext(f"{{{WSU}}}Created") or ""
            if not nonce or not created or nonce in self._nonces:
                return "the security token could not be authenticated"
            self._nonces.add(nonce)
            digest = base64.b64encode(hashlib.sha1(  # noqa: S324 - the WSS digest is SHA-1
                base64.b64decode(nonce) + created.encode() + self.password.encode())
                .digest()).decode()
            ok, kind = hmac.compare_digest(given, digest), "wss-digest"
        else:
            ok, kind = hmac.compare_digest(given, self.password), "wss-text"
        if not ok:
            return "the security token could not be authenticated"
        self.auth_seen.append(kind)
        return None

    # --- SPML ----------------------------------------------------------------------------------

    def response(self, request, status: str, error: str | None = None,
                 message: str | None = None, pso: Pso | None = None,
                 return_data: str = "identifier") -> etree._Element:
        ns = etree.QName(request).namespace
        name = etree.QName(request).localname.removesuffix("Request") + "Response"
        reply = etree.Element(f"{{{ns}}}{name}", nsmap={None: ns, "spml": SPML})
        reply.set("status", status)
        if request.get("requestID"):
            reply.set("requestID", request.get("requestID"))
        if error:
            reply.set("error", error)
        if message:  # errorMessage is declared by spml:ResponseType: always in SPML's namespace
            etree.SubElement(reply, f"{{{SPML}}}errorMessage").text = message
        if pso is not None:
            el = etree.SubElement(reply, f"{{{SPML}}}pso")
            self.pso_id_element(el, pso)
            if return_data in ("data", "everything"):
                data = etree.SubElement(el, f"{{{SPML}}}data")
                for attr_name, values in pso.attrs.items():
                    attr = etree.SubElement(data, f"{{{DSML}}}attr", name=attr_name,
                                            nsmap={"dsml": DSML})
                    for value in values:
                        etree.SubElement(attr, f"{{{DSML}}}value").text = value
        return reply

    def pso_id_element(self, parent, pso: Pso):
        el = etree.SubElement(parent, f"{{{SPML}}}psoID", ID=pso.id, targetID=self.target_id)
        if pso.container:
            etree.SubElement(el, f"{{{SPML}}}containerID", ID=pso.container)
        return el

    def find(self, request) -> tuple[Pso | None, etree._Element | None]:
        """The PSO a request's psoID names, or (None, a failure reply)."""
        pso_id = request.find(f"{{{etree.QName(request).namespace}}}psoID")
        target = pso_id.get("targetID")
        if target is not None and target != self.target_id:
            return None, self.response(request, "failure", "invalidIdentifier",
                                       f"no target {target!r}")
        pso = self.psos.get(pso_id.get("ID") or "")
        if pso is None:
            return None, self.response(request, "failure", "noSuchIdentifier",
                                       f"no PSO {pso_id.get('ID')!r}")
        return pso, None

    def op_addRequest(self, request):
        target = request.get("targetID")
        if target is not None and target != self.target_id:
            return self.response(request, "failure", "invalidIdentifier", f"no target {target}")
        container = request.find(f"{{{SPML}}}containerID")
        container_id = container.get("ID") if container is not None else None
        if container_id is not None and container_id not in self.containers:
            return self.response(request, "failure", "invalidContainment",
                                 f"no container {container_id!r}")
        attrs: dict[str, list[str]] = {}
        for attr in request.find(f"{{{SPML}}}data").iter(f"{{{DSML}}}attr"):
            attrs.setdefault(attr.get("name").lower(), []).extend(
                v.text or "" for v in attr.iter(f"{{{DSML}}}value"))
        if not attrs.get("objectclass"):
            return self.response(request, "failure", "malformedRequest",
                                 "the DSML profile needs an objectclass")
        requested = request.find(f"{{{SPML}}}psoID")
        if requested is not None and not self.assign_ids:
            pso_id = requested.get("ID")
            if pso_id in self.psos:
                return self.response(request, "failure", "alreadyExists",
                                     f"{pso_id!r} exists")
        else:
            pso_id = f"pso-{next(self._ids)}"
        pso = self.psos[pso_id] = Pso(pso_id, container_id, attrs)
        return self.response(request, "success", pso=pso,
                             return_data=request.get("returnData", "everything"))

    def op_modifyRequest(self, request):
        pso, failure = self.find(request)
        if pso is None:
            return failure
        for modification in request.iter(f"{{{SPML}}}modification"):
            for mod in modification.iter(f"{{{DSML}}}modification"):
                self.apply(pso, mod.get("name"), mod.get("operation"),
                           [v.text or "" for v in mod.iter(f"{{{DSML}}}value")])
            data = modification.find(f"{{{SPML}}}data")
            if data is not None:
                mode = modification.get("modificationMode", "replace")
                for attr in data.iter(f"{{{DSML}}}attr"):
                    self.apply(pso, attr.get("name"), mode,
                               [v.text or "" for v in attr.iter(f"{{{DSML}}}value")])
        return self.response(request, "success", pso=pso,
                             return_data=request.get("returnData", "everything"))

    @staticmethod
    def apply(pso: Pso, name: str, operation: str, values: list[str]) -> None:
        key = name.lower()
        current = pso.attrs.get(key, [])
        if operation == "replace":
            current = list(values)
        elif operation == "add":
            current = current + [v for v in values if v not in current]
        elif operation == "delete":
            current = [v for v in current if v not in values] if values else []
        if current:
            pso.attrs[key] = current
        else:
            pso.attrs.pop(key, None)

    def op_deleteRequest(self, request):
        pso, failure = self.find(request)
        if pso is None:
            return failure
        del self.psos[pso.id]
        return self.response(request, "success")

    def op_lookupRequest(self, request):
        pso, failure = self.find(request)
        if pso is None:
            return failure
        return self.response(request, "success", pso=pso,
                             return_data=request.get("returnData", "everything"))

    def op_setPasswordRequest(self, request):
        pso, failure = self.find(request)
        if pso is None:
            return failure
        pso.password = request.findtext(f"{{{PASSWORD}}}password")
        return self.response(request, "success")

    def op_listTargetsRequest(self, request):
        profile = request.get("profile")
        if profile is not None and profile != DSML_PROFILE:
            return self.response(request, "failure", "unsupportedProfile",
                                 f"only {DSML_PROFILE}")
        reply = self.response(request, "success")
        target = etree.SubElement(reply, f"{{{SPML}}}target", targetID=self.target_id,
                                  profile=DSML_PROFILE)
        schema = etree.SubElement(target, f"{{{SPML}}}schema")
        for entity in ("inetOrgPerson", "groupOfNames"):
            etree.SubElement(schema, f"{{{SPML}}}supportedSchemaEntity", entityName=entity,
                             targetID=self.target_id)
        capabilities = etree.SubElement(target, f"{{{SPML}}}capabilities")
        capability = etree.SubElement(capabilities, f"{{{SPML}}}capability",
                                      namespaceURI=PASSWORD)
        etree.SubElement(capability, f"{{{SPML}}}appliesTo", entityName="inetOrgPerson")
        return reply
