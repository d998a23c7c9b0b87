"""Resolved SCIM filters as LDAP filters (RFC 4515), values always escaped.

An attribute the store's map does not hold is absent from every entry, so a
comparison on it matches nothing (and ``not`` of it everything), exactly as
SCIM defines a filter on a missing attribute. Values go through
``escape_filter_chars``: no text of a filter ever becomes filter syntax.
"""

from __future__ import annotations

from dataclasses import dataclass

from ldap3.utils.conv import escape_filter_chars

from gateway.errors import InvalidFilter
from gateway.model.dialect import Dialect
from gateway.model.query import And, AttrRef, Compare, Node, Not, Or, Present, ValueFilter
from gateway.model.schema import WSO2_USER

from .account_state import ACCOUNT_DISABLED, locked_filter
from .mapping import Flavor

TRUE = "(objectClass=*)"
FALSE = "(!(objectClass=*))"
_AD_DISABLED = f"(userAccountControl:1.2.840.113556.1.4.803:={ACCOUNT_DISABLED})"


@dataclass(frozen=True)
class Target:
    """One LDAP attribute and the canonical value it holds."""

    ldap: str
    key: str  # the canonical top-level attribute key (emails, name, enterprise:department)
    sub: str | None  # its sub-attribute (value, givenName), if any
    conditions: tuple[tuple[str, str], ...]  # the value filter's eq terms (type = work)


def targets(dialect: Dialect) -> list[Target]:
    out = []
    for attr in dialect.table:
        pref = dialect.path(attr)
        conditions = []
        node = pref.value_filter
        for term in (node.terms if isinstance(node, And) else (node,) if node else ()):
            if isinstance(term, Compare) and term.op == "eq" and term.ref.sub is not None:
                conditions.append((term.ref.sub.name, str(term.value).lower()))
        sub = pref.sub.name if pref.sub else (pref.ref.sub.name if pref.ref.sub else None)
        out.append(Target(attr, pref.ref.key, sub, tuple(conditions)))
    return out


def _generalized(value: str) -> str:
    digits = "".join(c for c in value[:19] if c.isdigit())
    return (digits + "000000")[:14] + "Z"


def compare(attr: str, op: str, value) -> str:
    if isinstance(value, bool):
        value = "TRUE" if value else "FALSE"
    v = escape_filter_chars(str(value))
    if op == "eq":
        return f"({attr}={v})"
    if op == "ne":
        return f"(!({attr}={v}))"
    if op == "co":
        return f"({attr}=*{v}*)"
    if op == "sw":
        return f"({attr}={v}*)"
    if op == "ew":
        return f"({attr}=*{v})"
    if op == "ge":
        return f"({attr}>={v})"
    if op == "le":
        return f"({attr}<={v})"
    if op == "gt":
        return f"(&({attr}>={v})(!({attr}={v})))"
    if op == "lt":
        return f"(&({attr}<={v})(!({attr}={v})))"
    raise InvalidFilter(f"Unknown operator {op}")


def _holds(held: str, op: str, value) -> bool:
    """A value a map pins down (``type`` work, ``primary`` true: lower-case text) compared
    as a filter compares it (case-insensitively)."""
    if op == "pr":
        return True
    want = ("true" if value else "false") if isinstance(value, bool) else str(value).lower()
    return {"eq": held == want, "ne": held != want, "co": want in held,
            "sw": held.startswith(want), "ew": held.endswith(want)}.get(op, False)


def _any(parts: list[str]) -> str:
    if not parts:
        return FALSE
    return parts[0] if len(parts) == 1 else "(|" + "".join(parts) + ")"


def _all(parts: list[str]) -> str:
    if not parts:
        return TRUE
    return parts[0] if len(parts) == 1 else "(&" + "".join(parts) + ")"


