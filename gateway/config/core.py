"""The gateway's own sections: their types and how each is read.

Each parser takes its section as read (``None`` when the file has none) and the folder
file names are relative to, and returns the ``Config`` fields it sets; errors name the
section and key (``server.port``, ``clients[1]``). The sections of the parts above this
layer (user stores, outbound, JIT) are read by those parts (``gateway.settings``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any

from ..config_values import algorithms, jwks, secret, table, typed, unknown
from ..errors import ConfigError

DEFAULT_PORT = 8280

PERMISSIONS = tuple(
    f"{kind}:{action}"
    for kind in ("users", "groups")
    for action in ("list", "view", "create", "update", "delete")
) + ("users:authenticate", "admin", "jit")

# the default of [auth] self_service_attributes: profile fields, never roles, entitlements,
# groups, account state, userName or externalId
SELF_SERVICE_ATTRIBUTES = frozenset({
    "name", "displayname", "nickname", "profileurl", "preferredlanguage", "locale",
    "timezone", "title", "emails", "phonenumbers", "ims", "photos", "addresses", "password"})


@dataclass(frozen=True)
class ClientConfig:
    name: str
    permissions: tuple[str, ...]
    secret: str | None = field(default=None, repr=False)  # never in a repr (logs)
    secret_hash: str | None = field(default=None, repr=False)
    # what this client's changes do: persist and provision onward (default), or only
    # persist (e.g. a feed from a system that must not get its own changes back)
    provisioning: str = "persist_provision"


@dataclass(frozen=True)
class IssuerConfig:
    issuer: str
    audience: str
    jwks: dict
    algorithms: tuple[str, ...] = ("RS256", "ES256", "PS256", "EdDSA")
    scope_permissions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    subject_claim: str = "sub"
    leeway_seconds: int = 60


@dataclass(frozen=True)
class PasswordConfig:
    time_cost: int = 2
    memory_cost_kib: int = 19456
    parallelism: int = 1
    # the password policy (gateway.password_policy), on every path that sets a password
    min_length: int = 1
    max_length: int = 1024
    min_classes: int = 0  # of lower-case, upper-case, digits, others
    pattern: str | None = None  # a regular expression the whole password must match
    max_age_days: int = 0  # a password older than this no longer signs in (0: never)
    history: int = 0  # a new password may not be one of the last this many (0: any)


@dataclass(frozen=True)
class AuditConfig:
    """``[audit]``: the audit trail (``gateway.audit``)."""

    enabled: bool = True
    retention_days: int = 365  # events older than this are deleted (0: kept forever)


@dataclass(frozen=True)
class SecurityConfig:
    """``[security]``: account lockout and login throttling."""

    lockout_attempts: int = 5  # consecutive failures that lock an account (0: never)
    lockout_seconds: float = 300.0  # the first lockout; each next one lasts growth times more
    lockout_growth: float = 2.0
    lockout_max_seconds: float = 86_400.0
    # failed logins allowed at once, and regained per minute, per account name and per
    # source address; past them a login is refused (429) before any password is checked
    account_burst: int = 10
    account_per_minute: float = 10.0
    address_burst: int = 30
    address_per_minute: float = 30.0


def _perms(value, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise ConfigError(f"{where}: permissions must be a list of strings")
    for p in value:
        if p not in ("*", "users:*", "groups:*") and p not in PERMISSIONS:
            raise ConfigError(f"{where}: unknown permission {p!r} "
                              f"(use *, users:*, groups:* or one of {', '.join(PERMISSIONS)})")
    return tuple(value)


def _array(value, name: str) -> list:
    """An array of tables as read (None when absent: empty)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"[[{name}]] must be an array of tables")
    return value


SERVER_KEYS = frozenset({"host", "port", "workers", "base_url", "trusted_proxies",
                         "shutdown_grace_seconds", "cert_file", "key_file"})


