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

# soap12 None: the document at ?wsdl, with both bindings; False/True: one binding alone
CASES = [(V1, None), (V1, False), (V1, True), (V2, None), (V2, False), (V2, True)]
IDS = ["v1-both", "v1-soap11", "v1-soap12", "v2-both", "v2-soap11", "v2-soap12"]


def _path(version, soap12: bool | None) -> str:
    name = version.name
    if soap12 is None:
        return f"/services/{name}?wsdl"
    return f"/services/{name}.{name}Https{'Soap12' if soap12 else 'Soap11'}Endpoint?wsdl"


def _endpoint(version, soap12: bool) -> str:
    name = version.name
    return f"{name}.{name}Https{'Soap12' if soap12 else 'Soap11'}Endpoint"


def _versions(soap12: bool | None) -> list[bool]:
    return [False, True] if soap12 is None else [soap12]


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
    # each port's address points back at the gateway that served it, at the endpoint of
    # the port's name (WSO2's), in the address element of its binding's SOAP version
    root = etree.fromstring(live)
    host = f"http://{gateway.server.host}:{gateway.server.port}/services/"
    ports = root.findall(f"{{{WSDL}}}service/{{{WSDL}}}port")
    assert [p.get("name") for p in ports] == [
        _endpoint(version, v).split(".")[1] for v in _versions(soap12)]
    for port, v in zip(ports, _versions(soap12), strict=True):
        address = port.find(f"{{{SOAP12 if v else SOAP11}}}address")
        assert address.get("location") == host + _endpoint(version, v)


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
    # the namespaces of its bindings' SOAP versions and no other: a single-binding
    # document never shows a SOAP 1.1 generator a SOAP 1.2 declaration
    versions = _versions(soap12)
    assert (SOAP11 in declared) is (False in versions)
    assert (SOAP12 in declared) is (True in versions)
    assert "http://www.w3.org/2003/05/soap-envelope" not in declared
    assert "http://schemas.xmlsoap.org/wsdl/http/" not in declared
    assert b"parameterOrder" not in text
    bindings = root.findall(f"{{{WSDL}}}binding")
    assert [b.get("name") for b in bindings] == [
        f"{version.name}Soap{'12' if v else '11'}Binding" for v in versions]
    assert len(root.findall(f"{{{WSDL}}}service/{{{WSDL}}}port")) == len(versions)
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
    for binding, v in zip(bindings, versions, strict=True):
        binding_ns = SOAP12 if v else SOAP11
        assert binding.find(f"{{{binding_ns}}}binding").get("transport") == \
            "http://schemas.xmlsoap.org/soap/http"
        actions = {o.getparent().get("name"): o.get("soapAction")
                   for o in binding.iter(f"{{{binding_ns}}}operation")}
        assert actions == {op.name: f"urn:{op.name}" for op in OPERATIONS}


@pytest.mark.parametrize("version", [V1, V2], ids=["v1", "v2"])
def test_wsdl_has_wso2s_soap_bindings_and_ports(version):
    """The ?wsdl document has the SOAP bindings and ports of WSO2's own WSDL, by the same
    names, binding namespaces and endpoint paths (WSO2's HTTP binding is left out)."""
    reference = etree.parse(str(REFERENCE / f"{version.name}.wsdl")).getroot()
    ours = etree.fromstring((FROZEN / frozen_name(version, None)).read_bytes())

    def soap_ports(root):
        out = []
        for port in root.iter(f"{{{WSDL}}}port"):
            for ns in (SOAP11, SOAP12):
                address = port.find(f"{{{ns}}}address")
                if address is not None and "Https" in port.get("name"):
                    path = address.get("location").rsplit("/services/", 1)[1].rstrip("/")
                    out.append((port.get("name"), port.get("binding").split(":")[1], ns, path))
        return out

    def soap_bindings(root):
        return [(b.get("name"), ns) for b in root.findall(f"{{{WSDL}}}binding")
                for ns in (SOAP11, SOAP12) if b.find(f"{{{ns}}}binding") is not None]

    assert soap_ports(ours) == soap_ports(reference) and len(soap_ports(ours)) == 2
    assert soap_bindings(ours) == soap_bindings(reference) and len(soap_bindings(ours)) == 2


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
