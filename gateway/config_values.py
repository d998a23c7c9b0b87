"""Reading typed values out of TOML tables, with errors that say where (one place for the
main configuration and its parts: user stores, LDAP, outbound, connectors, JIT)."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import ConfigError

# the signatures a token or assertion may carry: asymmetric only (no "none", no HMAC with
# a secret the gateway would have to share)
ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
              "ES512", "EdDSA")


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


def algorithms(sec: dict, where: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """The ``algorithms`` a token issuer may sign with: asymmetric ones only."""
    value = sec.get("algorithms", default)
    if not isinstance(value, list | tuple) or not all(isinstance(a, str) for a in value):
        raise ConfigError(f"{where}.algorithms must be a list of strings")
    bad = [a for a in value if a not in ASYMMETRIC]
    if bad:
        raise ConfigError(f"{where}.algorithms {bad} are not allowed (asymmetric "
                          f"signatures only: {', '.join(ASYMMETRIC)})")
    return tuple(value)


def jwks(sec: dict, where: str, base: Path) -> dict | None:
    """The JWKS document of ``jwks`` (a table or its JSON text) or ``jwks_file`` (relative
    to the configuration file), or None when neither is given."""
    value = sec.get("jwks")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ConfigError(f"{where}.jwks is not valid JSON: {exc}") from None
    if sec.get("jwks_file"):
        try:
            value = json.loads((base / sec["jwks_file"]).read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{where}: cannot read jwks_file: {exc}") from None
    if value is not None and (not isinstance(value, dict)
                              or not isinstance(value.get("keys"), list)):
        raise ConfigError(f"{where}: jwks is not a JWKS document (an object with 'keys')")
    return value
