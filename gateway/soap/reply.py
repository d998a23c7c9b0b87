"""Reply envelopes written straight from the Spyne models' metadata.

Spyne's own serialiser builds an lxml tree per reply with namespace
bookkeeping per element; for a 12-claim ``getUserClaimValues`` that cost
about 1.9 ms of the 4.5 ms the whole request took (``bench/run_soap.py``).
The replies of this service are simple (strings, numbers, booleans and flat
complex types, repeated), so they are written here as text from the same
model metadata Spyne uses (element names, order, namespaces), escaped for
XML; ``tests/test_soap_reply.py`` proves the result is the same XML
(canonicalised) as Spyne's for every type of reply. Values Spyne leaves out
(``None``) are left out here too.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from spyne import ComplexModelBase

from .envelope import Binding
from .models import TNS
from .wsdl import PREFIXES

_DECLS = "".join(f' xmlns:{p}="{ns}"' for ns, p in PREFIXES.items() if p != "xs")


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return escape(str(value))


def _fields(kind) -> list[tuple[str, object, bool]]:
    """(qualified tag, type, repeated) of a complex type's elements, computed once."""
    found = _FIELDS.get(kind)
    if found is None:
        prefix = PREFIXES.get(kind.get_namespace(), "tns")  # elementFormDefault qualified
        found = [(name, f"{prefix}:{name}", sub, sub.Attributes.max_occurs > 1,
                  _complex(sub))
                 for name, sub in kind.get_flat_type_info(kind).items()]
        _FIELDS[kind] = found
    return found


_FIELDS: dict[type, list] = {}


def _complex(kind) -> bool:
    return isinstance(kind, type) and issubclass(kind, ComplexModelBase)


def _element(out: list[str], tag: str, kind, value) -> None:
    if value is None:
        return
    if not _complex(kind):
        out.append(f"<{tag}>{_text(value)}</{tag}>")
        return
    out.append(f"<{tag}>")
    get = value.get if isinstance(value, dict) else (lambda n: getattr(value, n, None))
    for name, sub_tag, sub, repeated, nested in _fields(kind):
        v = get(name)
        if v is None:
            continue
        for item in (v if repeated else (v,)):
            if item is None:
                continue
            if nested:
                _element(out, sub_tag, sub, item)
            else:
                out.append(f"<{sub_tag}>{_text(item)}</{sub_tag}>")
    out.append(f"</{tag}>")


def _values(out: list[str], tag: str, kind, value) -> None:
    if value is None:
        return
    if kind.Attributes.max_occurs > 1:
        for item in value:
            _element(out, tag, kind, item)
    else:
        _element(out, tag, kind, value)


def write(binding: Binding, operation: str, returns, result) -> bytes:
    """The reply envelope of ``operation`` returning ``result`` (of Spyne type ``returns``)."""
    out = ["<?xml version='1.0' encoding='UTF-8'?>",
           f'<soapenv:Envelope xmlns:soapenv="{binding.env}" xmlns:tns="{TNS}"{_DECLS}>',
           f"<soapenv:Body><tns:{operation}Response>"]
    if returns is not None:
        _values(out, "tns:return", returns, result)
    out.append(f"</tns:{operation}Response></soapenv:Body></soapenv:Envelope>")
    return "".join(out).encode()
