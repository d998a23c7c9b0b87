"""Names as clients write them: ``SECONDARY/alice``, ``alice`` (PRIMARY), ``Internal/x``.

The one place that splits a name into its user store domain and the bare name a
store holds, qualifies a bare name again, and recognises WSO2's hybrid roles.
Stores hold bare names; every protocol shows qualified ones, PRIMARY's without a
domain, as WSO2 does.

- ``DOMAIN/name`` is the user or group ``name`` of the store of ``DOMAIN`` (domains
  compare without case); a name without a domain is PRIMARY's.
- Group names of WSO2's hybrid domains (``Internal/everyone``, ``Application/app``)
  are not split: they are PRIMARY groups whose name keeps its prefix, unless a store
  of that domain is configured. They hold users of every store
  (``gateway/pipeline/hybrid.py``).
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import InvalidValue

PRIMARY = "PRIMARY"
SEPARATOR = "/"
HYBRID_DOMAINS = ("INTERNAL", "APPLICATION")


def qualify(domain: str, name: str) -> str:
    """``name`` of the store of ``domain`` as clients see it."""
    return name if domain.upper() == PRIMARY else f"{domain}{SEPARATOR}{name}"


def is_qualified(name: str) -> bool:
    return SEPARATOR in name


class Names:
    """Splitting names for one set of configured domains."""

    def __init__(self, domains: Iterable[str]):
        self._domains = {d.upper(): d for d in domains}

    @property
    def domains(self) -> list[str]:
        """The configured domains, PRIMARY first, then in configuration order."""
        return list(self._domains.values())

    @property
    def primary(self) -> str:
        return self._domains.get(PRIMARY, PRIMARY)

    def is_hybrid(self, name: str) -> bool:
        """A WSO2 hybrid role name (``Internal/everyone``): a PRIMARY group, prefix kept,
        that holds users of every store."""
        domain = name.split(SEPARATOR, 1)[0].upper() if SEPARATOR in name else ""
        return domain in HYBRID_DOMAINS and domain not in self._domains

    def parts(self, name: str, group: bool = False) -> tuple[str | None, str]:
        """(the domain ``name`` is written with, or None; the rest), without checking that
        the domain is configured: a filter may name any domain (and then match nothing)."""
        if SEPARATOR not in name or group and self.is_hybrid(name):
            return None, name
        written, bare = name.split(SEPARATOR, 1)
        return written, bare

    def split(self, name: str, group: bool = False) -> tuple[str, str]:
        """``SECONDARY/alice`` -> ("SECONDARY", "alice"), the domain as configured; no
        domain means PRIMARY. InvalidValue for a domain that is not configured or a
        domain without a name."""
        written, bare = self.parts(name, group)
        if written is None:
            return self.primary, bare
        if not bare.strip():
            raise InvalidValue(f"'{name}' has a domain but no name")
        configured = self._domains.get(written.upper())
        if configured is None:
            raise InvalidValue(f"Unknown user store domain '{written}'")
        return configured, bare
