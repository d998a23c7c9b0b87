"""Outbound provisioning settings: ``[outbound]`` and its ``[[outbound.connectors]]``.

See docs/outbound.md for every key. ``OutboundConfig`` lives with the other settings
types in ``gateway.config`` (``Config`` holds it); each connector's table is read by
``connectors.config.parse_connector`` into the connectors' own type,
``connectors.config.ConnectorConfig`` (so that they need nothing from here).
"""

from __future__ import annotations

from pathlib import Path

from connectors.config import parse_connector

from ..config import OutboundConfig
from ..config_values import secret, typed, unknown
from ..errors import ConfigError

__all__ = ["DISPATCHERS", "OUTBOUND_KEYS", "OutboundConfig", "parse_outbound"]

OUTBOUND_KEYS = {
    "database", "database_file", "poll_interval_ms", "concurrency", "lease_seconds", "max_attempts",
    "backoff_base_seconds", "backoff_max_seconds", "blocking_timeout_seconds",
    "retention_hours", "connectors", "enabled", "dispatcher", "dispatcher_nice",
}
DISPATCHERS = ("process", "inline", "external")


def parse_outbound(raw: dict | None, base: Path | None = None) -> OutboundConfig:
    """``[outbound]`` as read (None when the file has none); ``base``: the folder
    ``*_file`` names are relative to (the configuration file's; default the working
    folder)."""
    base = Path.cwd() if base is None else base
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ConfigError("[outbound] must be a table")
    where = "outbound"
    unknown(raw, where, OUTBOUND_KEYS)
    connectors = []
    names = set()
    raw_connectors = raw.get("connectors", [])
    if not isinstance(raw_connectors, list):
        raise ConfigError("[[outbound.connectors]] must be an array of tables")
    for i, sec in enumerate(raw_connectors):
        cw = f"outbound.connectors[{i}]"
        connector = parse_connector(sec, cw, base)
        if connector.name in names:
            raise ConfigError(f"{cw}: the connector name {connector.name!r} is used twice")
        names.add(connector.name)
        connectors.append(connector)
    cfg = OutboundConfig(
        enabled=typed(raw, where, "enabled", bool, True),
        dispatcher=typed(raw, where, "dispatcher", str, "process"),
        dispatcher_nice=typed(raw, where, "dispatcher_nice", int, 10),
        database=secret(raw, where, "database", base),  # a URL may hold a password
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
