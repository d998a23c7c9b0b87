"""The SOAP sub-application mounted at ``/services``: Spyne inside aiohttp.

Endpoints, as WSO2 names them (``{S}`` is ``RemoteUserStoreManagerService`` or
``RemoteUserStoreManagerServiceV2``):

- ``POST /services/{S}``, ``/services/{S}.{S}HttpsSoap11Endpoint`` and
  ``…Soap12Endpoint`` (also ``Http…``, with or without a trailing slash): SOAP 1.1
  or 1.2, told apart by the Content-Type as in WSO2 (Axis2): ``text/xml`` is SOAP
  1.1, ``application/soap+xml`` SOAP 1.2, and the envelope must be of that version
  (else a ``VersionMismatch`` fault); any other Content-Type is HTTP 415.
- ``GET /services/{S}?wsdl``: the WSDL with both bindings and WSO2's two ports
  (``{S}HttpsSoap11Endpoint``, ``{S}HttpsSoap12Endpoint``); ``GET`` a suffixed
  endpoint with ``?wsdl``: the WSDL of that binding alone (for generators that
  want one SOAP version). Addresses point back where the WSDL was fetched from.

No WSGI bridge and no thread per request: the adapter parses the envelope
(hardened, ``envelope.parse``), authenticates, lets Spyne deserialise and
dispatch, awaits the coroutine the ``async def`` service method returned,
and writes the reply from the same Spyne models (``reply.py``, in a thread for
large replies). V1's
one-way operations answer HTTP 202 with an empty body; when one fails, the
caller gets the fault (HTTP 500), which WSO2 does not send.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from functools import cache

from aiohttp import web
from spyne import Application, MethodContext
from spyne.error import ValidationError
from spyne.protocol.soap import Soap11, Soap12
from spyne.server import ServerBase

from ..errors import (
    Forbidden,
    GatewayError,
    InvalidSyntax,
    InvalidValue,
    MethodNotAllowed,
    Unauthorized,
    UnsupportedMediaType,
)
from ..http_input import public_base, read_body
from ..keys import AUTH, CONFIG, PIPELINE, shared
from . import envelope, handlers, permissions, plain, reply, security
from .call import Call
from .envelope import SOAP11, SOAP12, Binding
from .models import TNS
from .service import BY_NAME, V1, V2, Version, build_service
from .wsdl import build_wsdl, endpoint_name, with_address

log = logging.getLogger("gateway.soap")

# Spyne logs whole invalid requests (credentials included) and every fault: silence it;
# the adapter logs what matters itself
for _name in ("spyne.protocol.soap.soap11.invalid", "spyne.server._base",
              "spyne.application", "spyne.application.client", "spyne.application.server"):
    logging.getLogger(_name).disabled = True
logging.getLogger("spyne").setLevel(logging.ERROR)

LARGE_REPLY = 1000  # list results longer than this are serialised in a thread
BINDING = web.RequestKey("soap_binding", Binding)


class _Parsed:
    """Spyne protocols that take the envelope the adapter already parsed (safely), and
    read xs:boolean strictly (Spyne takes anything but "true"/"1" as false)."""

    def create_in_document(self, ctx, charset=None):
        ctx.in_document = (ctx.in_string, {})  # no SOAP-encoding hrefs to resolve

    def boolean_from_bytes(self, cls, string):
        value = string.strip().lower()
        if value in ("true", "1"):
            return True
        if value in ("false", "0"):
            return False
        raise ValidationError(string, "%r is not an xs:boolean")


class _Soap11(_Parsed, Soap11):
    pass


class _Soap12(_Parsed, Soap12):
    pass


class _Server(ServerBase):
    """Spyne's server half without a transport of its own: aiohttp is the transport."""

    transport = "http://schemas.xmlsoap.org/soap/http"


@dataclass(frozen=True)
class Endpoint:
    version: Version
    binding: Binding | None  # the binding its name says (its ?wsdl, its faults before the
    # Content-Type is known); None: both. Every endpoint takes both versions.


