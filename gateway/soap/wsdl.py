"""The published WSDL: Spyne's schema types in a WSDL 1.1 document written for generators.

Spyne builds the XML Schema of the service from its models (names, order,
namespaces, ``xs:int``). The rest of Spyne's WSDL trips code generators: it
declares every namespace it knows (SOAP 1.2 ones in a SOAP 1.1 WSDL), puts a
``parameterOrder`` naming the wrapper element on every operation, lists an
importing schema before the schemas it imports, names messages after elements
and uses its own transport URI. So only the types are taken from Spyne; the
messages, port type, binding and service are written here, in WSO2's naming
(``{op}Request``/``{op}Response`` messages with a ``parameters`` part,
``urn:{op}`` SOAP actions, ``{service}PortType``, ``{service}Soap11Binding``,
``{service}HttpsSoap11Endpoint``). The document at ``?wsdl`` has both SOAP
bindings and WSO2's two ports, ``{service}HttpsSoap11Endpoint`` and
``{service}HttpsSoap12Endpoint``, each addressed at the endpoint of its name (WSO2
also has an HTTP binding; it is left out, as generators warn about it). A document
with one binding alone is published too, for generators that want one SOAP version
(JAX-WS ``wsimport`` without ``-extension``). The operation wrappers are inlined
into their elements as WSO2 has them, and V1's one-way operations have neither
output nor fault.
"""

from __future__ import annotations

from lxml import etree
from spyne import Application
from spyne.interface.wsdl.wsdl11 import Wsdl11

from .models import NS_API, NS_COMMON, NS_CORE, NS_DAO, NS_TENANT
from .service import OPERATIONS, Version

WSDL = "http://schemas.xmlsoap.org/wsdl/"
XS = "http://www.w3.org/2001/XMLSchema"
SOAP11 = "http://schemas.xmlsoap.org/wsdl/soap/"
SOAP12 = "http://schemas.xmlsoap.org/wsdl/soap12/"
HTTP_TRANSPORT = "http://schemas.xmlsoap.org/soap/http"
ADDRESS_PLACEHOLDER = "http://localhost:9763/services/"


# fixed prefixes (Spyne numbers its own in no stable order)
PREFIXES = {NS_CORE: "core", NS_API: "api", NS_TENANT: "tenant", NS_DAO: "dao",
            NS_COMMON: "common", XS: "xs"}
_QNAME_ATTRIBUTES = ("type", "base", "ref", "element")


def _q(ns: str, tag: str) -> str:
    return f"{{{ns}}}{tag}"


def _schemas_in_import_order(schemas: list[etree._Element]) -> list[etree._Element]:
    """Schemas that are imported before the schemas importing them."""
    by_ns = {s.get("targetNamespace"): s for s in schemas}
    done: list[etree._Element] = []

    def visit(schema: etree._Element, path: tuple = ()) -> None:
        if schema in done or schema in path:
            return
        for imp in schema.findall(_q(XS, "import")):
            dep = by_ns.get(imp.get("namespace"))
            if dep is not None:
                visit(dep, (*path, schema))
        done.append(schema)

    for schema in sorted(schemas, key=lambda s: s.get("targetNamespace")):
        visit(schema)
    return done


def _stable(schema: etree._Element, prefixes: dict[str, str]) -> None:
    """Our prefixes in QName values, and the schema's children in a fixed order."""
    for element in schema.iter():
        for attr in _QNAME_ATTRIBUTES:
            value = element.get(attr)
            if value and ":" in value:
                prefix, local = value.split(":", 1)
                element.set(attr, f"{prefixes[element.nsmap[prefix]]}:{local}")
    order = {"import": 0, "complexType": 1, "simpleType": 1, "element": 2}
    children = sorted(schema, key=lambda c: (order.get(etree.QName(c).localname, 3),
                                             c.get("namespace") or c.get("name") or ""))
    schema[:] = children


def _inline_wrappers(schema: etree._Element, wrappers: set[str], dropped: set[str]) -> None:
    """``<element name="x" type="tns:x"/>`` + ``<complexType name="x">`` -> one element
    with an anonymous type, for the operation wrappers; drop unused wrappers."""
    types = {t.get("name"): t for t in schema.findall(_q(XS, "complexType"))}
    for element in schema.findall(_q(XS, "element")):
        name = element.get("name")
        if name in dropped:
            schema.remove(element)
            schema.remove(types[name])
            continue
        if name not in wrappers or name not in types:
            continue
        complex_type = types[name]
        schema.remove(complex_type)
        del complex_type.attrib["name"]
        del element.attrib["type"]
        element.append(complex_type)


def _spyne_types(app: Application, version: Version) -> tuple[list[etree._Element], dict]:
    doc = Wsdl11(app.interface)
    doc.build_interface_document(ADDRESS_PLACEHOLDER)
    root = etree.fromstring(doc.get_interface_document())
    schemas = root.find(_q(WSDL, "types")).findall(_q(XS, "schema"))
    wrappers, dropped = set(), set()
    for op in OPERATIONS:
        wrappers.add(op.name)
        if op.void and not version.v2:
            dropped.add(f"{op.name}Response")
        else:
            wrappers.add(f"{op.name}Response")
    prefixes = {**PREFIXES, app.tns: "tns"}
    for schema in schemas:
        if schema.get("targetNamespace") == app.tns:
            _inline_wrappers(schema, wrappers, dropped)
        _stable(schema, prefixes)
    return _schemas_in_import_order(schemas)


