"""The reply writer (``gateway/soap/reply.py``) writes the same XML as Spyne's serialiser,
for every operation, both versions and both SOAP bindings."""

from __future__ import annotations

import pytest
from lxml import etree
from spyne import Boolean, Integer32, Integer64, MethodContext

from gateway.soap import reply
from gateway.soap.app import runtime
from gateway.soap.envelope import SOAP11, SOAP12
from gateway.soap.models import TNS, ArrayOfString, ClaimDTO, ClaimValue
from gateway.soap.service import OPERATIONS, V1, V2

SAMPLES = {
    "Strings": ["alice", "SECONDARY/b&<o>b", "Internal/everyone"],
    "Bool": True,
    "Int": -1234,
    "Long": -1,
    "String": 'a "quoted" <value> & more',
}


def _sample(op, returns):
    name = op.name
    if name == "getUserClaimValues":
        return [ClaimDTO(claimUri="http://wso2.org/claims/givenname", value="Al & Bo",
                         dialectURI="http://wso2.org/claims", displayTag="givenname",
                         displayOrder=0, required=False, supportedByDefault=True),
                ClaimDTO(claimUri="http://wso2.org/claims/mobile", value="+1 555")]
    if name == "getUserClaimValuesForClaims":
        return [ClaimValue(claimURI="http://wso2.org/claims/role", value="a,b<c>")]
    if name == "getProperties":
        return [ArrayOfString(array=["DomainName", "PRIMARY"]), ArrayOfString(array=[])]
    if name == "getUserClaimValue":
        return SAMPLES["String"]
    if returns.Attributes.max_occurs > 1:
        return SAMPLES["Strings"]
    if issubclass(returns, Boolean):
        return SAMPLES["Bool"]
    if issubclass(returns, Integer64):
        return SAMPLES["Long"]
    if issubclass(returns, Integer32):
        return SAMPLES["Int"]
    return SAMPLES["String"]


def _spyne(version, binding, op, result) -> bytes:
    rt = runtime(version, binding.soap12)
    request = (f'<e:Envelope xmlns:e="{binding.env}"><e:Body>'
               f'<ns:{op.name} xmlns:ns="{TNS}"/></e:Body></e:Envelope>')
    ctx = MethodContext(rt.server, MethodContext.SERVER)
    ctx.in_string = etree.fromstring(request)
    ctx = rt.server.generate_contexts(ctx)[0]
    rt.server.get_in_object(ctx)
    assert ctx.in_error is None, ctx.in_error
    ctx.out_object = [result]
    rt.server.get_out_string(ctx)
    assert ctx.out_error is None, ctx.out_error
    return b"".join(ctx.out_string)


def _canonical(document: bytes):
    """The XML as namespaced names, text and children: prefixes aside, the same document."""
    def shape(element):
        return (element.tag, (element.text or "").strip(), dict(element.attrib),
                [shape(child) for child in element])

    return shape(etree.fromstring(document))


CASES = [(v, b, op) for v in (V1, V2) for b in (SOAP11, SOAP12) for op in OPERATIONS
         if not (op.void and not v.v2)]


@pytest.mark.parametrize(("version", "binding", "op"), CASES,
                         ids=[f"{v.name[-2:]}-{'12' if b.soap12 else '11'}-{o.name}"
                              for v, b, o in CASES])
def test_reply_is_spynes_xml(version, binding, op):
    rt = runtime(version, binding.soap12)
    descriptor = rt.app.interface.service_method_map[f"{{{TNS}}}{op.name}"][0]
    returns = descriptor.out_message.get_flat_type_info(descriptor.out_message).get("return")
    result = True if op.void else _sample(op, returns)
    ours = reply.write(binding, op.name, returns, result)
    assert _canonical(ours) == _canonical(_spyne(version, binding, op, result))
    if op.name == "getUserClaimValue":  # a missing value: an empty response element
        none = reply.write(binding, op.name, returns, None)
        assert _canonical(none) == _canonical(_spyne(version, binding, op, None))