@dataclass
class Runtime:
    """One version and binding: its Spyne application and server."""

    app: Application
    server: ServerBase


@cache
def runtime(version: Version, soap12: bool) -> Runtime:
    service = build_service(version)
    in_protocol = _Soap12(validator="soft") if soap12 else _Soap11(validator="soft")
    out_protocol = Soap12() if soap12 else Soap11()
    app = Application([service], tns=TNS, name=version.name, in_protocol=in_protocol,
                      out_protocol=out_protocol)
    return Runtime(app, _Server(app))


@cache
def wsdl_document(version: Version, soap12: bool | None) -> bytes:
    """The WSDL with the SOAP 1.1 (``False``) or 1.2 (``True``) binding, or both (None)."""
    bindings = (False, True) if soap12 is None else (soap12,)
    return build_wsdl(runtime(version, bool(soap12)).app, version, bindings)


def endpoints() -> dict[str, Endpoint]:
    out = {}
    for version in (V1, V2):
        out[version.name] = Endpoint(version, None)
        for binding, tag in ((SOAP11, "Soap11"), (SOAP12, "Soap12")):
            for scheme in ("Https", "Http"):
                out[f"{version.name}.{version.name}{scheme}{tag}Endpoint"] = Endpoint(
                    version, binding)
    return out


ENDPOINTS = endpoints()


def _endpoint(request: web.Request) -> Endpoint:
    found = ENDPOINTS.get(request.match_info["endpoint"])
    if found is None:
        raise web.HTTPNotFound(text=f"No SOAP service at {request.path}")
    return found


def _transport(request: web.Request) -> Binding:
    """The SOAP version of the request's HTTP binding, by its media type; 415 for another."""
    for binding in (SOAP11, SOAP12):
        if request.content_type == binding.media_type:
            return binding
    sent = request.headers.get("Content-Type")
    raise UnsupportedMediaType(
        f"A SOAP request is {SOAP11.media_type} (SOAP 1.1) or {SOAP12.media_type} (SOAP 1.2), "
        + (f"not {sent[:100]}" if sent else "and this one has no Content-Type"))


async def _caller(request: web.Request, header):
    auth = shared(request)[AUTH]
    token = security.username_token(header)
    if token is None:
        return await auth.authenticate_request(request)
    if token.digest:
        return await auth.digest(token.username, token.password, token.nonce, token.created)
    return await auth.authenticate(token.as_basic(), request.remote)


def _fault_response(request: web.Request, error: GatewayError) -> web.Response:
    endpoint = ENDPOINTS.get(request.match_info.get("endpoint", ""), Endpoint(V1, None))
    binding = request.get(BINDING) or endpoint.binding or SOAP11
    if isinstance(error, envelope.WrongVersion):  # in SOAP 1.1, which every sender reads
        binding = SOAP11
    body = envelope.fault(binding, error, endpoint.version.name, endpoint.version.v2)
    response = web.Response(body=body, status=binding.fault_status(error),
                            content_type=binding.content_type.split(";")[0], charset="utf-8")
    if isinstance(error, Unauthorized):
        response.headers["WWW-Authenticate"] = 'Basic realm="gateway"'
    return response


@web.middleware
async def soap_errors(request: web.Request, handler):
    try:
        return await handler(request)
    except GatewayError as exc:
        if exc.status >= 500 and exc.soap_fault == "Server":  # ours, not the caller's
            log.error("%s %s failed: %s", request.method, request.path, exc.detail,
                      exc_info=exc.__cause__)
        return _fault_response(request, exc)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return _fault_response(request, GatewayError("Internal error"))


async def soap_get(request: web.Request) -> web.Response:
    endpoint = _endpoint(request)
    if not any(k.lower() == "wsdl" for k in request.query):
        raise MethodNotAllowed("Send SOAP requests with POST; GET ?wsdl for the WSDL")
    soap12 = None if endpoint.binding is None else endpoint.binding.soap12
    return web.Response(body=with_address(wsdl_document(endpoint.version, soap12),
                                          public_base(request)),
                        content_type="text/xml", charset="utf-8")


