"""The settings of one connector: an ``[[outbound.connectors]]`` table, typed.

Read from the configuration here (``parse_connector``, for each table that
``gateway.outbound.config.parse_outbound`` finds; see docs/outbound.md for every key)
and handed to the connector's constructor (``connectors.registry.build(cfg,
session)``). It lives here, next to the connectors, so that a connector needs nothing
from the outbound engine; the fields that decide which changes reach a connector and
how often a delivery is tried (``roles``, ``rule``, ``domains``, ``blocking``,
``max_attempts``) are read by the dispatcher only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gateway.config_values import secret, string_table, strings, typed, unknown
from gateway.errors import ConfigError

AUTH_KINDS = ("none", "basic", "bearer", "api_key", "wss")
# the secrets: each may be given as KEY or as KEY_file, a file holding it
SECRETS = ("password", "token", "api_key", "default_password")
KEYS = {
    "name", "type", "url", "enabled", "blocking", "auth", "username", "password", "token",
    "api_key_header", "api_key", "roles", "rule", "provision_groups", "provision_passwords",
    "default_password", "attributes", "domains", "timeout_seconds", "max_attempts", "options",
    "verify_tls", *(f"{key}_file" for key in SECRETS),
}


@dataclass(frozen=True)
class ConnectorConfig:
    """One downstream system and how changes reach it."""

    name: str
    type: str  # scim2, scim11, spml, or a third-party connector's entry point name
    url: str
    enabled: bool = True
    blocking: bool = False  # the inbound reply waits for this connector's delivery
    auth: str = "none"  # none, basic, bearer, api_key, wss (WS-Security UsernameToken)
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # secrets: never in a repr
    token: str | None = field(default=None, repr=False)
    api_key_header: str = "X-API-Key"
    api_key: str | None = field(default=None, repr=False)
    verify_tls: bool = True
    roles: tuple[str, ...] = ()  # role-based: only members of these roles (groups)
    rule: str | None = None  # rule-based: a SCIM filter the user must match
    provision_groups: bool = True
    provision_passwords: bool = False
    # sent on create when no password is provisioned
    default_password: str | None = field(default=None, repr=False)
    attributes: tuple[tuple[str, str], ...] = ()  # target attribute -> canonical path
    domains: tuple[str, ...] = ()  # user store domains whose changes go out (empty: all)
    timeout_seconds: float = 10.0
    max_attempts: int | None = None  # default: [outbound] max_attempts
    options: dict = field(default_factory=dict)  # connector-type-specific settings


def parse_connector(sec, where: str, base: Path | None = None) -> ConnectorConfig:
    """One ``[[outbound.connectors]]`` table (``where``: ``outbound.connectors[i]``;
    ``base``: the folder the ``*_file`` secrets are relative to, default the working
    folder)."""
    base = Path.cwd() if base is None else base
    if not isinstance(sec, dict):
        raise ConfigError(f"{where} must be a table")
    unknown(sec, where, KEYS)
    name = typed(sec, where, "name", str, None)
    kind = typed(sec, where, "type", str, None)
    url = typed(sec, where, "url", str, None)
    if not name or not kind or not url:
        raise ConfigError(f"{where}: name, type and url are required")
    auth = typed(sec, where, "auth", str, "none")
    if auth not in AUTH_KINDS:
        raise ConfigError(f"{where}.auth must be one of {', '.join(AUTH_KINDS)}")
    options = sec.get("options", {})
    if not isinstance(options, dict):
        raise ConfigError(f"{where}.options must be a table")
    rule = typed(sec, where, "rule", str, None)
    if rule:
        from gateway.model.parsing import parse_filter
        from gateway.model.registry import DEFAULT

        try:
            parse_filter(DEFAULT.user, rule)
        except Exception as exc:  # noqa: BLE001 - any parse error is a config error
            raise ConfigError(f"{where}.rule is not a valid SCIM filter: {exc}") from None
    return ConnectorConfig(
        name=name, type=kind, url=url,
        enabled=typed(sec, where, "enabled", bool, True),
        blocking=typed(sec, where, "blocking", bool, False),
        auth=auth,
        username=typed(sec, where, "username", str, None),
        password=secret(sec, where, "password", base),
        token=secret(sec, where, "token", base),
        api_key_header=typed(sec, where, "api_key_header", str, "X-API-Key"),
        api_key=secret(sec, where, "api_key", base),
        verify_tls=typed(sec, where, "verify_tls", bool, True),
        roles=strings(sec, where, "roles"),
        rule=rule,
        provision_groups=typed(sec, where, "provision_groups", bool, True),
        provision_passwords=typed(sec, where, "provision_passwords", bool, False),
        default_password=secret(sec, where, "default_password", base),
        attributes=string_table(sec, where, "attributes"),
        domains=tuple(d.upper() for d in strings(sec, where, "domains")),
        timeout_seconds=typed(sec, where, "timeout_seconds", float, 10.0),
        max_attempts=typed(sec, where, "max_attempts", int, None),
        options=dict(options),
    )