def server(value, base: Path) -> dict[str, Any]:
    sec = table(value, "server")
    unknown(sec, "server", SERVER_KEYS)
    fields = {"host": typed(sec, "server", "host", str, "127.0.0.1"),
              "port": typed(sec, "server", "port", int, DEFAULT_PORT),
              "workers": typed(sec, "server", "workers", int, 1),
              "base_url": typed(sec, "server", "base_url", str, None),
              "trusted_proxies": _networks(sec.get("trusted_proxies", [])),
              "shutdown_grace_seconds": typed(sec, "server", "shutdown_grace_seconds", float,
                                              10.0)}
    if not 0 < fields["port"] < 65536:
        raise ConfigError(f"server.port: {fields['port']} is not a TCP port")
    if fields["workers"] < 1:
        raise ConfigError(f"server.workers: must be >= 1 (is {fields['workers']})")
    if fields["shutdown_grace_seconds"] < 0:
        raise ConfigError("server.shutdown_grace_seconds: must be >= 0 (is "
                          f"{fields['shutdown_grace_seconds']:g})")
    cert = typed(sec, "server", "cert_file", str, None) or None
    key = typed(sec, "server", "key_file", str, None) or None
    if (cert is None) != (key is None):
        missing, given = ("key_file", "cert_file") if key is None else ("cert_file", "key_file")
        raise ConfigError(f"server.{missing}: missing (server.{given} is set; TLS needs "
                          "both)")
    fields["cert_file"] = _readable(cert, base, "server.cert_file") if cert else None
    fields["key_file"] = _readable(key, base, "server.key_file") if key else None
    return fields


def _networks(value) -> tuple[IPv4Network | IPv6Network, ...]:
    """``[server] trusted_proxies``: a list of CIDRs (or one string, commas between them,
    as an environment variable gives it)."""
    if isinstance(value, str):
        value = [v for v in (p.strip() for p in value.split(",")) if v]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError("server.trusted_proxies: must be a list of CIDRs "
                          '(e.g. ["127.0.0.1/32", "10.0.0.0/8"])')
    networks = []
    for text in value:
        try:
            networks.append(ip_network(text.strip()))
        except ValueError as exc:
            raise ConfigError(f"server.trusted_proxies: {text!r} is not a network in CIDR "
                              f"notation ({exc})") from None
    return tuple(networks)


def _readable(name: str, base: Path, key: str) -> str:
    """A file setting (relative to the configuration file's folder), which must be a file
    this process can read: its absolute path."""
    path = Path(name).expanduser()
    path = path if path.is_absolute() else base / path
    if not path.is_file():
        raise ConfigError(f"{key}: {path} does not exist or is not a file")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise ConfigError(f"{key}: {path} cannot be read ({exc.strerror or exc})") from None
    return str(path.resolve())


def limits(value, base: Path) -> dict[str, Any]:
    sec = table(value, "limits")
    unknown(sec, "limits", {"max_body_bytes", "max_results", "default_count",
                            "bulk_max_operations", "bulk_max_payload_bytes"})
    max_body_bytes = typed(sec, "limits", "max_body_bytes", int, 1_048_576)
    max_results = typed(sec, "limits", "max_results", int, 1000)
    fields = {
        "max_body_bytes": max_body_bytes,
        "max_results": max_results,
        "default_count": typed(sec, "limits", "default_count", int, min(100, max_results)),
        "bulk_max_operations": typed(sec, "limits", "bulk_max_operations", int, 1000),
        "bulk_max_payload_bytes": typed(sec, "limits", "bulk_max_payload_bytes", int,
                                        8_388_608),
    }
    if max_results < 1:
        raise ConfigError(f"limits.max_results: must be >= 1 (is {max_results})")
    if not 0 < fields["default_count"] <= max_results:
        raise ConfigError(f"limits.default_count: must be between 1 and max_results "
                          f"({max_results}), is {fields['default_count']}")
    for key, least in (("max_body_bytes", 1024), ("bulk_max_operations", 1),
                       ("bulk_max_payload_bytes", 1024)):
        if fields[key] < least:
            raise ConfigError(f"limits.{key}: must be >= {least} (is {fields[key]})")
    return fields