def _spyne_fault(error) -> GatewayError:
    """A Spyne fault (dispatch, deserialisation, validation) as a Client error."""
    code = str(getattr(error, "faultcode", "Client"))
    message = getattr(error, "faultstring", None) or str(error)
    if code.startswith("Client.ResourceNotFound") or "method" in message.lower() \
            and "not found" in message.lower():
        return InvalidValue(f"Unknown operation: {message}")
    if code.startswith("Client"):
        return InvalidValue(f"Invalid request: {message}")
    return InvalidSyntax(f"Invalid request: {message}")


def _allowed(caller, op) -> None:
    if not caller.allows(permissions.required(op)):
        raise Forbidden(f"'{caller.name}' may not call {op.name} (it needs "
                        f"{permissions.required(op)})")


_RETURNS: dict[tuple[int, str], object] = {}


def _returns(rt: Runtime, name: str):
    """The type of an operation's ``return`` element in this runtime (None: none)."""
    key = (id(rt), name)
    if key not in _RETURNS:
        descriptor = rt.app.interface.service_method_map[f"{{{TNS}}}{name}"][0]
        out = descriptor.out_message
        _RETURNS[key] = out.get_flat_type_info(out).get("return")
    return _RETURNS[key]


async def soap_post(request: web.Request) -> web.Response:
    endpoint = _endpoint(request)
    binding = request[BINDING] = _transport(request)
    body = await read_body(request, shared(request)[CONFIG].max_body_bytes)
    root = envelope.parse(body)
    found = envelope.binding_of(root)
    if found is None:
        raise InvalidSyntax("The request is not a SOAP envelope")
    envelope.check_version(found, binding)
    body_el = root.find(f"{{{binding.env}}}Body")
    if body_el is None or len(body_el) != 1:
        raise InvalidSyntax("The SOAP Body must hold exactly one operation element")
    header = root.find(f"{{{binding.env}}}Header")
    envelope.check_headers(binding, header)
    caller = await _caller(request, header)

    rt = runtime(endpoint.version, binding.soap12)
    call = Call(caller, shared(request)[PIPELINE], request.remote)
    simple = plain.read(body_el[0])
    if simple is not None:  # the common case, read without Spyne (gateway.soap.plain)
        op, args = simple
        _allowed(caller, op)
        result = await handlers.BY_NAME[op.name](call, *args)
        result = True if op.void else result
    else:
        ctx = MethodContext(rt.server, MethodContext.SERVER)
        ctx.in_string = root
        contexts = rt.server.generate_contexts(ctx)
        ctx = contexts[0]
        if ctx.in_error is None:
            rt.server.get_in_object(ctx)
        if ctx.in_error is not None:
            raise _spyne_fault(ctx.in_error)
        op = BY_NAME[ctx.descriptor.name]
        _allowed(caller, op)
        ctx.udc = call
        rt.app.process_request(ctx)
        if ctx.out_error is not None:
            raise _spyne_fault(ctx.out_error)
        result = await ctx.out_object[0]
    if op.void and not endpoint.version.v2:
        return web.Response(status=202)
    returns = _returns(rt, op.name)
    if isinstance(result, list) and len(result) > LARGE_REPLY:
        body = await asyncio.get_running_loop().run_in_executor(
            None, reply.write, binding, op.name, returns, result)
    else:
        body = reply.write(binding, op.name, returns, result)
    return web.Response(body=body, content_type=binding.content_type.split(";")[0],
                        charset="utf-8")


def create_soap_app() -> web.Application:
    app = web.Application(middlewares=[soap_errors])
    for path in ("/{endpoint}", "/{endpoint}/"):
        app.router.add_get(path, soap_get)
        app.router.add_post(path, soap_post)
    return app


__all__ = ["create_soap_app", "endpoint_name", "wsdl_document", "runtime", "ENDPOINTS"]
