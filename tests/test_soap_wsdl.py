"""The published WSDLs: they match the frozen copies, are clean for generators, and
carry WSO2's contract (element names, order, types) for every operation."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from gateway.soap.freeze import frozen_name
from gateway.soap.service import OPERATIONS, V1, V2

ROOT = Path(__file__).resolve().parent.parent
FROZEN = ROOT / "wsdl"
REFERENCE = ROOT / "tests" / "data" / "wso2"  # WSO2's own WSDLs, verbatim
WSDL = "http://schemas.xmlsoap.org/wsdl/"
XS = "http://www.w3.org/2001/XMLSchema"
SOAP11 = "http://schemas.xmlsoap.org/wsdl/soap/"
SOAP12 = "http://schemas.xmlsoap.org/wsdl/soap12/"
TNS = "http://service.ws.um.carbon.wso2.org"

CASES = [(V1, False), (V1, True), (V2, False), (V2, True)]
IDS = ["v1-soap11", "v1-soap12", "v2-soap11", "v2-soap12"]


def _path(version, soap12: bool) -> str:
    name = version.name
    if not soap12:
        return f"/services/{name}?wsdl"
    return f"/services/{name}.{name}HttpsSoap12Endpoint?wsdl"


def _canonical(document: bytes) -> bytes:
    root = etree.fromstring(document)
    for address in root.iter(f"{{{SOAP11}}}address", f"{{{SOAP12}}}address"):
        address.set("location", "ADDRESS")
    return etree.tostring(root, method="c14n")


@pytest.mark.parametrize(("version", "soap12"), CASES, ids=IDS)
async def test_live_wsdl_matches_the_frozen_copy(gateway, version, soap12):
    resp = await gateway.get(_path(version, soap12))
    assert resp.status == 200
    assert resp.content_type == "text/xml"
    live = await resp.read()
    frozen = (FROZEN / frozen_name(version, soap12)).read_bytes()
    assert _canonical(live) == _canonical(frozen), (
        "the live WSDL differs from wsdl/: if the contract change is deliberate, run "
        "`python -m gateway.soap.freeze` and say so in the commit")
    # the address points back at the gateway that served it
    root = etree.fromstring(live)
    address = next(root.iter(f"{{{SOAP11}}}address", f"{{{SOAP12}}}address"))
    host = f"http://{gateway.server.host}:{gateway.server.port}/services/"
    assert address.get("location").startswith(host)


async def test_wsdl_query_is_case_insensitive_and_works_on_every_endpoint(gateway):
    for path in ("/services/RemoteUserStoreManagerService?WSDL",
                 "/services/RemoteUserStoreManagerService.RemoteUserStoreManagerService"
                 "HttpsSoap11Endpoint/?wsdl",
                 "/services/RemoteUserStoreManagerServiceV2.RemoteUserStoreManagerServiceV2"
                 "HttpSoap12Endpoint?wsdl"):
        resp = await gateway.get(path)
        assert resp.status == 200, path
        assert etree.fromstring(await resp.read()).tag == f"{{{WSDL}}}definitions"


@pytest.mark.parametrize(("version", "soap12"), CASES, ids=IDS)
def test_frozen_wsdl_is_clean_for_generators(version, soap12):
    text = (FROZEN / frozen_name(version, soap12)).read_bytes()
    root = etree.fromstring(text)
    declared = set(root.nsmap.values())
    for element in root.iter():
        declared.update(element.nsmap.values())
    # one binding per document: no namespace of the other SOAP version
    assert (SOAP11 in declared) is not soap12 and (SOAP12 in declared) is soap12
    assert "http://www.w3.org/2003/05/soap-envelope" not in declared
    assert "http://schemas.xmlsoap.org/wsdl/http/" not in declared
    assert b"parameterOrder" not in text
    assert len(root.findall(f"{{{WSDL}}}binding")) == 1
    assert len(root.findall(f"{{{WSDL}}}service/{{{WSDL}}}port")) == 1
    # a schema comes after every schema it imports
    seen = set()
    for schema in root.find(f"{{{WSDL}}}types").findall(f"{{{XS}}}schema"):
        for imp in schema.findall(f"{{{XS}}}import"):
            assert imp.get("namespace") in seen, (schema.get("targetNamespace"), seen)
        seen.add(schema.get("targetNamespace"))
    # V1's void operations are one-way (input only); everything else has output and fault
    port_type = root.find(f"{{{WSDL}}}portType")
    for op in OPERATIONS:
        operation = port_type.find(f"{{{WSDL}}}operation[@name='{op.name}']")
        assert operation is not None, op.name
        has_output = operation.find(f"{{{WSDL}}}output") is not None
        assert has_output is (version.v2 or not op.void), op.name
        assert (operation.find(f"{{{WSDL}}}fault") is not None) is has_output
    binding_ns = SOAP12 if soap12 else SOAP11
    actions = {o.getparent().get("name"): o.get("soapAction")
               for o in root.iter(f"{{{binding_ns}}}operation")}
    assert actions == {op.name: f"urn:{op.name}" for op in OPERATIONS}


def _schema_elements(root: etree._Element) -> dict[str, list[tuple]]:
    """Top-level elements of the service namespace -> [(child, type, maxOccurs, minOccurs)]."""
    out = {}
    for schema in root.iter(f"{{{XS}}}schema"):
        if schema.get("targetNamespace") != TNS:
            continue
        for element in schema.findall(f"{{{XS}}}element"):
            children = []
            for child in element.iter(f"{{{XS}}}element"):
                if child is element:
                    continue
                kind = child.get("type", "")
                children.append((child.get("name"), kind.split(":")[-1],
                                 child.get("maxOccurs", "1"), child.get("minOccurs", "1")))
            out[element.get("name")] = children
    return out


@pytest.mark.parametrize("version", [V1, V2], ids=["v1", "v2"])
def test_every_operation_has_wso2s_wrappers(version):
    """Element names, order, types and cardinality of every request and response
    wrapper are WSO2's, so clients generated from WSO2's WSDL work unchanged."""
    reference = etree.parse(str(REFERENCE / f"{version.name}.wsdl")).getroot()
    ours = etree.fromstring((FROZEN / frozen_name(version, False)).read_bytes())
    expected, actual = _schema_elements(reference), _schema_elements(ours)
    for op in OPERATIONS:
        for name in (op.name, f"{op.name}Response"):
            if name in expected:
                assert actual.get(name) == expected[name], name
            else:
                assert name not in actual, f"{name} is not in WSO2's contract"
    fault = f"{version.name}UserStoreException"
    assert fault in actual
