"""The common SOAP requests read without Spyne's deserialiser.

Most calls legacy applications make are operations whose parameters are all simple
strings (``isExistingUser``, ``getUserClaimValues``, ``getRoleListOfUser``,
``authenticate``, ...), sent plainly: each parameter an element of WSO2's namespace
holding text, in the WSDL's order. Spyne's machinery for one such call (a method
context, its events, the object model) costs more than the rest of the request;
:func:`read` reads these directly and gives the same arguments Spyne would.

Anything else (another operation, an attribute such as ``xsi:nil`` or ``xsi:type``,
an unqualified, repeated, misplaced, empty or nested element, text or comments
between elements) returns None, and Spyne reads the request as before, with its own
answers to what is wrong. ``tests/test_soap_plain.py`` checks that both agree.
"""

from __future__ import annotations

from lxml import etree

from .models import TNS, String
from .service import OPERATIONS, Op

# operations whose parameters are all xs:string
SIMPLE: dict[str, Op] = {op.name: op for op in OPERATIONS
                         if all(kind is String for _name, kind in op.params)}
_PREFIX = f"{{{TNS}}}"


def read(operation: etree._Element) -> tuple[Op, list[str | None]] | None:
    """(operation, arguments in the WSDL's order; None for one not sent), or None when
    the request is not plain."""
    tag = operation.tag
    if not isinstance(tag, str) or not tag.startswith(_PREFIX):
        return None
    op = SIMPLE.get(tag[len(_PREFIX):])
    if op is None or operation.attrib or (operation.text and operation.text.strip()):
        return None
    names = [name for name, _kind in op.params]
    values: dict[str, str] = {}
    position = 0
    for child in operation:
        child_tag = child.tag
        if not isinstance(child_tag, str) or not child_tag.startswith(_PREFIX):
            return None  # a comment, a processing instruction, another namespace
        name = child_tag[len(_PREFIX):]
        try:
            index = names.index(name, position)
        except ValueError:
            return None  # unknown, repeated or out of order
        text = child.text
        if not text or child.attrib or len(child) or (child.tail and child.tail.strip()):
            return None
        values[name] = text
        position = index + 1
    return op, [values.get(name) for name in names]