def build_wsdl(app: Application, version: Version, bindings: tuple[bool, ...]) -> bytes:
    """The WSDL document of one version with the SOAP bindings named by ``bindings``
    (``False``: SOAP 1.1, ``True``: SOAP 1.2), one port each (address placeholder)."""
    schemas = _spyne_types(app, version)
    tns = app.tns
    nsmap = {"wsdl": WSDL, "xs": XS}
    nsmap.update({("soap12" if soap12 else "soap"): SOAP12 if soap12 else SOAP11
                  for soap12 in bindings})
    nsmap["tns"] = tns
    nsmap.update({p: ns for ns, p in PREFIXES.items()})
    root = etree.Element(_q(WSDL, "definitions"), nsmap=nsmap, targetNamespace=tns)
    etree.SubElement(root, _q(WSDL, "documentation")).text = version.name
    types = etree.SubElement(root, _q(WSDL, "types"))
    for schema in schemas:
        schema.set("attributeFormDefault", "qualified")
        types.append(schema)

    fault_name = version.fault.__type_name__
    etree.SubElement(etree.SubElement(root, _q(WSDL, "message"), name=fault_name),
                     _q(WSDL, "part"), name="parameters", element=f"tns:{fault_name}")
    for op in OPERATIONS:
        one_way = op.void and not version.v2
        msg = etree.SubElement(root, _q(WSDL, "message"), name=f"{op.name}Request")
        etree.SubElement(msg, _q(WSDL, "part"), name="parameters", element=f"tns:{op.name}")
        if not one_way:
            msg = etree.SubElement(root, _q(WSDL, "message"), name=f"{op.name}Response")
            etree.SubElement(msg, _q(WSDL, "part"), name="parameters",
                             element=f"tns:{op.name}Response")

    port_type = etree.SubElement(root, _q(WSDL, "portType"), name=f"{version.name}PortType")
    for op in OPERATIONS:
        one_way = op.void and not version.v2
        operation = etree.SubElement(port_type, _q(WSDL, "operation"), name=op.name)
        etree.SubElement(operation, _q(WSDL, "input"), message=f"tns:{op.name}Request")
        if not one_way:
            etree.SubElement(operation, _q(WSDL, "output"), message=f"tns:{op.name}Response")
            etree.SubElement(operation, _q(WSDL, "fault"), name=fault_name,
                             message=f"tns:{fault_name}")

    for soap12 in bindings:
        soap = SOAP12 if soap12 else SOAP11
        binding = etree.SubElement(root, _q(WSDL, "binding"),
                                   name=binding_name(version, soap12),
                                   type=f"tns:{version.name}PortType")
        etree.SubElement(binding, _q(soap, "binding"), transport=HTTP_TRANSPORT,
                         style="document")
        for op in OPERATIONS:
            one_way = op.void and not version.v2
            operation = etree.SubElement(binding, _q(WSDL, "operation"), name=op.name)
            etree.SubElement(operation, _q(soap, "operation"), soapAction=f"urn:{op.name}",
                             style="document")
            etree.SubElement(etree.SubElement(operation, _q(WSDL, "input")), _q(soap, "body"),
                             use="literal")
            if not one_way:
                etree.SubElement(etree.SubElement(operation, _q(WSDL, "output")),
                                 _q(soap, "body"), use="literal")
                fault = etree.SubElement(operation, _q(WSDL, "fault"), name=fault_name)
                etree.SubElement(fault, _q(soap, "fault"), name=fault_name, use="literal")

    service = etree.SubElement(root, _q(WSDL, "service"), name=version.name)
    for soap12 in bindings:  # WSO2's ports, each at the endpoint of its name
        port = etree.SubElement(service, _q(WSDL, "port"),
                                name=endpoint_name(version, soap12).split(".", 1)[1],
                                binding=f"tns:{binding_name(version, soap12)}")
        etree.SubElement(port, _q(SOAP12 if soap12 else SOAP11, "address"),
                         location=f"{ADDRESS_PLACEHOLDER}{endpoint_name(version, soap12)}")
    etree.cleanup_namespaces(root, top_nsmap=nsmap, keep_ns_prefixes=list(nsmap))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def binding_name(version: Version, soap12: bool) -> str:
    return f"{version.name}{'Soap12' if soap12 else 'Soap11'}Binding"


def endpoint_name(version: Version, soap12: bool) -> str:
    """WSO2's endpoint path segment for a binding, e.g.
    ``RemoteUserStoreManagerService.RemoteUserStoreManagerServiceHttpsSoap12Endpoint``."""
    return f"{version.name}.{version.name}Https{'Soap12' if soap12 else 'Soap11'}Endpoint"


def with_address(document: bytes, base_url: str) -> bytes:
    """The document with the address placeholder replaced by where it was fetched from."""
    return document.replace(ADDRESS_PLACEHOLDER.encode(), f"{base_url}/services/".encode())
