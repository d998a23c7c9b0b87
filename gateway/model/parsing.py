"""Filters, PATCH paths and ``sortBy`` read from text, into resolved trees (``query.py``).

The grammar (RFC 7644 §3.4.2.2 filters, §3.5.2 PATCH paths) is scim2-models'; the
common filter ``attr[.sub] op "string"`` is read without its parser (the same tree,
``tests/test_filter_parsing.py``), and what real clients send outside the grammar
(Entra ID's ``emails[type eq "work"].value eq "x"``, WSO2's unquoted values) is
rewritten only when the grammar refuses it.
"""

from __future__ import annotations

import re

import orjson
from scim2_models import InvalidFilterException, InvalidPathException
from scim2_models.path import AttrPath, CompareOperator, Path, ScimFilter
from scim2_models.path import Comparison as _Cmp
from scim2_models.path import LogicalExpr as _Logic
from scim2_models.path import Not as _Not
from scim2_models.path import Present as _Pr
from scim2_models.path import ValuePath as _VP

from ..errors import InvalidFilter, InvalidPath, InvalidValue
from .query import (
    And,
    AttrRef,
    Compare,
    Node,
    Not,
    Or,
    PathRef,
    Present,
    ValueFilter,
    coerce,
    is_secret,
    resolve_attr,
)
from .schema import BINARY, BOOLEAN, DATETIME, REFERENCE, STRING, ResourceType

MAX_FILTER_LENGTH = 4096


class _Resolver:
    def __init__(self, rtype: ResourceType, error=InvalidFilter):
        self.rtype = rtype
        self.error = error

    def node(self, node, parent: AttrRef | None = None) -> Node:
        if isinstance(node, _Logic):
            terms = tuple(self.node(t, parent) for t in node.terms)
            return And(terms) if node.op.value == "and" else Or(terms)
        if isinstance(node, _Not):
            return Not(self.node(node.expr, parent))
        if isinstance(node, _Pr):
            return Present(self.ref(node.attr_path, parent))
        if isinstance(node, _Cmp):
            return self.compare(node, parent)
        if isinstance(node, _VP):
            if parent is not None:
                raise self.error("Value filters cannot be nested")
            ref = self.ref(node.attr_path, None)
            if not ref.attr.is_complex or not ref.attr.multi_valued or ref.sub:
                raise self.error(f"'{node.attr_path}' is not a multi-valued complex attribute")
            inner = self.node(node.val_filter, ref)
            return ValueFilter(ref, inner)
        raise self.error("Unsupported filter expression")

    def ref(self, path: AttrPath, parent: AttrRef | None) -> AttrRef:
        out = self._ref(path, parent)
        if is_secret(out):
            raise self.error(f"'{path}' cannot be filtered on")
        return out

    def _ref(self, path: AttrPath, parent: AttrRef | None) -> AttrRef:
        if parent is None:
            return resolve_attr(self.rtype, path, error=self.error)
        if path.uri is not None or path.sub_attr is not None:
            raise self.error(f"'{path}' is not a sub-attribute of '{parent.attr.name}'")
        sub = parent.attr.sub(path.attr)
        if sub is None:
            raise self.error(f"Unknown sub-attribute '{parent.attr.name}.{path.attr}'")
        return AttrRef(parent.schema, parent.attr, sub)

    def compare(self, node: _Cmp, parent: AttrRef | None) -> Node:
        ref = self.ref(node.attr_path, parent)
        op = node.op.value.lower()
        if ref.leaf.is_complex:
            value_sub = ref.leaf.sub("value")
            if value_sub is None or ref.sub is not None:
                raise self.error(
                    f"'{node.attr_path}' is complex; compare one of its sub-attributes")
            ref = AttrRef(ref.schema, ref.attr, value_sub)
        leaf = ref.leaf
        if node.value is None:
            if op in ("eq", "ne"):
                # "attr eq null" is "not present" (RFC 7644 §3.4.2.2 allows null)
                present = Present(ref)
                return Not(present) if op == "eq" else present
            raise self.error(f"'{op}' cannot compare with null")
        if leaf.type == BOOLEAN and op not in ("eq", "ne"):
            raise self.error(f"'{op}' cannot be used on the boolean '{node.attr_path}'")
        if leaf.type == BINARY and op not in ("eq", "ne", "pr"):
            raise self.error(f"'{op}' cannot be used on the binary '{node.attr_path}'")
        if op in ("co", "sw", "ew") and leaf.type not in (STRING, REFERENCE, DATETIME):
            raise self.error(f"'{op}' needs a string attribute; '{node.attr_path}' is {leaf.type}")
        if isinstance(node.value, str) and "\x00" in node.value:
            raise self.error("A filter value cannot contain a NUL character")
        raw = node.value
        if leaf.type in (STRING, REFERENCE) and isinstance(raw, int | float) \
                and not isinstance(raw, bool):
            raw = str(raw)  # WSO2's clients send numeric names bare: userName Eq 12345
        try:
            if op in ("co", "sw", "ew"):
                if not isinstance(raw, str):
                    raise ValueError(f"'{op}' takes a string value")
                value = raw
            else:
                value = coerce(leaf, raw)
        except ValueError as exc:
            raise self.error(str(exc)) from None
        return Compare(ref, op, value)


# Entra ID filters on ``emails[type eq "work"].value eq "x"``, which RFC 7644's grammar does
# not allow; it means ``emails[type eq "work" and value eq "x"]``.
_SUB_AFTER_VALUE_PATH = re.compile(
    r'(?P<attr>[A-Za-z][\w$-]*)\[(?P<inner>[^\[\]]*)\]\.(?P<sub>[A-Za-z][\w$-]*)\s+'
    r'(?:(?P<op>eq|ne|co|sw|ew|gt|ge|lt|le)\s+(?P<value>"(?:[^"\\]|\\.)*"|true|false|null'
    r'|-?\d+(?:\.\d+)?)|(?P<pr>pr)\b)',
    re.IGNORECASE,
)


