"""Turn a client's representation into a canonical resource, or say clearly why not.

Attribute names are matched case-insensitively and written back in their
canonical spelling; values are coerced to their declared type; read-only
attributes are ignored on input (RFC 7643 §2.2); unknown attributes, wrong
types and missing required attributes are refused with a SCIM-typed error.
The password never enters the canonical resource: it is handed back apart.
"""

from __future__ import annotations

from ..errors import InvalidSyntax, InvalidValue, Mutability
from .query import coerce
from .schema import (
    COMPLEX,
    IMMUTABLE,
    READ_ONLY,
    Attribute,
    ResourceType,
    Schema,
)

MAX_STRING_LENGTH = 8192
MAX_NAME_LENGTH = 512  # userName, a group's displayName, externalId: indexed columns
MAX_VALUES = 1000
_IGNORED_TOP = {"schemas", "id", "meta"}
# schema names clients send beside the RFC's, accepted in ``schemas`` and ignored
CLIENT_SCHEMA_NAMES = frozenset({
    "http://schemas.microsoft.com/2006/11/resourcemanagement/adscim/2.0/group",  # Entra ID
})


def _value(attr: Attribute, value, where: str):
    try:
        out = coerce(attr, value)
    except ValueError as exc:
        raise InvalidValue(f"{where}: {exc}") from None
    if isinstance(out, str):
        _check_text(out, where)
    return out


def _check_text(text: str, where: str) -> None:
    if len(text) > MAX_STRING_LENGTH:
        raise InvalidValue(f"{where}: longer than {MAX_STRING_LENGTH} characters")
    if "\x00" in text:
        raise InvalidValue(f"{where}: contains a NUL character")


def _complex(attr: Attribute, value, where: str) -> dict | None:
    if not isinstance(value, dict):
        raise InvalidValue(f"{where}: takes an object")
    out: dict = {}
    for key, sub_value in value.items():
        sub = attr.sub(key)
        if sub is None:
            raise InvalidSyntax(f"{where}: unknown sub-attribute '{key}'")
        if sub_value is None or sub.mutability == READ_ONLY:
            continue
        out[sub.name] = _value(sub, sub_value, f"{where}.{sub.name}")
    return out or None


def attribute_value(attr: Attribute, value, where: str | None = None, *,
                    single_ok: bool = True):
    """One attribute's value, canonical; None when it is unassigned. A multi-valued
    attribute takes an array; one value alone is taken as an array of one where
    ``single_ok`` (PATCH values, as clients send them), and refused elsewhere."""
    where = where or attr.name
    if value is None:
        return None
    if attr.multi_valued:
        if not isinstance(value, list):
            if not single_ok:
                raise InvalidValue(f"{where}: is multi-valued and takes an array")
            value = [value]
        if len(value) > MAX_VALUES:
            raise InvalidValue(f"{where}: more than {MAX_VALUES} values")
        items = []
        for i, item in enumerate(value):
            if item is None:
                continue
            if attr.is_complex:
                item = _complex(attr, item, f"{where}[{i}]")
            else:
                item = _value(attr, item, f"{where}[{i}]")
            if item is not None:
                items.append(item)
        if attr.is_complex and sum(1 for i in items if i.get("primary") is True) > 1:
            raise InvalidValue(f"{where}: more than one value is marked primary")
        return items or None
    if attr.type == COMPLEX:
        if isinstance(value, str) and attr.sub("value") is not None:
            value = {"value": value}  # Entra ID sends "manager": "<id>"
        return _complex(attr, value, where)
    if value == "" and attr.type != "string":
        return None
    return _value(attr, value, where)


def _put(schema_out: dict, attr: Attribute, value, where: str) -> None:
    if attr.mutability == READ_ONLY:
        return
    v = attribute_value(attr, value, where, single_ok=False)
    if v is not None:
        schema_out[attr.name] = v


