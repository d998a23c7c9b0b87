"""Apply PATCH operations (RFC 7644 §3.5.2) to a canonical resource.

Protocol adapters parse their own wire format into ``PatchOperation``s (SCIM
2.0 PatchOp with the real clients' quirks, SOAP claim updates, ...); this is
the one place their semantics live. Group membership is not patched here:
``split_member_ops`` turns operations on ``members`` into membership changes
the store applies without loading the whole member list.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from ..errors import InvalidPath, InvalidValue, Mutability, NoTarget
from .match import item_matches
from .parsing import parse_path
from .query import And, AttrRef, Compare, Node, PathRef
from .schema import IMMUTABLE, READ_ONLY, Attribute, ResourceType
from .validate import attribute_value, canonical

ADD, REPLACE, REMOVE = "add", "replace", "remove"


@dataclass
class PatchOperation:
    op: str
    path: str | None = None
    value: object = None


@dataclass
class MemberChanges:
    """Membership edits extracted from a group PATCH."""

    add: list[dict] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    replace: list[dict] | None = None
    remove_all: bool = False

    def __bool__(self) -> bool:
        return bool(self.add or self.remove or self.remove_all or self.replace is not None)


@dataclass
class PatchResult:
    resource: dict
    password: str | None = None
    members: MemberChanges = field(default_factory=MemberChanges)


def apply_patch(rtype: ResourceType, resource: dict, ops: list[PatchOperation]) -> PatchResult:
    out = copy.deepcopy(resource)
    result = PatchResult(out)
    for op in ops:
        kind = (op.op or "").lower()
        if kind not in (ADD, REPLACE, REMOVE):
            raise InvalidValue(f"Unknown PATCH op '{op.op}'")
        if op.path in (None, ""):
            if kind == REMOVE:
                raise NoTarget("A remove operation needs a path")
            if not isinstance(op.value, dict):
                raise InvalidValue(f"A {kind} operation without a path takes an object as value")
            for key, value in op.value.items():
                _apply_key(rtype, result, kind, key, value)
            continue
        if not isinstance(op.path, str):
            raise InvalidPath("path must be a string")
        _apply_path(rtype, result, kind, op.path, op.value)
    # the whole resource once more, as a client would have sent it
    canonical(rtype, out)
    return result


def _apply_key(rtype, result: PatchResult, kind: str, key: str, value) -> None:
    """One key of a path-less add/replace value: an attribute, a URN, or (Entra) a dotted path."""
    lkey = key.lower()
    if lkey in ("schemas", "meta", "id"):
        return
    ext = rtype.extension(key) if lkey.startswith("urn:") else None
    if ext is not None:
        for name, sub_value in _extension_object(key, value).items():
            _apply_path(rtype, result, kind, f"{ext.id}:{name}", sub_value, pathless=True)
        return
    _apply_path(rtype, result, kind, key, value, pathless=True)


def _extension_object(where: str, value) -> dict:
    """The attributes of a whole extension object given as a PATCH value. A ``schemas``
    key in it (scim2-models' client sends the extension as a resource of its own) names
    the schemas and is not an attribute: it is left out."""
    if not isinstance(value, dict):
        raise InvalidValue(f"'{where}' takes an object")
    return {k: v for k, v in value.items() if k.lower() != "schemas"}


def _holder(resource: dict, ref: AttrRef, create: bool) -> dict | None:
    """Where the attribute lives in the resource; its extension object made when asked."""
    holder = ref.container(resource)
    if holder is None and create:
        holder = resource[ref.schema.id] = {}
    return holder


def _apply_path(rtype, result: PatchResult, kind, path: str, value, pathless=False) -> None:
    pref = parse_path(rtype, path)
    if pref.ref is None:  # a bare extension URN
        if kind == REMOVE:
            result.resource.pop(pref.schema.id, None)
            return
        for name, sub_value in _extension_object(path, value).items():
            _apply_path(rtype, result, kind, f"{pref.schema.id}:{name}", sub_value, pathless)
        return
    ref = pref.ref
    attr = ref.attr
    if attr.name == "password" and ref.schema is not None and not ref.schema.alias:
        if kind == REMOVE:
            raise Mutability("The password cannot be removed")
        if not isinstance(value, str) or not value:
            raise InvalidValue("password: takes a non-empty string")
        result.password = value
        return
    if attr.name == "members" and rtype.name == "Group":
        _member_op(result.members, pref, kind, value)
        return
    if attr.mutability == READ_ONLY or (ref.sub and ref.sub.mutability == READ_ONLY):
        if pathless:
            return
        raise Mutability(f"'{path}' is read-only")
    if ref.is_common:  # externalId (id and meta are read-only)
        _single(result.resource, attr, kind, value, path)
        return
    holder = _holder(result.resource, ref, create=kind != REMOVE)
    if holder is None:
        return
    if pref.value_filter is not None:
        _filtered(holder, pref, kind, value, path)
    elif ref.sub is not None:
        _sub(holder, attr, ref.sub, kind, value, path)
    elif attr.multi_valued:
        _multi(holder, attr, kind, value, path)
    elif attr.is_complex:
        _complex(holder, attr, kind, value, path)
    else:
        _single(holder, attr, kind, value, path)
    if ref.schema is not None and ref.schema.alias and not holder:
        result.resource.pop(ref.schema.id, None)


def _required(attr: Attribute, path: str) -> None:
    if attr.required:
        raise Mutability(f"'{path}' is required and cannot be removed")


def _single(holder: dict, attr: Attribute, kind: str, value, path: str) -> None:
    if kind == REMOVE or value is None:
        _required(attr, path)
        holder.pop(attr.name, None)
        return
    holder[attr.name] = attribute_value(attr, value, path)


def _complex(holder: dict, attr: Attribute, kind: str, value, path: str) -> None:
    if kind == REMOVE or value is None:
        holder.pop(attr.name, None)
        return
    new = attribute_value(attr, value, path) or {}
    merged = dict(holder.get(attr.name) or {})
    merged.update(new)  # add and replace both merge sub-attributes (RFC 7644 §3.5.2.1/.3)
    if merged:
        holder[attr.name] = merged


def _sub(holder: dict, attr: Attribute, sub: Attribute, kind: str, value, path: str) -> None:
    if attr.multi_valued:
        # "emails.value": RFC 7644 gives this no clear meaning for a write
        if kind == REMOVE:
            for item in holder.get(attr.name) or []:
                item.pop(sub.name, None)
            holder[attr.name] = [i for i in holder.get(attr.name) or [] if i] or None
            if holder[attr.name] is None:
                del holder[attr.name]
            return
        raise InvalidPath(f"'{path}' needs a value filter to say which value to change")
    current = dict(holder.get(attr.name) or {})
    if kind == REMOVE or value is None:
        current.pop(sub.name, None)
    else:
        current[sub.name] = attribute_value(sub, value, path)
    if current:
        holder[attr.name] = current
    else:
        holder.pop(attr.name, None)


def _multi(holder: dict, attr: Attribute, kind: str, value, path: str) -> None:
    current = list(holder.get(attr.name) or [])
    if kind == REMOVE:
        if value is None:
            holder.pop(attr.name, None)
            return
        drop = attribute_value(attr, value, path) or []
        kept = [i for i in current if not any(_same(i, d) for d in drop)]
        if kept:
            holder[attr.name] = kept
        else:
            holder.pop(attr.name, None)
        return
    new = attribute_value(attr, value, path) or []
    if kind == REPLACE:
        current = []
    if attr.is_complex and any(i.get("primary") is True for i in new):
        for item in current:
            item.pop("primary", None)
    for item in new:
        if not any(_same(item, c) for c in current):
            current.append(item)
    if current:
        holder[attr.name] = current
    else:
        holder.pop(attr.name, None)


def _same(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        if "value" in a and "value" in b and not ("type" in a and "type" in b):
            return _eq(a["value"], b["value"])
        return all(_eq(a.get(k), b.get(k)) for k in set(a) | set(b) if k != "primary")
    return _eq(a, b)


def _eq(a, b) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()
    return a == b


def _eq_terms(node: Node) -> dict | None:
    """The sub-attribute values an ``eq``-only filter pins down, to create a matching value."""
    terms = node.terms if isinstance(node, And) else (node,)
    out = {}
    for term in terms:
        if not isinstance(term, Compare) or term.op != "eq":
            return None
        out[term.ref.leaf.name] = term.value
    return out


def _filtered(holder: dict, pref: PathRef, kind: str, value, path: str) -> None:
    attr, sub = pref.ref.attr, pref.sub
    items = holder.get(attr.name) or []
    hits = [i for i, item in enumerate(items) if item_matches(pref.value_filter, item)]
    if kind == REMOVE:
        if sub is None:
            kept = [item for i, item in enumerate(items) if i not in hits]
        else:
            if sub.required:
                raise Mutability(f"'{path}' is required")
            for i in hits:
                items[i] = {k: v for k, v in items[i].items() if k != sub.name}
            # a value left without its "value" (e.g. only {"type": "home"}) means nothing
            has_value = attr.sub("value") is not None
            kept = [item for item in items if item and (not has_value or "value" in item)]
        if kept:
            holder[attr.name] = kept
        else:
            holder.pop(attr.name, None)
        return
    if not hits:
        # Entra ID adds with 'replace emails[type eq "work"].value'; build the value the
        # filter describes when it can be described (eq terms only). A replace whose filter
        # names the value itself ('emails[value eq "x"]') and matches nothing has no target
        # (RFC 7644 §3.5.2.3); an add of it adds it (§3.5.2.1; SCIM 1.1's merge does so).
        seed = _eq_terms(pref.value_filter)
        if seed is None or kind == REPLACE and "value" in seed:
            raise NoTarget(f"'{path}' matches no value")
        if sub is not None:
            seed[sub.name] = value
            new = attribute_value(attr, [seed], path)
        else:
            new = attribute_value(attr, [{**seed, **(value if isinstance(value, dict) else {})}],
                                  path)
        holder[attr.name] = [*items, *(new or [])]
        return
    for i in hits:
        if sub is not None:
            if sub.mutability == IMMUTABLE and items[i].get(sub.name) not in (None, value):
                raise Mutability(f"'{path}' is immutable")
            items[i] = {**items[i], sub.name: attribute_value(sub, value, path)}
        else:
            new = attribute_value(attr, [value], path)
            merged = new[0] if new else {}
            items[i] = merged if kind == REPLACE else {**items[i], **merged}
    holder[attr.name] = items


def _member_values(value, path: str) -> list[dict]:
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    out = []
    for v in values:
        if isinstance(v, str):
            v = {"value": v}
        if not isinstance(v, dict) or not isinstance(v.get("value"), str) or not v["value"]:
            raise InvalidValue(f"{path}: each member needs a string 'value'")
        member = {"value": v["value"]}
        kind = v.get("type")
        if kind is not None:
            if not isinstance(kind, str) or kind.lower() not in ("user", "group"):
                raise InvalidValue(f"{path}: member type must be 'User' or 'Group'")
            member["type"] = kind.capitalize()
        out.append(member)
    return out


def _member_op(changes: MemberChanges, pref: PathRef, kind: str, value) -> None:
    path = "members"
    sub = pref.sub or pref.ref.sub
    if sub is not None and kind != REMOVE:  # RFC 7643 §4.2: members' values are immutable
        raise Mutability(f"'members.{getattr(sub, 'name', sub)}' is immutable: add or remove "
                         "the member instead")
    if pref.value_filter is not None:
        if kind != REMOVE:
            raise InvalidPath("Only remove may use a value filter on 'members'")
        terms = _eq_terms(pref.value_filter)
        if not terms or set(terms) != {"value"}:
            raise InvalidPath("A value filter on 'members' must be 'value eq \"<id>\"'")
        changes.remove.append(terms["value"])
        return
    if pref.sub is not None or pref.ref.sub is not None:
        raise InvalidPath("Change members as a whole, not one sub-attribute")
    if kind == ADD:
        changes.add.extend(_member_values(value, path))
    elif kind == REPLACE:
        changes.replace = _member_values(value, path)
        changes.add.clear()
        changes.remove.clear()
        changes.remove_all = False
    elif value is None:
        changes.remove_all = True
        changes.add.clear()
        changes.replace = None
    else:  # Entra ID: remove members with a value array
        changes.remove.extend(m["value"] for m in _member_values(value, path))