class FilterTranslator:
    def __init__(self, dialect: Dialect, flavor: Flavor, kind: str):
        self.flavor = flavor
        self.kind = kind  # "User" or "Group"
        self.targets = targets(dialect) if dialect is not None else []

    def translate(self, node: Node | None) -> str:
        if node is None:
            return TRUE
        return self._node(node)

    def _node(self, node: Node) -> str:
        if isinstance(node, And):
            return _all([self._node(t) for t in node.terms])
        if isinstance(node, Or):
            return _any([self._node(t) for t in node.terms])
        if isinstance(node, Not):
            return f"(!{self._node(node.expr)})"
        if isinstance(node, Compare):
            return self._compare(node.ref, node.op, node.value)
        if isinstance(node, Present):
            return self._compare(node.ref, "pr", None)
        if isinstance(node, ValueFilter):
            return self._value_filter(node)
        raise InvalidFilter("This filter is not supported by an LDAP user store")

    def _special(self, ref: AttrRef) -> str | None:
        """LDAP attributes of the canonical attributes every entry has."""
        if ref.is_common:
            if ref.attr.name == "id":
                return self.flavor.id_attribute
            if ref.attr.name == "meta" and ref.sub is not None:
                return {"created": "createTimestamp",
                        "lastModified": "modifyTimestamp"}.get(ref.sub.name)
        if self.kind == "Group" and ref.attr.name == "displayName" and not ref.sub:
            return "cn"
        if self.kind == "Group" and ref.attr.name == "members" or \
                self.kind == "User" and ref.attr.name == "groups":
            raise InvalidFilter(f"Filtering on {ref.dotted} is not supported by an LDAP "
                                "user store")
        return None

    def _compare(self, ref: AttrRef, op: str, value) -> str:
        special = self._special(ref)
        if special is not None:
            if special.endswith("Timestamp") and isinstance(value, str):
                value = _generalized(value)
            if op == "pr":
                return f"({special}=*)"
            return compare(special, op, value)
        if ref.attr.name == "active" and ref.is_common is False and self.kind == "User" \
                and not self._mapped(ref):
            return self._active(op, value)
        if ref.attr.name == "accountLocked" and ref.schema is not None \
                and ref.schema.id == WSO2_USER and self.kind == "User" and not self._mapped(ref):
            return self._locked(op, value)
        sub = ref.sub.name if ref.sub else ("value" if ref.attr.is_complex
                                            and ref.attr.multi_valued else None)
        attrs = [t.ldap for t in self.targets if t.key == ref.key and t.sub == sub]
        if not attrs and sub is not None:
            # a sub-attribute the map's value filter pins down (emails.primary, emails.type):
            # an entry has it when it has the LDAP attribute of that value
            held = {t.ldap: dict(t.conditions)[sub] for t in self.targets
                    if t.key == ref.key and sub in dict(t.conditions)}
            return _any([f"({a}=*)" for a, v in held.items() if _holds(v, op, value)])
        if op == "pr":
            return _any([f"({a}=*)" for a in attrs])
        return _any([compare(a, op, value) for a in attrs])

    def _mapped(self, ref: AttrRef) -> bool:
        return any(t.key == ref.key for t in self.targets)

    def _active(self, op: str, value) -> str:
        if self.flavor.is_ad:
            enabled = f"(!{_AD_DISABLED})"
            if op == "pr":
                return TRUE
            if op in ("eq", "ne") and isinstance(value, bool):
                want = value if op == "eq" else not value
                return enabled if want else _AD_DISABLED
            raise InvalidFilter("active takes eq/ne true or false")
        # a store without an account-state attribute: every user is active
        if op == "pr":
            return TRUE
        if op in ("eq", "ne") and isinstance(value, bool):
            return TRUE if (value if op == "eq" else not value) else FALSE
        raise InvalidFilter("active takes eq/ne true or false")

    def _locked(self, op: str, value) -> str:
        """WSO2's accountLocked: the directory's own lock (``account_state``), which only
        a locked account carries."""
        locked = locked_filter(self.flavor)
        if op == "pr":
            return locked
        if op in ("eq", "ne") and isinstance(value, bool):
            return locked if (value if op == "eq" else not value) else f"(!{locked})"
        raise InvalidFilter("accountLocked takes eq/ne true or false")

    def _value_filter(self, node: ValueFilter) -> str:
        terms = node.expr.terms if isinstance(node.expr, And) else (node.expr,)
        conditions, rest = {}, []
        for term in terms:
            if (isinstance(term, Compare) and term.op == "eq" and term.ref.sub is not None
                    and term.ref.sub.name in ("type", "primary")):
                conditions[term.ref.sub.name] = str(term.value).lower()
            else:
                rest.append(term)
        out = []
        for target in self.targets:
            if target.key != node.ref.key:
                continue
            held = dict(target.conditions)
            # a map that holds no primary flag (emails[type eq "work"]) answers any
            if any(k in held and held[k] != v for k, v in conditions.items()):
                continue
            if "type" in conditions and "type" not in held:
                continue
            parts = [self._sub_term(target, t) for t in rest]
            out.append(_all(parts) if parts else f"({target.ldap}=*)")
        return _any(out)

    def _sub_term(self, target: Target, term: Node) -> str:
        if isinstance(term, And):
            return _all([self._sub_term(target, t) for t in term.terms])
        if isinstance(term, Or):
            return _any([self._sub_term(target, t) for t in term.terms])
        if isinstance(term, Not):
            return f"(!{self._sub_term(target, term.expr)})"
        if isinstance(term, Compare | Present) and term.ref.sub is not None:
            if term.ref.sub.name != target.sub:
                held = dict(target.conditions)
                name = term.ref.sub.name
                if isinstance(term, Present) and name in held or isinstance(term, Compare) \
                        and (_holds(held[name], term.op, term.value) if name in held
                             else name == "primary" and term.op == "eq"):
                    # a value the map pins down (or a primary flag it does not hold, which
                    # any value answers, as above): true of every entry with the attribute
                    return f"({target.ldap}=*)"
                return FALSE
            if isinstance(term, Present):
                return f"({target.ldap}=*)"
            return compare(target.ldap, term.op, term.value)
        raise InvalidFilter("This value filter is not supported by an LDAP user store")
