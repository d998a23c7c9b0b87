"""The configuration: one TOML file, every setting overridable from the environment.

``docs/configuration.md`` documents every key; ``gateway.example.toml`` shows
them all. An environment variable ``GATEWAY__<SECTION>__<KEY>`` (double
underscores between levels, case-insensitive) overrides ``[section] key``,
for example ``GATEWAY__SERVER__PORT=9000`` or
``GATEWAY__USERSTORES__PRIMARY__URL=postgresql://...``; the value is read as
a TOML value when it parses as one (numbers, booleans, arrays), else as text (a
setting that is text gets the variable's text even when it looked like a number).
An entry of an array of tables is named by its ``name`` or its index:
``GATEWAY__OUTBOUND__CONNECTORS__HR__TOKEN_FILE=/run/secrets/hr``; the
environment changes the file's entries, it adds none. Every secret setting ``KEY``
may be ``KEY_file`` instead (``config_values.secret``); from the environment, either
form replaces the file's.

This package is the settings layer, below the stores and connectors, so that every
layer may read ``Config``. It holds the typed settings (``core``: the gateway's own sections;
``parts``: those of the user stores, outbound and JIT), reads the file and the
environment, and ``load`` hands each top-level section to its parser. The parts above
this layer read their own sections (``userstores.config``, ``gateway.outbound.config``
with ``connectors.config``, ``gateway.jit.config``, ``gateway.password_policy`` checking
``[passwords]``); ``gateway.settings`` assembles every parser (``SECTIONS``) and is what
``gateway`` calls: ``gateway.settings.load(path)``.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Any

from ..config_values import env_value, unknown
from ..errors import ConfigError
from .core import (
    DEFAULT_PORT,
    PERMISSIONS,
    SELF_SERVICE_ATTRIBUTES,
    AuditConfig,
    ClientConfig,
    IssuerConfig,
    PasswordConfig,
    SecurityConfig,
)
from .logs import LoggingConfig
from .parts import JitConfig, LdapConfig, OutboundConfig, ProviderConfig, StoreConfig

__all__ = [
    "DEFAULT_PORT", "ENV_PREFIX", "PERMISSIONS", "SELF_SERVICE_ATTRIBUTES", "AuditConfig",
    "ClientConfig", "Config", "ConfigError", "IssuerConfig", "JitConfig", "LdapConfig",
    "LoggingConfig", "OutboundConfig", "Parse", "PasswordConfig", "ProviderConfig",
    "SecurityConfig", "StoreConfig", "load", "read",
]

ENV_PREFIX = "GATEWAY__"

Parse = Callable[[Any, Path], Mapping[str, Any]]
"""How one top-level section is read: (the section as read, None when the file has
none; the folder file names in it are relative to) -> the ``Config`` fields it sets."""


@dataclass(frozen=True)
class Config:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    workers: int = 1
    base_url: str | None = None
    # [server]: peers whose Forwarded / X-Forwarded-* headers are believed (none: nobody's)
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()
    # how long a stopping worker lets the requests it has read finish (SIGTERM)
    shutdown_grace_seconds: float = 10.0
    # TLS without a proxy: both or neither (absolute paths, checked readable at load)
    cert_file: str | None = None
    key_file: str | None = None
    max_body_bytes: int = 1_048_576
    max_results: int = 1000
    default_count: int = 100
    bulk_max_operations: int = 1000
    bulk_max_payload_bytes: int = 8_388_608
    auth_cache_seconds: float = 30.0
    # what a user may change of its own account (SCIM /Me), lower-case names
    self_service_attributes: frozenset[str] = SELF_SERVICE_ATTRIBUTES
    # the bootstrap administrator (and its admin role) go on to outbound connectors too
    provision_bootstrap_admin: bool = False
    passwords: PasswordConfig = field(default_factory=PasswordConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    # [soap] unqualified_names: "primary" (WSO2's rule: a name without a domain is
    # PRIMARY's) or "any_store" (else the one other store's that has it)
    soap_unqualified_names: str = "primary"
    stores: dict[str, StoreConfig] = field(default_factory=dict)
    clients: tuple[ClientConfig, ...] = ()
    issuers: tuple[IssuerConfig, ...] = ()
    roles: dict[str, tuple[str, ...]] = field(default_factory=lambda: {"admin": ("*",)})
    # custom schema extensions: (resource type name, Schema)
    extensions: tuple = ()
    outbound: OutboundConfig = field(default_factory=OutboundConfig)
    jit: JitConfig = field(default_factory=JitConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    source: str = "(defaults)"

    @property
    def primary(self) -> StoreConfig:
        return self.stores["PRIMARY"]


def _env_overrides(raw: dict, environ: dict[str, str]) -> dict[str, str]:
    """Apply the environment's overrides to ``raw``; the dotted key path of each (as the
    parsers spell it, e.g. ``userstores.SECONDARY.pool_size``,
    ``outbound.connectors[0].token``) -> the variable that set it. A section or table the
    file does not have and a variable creates is recorded too (what is wrong with it is
    that variable's doing)."""
    applied: dict[str, str] = {}
    for variable, text in sorted(environ.items()):
        if not variable.upper().startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in variable[len(ENV_PREFIX):].split("__") if p]
        if not parts:
            continue
        node: dict | list = raw
        path = ""
        for part in parts[:-1]:
            if isinstance(node, list):
                index = _entry(node, part, variable, path)
                node, path = node[index], f"{path}[{index}]"
                if not isinstance(node, dict):
                    raise ConfigError(f"{variable}: {path} is not a table")
                continue
            key = _key(node, part)
            path = f"{path}.{key}" if path else key
            if key not in node:
                node[key] = {}
                applied.setdefault(path, variable)
            node = node[key]
            if not isinstance(node, dict | list):
                raise ConfigError(f"{variable}: {path} is a setting, not a section")
        if isinstance(node, list):
            array = variable[:variable.rstrip("_").rindex("__")].rstrip("_")
            raise ConfigError(
                f"{variable}: {path} is an array of tables: name an entry, by its name or "
                f"its index, then the key ({array}__<NAME>__<KEY>)")
        last = _key(node, parts[-1])
        node[last] = env_value(text)
        key_path = f"{path}.{last}" if path else last
        # a secret's override replaces it in either form: KEY_FILE replaces the file's
        # key (and KEY its key_file); both from the environment is the error it is in a file
        twin = last.removesuffix("_file") if last.endswith("_file") else f"{last}_file"
        twin_path = f"{path}.{twin}" if path else twin
        if twin in node and twin_path in applied:
            raise ConfigError(f"{variable}: {key_path}: {applied[twin_path]} sets "
                              f"{twin_path} too; give one of them")
        node.pop(twin, None)
        applied[key_path] = variable
    return applied


