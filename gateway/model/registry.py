"""The resource types in force: the built-in schemas plus the configured extensions.

Custom schema extensions are declared in the configuration (``[[extensions]]``,
see docs/configuration.md) with the same attribute characteristics RFC 7643
§7 gives (type, multiValued, required, caseExact, mutability, returned,
uniqueness, canonicalValues, subAttributes). They become ordinary extension
schemas: served by /Schemas and /ResourceTypes, validated, filterable,
sortable and patchable like the core attributes, stored like them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from .schema import (
    ALWAYS,
    BINARY,
    BOOLEAN,
    COMPLEX,
    DATETIME,
    DECIMAL,
    GROUP,
    IMMUTABLE,
    INTEGER,
    NEVER,
    READ_ONLY,
    READ_WRITE,
    REFERENCE,
    REQUEST,
    STRING,
    USER,
    WRITE_ONLY,
    Attribute,
    ResourceType,
    Schema,
)
from .schema import (
    DEFAULT as RETURNED_DEFAULT,
)

TYPES = (STRING, BOOLEAN, DECIMAL, INTEGER, DATETIME, BINARY, REFERENCE, COMPLEX)
MUTABILITY = (READ_ONLY, READ_WRITE, IMMUTABLE, WRITE_ONLY)
RETURNED = (ALWAYS, NEVER, RETURNED_DEFAULT, REQUEST)
UNIQUENESS = ("none", "server", "global")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_$-]*$")
_URN = re.compile(r"^urn:[A-Za-z0-9][A-Za-z0-9-]{0,31}:[^\s]+$")
RESERVED_ALIASES = {"", "enterprise", "wso2"}


def _attribute(raw: dict, where: str, nested: bool = False) -> Attribute:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: an attribute is a table")
    known = {"name", "type", "multiValued", "required", "caseExact", "mutability", "returned",
             "uniqueness", "description", "canonicalValues", "referenceTypes", "subAttributes"}
    extra = set(raw) - known
    if extra:
        raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(extra))}")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"{where}: 'name' must be an attribute name (letters, digits, _ $ -)")
    where = f"{where} ({name})"

    def pick(key, allowed, default):
        value = raw.get(key, default)
        if value not in allowed:
            raise ValueError(f"{where}: {key} must be one of {', '.join(allowed)}")
        return value

    def flag(key):
        value = raw.get(key, False)
        if not isinstance(value, bool):
            raise ValueError(f"{where}: {key} must be true or false")
        return value

    kind = pick("type", TYPES, STRING)
    subs = raw.get("subAttributes", [])
    if kind == COMPLEX:
        if nested:
            raise ValueError(f"{where}: a sub-attribute cannot be complex (RFC 7643 §2.3.8)")
        if not isinstance(subs, list) or not subs:
            raise ValueError(f"{where}: a complex attribute needs subAttributes")
        sub_attrs = tuple(_attribute(s, f"{where}.subAttributes[{i}]", nested=True)
                          for i, s in enumerate(subs))
        names = [s.name.lower() for s in sub_attrs]
        if len(names) != len(set(names)):
            raise ValueError(f"{where}: sub-attribute names must be unique")
    elif subs:
        raise ValueError(f"{where}: only complex attributes have subAttributes")
    else:
        sub_attrs = ()
    for key in ("canonicalValues", "referenceTypes"):
        values = raw.get(key, [])
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ValueError(f"{where}: {key} must be a list of strings")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise ValueError(f"{where}: description must be text")
    return Attribute(
        name, kind,
        multi_valued=flag("multiValued"), required=flag("required"),
        case_exact=flag("caseExact"),
        mutability=pick("mutability", MUTABILITY, READ_WRITE),
        returned=pick("returned", RETURNED, RETURNED_DEFAULT),
        uniqueness=pick("uniqueness", UNIQUENESS, "none"),
        description=description,
        canonical_values=tuple(raw.get("canonicalValues", [])),
        reference_types=tuple(raw.get("referenceTypes", [])),
        sub_attributes=sub_attrs,
    )


def extension_from_config(raw: dict, where: str) -> tuple[str, Schema]:
    """(resource type name, Schema) for one ``[[extensions]]`` table; ValueError if wrong."""
    if not isinstance(raw, dict):
        raise ValueError(f"{where} must be a table")
    extra = set(raw) - {"id", "name", "description", "resource", "alias", "attributes"}
    if extra:
        raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(extra))}")
    urn = raw.get("id")
    if not isinstance(urn, str) or not _URN.match(urn):
        raise ValueError(f"{where}: 'id' must be the schema's URN (urn:...)")
    resource = raw.get("resource", "User")
    if resource not in ("User", "Group"):
        raise ValueError(f"{where}: resource must be User or Group")
    name = raw.get("name") or urn.rpartition(":")[2]
    alias = raw.get("alias") or re.sub(r"[^a-z0-9]", "", str(name).lower())
    if not isinstance(alias, str) or not re.match(r"^[a-z][a-z0-9_]{0,30}$", alias):
        raise ValueError(f"{where}: alias must be lower-case letters, digits and _")
    if alias in RESERVED_ALIASES:
        raise ValueError(f"{where}: alias {alias!r} is reserved; choose another")
    attrs = raw.get("attributes")
    if not isinstance(attrs, list) or not attrs:
        raise ValueError(f"{where}: an extension needs at least one attribute")
    attributes = tuple(_attribute(a, f"{where}.attributes[{i}]") for i, a in enumerate(attrs))
    names = [a.name.lower() for a in attributes]
    if len(names) != len(set(names)):
        raise ValueError(f"{where}: attribute names must be unique")
    description = raw.get("description", name)
    return resource, Schema(urn, str(name), str(description), attributes, alias=alias)


@dataclass(frozen=True)
class SchemaRegistry:
    user: ResourceType
    group: ResourceType

    @classmethod
    def build(cls, extensions: tuple[tuple[str, Schema], ...] = ()) -> SchemaRegistry:
        user, group = USER, GROUP
        seen_ids = {s.id.lower() for s in (*user.schemas, *group.schemas)}
        seen_aliases = {s.alias for s in (*user.schemas, *group.schemas)}
        for resource, schema in extensions:
            if schema.id.lower() in seen_ids:
                raise ValueError(f"extension {schema.id}: that schema already exists")
            if schema.alias in seen_aliases:
                raise ValueError(f"extension {schema.id}: alias {schema.alias!r} is taken")
            seen_ids.add(schema.id.lower())
            seen_aliases.add(schema.alias)
            if resource == "User":
                user = replace(user, extensions=(*user.extensions, schema))
            else:
                group = replace(group, extensions=(*group.extensions, schema))
        return cls(user, group)

    @property
    def resource_types(self) -> tuple[ResourceType, ...]:
        return (self.user, self.group)

    @property
    def schemas(self) -> tuple[Schema, ...]:
        return (self.user.schema, *self.user.extensions, self.group.schema,
                *self.group.extensions)

    def of(self, kind: str) -> ResourceType:
        return self.user if kind == "User" else self.group


DEFAULT = SchemaRegistry.build()
