"""An LDAP store's settings: the LDAP keys of a ``[userstores.<DOMAIN>]`` with
``type = "ldap"`` (see docs/ldap.md), read into ``LdapConfig``.

``LdapConfig`` lives with the other settings types in ``gateway.config`` (``Config``
holds it); it is named here too, next to the code it configures.
"""

from __future__ import annotations

from pathlib import Path

from gateway.config import LdapConfig
from gateway.config_values import secret, string_table, strings, typed
from gateway.errors import ConfigError

__all__ = ["KEYS", "LdapConfig", "parse_ldap"]

KEYS = frozenset({
    "bind_dn", "bind_password", "bind_password_file", "users_base", "groups_base", "flavor",
    "start_tls", "tls_verify", "ca_file", "timeout_seconds", "page_size", "user_object_classes",
    "group_object_classes", "attributes", "unmapped", "id_attribute"})


def parse_ldap(sec: dict, where: str, base: Path) -> LdapConfig:
    """The LDAP settings of the store section ``sec`` (``where``: ``userstores.<DOMAIN>``;
    ``base``: the folder ``bind_password_file`` is relative to); its other keys are the
    store's (``userstores.config``)."""
    cfg = LdapConfig(
        bind_dn=typed(sec, where, "bind_dn", str, ""),
        bind_password=secret(sec, where, "bind_password", base) or "",
        users_base=typed(sec, where, "users_base", str, ""),
        groups_base=typed(sec, where, "groups_base", str, ""),
        flavor=typed(sec, where, "flavor", str, "openldap"),
        start_tls=typed(sec, where, "start_tls", bool, False),
        tls_verify=typed(sec, where, "tls_verify", bool, True),
        ca_file=typed(sec, where, "ca_file", str, None),
        timeout_seconds=typed(sec, where, "timeout_seconds", float, 5.0),
        page_size=typed(sec, where, "page_size", int, 500),
        user_object_classes=strings(sec, where, "user_object_classes"),
        group_object_classes=strings(sec, where, "group_object_classes"),
        attributes=string_table(sec, where, "attributes"),
        unmapped=typed(sec, where, "unmapped", str, "refuse"),
        id_attribute=typed(sec, where, "id_attribute", str, ""),
    )
    if cfg.flavor not in ("openldap", "ad"):
        raise ConfigError(f"[{where}] flavor must be \"openldap\" or \"ad\"")
    if cfg.unmapped not in ("refuse", "ignore"):
        raise ConfigError(f"[{where}] unmapped must be \"refuse\" or \"ignore\"")
    if not cfg.users_base or not cfg.groups_base:
        raise ConfigError(f"[{where}] users_base and groups_base are required")
    if not 1 <= cfg.page_size <= 10_000 or cfg.timeout_seconds <= 0:
        raise ConfigError(f"[{where}] page_size is 1..10000, timeout_seconds > 0")
    return cfg
