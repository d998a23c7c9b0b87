"""Reading typed values out of TOML tables, with errors that say where (one place for the
main configuration and its parts: user stores, LDAP, outbound, connectors, JIT)."""

from __future__ import annotations

from .errors import ConfigError


def typed(sec: dict, where: str, key: str, kind, default):
    """``sec[key]`` as ``kind`` (an int is a float; a bool is not a number), or default."""
    value = sec.get(key, default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if value is not None and (not isinstance(value, kind)
                              or isinstance(value, bool) and kind in (int, float)):
        raise ConfigError(f"{where}.{key}: expected {kind.__name__}, got {value!r}")
    return value


def strings(sec: dict, where: str, key: str) -> tuple[str, ...]:
    value = sec.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}.{key} must be a list of strings")
    return tuple(value)


def string_table(sec: dict, where: str, key: str) -> tuple[tuple[str, str], ...]:
    """A table of string = string, as pairs in their order."""
    value = sec.get(key, {})
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ConfigError(f"{where}.{key} must be a table of strings")
    return tuple(value.items())


def table(value, where: str) -> dict:
    """A section as read (None when absent: empty), which must be a table."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"[{where}] must be a table")
    return value


def unknown(sec: dict, where: str, known: set[str] | frozenset[str]) -> None:
    """An error naming the keys of ``sec`` that are not ``known`` (a typo is not ignored)."""
    extra = set(sec) - known
    if extra:
        raise ConfigError(f"[{where}]: unknown setting(s) {', '.join(sorted(extra))}")
