"""Evaluate a resolved filter against a canonical resource held in memory.

Stores never use this to search (they translate filters into their own query
language); it serves value filters in PATCH paths (``members[value eq "x"]``),
dialect paths (``emails[type eq "work"].value``) and rules over one user.
"""

from __future__ import annotations

from .query import (
    DATETIME,
    And,
    AttrRef,
    Compare,
    Node,
    Not,
    Or,
    Present,
    ValueFilter,
    normalise_datetime,
)
from .schema import STRING


def values_of(resource: dict, ref: AttrRef) -> list:
    """All values the reference designates in a resource (flattened over multi-values)."""
    holder = ref.container(resource)
    if holder is None:
        return []
    value = _get_ci(holder, ref.attr.name)
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    if ref.sub is None:
        return [v for v in items if v is not None]
    out = []
    for item in items:
        if isinstance(item, dict):
            v = _get_ci(item, ref.sub.name)
            if v is not None:
                out.append(v)
    return out


def _get_ci(d: dict, name: str):
    if name in d:
        return d[name]
    lname = name.lower()
    for k, v in d.items():
        if k.lower() == lname:
            return v
    return None


def _present(value) -> bool:
    return value not in (None, "", [], {})


def _cmp(attr_type: str, case_exact: bool, op: str, actual, expected) -> bool:
    if op in ("co", "sw", "ew") or attr_type == STRING or isinstance(actual, str):
        if not isinstance(actual, str) or not isinstance(expected, str):
            return op == "ne"
        if attr_type == DATETIME and op not in ("co", "sw", "ew"):
            try:
                actual = normalise_datetime(actual)
            except ValueError:
                return False
        elif not case_exact:
            actual, expected = actual.lower(), expected.lower()
    try:
        if op == "eq":
            return actual == expected
        if op == "ne":
            return actual != expected
        if op == "co":
            return expected in actual
        if op == "sw":
            return actual.startswith(expected)
        if op == "ew":
            return actual.endswith(expected)
        if op == "gt":
            return actual > expected
        if op == "ge":
            return actual >= expected
        if op == "lt":
            return actual < expected
        if op == "le":
            return actual <= expected
    except TypeError:
        return False
    return False


def matches(node: Node, resource: dict) -> bool:
    if isinstance(node, And):
        return all(matches(t, resource) for t in node.terms)
    if isinstance(node, Or):
        return any(matches(t, resource) for t in node.terms)
    if isinstance(node, Not):
        return not matches(node.expr, resource)
    if isinstance(node, Present):
        return any(_present(v) for v in values_of(resource, node.ref))
    if isinstance(node, Compare):
        leaf = node.ref.leaf
        vals = values_of(resource, node.ref)
        if node.op == "ne":
            return not any(_cmp(leaf.type, leaf.case_exact, "eq", v, node.value) for v in vals)
        return any(_cmp(leaf.type, leaf.case_exact, node.op, v, node.value) for v in vals)
    if isinstance(node, ValueFilter):
        holder = node.ref.container(resource) or {}
        items = _get_ci(holder, node.ref.attr.name) or []
        return any(item_matches(node.expr, item) for item in items if isinstance(item, dict))
    raise TypeError(f"not a filter node: {node!r}")


def item_matches(node: Node, item: dict) -> bool:
    """Evaluate a value filter (references to sub-attributes) against one value."""
    if isinstance(node, And):
        return all(item_matches(t, item) for t in node.terms)
    if isinstance(node, Or):
        return any(item_matches(t, item) for t in node.terms)
    if isinstance(node, Not):
        return not item_matches(node.expr, item)
    if isinstance(node, Present):
        return _present(_get_ci(item, node.ref.leaf.name))
    if isinstance(node, Compare):
        leaf = node.ref.leaf
        actual = _get_ci(item, leaf.name)
        if actual is None:
            return node.op == "ne"
        return _cmp(leaf.type, leaf.case_exact, node.op, actual, node.value)
    raise TypeError(f"not a value filter node: {node!r}")
