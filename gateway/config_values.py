"""Reading typed values out of TOML tables, with errors that say where (one place for the
main configuration and its parts: user stores, LDAP, outbound, connectors, JIT)."""

from __future__ import annotations

import difflib
import json
import tomllib
from pathlib import Path

from .errors import ConfigError

# the signatures a token or assertion may carry: asymmetric only (no "none", no HMAC with
# a secret the gateway would have to share)
ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
              "ES512", "EdDSA")


class EnvInt(int):
    """An integer read from an environment variable, which keeps the variable's text: a
    setting that is text (a password of digits) reads the text, not the number."""

    text: str


class EnvFloat(float):
    """A float read from an environment variable, with the variable's text (``EnvInt``)."""

    text: str


def env_value(text: str):
    """An environment variable's value: a TOML value when it parses as one (numbers,
    booleans, ``["arrays"]``, ``"quoted text"``), else the text itself. A number keeps
    its text (``EnvInt``, ``EnvFloat``) for the settings that are text."""
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
    if isinstance(value, int) and not isinstance(value, bool):
        value = EnvInt(value)
    elif isinstance(value, float):
        value = EnvFloat(value)
    else:
        return value
    value.text = text
    return value


def _as_text(value):
    """A number from the environment as its text (a setting that is text reads it)."""
    return value.text if isinstance(value, EnvInt | EnvFloat) else value


def typed(sec: dict, where: str, key: str, kind, default):
    """``sec[key]`` as ``kind`` (an int is a float; a bool is not a number), or default."""
    value = sec.get(key, default)
    if kind is str:
        value = _as_text(value)
    elif isinstance(value, EnvInt):
        value = int(value)
    elif isinstance(value, EnvFloat):
        value = float(value)
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


class UnknownSetting(ConfigError):
    """Keys a section does not have; ``paths``: their dotted key paths (``server.prot``),
    so that the loader can name the environment variable that set one."""

    def __init__(self, message: str, paths: tuple[str, ...]):
        super().__init__(message)
        self.paths = paths


def unknown(sec: dict, where: str, known: set[str] | frozenset[str]) -> None:
    """An error naming the keys of ``sec`` that are not ``known`` (a typo is not ignored),
    each with the closest known key when one is close: ``[userstores.PRIMARY]: unknown
    setting(s) pool_sise (did you mean 'pool_size'?)``."""
    extra = sorted(set(sec) - set(known))
    if not extra:
        return
    named = []
    for key in extra:
        close = difflib.get_close_matches(str(key).lower(), sorted(known), n=1, cutoff=0.6)
        named.append(f"{key} (did you mean {close[0]!r}?)" if close else str(key))
    label = where if where.endswith("]") else f"[{where}]"
    prefix = "" if where == "top level" else f"{where}."
    raise UnknownSetting(f"{label}: unknown setting(s) {', '.join(named)}",
                         tuple(f"{prefix}{key}" for key in extra))


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


def secret(sec: dict, where: str, key: str, base: Path) -> str | None:
    """A secret setting: ``sec[key]``, or the content of the file ``sec[key + "_file"]``
    (relative to ``base``, the configuration file's folder; read now, at load time, one
    trailing newline stripped), or None when neither is given. Giving both, a file that
    cannot be read or is empty, or a value that is not text is an error naming the key;
    no error ever holds the secret itself."""
    file_key = f"{key}_file"
    value, path = _as_text(sec.get(key)), _as_text(sec.get(file_key))
    if value is not None and path is not None:
        raise ConfigError(f"{where}.{key}: give {key} or {file_key}, not both")
    if path is not None:
        if not isinstance(path, str) or not path:
            raise ConfigError(f"{where}.{file_key}: expected the name of a file")
        full = base / path
        try:
            value = full.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise ConfigError(f"{where}.{file_key}: cannot read {full}: {reason}") from None
        value = value.removesuffix("\n").removesuffix("\r")
        if not value:
            raise ConfigError(f"{where}.{file_key}: {full} is empty")
        return value
    if value is not None and not isinstance(value, str):
        # not the value itself: it may be the secret, mistyped
        kind = {bool: "boolean", int: "number", float: "number", list: "list",
                dict: "table"}.get(type(value), "value that is not text")
        raise ConfigError(f"{where}.{key}: expected a string, got a {kind} (quote it)")
    return value