def passwords(value, base: Path) -> dict[str, Any]:
    """How passwords are hashed; the policy's settings are checked by the policy
    (``gateway.password_policy.check_config``)."""
    sec = table(value, "passwords")
    unknown(sec, "passwords", {"time_cost", "memory_cost_kib", "parallelism", "min_length",
                               "max_length", "min_classes", "pattern", "max_age_days",
                               "history"})
    cfg = PasswordConfig(
        time_cost=typed(sec, "passwords", "time_cost", int, 2),
        memory_cost_kib=typed(sec, "passwords", "memory_cost_kib", int, 19456),
        parallelism=typed(sec, "passwords", "parallelism", int, 1),
        min_length=typed(sec, "passwords", "min_length", int, 1),
        max_length=typed(sec, "passwords", "max_length", int, 1024),
        min_classes=typed(sec, "passwords", "min_classes", int, 0),
        pattern=typed(sec, "passwords", "pattern", str, None),
        max_age_days=typed(sec, "passwords", "max_age_days", int, 0),
        history=typed(sec, "passwords", "history", int, 0),
    )
    for key, least in (("time_cost", 1), ("memory_cost_kib", 8), ("parallelism", 1)):
        if getattr(cfg, key) < least:
            raise ConfigError(f"passwords.{key}: must be >= {least} (is {getattr(cfg, key)})")
    return {"passwords": cfg}


def auth(value, base: Path) -> dict[str, Any]:
    sec = table(value, "auth")
    unknown(sec, "auth", {"cache_seconds", "self_service_attributes",
                          "provision_bootstrap_admin"})
    self_service = sec.get("self_service_attributes", sorted(SELF_SERVICE_ATTRIBUTES))
    if not isinstance(self_service, list) or not all(isinstance(a, str) for a in self_service):
        raise ConfigError("auth.self_service_attributes: must be a list of attribute names")
    return {"auth_cache_seconds": typed(sec, "auth", "cache_seconds", float, 30.0),
            "self_service_attributes": frozenset(a.lower() for a in self_service),
            "provision_bootstrap_admin": typed(sec, "auth", "provision_bootstrap_admin", bool,
                                               False)}


def security(value, base: Path) -> dict[str, Any]:
    sec = table(value, "security")
    defaults = SecurityConfig()
    unknown(sec, "security", set(SecurityConfig.__dataclass_fields__))
    values = {}
    for name in SecurityConfig.__dataclass_fields__:
        kind = int if isinstance(getattr(defaults, name), int) else float
        values[name] = typed(sec, "security", name, kind, getattr(defaults, name))
    cfg = SecurityConfig(**values)
    rules = (("lockout_attempts", cfg.lockout_attempts >= 0, "must be >= 0"),
             ("lockout_seconds", cfg.lockout_seconds > 0, "must be > 0"),
             ("lockout_growth", cfg.lockout_growth >= 1, "must be >= 1"),
             ("lockout_max_seconds", cfg.lockout_max_seconds >= cfg.lockout_seconds,
              "must be >= lockout_seconds"),
             ("account_burst", cfg.account_burst >= 1, "must be >= 1"),
             ("address_burst", cfg.address_burst >= 1, "must be >= 1"),
             ("account_per_minute", cfg.account_per_minute > 0, "must be > 0"),
             ("address_per_minute", cfg.address_per_minute > 0, "must be > 0"))
    for key, ok, rule in rules:
        if not ok:
            raise ConfigError(f"security.{key}: {rule} (is {getattr(cfg, key):g})")
    return {"security": cfg}


def audit(value, base: Path) -> dict[str, Any]:
    sec = table(value, "audit")
    unknown(sec, "audit", {"enabled", "retention_days"})
    cfg = AuditConfig(enabled=typed(sec, "audit", "enabled", bool, True),
                      retention_days=typed(sec, "audit", "retention_days", int, 365))
    if cfg.retention_days < 0:
        raise ConfigError(f"audit.retention_days: must be >= 0 (0: keep forever), "
                          f"is {cfg.retention_days}")
    return {"audit": cfg}


