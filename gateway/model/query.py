"""Filters and attribute paths, parsed and resolved against the canonical schema.

The grammar (RFC 7644 §3.4.2.2 filters, §3.5.2 PATCH paths) is scim2-models';
this module turns its syntax tree into a tree whose every attribute reference
is resolved to its definition (case-insensitively) and whose every value is
coerced to the attribute's type. User stores translate these resolved trees
into their own query language; nothing below parses strings again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from scim2_models import InvalidFilterException, InvalidPathException
from scim2_models.path import AttrPath, CompareOperator, Path, ScimFilter
from scim2_models.path import Comparison as _Cmp
from scim2_models.path import LogicalExpr as _Logic
from scim2_models.path import Not as _Not
from scim2_models.path import Present as _Pr
from scim2_models.path import ValuePath as _VP

from ..errors import InvalidFilter, InvalidPath, InvalidValue
from .schema import (
    BINARY,
    BOOLEAN,
    COMMON,
    COMPLEX,
    DATETIME,
    DECIMAL,
    INTEGER,
    NEVER,
    REFERENCE,
    STRING,
    WRITE_ONLY,
    Attribute,
    ResourceType,
    Schema,
)
from .times import stamp

OPERATORS = ("eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le")
_COMMON = {a.name.lower(): a for a in COMMON}
MAX_FILTER_LENGTH = 4096


@dataclass(frozen=True)
class AttrRef:
    """A resolved attribute: its schema (None for id/externalId/meta), itself, a sub-attribute."""

    schema: Schema | None
    attr: Attribute
    sub: Attribute | None = None

    @property
    def leaf(self) -> Attribute:
        return self.sub or self.attr

    @property
    def key(self) -> str:
        """Storage key of the top-level attribute (``emails``, ``enterprise:manager``)."""
        return self.schema.key(self.attr) if self.schema else self.attr.name

    @property
    def dotted(self) -> str:
        """Canonical dotted name, sub-attribute included (``emails.value``)."""
        return f"{self.key}.{self.sub.name}" if self.sub else self.key

    @property
    def is_common(self) -> bool:
        return self.schema is None

    def __repr__(self) -> str:
        return f"AttrRef({self.dotted})"

    def container(self, resource: dict) -> dict | None:
        """The dict holding this attribute inside a canonical resource."""
        if self.schema is None or not self.schema.alias:
            return resource
        ext = resource.get(self.schema.id)
        return ext if isinstance(ext, dict) else None


class Node:
    __slots__ = ()


@dataclass(frozen=True)
class Compare(Node):
    ref: AttrRef
    op: str
    value: object


@dataclass(frozen=True)
class Present(Node):
    ref: AttrRef


@dataclass(frozen=True)
class And(Node):
    terms: tuple[Node, ...]


@dataclass(frozen=True)
class Or(Node):
    terms: tuple[Node, ...]


@dataclass(frozen=True)
class Not(Node):
    expr: Node


@dataclass(frozen=True)
class ValueFilter(Node):
    """``emails[type eq "work"]``: one value of a multi-valued attribute matching ``expr``.

    The references inside ``expr`` name sub-attributes of ``ref.attr``.
    """

    ref: AttrRef
    expr: Node


@dataclass(frozen=True)
class PathRef:
    """A resolved PATCH path: attribute, optional value filter, optional sub-attribute.

    ``ref`` is None for a bare schema URN (the whole extension).
    """

    ref: AttrRef | None
    value_filter: Node | None = None
    sub: Attribute | None = None
    schema: Schema | None = None


def normalise_datetime(value: object) -> str:
    """An RFC 3339 timestamp as the canonical UTC string used for storage and comparison."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not an RFC 3339 date-time") from exc
    else:
        raise ValueError(f"{value!r} is not a date-time")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return stamp(dt)


def coerce(attr: Attribute, value: object) -> object:
    """A value as the attribute's type wants it; ValueError if it cannot be."""
    kind = attr.type
    if kind in (STRING, REFERENCE, BINARY):
        if isinstance(value, str):
            return value
        raise ValueError(f"'{attr.name}' takes a string, not {_json_type(value)}")
    if kind == BOOLEAN:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"  # Entra ID sends "True"/"False"
        raise ValueError(f"'{attr.name}' takes a boolean, not {_json_type(value)}")
    if kind == INTEGER:
        number = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        if number is None:
            raise ValueError(f"'{attr.name}' takes an integer, not {_json_type(value)}")
        if not -(2**63) <= number < 2**63:
            raise ValueError(f"'{attr.name}' takes an integer of at most 64 bits")
        return number
    if kind == DECIMAL:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ValueError(f"'{attr.name}' takes a number, not {_json_type(value)}")
    if kind == DATETIME:
        return normalise_datetime(value)
    raise ValueError(f"'{attr.name}' is complex and cannot be compared to a value")


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string",
            list: "an array", dict: "an object"}.get(type(value), type(value).__name__)


def resolve_attr(rtype: ResourceType, path: AttrPath, *, error=InvalidFilter) -> AttrRef:
    """Resolve ``[urn:]attr[.sub]`` against a resource type, case-insensitively."""
    schema: Schema | None
    if path.uri is not None:
        schema = rtype.schema_for(path.uri)
        if schema is None:
            raise error(f"Unknown schema '{path.uri}'")
        attr = schema.attribute(path.attr)
    else:
        schema = rtype.schema
        attr = schema.attribute(path.attr)
        if attr is None:
            attr = _COMMON.get(path.attr.lower())
            schema = None
        if attr is None:  # an unqualified extension attribute, when only one schema has it
            found = [(e, e.attribute(path.attr)) for e in rtype.extensions
                     if e.attribute(path.attr) is not None]
            if len(found) == 1:
                schema, attr = found[0]
    if attr is None and path.uri is None:
        raise error(f"Unknown attribute '{path}'")
    if attr is None:
        raise error(f"Unknown attribute '{path.attr}' in schema '{path.uri}'")
    sub = None
    if path.sub_attr is not None:
        sub = attr.sub(path.sub_attr)
        if sub is None:
            raise error(f"Unknown sub-attribute '{path}'")
    return AttrRef(schema, attr, sub)


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


def is_secret(ref: AttrRef) -> bool:
    """A writeOnly or never-returned attribute: it must not be probed by filter or sort."""
    return any(a.mutability == WRITE_ONLY or a.returned == NEVER for a in (ref.attr, ref.leaf))


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


__all__ = [
    "AttrRef", "Node", "Compare", "Present", "And", "Or", "Not", "ValueFilter", "PathRef",
    "parse_filter", "parse_path", "resolve_sort", "coerce", "normalise_datetime", "COMPLEX",
    "STRING", "BOOLEAN", "INTEGER", "DECIMAL", "DATETIME",
]
