"""Outbound provisioning settings: ``[outbound]`` and its ``[[outbound.connectors]]``.

See docs/outbound.md for every key. Each connector's settings are a
``connectors.config.ConnectorConfig`` (the connectors' own type, so that they need
nothing from here).
"""

from __future__ import annotations

from dataclasses import dataclass

from connectors.config import ConnectorConfig

from ..config_values import string_table, strings, typed
from ..errors import ConfigError

AUTH_KINDS = ("none", "basic", "bearer", "api_key", "wss")
CONNECTOR_KEYS = {
    "name", "type", "url", "enabled", "blocking", "auth", "username", "password", "token",
    "api_key_header", "api_key", "roles", "rule", "provision_groups", "provision_passwords",
    "default_password", "attributes", "domains", "timeout_seconds", "max_attempts", "options",
    "verify_tls",
}
OUTBOUND_KEYS = {
    "database", "poll_interval_ms", "concurrency", "lease_seconds", "max_attempts",
    "backoff_base_seconds", "backoff_max_seconds", "blocking_timeout_seconds",
    "retention_hours", "connectors", "enabled", "dispatcher", "dispatcher_nice",
}
DISPATCHERS = ("process", "inline", "external")


@dataclass(frozen=True)
class OutboundConfig:
    enabled: bool = True
    # where `gateway serve` runs the dispatcher: "process" (a process of its own next to
    # the HTTP workers), "inline" (in every HTTP worker), "external" (not at all: a
    # `gateway dispatch` elsewhere does)
    dispatcher: str = "process"
    dispatcher_nice: int = 10  # the dispatcher process yields the CPU to the HTTP workers
    database: str | None = None  # where deliveries and remote ids live (default: PRIMARY's)
    poll_interval_ms: int = 100
    concurrency: int = 32
    lease_seconds: float = 60.0
    max_attempts: int = 12
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 600.0
    blocking_timeout_seconds: float = 10.0
    retention_hours: float = 168.0
    connectors: tuple[ConnectorConfig, ...] = ()

    @property
    def active(self) -> tuple[ConnectorConfig, ...]:
        """The connectors that are enabled."""
        return tuple(c for c in self.connectors if c.enabled)


def parse_outbound(raw: dict | None) -> OutboundConfig:
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ConfigError("[outbound] must be a table")
    unknown = set(raw) - OUTBOUND_KEYS
    if unknown:
        raise ConfigError(f"[outbound]: unknown keys {sorted(unknown)}")
    where = "outbound"
    connectors = []
    names = set()
    raw_connectors = raw.get("connectors", [])
    if not isinstance(raw_connectors, list):
        raise ConfigError("[[outbound.connectors]] must be an array of tables")
    for i, sec in enumerate(raw_connectors):
        cw = f"outbound.connectors[{i}]"
        if not isinstance(sec, dict):
            raise ConfigError(f"{cw} must be a table")
        unknown = set(sec) - CONNECTOR_KEYS
        if unknown:
            raise ConfigError(f"{cw}: unknown keys {sorted(unknown)}")
        name = typed(sec, cw, "name", str, None)
        kind = typed(sec, cw, "type", str, None)
        url = typed(sec, cw, "url", str, None)
        if not name or not kind or not url:
            raise ConfigError(f"{cw}: name, type and url are required")
        if name in names:
            raise ConfigError(f"{cw}: the connector name {name!r} is used twice")
        names.add(name)
        auth = typed(sec, cw, "auth", str, "none")
        if auth not in AUTH_KINDS:
            raise ConfigError(f"{cw}.auth must be one of {', '.join(AUTH_KINDS)}")
        options = sec.get("options", {})
        if not isinstance(options, dict):
            raise ConfigError(f"{cw}.options must be a table")
        rule = typed(sec, cw, "rule", str, None)
        if rule:
            from ..model.query import parse_filter
            from ..model.registry import DEFAULT

            try:
                parse_filter(DEFAULT.user, rule)
            except Exception as exc:  # noqa: BLE001 - any parse error is a config error
                raise ConfigError(f"{cw}.rule is not a valid SCIM filter: {exc}") from None
        connectors.append(ConnectorConfig(
            name=name, type=kind, url=url,
            enabled=typed(sec, cw, "enabled", bool, True),
            blocking=typed(sec, cw, "blocking", bool, False),
            auth=auth,
            username=typed(sec, cw, "username", str, None),
            password=typed(sec, cw, "password", str, None),
            token=typed(sec, cw, "token", str, None),
            api_key_header=typed(sec, cw, "api_key_header", str, "X-API-Key"),
            api_key=typed(sec, cw, "api_key", str, None),
            verify_tls=typed(sec, cw, "verify_tls", bool, True),
            roles=strings(sec, cw, "roles"),
            rule=rule,
            provision_groups=typed(sec, cw, "provision_groups", bool, True),
            provision_passwords=typed(sec, cw, "provision_passwords", bool, False),
            default_password=typed(sec, cw, "default_password", str, None),
            attributes=string_table(sec, cw, "attributes"),
            domains=tuple(d.upper() for d in strings(sec, cw, "domains")),
            timeout_seconds=typed(sec, cw, "timeout_seconds", float, 10.0),
            max_attempts=typed(sec, cw, "max_attempts", int, None),
            options=dict(options),
        ))
    cfg = OutboundConfig(
        enabled=typed(raw, where, "enabled", bool, True),
        dispatcher=typed(raw, where, "dispatcher", str, "process"),
        dispatcher_nice=typed(raw, where, "dispatcher_nice", int, 10),
        database=typed(raw, where, "database", str, None),
        poll_interval_ms=typed(raw, where, "poll_interval_ms", int, 100),
        concurrency=typed(raw, where, "concurrency", int, 32),
        lease_seconds=typed(raw, where, "lease_seconds", float, 60.0),
        max_attempts=typed(raw, where, "max_attempts", int, 12),
        backoff_base_seconds=typed(raw, where, "backoff_base_seconds", float, 1.0),
        backoff_max_seconds=typed(raw, where, "backoff_max_seconds", float, 600.0),
        blocking_timeout_seconds=typed(raw, where, "blocking_timeout_seconds", float, 10.0),
        retention_hours=typed(raw, where, "retention_hours", float, 168.0),
        connectors=tuple(connectors),
    )
    if cfg.concurrency < 1 or cfg.max_attempts < 1 or cfg.poll_interval_ms < 1:
        raise ConfigError("[outbound]: concurrency, max_attempts, poll_interval_ms must be >= 1")
    if cfg.dispatcher not in DISPATCHERS:
        raise ConfigError(f"[outbound] dispatcher is one of {', '.join(DISPATCHERS)}")
    if not 0 <= cfg.dispatcher_nice <= 19:
        raise ConfigError("[outbound] dispatcher_nice is between 0 and 19")
    return cfg