def soap(value, base: Path) -> dict[str, Any]:
    """[soap] unqualified_names: "primary" (WSO2's rule: a name without a domain is
    PRIMARY's) or "any_store" (else the one other store's that has it)."""
    sec = table(value, "soap")
    unknown(sec, "soap", {"unqualified_names"})
    names = typed(sec, "soap", "unqualified_names", str, "primary")
    if names not in ("primary", "any_store"):
        raise ConfigError(f'soap.unqualified_names: must be "primary" (WSO2\'s rule) or '
                          f'"any_store", not {names!r}')
    return {"soap_unqualified_names": names}


def clients(value, base: Path) -> dict[str, Any]:
    found = []
    for i, sec in enumerate(_array(value, "clients")):
        where = f"clients[{i}]"
        if not isinstance(sec, dict):
            raise ConfigError(f"{where} must be a table")
        unknown(sec, where, {"name", "secret", "secret_file", "secret_hash", "secret_hash_file",
                             "permissions", "provisioning"})
        name = typed(sec, where, "name", str, None)
        if not name:
            raise ConfigError(f"{where}: 'name' is required")
        # each may be in the file or in a file of its own (secret_file, secret_hash_file)
        client_secret = secret(sec, where, "secret", base)
        secret_hash = secret(sec, where, "secret_hash", base)
        if bool(client_secret) == bool(secret_hash):
            raise ConfigError(f"{where} ({name}): give exactly one of 'secret' or 'secret_hash' "
                              "(or 'secret_file', 'secret_hash_file')")
        if secret_hash and not str(secret_hash).startswith("$argon2"):
            raise ConfigError(f"{where} ({name}): secret_hash must be an argon2 hash "
                              "(make one with: gateway hash-password)")
        provisioning = typed(sec, where, "provisioning", str, "persist_provision")
        if provisioning not in ("persist_provision", "persist", "provision"):
            raise ConfigError(f"{where} ({name}): provisioning is \"persist_provision\", "
                              "\"persist\" or \"provision\"")
        found.append(ClientConfig(name, _perms(sec.get("permissions", []), where),
                                  client_secret, secret_hash, provisioning))
    return {"clients": tuple(found)}


def issuers(value, base: Path) -> dict[str, Any]:
    found = []
    for i, sec in enumerate(_array(value, "issuers")):
        where = f"issuers[{i}]"
        if not isinstance(sec, dict):
            raise ConfigError(f"{where} must be a table")
        unknown(sec, where, {"issuer", "audience", "jwks", "jwks_file", "algorithms",
                             "scope_permissions", "subject_claim", "leeway_seconds"})
        issuer = typed(sec, where, "issuer", str, None)
        audience = typed(sec, where, "audience", str, None)
        if not issuer or not audience:
            raise ConfigError(f"{where}: 'issuer' and 'audience' are required")
        keys = jwks(sec, where, base)
        if keys is None:
            raise ConfigError(f"{where}: a JWKS document ('jwks' or 'jwks_file') is required")
        algs = algorithms(sec, where, IssuerConfig.algorithms)
        scopes = {k: _perms(v, f"{where}.scope_permissions.{k}")
                  for k, v in table(sec.get("scope_permissions"), "scope_permissions").items()}
        found.append(IssuerConfig(issuer, audience, keys, algs, scopes,
                                  typed(sec, where, "subject_claim", str, "sub"),
                                  typed(sec, where, "leeway_seconds", int, 60)))
    return {"issuers": tuple(found)}


def extensions(value, base: Path) -> dict[str, Any]:
    """[[extensions]]: custom schema extensions, as (resource type name, Schema)."""
    from ..model.registry import SchemaRegistry, extension_from_config

    raw = _array(value, "extensions")
    try:
        found = tuple(extension_from_config(e, f"extensions[{i}]") for i, e in enumerate(raw))
        SchemaRegistry.build(found)  # clashes between them or with built-in schemas
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return {"extensions": found}


def roles(value, base: Path) -> dict[str, Any]:
    found = {"admin": ("*",)}
    for role, perms in table(value, "roles").items():
        found[role] = _perms(perms, f"roles.{role}")
    return {"roles": found}
