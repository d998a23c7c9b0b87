"""SCIM 1.1 PATCH bodies into canonical patch operations.

A SCIM 1.1 PATCH body is a partial resource (``scim-api-01`` §3.3.2):

1. the attributes named in ``meta.attributes`` are removed first (``name.givenName``
   names a sub-attribute; ``members`` all members of a group);
2. then the body is merged in: a singular attribute is replaced, a complex one has the
   sub-attributes given replaced, a multi-valued one gets the values given added (a value
   equal, by ``value``, to one it has is updated in place) and loses those marked
   ``"operation": "delete"``; a value marked ``primary`` takes ``primary`` from the others.

Read-only attributes (``id``, ``meta``, ``groups``) are ignored, as on POST. The semantics
of each canonical operation live in ``gateway.model.patch``; group members given by name
only (WSO2's outbound connector does that) are resolved by ``members.py``.
"""

from __future__ import annotations

import orjson

from ..errors import InvalidSyntax, InvalidValue
from ..model.dialects.scim11 import canonical_path, is_delete, to_canonical, without_operation
from ..model.parsing import parse_path
from ..model.patch import PatchOperation
from ..model.schema import READ_ONLY, ResourceType

ADD, REPLACE, REMOVE = "add", "replace", "remove"
MEMBERS = "members"
MAX_VALUES = 1000
# sub-attributes that do not tell values apart (matching ignores them)
_NOT_IDENTIFYING = {"primary", "display", "operation"}


def _literal(value, where: str) -> str:
    if isinstance(value, bool | int | float | str):
        return orjson.dumps(value).decode()
    raise InvalidValue(f"{where}: a sub-attribute value must be a string, number or boolean")


def _match(path: str, item: dict) -> str | None:
    """``emails[value eq "x"]``: the value filter that finds ``item`` among the values."""
    if "value" in item:
        keys = ["value"]
    else:
        keys = [k for k in item if k not in _NOT_IDENTIFYING and item[k] is not None]
    if not keys:
        return None
    terms = " and ".join(f"{k} eq {_literal(item[k], path)}" for k in keys)
    return f"{path}[{terms}]"


def _lowered(item: dict) -> dict:
    return {("value" if k.lower() == "value" else
             "primary" if k.lower() == "primary" else k): v for k, v in item.items()}


def _values(path: str, value) -> list:
    values = value if isinstance(value, list) else [value]
    if len(values) > MAX_VALUES:
        raise InvalidValue(f"{path}: more than {MAX_VALUES} values")
    return [v for v in values if v is not None]


def _multi(out: list, path: str, attr, value) -> None:
    """Values added (merged into an equal one) and values marked for deletion."""
    for v in _values(path, value):
        if not attr.is_complex:
            out.append(PatchOperation(ADD, path, [v]))
            continue
        if not isinstance(v, dict):
            v = {"value": v}
        v = _lowered(v)
        if is_delete(v):
            target = _match(path, without_operation(v))
            if target is None:
                raise InvalidValue(f"{path}: a value to delete needs its 'value'")
            out.append(PatchOperation(REMOVE, target))
            continue
        v = without_operation(v)
        if v.get("primary") is True:  # one primary value: the others lose it
            out.append(PatchOperation(REMOVE, f"{path}[primary eq true].primary"))
        target = _match(path, v) if "value" in v else None
        if target is None:
            out.append(PatchOperation(ADD, path, [v]))
        else:
            out.append(PatchOperation(ADD, target, v))


def _members(out: list, value) -> None:
    add, remove = [], []
    for v in _values(MEMBERS, value):
        if not isinstance(v, dict):
            v = {"value": v}
        v = _lowered(v)
        (remove if is_delete(v) else add).append(without_operation(v))
    if remove:
        out.append(PatchOperation(REMOVE, MEMBERS, remove))
    if add:
        out.append(PatchOperation(ADD, MEMBERS, add))


def _attribute(out: list, rtype: ResourceType, path: str, value) -> None:
    pref = parse_path(rtype, path)
    if pref.ref is None:
        raise InvalidValue(f"'{path}' takes the attributes of its schema, not a value")
    ref = pref.ref
    attr = ref.attr
    if attr.mutability == READ_ONLY or (ref.sub is not None and ref.sub.mutability == READ_ONLY):
        return
    if rtype.name == "Group" and attr.name == MEMBERS and ref.schema is rtype.schema:
        _members(out, value)
    elif value is None:
        out.append(PatchOperation(REMOVE, path))
    elif attr.multi_valued and ref.sub is None:
        _multi(out, path, attr, value)
    elif attr.is_complex and ref.sub is None:
        out.append(PatchOperation(ADD, path, value))  # merges the sub-attributes given
    else:
        out.append(PatchOperation(REPLACE, path, value))


def _removals(rtype: ResourceType, meta) -> list[PatchOperation]:
    if meta is None:
        return []
    if not isinstance(meta, dict):
        raise InvalidSyntax("'meta' must be an object")
    names = next((v for k, v in meta.items() if k.lower() == "attributes"), None)
    if names is None:
        return []
    if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
        raise InvalidSyntax("'meta.attributes' must be an array of attribute names")
    if len(names) > MAX_VALUES:
        raise InvalidValue(f"meta.attributes: more than {MAX_VALUES} names")
    out = []
    for name in names:
        path = canonical_path(name)
        pref = parse_path(rtype, path)
        if pref.ref is not None and pref.ref.attr.name.lower() == "password":
            raise InvalidValue("The password cannot be removed")
        out.append(PatchOperation(REMOVE, path))
    return out


def parse_patch(rtype: ResourceType, body) -> list[PatchOperation]:
    """The canonical operations of a SCIM 1.1 PATCH body (removals first, then merges)."""
    if not isinstance(body, dict):
        raise InvalidSyntax("The body must be a JSON object")
    schemas = body.get("schemas")
    if schemas is not None and not isinstance(schemas, list):
        raise InvalidSyntax("'schemas' must be an array")
    meta = next((v for k, v in body.items() if k.lower() == "meta"), None)
    out = _removals(rtype, meta)
    data = to_canonical(rtype, body, patch=True)
    for key, value in data.items():
        ext = rtype.extension(key) if key.lower().startswith("urn:") else None
        if ext is not None and key == ext.id and isinstance(value, dict):
            for name, sub_value in value.items():
                _attribute(out, rtype, f"{ext.id}:{name}", sub_value)
        else:
            _attribute(out, rtype, key, value)
    return out