def _entra_value_path(text: str) -> str:
    def join(m: re.Match) -> str:
        test = "pr" if m["pr"] else f"{m['op']} {m['value']}"
        return f"{m['attr']}[({m['inner']}) and {m['sub']} {test}]"

    return _SUB_AFTER_VALUE_PATH.sub(join, text)


# WSO2's documentation and clients send unquoted values: ``userName Eq kim``.
_BARE_VALUE = re.compile(
    r"(?P<head>\b(?:eq|ne|co|sw|ew|gt|ge|lt|le)\s+)(?P<value>[^\s\"'()\[\]]+)(?=[\s()\[\]]|$)",
    re.IGNORECASE)
# JSON literals (a number has no leading zero: 000111 is a bare name to quote)
_LITERAL = re.compile(r"^(?:true|false|null|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?)$")


def _quote_bare_values(text: str) -> str:
    def quote(m: re.Match) -> str:
        value = m["value"]
        if _LITERAL.match(value):
            return m[0]
        return f'{m["head"]}"{value}"'

    return _BARE_VALUE.sub(quote, text)


# the most common filter by far, ``attr[.sub] op "string"``: read without the grammar's
# parser (several times its cost); anything else goes to the parser. Linear: the parts
# of the pattern cannot match the same characters.
_SIMPLE = re.compile(r'\s*([A-Za-z][\w$-]*)(?:\.([A-Za-z][\w$-]*))?\s+'
                     r'(eq|ne|co|sw|ew|gt|ge|lt|le)\s+"((?:[^"\\\x00-\x1f]|\\.)*)"\s*',
                     re.IGNORECASE | re.ASCII)


def _simple(text: str) -> _Cmp | None:
    m = _SIMPLE.fullmatch(text)
    if m is None:
        return None
    value = m[4]
    if "\\" in value:
        try:
            value = orjson.loads(f'"{value}"')
        except orjson.JSONDecodeError:
            return None  # the parser says what is wrong
    return _Cmp(AttrPath(m[1], m[2]), CompareOperator(m[3].lower()), value)


def _parse(text: str):
    simple = _simple(text)
    if simple is not None:
        return simple
    try:
        return ScimFilter(text).ast
    except InvalidFilterException as exc:
        raise InvalidFilter(f"Invalid filter {text!r}: {exc.detail or 'syntax error'}") from None
    except (ValueError, TypeError) as exc:
        raise InvalidFilter(f"Invalid filter {text!r}: {exc}") from None


def parse_filter(rtype: ResourceType, text: str) -> Node:
    if len(text) > MAX_FILTER_LENGTH:
        raise InvalidFilter(f"The filter is longer than {MAX_FILTER_LENGTH} characters")
    try:
        ast = _parse(text)
    except InvalidFilter:
        # the real clients' departures from the grammar, tried only when it fails
        rewritten = _quote_bare_values(_entra_value_path(text))
        if rewritten == text:
            raise
        ast = _parse(rewritten)
    return _Resolver(rtype).node(ast)


def parse_path(rtype: ResourceType, text: str) -> PathRef:
    """Resolve a PATCH path (``emails[type eq "work"].value``, ``urn:...:User:manager``)."""
    bare = rtype.schema_for(text) if text.lower().startswith("urn:") else None
    if bare is not None and bare is not rtype.schema:
        return PathRef(None, schema=bare)
    try:
        ast = Path(text).ast
    except InvalidPathException as exc:
        raise InvalidPath(f"Invalid path {text!r}: {exc.detail or 'syntax error'}") from None
    except (ValueError, TypeError) as exc:
        raise InvalidPath(f"Invalid path {text!r}: {exc}") from None
    resolver = _Resolver(rtype, error=InvalidPath)
    if isinstance(ast, AttrPath):
        return PathRef(resolve_attr(rtype, ast, error=InvalidPath))
    if isinstance(ast, _VP):
        vf = resolver.node(_VP(ast.attr_path, ast.val_filter))
        assert isinstance(vf, ValueFilter)
        sub = None
        if ast.sub_attr:
            sub = vf.ref.attr.sub(ast.sub_attr)
            if sub is None:
                raise InvalidPath(f"Unknown sub-attribute '{ast.attr_path}.{ast.sub_attr}'")
        return PathRef(vf.ref, vf.expr, sub)
    raise InvalidPath(f"Invalid path {text!r}: a path names an attribute, not a comparison")


def resolve_sort(rtype: ResourceType, text: str) -> AttrRef:
    try:
        ast = Path(text).ast
    except (InvalidPathException, ValueError, TypeError):
        raise InvalidValue(f"Invalid sortBy {text!r}") from None
    if not isinstance(ast, AttrPath):
        raise InvalidValue(f"Invalid sortBy {text!r}")
    ref = resolve_attr(rtype, ast, error=InvalidValue)
    if is_secret(ref):
        raise InvalidValue(f"Cannot sort by {text!r}")
    if ref.leaf.is_complex:
        value_sub = ref.leaf.sub("value")
        if value_sub is None or ref.sub:
            raise InvalidValue(f"Cannot sort by the complex attribute {text!r}")
        ref = AttrRef(ref.schema, ref.attr, value_sub)
    return ref


__all__ = ["MAX_FILTER_LENGTH", "parse_filter", "parse_path", "resolve_sort"]
