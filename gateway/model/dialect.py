"""Dialects: other vocabularies for canonical attributes, each a table, not code.

A dialect maps its attribute names (WSO2 claim URIs, LDAP attributes, token
claims, ...) to canonical attribute paths, which may select one value of a
multi-valued attribute (``emails[type eq "work"].value``). Reading goes
through the same path resolution as filters; writing produces canonical
PATCH operations, so a value set through a dialect lands exactly where the
same value set over SCIM would.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .match import item_matches, values_of
from .parsing import parse_path
from .patch import PatchOperation
from .query import AttrRef, PathRef
from .schema import ResourceType


@dataclass(frozen=True)
class Dialect:
    name: str
    rtype: ResourceType
    table: dict[str, str]  # dialect attribute -> canonical path
    read_only: frozenset[str] = frozenset()
    multi_separator: str = ","
    _paths: dict[str, PathRef] = field(default_factory=dict, compare=False, repr=False)
    _lower: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name, path in self.table.items():
            self._paths[name] = parse_path(self.rtype, path)
            self._lower[name.lower()] = name

    def known(self, name: str) -> str | None:
        """The dialect's own spelling of a name, or None if it has no such attribute."""
        return self._lower.get(name.lower())

    def path(self, name: str) -> PathRef:
        return self._paths[self._lower[name.lower()]]

    def read(self, resource: dict, name: str) -> list:
        """The values of one dialect attribute in a canonical resource."""
        pref = self.path(name)
        if pref.value_filter is None:
            return values_of(resource, pref.ref)
        holder = pref.ref.container(resource) or {}
        items = [i for i in holder.get(pref.ref.attr.name) or []
                 if isinstance(i, dict) and item_matches(pref.value_filter, i)]
        if pref.sub is None:
            return items
        return [i[pref.sub.name] for i in items if pref.sub.name in i]

    def read_text(self, resource: dict, name: str) -> str | None:
        """One dialect attribute as text (multi-values joined by the separator)."""
        values = self.read(resource, name)
        if not values:
            return None
        return self.multi_separator.join(_text(v) for v in values)

    def read_all(self, resource: dict) -> dict[str, str]:
        out = {}
        for name in self.table:
            ref = self._paths[name].ref
            holder = ref.container(resource)
            if not holder or ref.attr.name not in holder:  # most attributes are not set
                continue
            text = self.read_text(resource, name)
            if text is not None:
                out[name] = text
        return out

    def leaf(self, name: str) -> AttrRef:
        pref = self.path(name)
        return AttrRef(pref.ref.schema, pref.ref.attr, pref.sub or pref.ref.sub)

    def write(self, name: str, value: str | None) -> PatchOperation:
        """The canonical operation that sets (or, for None, removes) a dialect attribute."""
        canonical_path = self.table[self._lower[name.lower()]]
        if value is None:
            return PatchOperation("remove", canonical_path)
        leaf = self.leaf(name)
        if leaf.attr.multi_valued and leaf.sub is None and not leaf.attr.is_complex:
            return PatchOperation("replace", canonical_path,
                                  [v for v in value.split(self.multi_separator) if v])
        return PatchOperation("replace", canonical_path, value)


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return str(value.get("value", ""))
    return str(value)

