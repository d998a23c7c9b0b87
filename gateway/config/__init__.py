"""The configuration: one TOML file, every setting overridable from the environment.

``docs/configuration.md`` documents every key; ``gateway.example.toml`` shows
them all. An environment variable ``GATEWAY__<SECTION>__<KEY>`` (double
underscores between levels, case-insensitive) overrides ``[section] key``,
for example ``GATEWAY__SERVER__PORT=9000`` or
``GATEWAY__USERSTORES__PRIMARY__URL=postgresql://...``; the value is read as
a TOML value when it parses as one (numbers, booleans, arrays), else as text.

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
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config_values import unknown
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
from .parts import JitConfig, LdapConfig, OutboundConfig, ProviderConfig, StoreConfig

__all__ = [
    "DEFAULT_PORT", "ENV_PREFIX", "PERMISSIONS", "SELF_SERVICE_ATTRIBUTES", "AuditConfig",
    "ClientConfig", "Config", "ConfigError", "IssuerConfig", "JitConfig", "LdapConfig",
    "OutboundConfig", "Parse", "PasswordConfig", "ProviderConfig", "SecurityConfig",
    "StoreConfig", "load", "read",
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
    max_body_bytes: int = 1_048_576
    max_results: int = 1000
    default_count: int = 100
    bulk_max_operations: int = 1000
    bulk_max_payload_bytes: int = 8_388_608
    auth_cache_seconds: float = 30.0
    # what a user may change of its own account (SCIM /Me), lower-case names
    self_service_attributes: frozenset[str] = SELF_SERVICE_ATTRIBUTES
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
    source: str = "(defaults)"

    @property
    def primary(self) -> StoreConfig:
        return self.stores["PRIMARY"]


def _env_overrides(raw: dict, environ: dict[str, str]) -> None:
    for key, text in environ.items():
        if not key.upper().startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in key[len(ENV_PREFIX):].split("__") if p]
        if not parts:
            continue
        node = raw
        for part in parts[:-1]:
            # user store domains are upper-case by convention; match any case
            match = next((k for k in node if k.lower() == part), part)
            node = node.setdefault(match, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{key}: {part!r} is not a section")
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text
        last = next((k for k in node if k.lower() == parts[-1]), parts[-1])
        node[last] = value


def read(path: str | os.PathLike | None = None,
         environ: dict[str, str] | None = None) -> tuple[dict, str]:
    """The file's TOML (none: empty) with the environment's overrides, and where it is
    from (the file, or ``"(defaults)"``)."""
    environ = dict(os.environ if environ is None else environ)
    raw: dict = {}
    source = "(defaults)"
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"configuration file not found: {path}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
        source = str(path)
    _env_overrides(raw, environ)
    return raw, source


def load(path: str | os.PathLike | None = None, environ: dict[str, str] | None = None, *,
         sections: Mapping[str, Parse]) -> Config:
    """The configuration in ``path`` (none: the defaults) with the environment's
    overrides (``environ``, default ``os.environ``), each top-level section read by its
    parser in ``sections``, in their order; a section no parser reads is an error.

    ``sections`` is ``gateway.settings.SECTIONS``; ``gateway.settings.load`` passes it.
    """
    raw, source = read(path, environ)
    unknown(raw, "top level", set(sections))
    base = Path(path).parent if path else Path.cwd()
    fields: dict[str, Any] = {}
    for name, parse in sections.items():
        fields.update(parse(raw.get(name), base))
    return Config(**fields, source=source)
