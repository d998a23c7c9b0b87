"""Filters and attribute paths as resolved trees: every attribute reference resolved to
its definition in the canonical schema (case-insensitively), every value coerced to the
attribute's type.

``gateway.model.parsing`` makes these trees from text (filters, PATCH paths, sortBy);
user stores translate them into their own query language; nothing below parses strings
again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from scim2_models.path import AttrPath

from ..errors import InvalidFilter
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


def is_secret(ref: AttrRef) -> bool:
    """A writeOnly or never-returned attribute: it must not be probed by filter or sort."""
    return any(a.mutability == WRITE_ONLY or a.returned == NEVER for a in (ref.attr, ref.leaf))


__all__ = [
    "AttrRef", "Node", "Compare", "Present", "And", "Or", "Not", "ValueFilter", "PathRef",
    "coerce", "normalise_datetime", "resolve_attr", "is_secret", "COMPLEX",
    "STRING", "BOOLEAN", "INTEGER", "DECIMAL", "DATETIME",
]
