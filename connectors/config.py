"""The settings of one connector: an ``[[outbound.connectors]]`` table, typed.

Read from the configuration by ``gateway.outbound.config.parse_outbound`` (see
docs/outbound.md for every key) and handed to the connector's constructor
(``connectors.registry.build(cfg, session)``). It lives here, next to the connectors,
so that a connector needs nothing from the outbound engine; the fields that decide
which changes reach a connector and how often a delivery is tried (``roles``,
``rule``, ``domains``, ``blocking``, ``max_attempts``) are read by the dispatcher only.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
    password: str | None = None
    token: str | None = None
    api_key_header: str = "X-API-Key"
    api_key: str | None = None
    verify_tls: bool = True
    roles: tuple[str, ...] = ()  # role-based: only members of these roles (groups)
    rule: str | None = None  # rule-based: a SCIM filter the user must match
    provision_groups: bool = True
    provision_passwords: bool = False
    default_password: str | None = None  # sent on create when no password is provisioned
    attributes: tuple[tuple[str, str], ...] = ()  # target attribute -> canonical path
    domains: tuple[str, ...] = ()  # user store domains whose changes go out (empty: all)
    timeout_seconds: float = 10.0
    max_attempts: int | None = None  # default: [outbound] max_attempts
    options: dict = field(default_factory=dict)  # connector-type-specific settings