def canonical(rtype: ResourceType, body: dict) -> tuple[dict, str | None]:
    """A full representation (POST/PUT body) as (canonical resource, password)."""
    if not isinstance(body, dict):
        raise InvalidSyntax("The body must be a JSON object")
    out: dict = {}
    password: str | None = None
    for key, value in body.items():
        lkey = key.lower()
        if lkey == "schemas":
            _check_schemas(rtype, value)
            continue
        if lkey in _IGNORED_TOP:
            continue
        if lkey == "externalid":
            if value is not None:
                out["externalId"] = _value_str(value, "externalId")
            continue
        if lkey.startswith("urn:"):
            _extension(rtype, key, value, out)
            continue
        attr = rtype.schema.attribute(key)
        if attr is None:
            raise InvalidSyntax(f"Unknown attribute '{key}' for a {rtype.name}")
        if attr.name == "password":
            if value is not None:
                if not isinstance(value, str) or not value:
                    raise InvalidValue("password: takes a non-empty string")
                password = value
            continue
        _put(out, attr, value, attr.name)
    for attr in rtype.schema.attributes:
        value = out.get(attr.name)
        if attr.required and (value is None or isinstance(value, str) and not value.strip()):
            raise InvalidValue(f"'{attr.name}' is required and cannot be blank")
        if attr.uniqueness == "server" and isinstance(value, str) and len(
                value) > MAX_NAME_LENGTH:
            raise InvalidValue(f"'{attr.name}' is longer than {MAX_NAME_LENGTH} characters")
    if len(out.get("externalId", "")) > MAX_NAME_LENGTH:
        raise InvalidValue(f"'externalId' is longer than {MAX_NAME_LENGTH} characters")
    return out, password


def _check_schemas(rtype: ResourceType, value) -> None:
    """``schemas``, when sent, lists the resource's schema URNs (RFC 7643 §3): a non-empty
    array of strings, each the core schema or a configured extension of this type."""
    if value is None:
        return
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidSyntax("'schemas' must be an array of schema URNs")
    if not value:
        raise InvalidValue(f"'schemas' must name the schema of a {rtype.name}")
    unknown = [v for v in value if rtype.schema_for(v) is None
               and v.lower() not in CLIENT_SCHEMA_NAMES]
    if unknown:
        raise InvalidValue(f"'schemas' names {unknown[0][:200]!r}, which is not a schema of "
                           f"a {rtype.name} here")


def _value_str(value, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidValue(f"{where}: takes a string")
    _check_text(value, where)
    return value


def _extension(rtype: ResourceType, key: str, value, out: dict) -> None:
    """An extension object under its URN, or one URN-qualified attribute (Entra ID sends those)."""
    ext = rtype.extension(key)
    if ext is not None:
        if value is None:
            return
        if not isinstance(value, dict):
            raise InvalidValue(f"'{key}' takes an object")
        target = out.setdefault(ext.id, {})
        for name, sub_value in value.items():
            attr = ext.attribute(name)
            if attr is None:
                raise InvalidSyntax(f"Unknown attribute '{name}' in schema '{ext.id}'")
            _put(target, attr, sub_value, f"{ext.id}:{attr.name}")
        if not target:
            del out[ext.id]
        return
    urn, _, name = key.rpartition(":")
    ext = rtype.extension(urn)
    if ext is None or not name:
        raise InvalidSyntax(f"Unknown schema or attribute '{key}'")
    attr_name, _, sub_name = name.partition(".")
    attr = ext.attribute(attr_name)
    if attr is None:
        raise InvalidSyntax(f"Unknown attribute '{name}' in schema '{ext.id}'")
    target = out.setdefault(ext.id, {})
    if sub_name:
        sub = attr.sub(sub_name)
        if sub is None or not attr.is_complex:
            raise InvalidSyntax(f"Unknown attribute '{key}'")
        holder = target.setdefault(attr.name, {})
        holder[sub.name] = _value(sub, value, key)
    else:
        _put(target, attr, value, key)
    if not target:
        del out[ext.id]


def check_immutable(rtype: ResourceType, old: dict, new: dict) -> None:
    """Refuse a change to an immutable attribute that already has a value (RFC 7643 §7)."""
    for schema in rtype.schemas:
        for attr in schema.attributes:
            before = _holder(schema, old).get(attr.name)
            after = _holder(schema, new).get(attr.name)
            if attr.mutability == IMMUTABLE:
                if before is not None and after != before:
                    raise Mutability(f"'{attr.name}' is immutable")
            elif attr.is_complex and not attr.multi_valued and isinstance(before, dict):
                for sub in attr.sub_attributes:
                    if (sub.mutability == IMMUTABLE and before.get(sub.name) is not None
                            and (after or {}).get(sub.name) != before[sub.name]):
                        raise Mutability(f"'{attr.name}.{sub.name}' is immutable")


def _holder(schema: Schema, resource: dict) -> dict:
    return resource.get(schema.id, {}) if schema.alias else resource