def _key(node: dict, part: str) -> str:
    """The key of ``node`` a variable's (lower-case) part names: the file's spelling when
    it has the key in any case (user store domains are upper-case), else the part."""
    return next((k for k in node if isinstance(k, str) and k.lower() == part), part)


def _entry(entries: list, part: str, variable: str, path: str) -> int:
    """The index of the entry of an array of tables (``outbound.connectors``, ``clients``,
    ``jit.providers``) a variable's part names: by its ``name`` (any case, ``-`` written
    ``_``), else by its index."""
    def norm(text: str) -> str:
        return text.lower().replace("-", "_")

    for i, entry in enumerate(entries):
        if isinstance(entry, dict) and isinstance(entry.get("name"), str) \
                and norm(entry["name"]) == norm(part):
            return i
    if part.isdigit() and int(part) < len(entries):
        return int(part)
    names = [e["name"] for e in entries if isinstance(e, dict) and isinstance(e.get("name"), str)]
    has = (f"names: {', '.join(names)}; " if names else "") + (
        f"indexes 0 to {len(entries) - 1}" if entries else "no entry in the file")
    raise ConfigError(f"{variable}: {path} has no entry {part!r} ({has}); the environment "
                      "changes the entries of the file, it does not add any")


def _source_of(exc: ConfigError, path, from_env: dict[str, str]) -> str | None:
    """Where the setting an error names comes from: the environment variable that set
    it, else the file (None: neither, the defaults)."""
    for key_path in getattr(exc, "paths", ()):  # config_values.UnknownSetting
        if key_path in from_env:
            return from_env[key_path]
    lowered = str(exc).lower()
    for key_path, variable in sorted(from_env.items(), key=lambda kv: -len(kv[0])):
        if re.search(rf"(?<![\w.]){re.escape(key_path.lower())}(?![\w])", lowered):
            return variable
    return str(path) if path is not None else None


def read(path: str | os.PathLike | None = None,
         environ: dict[str, str] | None = None) -> tuple[dict, str]:
    """The file's TOML (none: empty) with the environment's overrides, and where it is
    from (the file, or ``"(defaults)"``)."""
    raw, source, _ = _read(path, environ)
    return raw, source


def _read(path, environ) -> tuple[dict, str, dict[str, str]]:
    environ = dict(os.environ if environ is None else environ)
    raw: dict = {}
    source = "(defaults)"
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"configuration file not found: {path}") from exc
        except IsADirectoryError as exc:
            raise ConfigError(f"{path}: is a folder, not a configuration file") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot be read: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
        source = str(path)
    return raw, source, _env_overrides(raw, environ)


def load(path: str | os.PathLike | None = None, environ: dict[str, str] | None = None, *,
         sections: Mapping[str, Parse]) -> Config:
    """The configuration in ``path`` (none: the defaults) with the environment's
    overrides (``environ``, default ``os.environ``), each top-level section read by its
    parser in ``sections``, in their order; a section no parser reads is an error. An
    error starts with where the wrong setting is: the file (``gateway.toml:
    userstores.SECONDARY.pool_size: must be >= 1``), or the environment variable that
    set it.

    ``sections`` is ``gateway.settings.SECTIONS``; ``gateway.settings.load`` passes it.
    """
    raw, source, from_env = _read(path, environ)
    base = Path(path).parent if path else Path.cwd()
    fields: dict[str, Any] = {}
    try:
        unknown(raw, "top level", set(sections))
        for name, parse in sections.items():
            fields.update(parse(raw.get(name), base))
    except ConfigError as exc:
        # name the file (or the variable) the wrong setting is in
        where = _source_of(exc, path, from_env)
        raise ConfigError(f"{where}: {exc}" if where else str(exc)) from exc.__cause__
    return Config(**fields, source=source)
