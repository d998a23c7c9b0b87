"""Plain requests (every parameter a string, sent as text) are read without Spyne
(gateway.soap.plain): the arguments must be exactly Spyne's, and anything unusual must go
to Spyne."""

from __future__ import annotations

import pytest
from lxml import etree
from spyne import MethodContext

from gateway.soap import plain
from gateway.soap.app import runtime
from gateway.soap.service import V1, V2

ENV11 = "http://schemas.xmlsoap.org/soap/envelope/"
ENV12 = "http://www.w3.org/2003/05/soap-envelope"
TNS = "http://service.ws.um.carbon.wso2.org"


def envelope(inner: str, env: str = ENV11) -> etree._Element:
    return etree.fromstring(
        f'<s:Envelope xmlns:s="{env}" xmlns:ser="{TNS}" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<s:Header/><s:Body>{inner}</s:Body></s:Envelope>".encode())


def spyne_arguments(version, soap12: bool, root) -> list:
    rt = runtime(version, soap12)
    ctx = MethodContext(rt.server, MethodContext.SERVER)
    ctx.in_string = root
    ctx = rt.server.generate_contexts(ctx)[0]
    assert ctx.in_error is None, ctx.in_error
    rt.server.get_in_object(ctx)
    assert ctx.in_error is None, ctx.in_error
    return list(ctx.in_object or [])


def body_of(root, env: str = ENV11):
    return root.find(f"{{{env}}}Body")[0]


def cases():
    for name, op in sorted(plain.SIMPLE.items()):
        params = [p for p, _kind in op.params]
        yield name, "".join(f"<ser:{p}>{p}-value é &amp; &lt;x&gt;</ser:{p}>" for p in params)
        yield name, "".join(f"<ser:{p}>  {i} spaced  </ser:{p}>" for i, p in enumerate(params))
        if len(params) > 1:  # the last one left out
            yield name, "".join(f"<ser:{p}>v{i}</ser:{p}>" for i, p in enumerate(params[:-1]))
        yield name, ("\n  " + "\n  ".join(f"<ser:{p}><![CDATA[c<{i}>]]></ser:{p}>"
                                          for i, p in enumerate(params)) + "\n")


@pytest.mark.parametrize("version", [V1, V2], ids=["V1", "V2"])
@pytest.mark.parametrize("soap12", [False, True], ids=["soap11", "soap12"])
def test_plain_requests_read_as_spyne_reads_them(version, soap12):
    env = ENV12 if soap12 else ENV11
    checked = 0
    for name, inner in cases():
        root = envelope(f"<ser:{name}>{inner}</ser:{name}>", env)
        found = plain.read(body_of(root, env))
        assert found is not None, (name, inner)
        op, args = found
        assert op.name == name
        expected = spyne_arguments(version, soap12, root)
        expected += [None] * (len(args) - len(expected))
        assert args == expected, (name, inner)
        checked += 1
    assert checked >= 4 * 15  # every simple operation, in each form


UNUSUAL = [
    '<ser:isExistingUser><ser:userName xsi:nil="true"/></ser:isExistingUser>',
    '<ser:isExistingUser><ser:userName xsi:type="xsd:string">a</ser:userName>'
    "</ser:isExistingUser>",
    "<ser:isExistingUser><userName>a</userName></ser:isExistingUser>",
    "<ser:isExistingUser><ser:userName>a</ser:userName><ser:userName>b</ser:userName>"
    "</ser:isExistingUser>",
    "<ser:isExistingUser><ser:userName></ser:userName></ser:isExistingUser>",
    "<ser:isExistingUser><ser:userName><ser:x>a</ser:x></ser:userName></ser:isExistingUser>",
    "<ser:isExistingUser><ser:nobody>a</ser:nobody></ser:isExistingUser>",
    "<ser:isExistingUser>text<ser:userName>a</ser:userName></ser:isExistingUser>",
    "<ser:isExistingUser><!-- c --><ser:userName>a</ser:userName></ser:isExistingUser>",
    "<ser:getUserClaimValue><ser:claim>c</ser:claim><ser:userName>a</ser:userName>"
    "</ser:getUserClaimValue>",
    "<ser:addUser><ser:userName>a</ser:userName></ser:addUser>",  # not all strings
    "<ser:listUsers><ser:filter>*</ser:filter><ser:maxItemLimit>5</ser:maxItemLimit>"
    "</ser:listUsers>",
    '<x:isExistingUser xmlns:x="urn:other"><x:userName>a</x:userName></x:isExistingUser>',
    '<ser:isExistingUser ser:extra="1"><ser:userName>a</ser:userName></ser:isExistingUser>',
]


@pytest.mark.parametrize("inner", UNUSUAL)
def test_anything_unusual_goes_to_spyne(inner):
    assert plain.read(body_of(envelope(inner))) is None
