"""The configuration: one TOML file, every setting overridable from the environment.

``docs/configuration.md`` documents every key; ``gateway.example.toml`` shows
them all. An environment variable ``GATEWAY__<SECTION>__<KEY>`` (double
underscores between levels, case-insensitive) overrides ``[section] key``,
for example ``GATEWAY__SERVER__PORT=9000`` or
``GATEWAY__USERSTORES__PRIMARY__URL=postgresql://...``; the value is read as
a TOML value when it parses as one (numbers, booleans, arrays), else as text.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .config_values import string_table, strings, typed
from .errors import ConfigError
from .jit.config import JitConfig, parse_jit
from .outbound.config import OutboundConfig, parse_outbound

DEFAULT_PORT = 8280
DEFAULT_DB = "gateway.db"
ENV_PREFIX = "GATEWAY__"

PERMISSIONS = tuple(
    f"{kind}:{action}"
    for kind in ("users", "groups")
    for action in ("list", "view", "create", "update", "delete")
) + ("users:authenticate", "admin", "jit")


@dataclass(frozen=True)
class LdapConfig:
    """How an LDAP store reaches and maps its directory (see docs/ldap.md)."""

    bind_dn: str = ""
    bind_password: str = ""
    users_base: str = ""
    groups_base: str = ""
    flavor: str = "openldap"  # or "ad"
    start_tls: bool = False
    tls_verify: bool = True
    ca_file: str | None = None
    timeout_seconds: float = 5.0
    page_size: int = 500
    user_object_classes: tuple[str, ...] = ()  # empty: the flavor's
    group_object_classes: tuple[str, ...] = ()
    attributes: tuple[tuple[str, str], ...] = ()  # LDAP attribute -> canonical path, added
    unmapped: str = "refuse"  # or "ignore": attributes the map cannot hold
    id_attribute: str = ""  # empty: the flavor's (entryUUID, objectGUID)


@dataclass(frozen=True)
class StoreConfig:
    domain: str
    url: str
    type: str = "sql"
    read_only: bool = False
    pool_size: int = 8
    ldap: LdapConfig | None = None


@dataclass(frozen=True)
class ClientConfig:
    name: str
    permissions: tuple[str, ...]
    secret: str | None = None
    secret_hash: str | None = None
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


# the default of [auth] self_service_attributes: profile fields, never roles, entitlements,
# groups, account state, userName or externalId
SELF_SERVICE_ATTRIBUTES = frozenset({
    "name", "displayname", "nickname", "profileurl", "preferredlanguage", "locale",
    "timezone", "title", "emails", "phonenumbers", "ims", "photos", "addresses", "password"})


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


def _section(raw: dict, name: str) -> dict:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] must be a table")
    return value


_get = typed


def _security(sec: dict) -> SecurityConfig:
    defaults = SecurityConfig()
    _unknown(sec, "security", set(SecurityConfig.__dataclass_fields__))
    values = {}
    for name in SecurityConfig.__dataclass_fields__:
        kind = int if isinstance(getattr(defaults, name), int) else float
        values[name] = _get(sec, "security", name, kind, getattr(defaults, name))
    cfg = SecurityConfig(**values)
    if cfg.lockout_attempts < 0 or cfg.lockout_seconds <= 0 or cfg.lockout_growth < 1 \
            or cfg.lockout_max_seconds < cfg.lockout_seconds:
        raise ConfigError("security: lockout_attempts >= 0, lockout_seconds > 0, "
                          "lockout_growth >= 1, lockout_max_seconds >= lockout_seconds")
    if min(cfg.account_burst, cfg.address_burst) < 1 or min(
            cfg.account_per_minute, cfg.address_per_minute) <= 0:
        raise ConfigError("security: the bursts are at least 1 and the rates above 0")
    return cfg


def _soap(sec: dict) -> str:
    _unknown(sec, "soap", {"unqualified_names"})
    value = _get(sec, "soap", "unqualified_names", str, "primary")
    if value not in ("primary", "any_store"):
        raise ConfigError('soap.unqualified_names is "primary" (WSO2\'s rule) or "any_store"')
    return value


def _audit(sec: dict) -> AuditConfig:
    _unknown(sec, "audit", {"enabled", "retention_days"})
    cfg = AuditConfig(enabled=_get(sec, "audit", "enabled", bool, True),
                      retention_days=_get(sec, "audit", "retention_days", int, 365))
    if cfg.retention_days < 0:
        raise ConfigError("audit.retention_days is 0 (keep forever) or more")
    return cfg


LDAP_KEYS = ("bind_dn", "bind_password", "users_base", "groups_base", "flavor", "start_tls",
             "tls_verify", "ca_file", "timeout_seconds", "page_size", "user_object_classes",
             "group_object_classes", "attributes", "unmapped", "id_attribute")


def _ldap(sec: dict, where: str) -> LdapConfig:
    cfg = LdapConfig(
        bind_dn=_get(sec, where, "bind_dn", str, ""),
        bind_password=_get(sec, where, "bind_password", str, ""),
        users_base=_get(sec, where, "users_base", str, ""),
        groups_base=_get(sec, where, "groups_base", str, ""),
        flavor=_get(sec, where, "flavor", str, "openldap"),
        start_tls=_get(sec, where, "start_tls", bool, False),
        tls_verify=_get(sec, where, "tls_verify", bool, True),
        ca_file=_get(sec, where, "ca_file", str, None),
        timeout_seconds=_get(sec, where, "timeout_seconds", float, 5.0),
        page_size=_get(sec, where, "page_size", int, 500),
        user_object_classes=strings(sec, where, "user_object_classes"),
        group_object_classes=strings(sec, where, "group_object_classes"),
        attributes=string_table(sec, where, "attributes"),
        unmapped=_get(sec, where, "unmapped", str, "refuse"),
        id_attribute=_get(sec, where, "id_attribute", str, ""),
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


def _unknown(sec: dict, where: str, known: set[str]) -> None:
    extra = set(sec) - known
    if extra:
        raise ConfigError(f"[{where}]: unknown setting(s) {', '.join(sorted(extra))}")


def _perms(value, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise ConfigError(f"{where}: permissions must be a list of strings")
    for p in value:
        if p not in ("*", "users:*", "groups:*") and p not in PERMISSIONS:
            raise ConfigError(f"{where}: unknown permission {p!r} "
                              f"(use *, users:*, groups:* or one of {', '.join(PERMISSIONS)})")
    return tuple(value)


def load(path: str | os.PathLike | None = None, environ: dict[str, str] | None = None) -> Config:
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
    _unknown(raw, "top level", {"server", "limits", "passwords", "auth", "userstores",
                                "clients", "issuers", "roles", "extensions", "outbound",
                                "jit", "security", "audit", "soap"})

    server = _section(raw, "server")
    _unknown(server, "server", {"host", "port", "workers", "base_url"})
    limits = _section(raw, "limits")
    _unknown(limits, "limits", {"max_body_bytes", "max_results", "default_count",
                                "bulk_max_operations", "bulk_max_payload_bytes"})
    pw = _section(raw, "passwords")
    _unknown(pw, "passwords", {"time_cost", "memory_cost_kib", "parallelism", "min_length",
                               "max_length", "min_classes", "pattern", "max_age_days",
                               "history"})
    auth = _section(raw, "auth")
    _unknown(auth, "auth", {"cache_seconds", "self_service_attributes"})
    self_service = auth.get("self_service_attributes", sorted(SELF_SERVICE_ATTRIBUTES))
    if not isinstance(self_service, list) or not all(isinstance(a, str) for a in self_service):
        raise ConfigError("auth.self_service_attributes must be a list of attribute names")

    security = _security(_section(raw, "security"))
    passwords = PasswordConfig(
        time_cost=_get(pw, "passwords", "time_cost", int, 2),
        memory_cost_kib=_get(pw, "passwords", "memory_cost_kib", int, 19456),
        parallelism=_get(pw, "passwords", "parallelism", int, 1),
        min_length=_get(pw, "passwords", "min_length", int, 1),
        max_length=_get(pw, "passwords", "max_length", int, 1024),
        min_classes=_get(pw, "passwords", "min_classes", int, 0),
        pattern=_get(pw, "passwords", "pattern", str, None),
        max_age_days=_get(pw, "passwords", "max_age_days", int, 0),
        history=_get(pw, "passwords", "history", int, 0),
    )
    if passwords.time_cost < 1 or passwords.memory_cost_kib < 8 or passwords.parallelism < 1:
        raise ConfigError("passwords: time_cost >= 1, memory_cost_kib >= 8, parallelism >= 1")
    from .password_policy import check_config

    check_config(passwords)

    stores: dict[str, StoreConfig] = {}
    for domain, sec in _section(raw, "userstores").items():
        if not isinstance(sec, dict):
            raise ConfigError(f"[userstores.{domain}] must be a table")
        where = f"userstores.{domain}"
        kind = _get(sec, where, "type", str, "sql")
        _unknown(sec, where, {"type", "url", "read_only", "pool_size"}
                 | (set(LDAP_KEYS) if kind == "ldap" else set()))
        name = domain.upper()
        if not name.replace("_", "").replace("-", "").isalnum() or "/" in name:
            raise ConfigError(f"[{where}]: a domain name is letters, digits, - and _")
        if name == "INTERNAL":
            raise ConfigError(f"[{where}]: INTERNAL is reserved for internal roles")
        if kind not in ("sql", "ldap"):
            raise ConfigError(f"[{where}]: unknown store type {kind!r} (supported: sql, ldap)")
        url = _get(sec, where, "url", str, None)
        if not url:
            raise ConfigError(f"[{where}]: 'url' is required")
        stores[name] = StoreConfig(name, url, kind, _get(sec, where, "read_only", bool, False),
                                   _get(sec, where, "pool_size", int, 8),
                                   _ldap(sec, where) if kind == "ldap" else None)
    if "PRIMARY" not in stores:
        stores = {"PRIMARY": StoreConfig("PRIMARY", f"sqlite:///{DEFAULT_DB}"),
                  **stores}
    stores = {"PRIMARY": stores["PRIMARY"], **{k: v for k, v in stores.items() if k != "PRIMARY"}}

    clients = []
    raw_clients = raw.get("clients", [])
    if not isinstance(raw_clients, list):
        raise ConfigError("[[clients]] must be an array of tables")
    for i, sec in enumerate(raw_clients):
        where = f"clients[{i}]"
        if not isinstance(sec, dict):
            raise ConfigError(f"{where} must be a table")
        _unknown(sec, where, {"name", "secret", "secret_hash", "permissions", "provisioning"})
        name = _get(sec, where, "name", str, None)
        if not name:
            raise ConfigError(f"{where}: 'name' is required")
        secret, secret_hash = sec.get("secret"), sec.get("secret_hash")
        if bool(secret) == bool(secret_hash):
            raise ConfigError(f"{where} ({name}): give exactly one of 'secret' or 'secret_hash'")
        if secret_hash and not str(secret_hash).startswith("$argon2"):
            raise ConfigError(f"{where} ({name}): secret_hash must be an argon2 hash "
                              "(make one with: gateway hash-password)")
        provisioning = _get(sec, where, "provisioning", str, "persist_provision")
        if provisioning not in ("persist_provision", "persist", "provision"):
            raise ConfigError(f"{where} ({name}): provisioning is \"persist_provision\", "
                              "\"persist\" or \"provision\"")
        clients.append(ClientConfig(name, _perms(sec.get("permissions", []), where),
                                    secret, secret_hash, provisioning))

    issuers = []
    raw_issuers = raw.get("issuers", [])
    if not isinstance(raw_issuers, list):
        raise ConfigError("[[issuers]] must be an array of tables")
    base = Path(path).parent if path else Path.cwd()
    for i, sec in enumerate(raw_issuers):
        where = f"issuers[{i}]"
        if not isinstance(sec, dict):
            raise ConfigError(f"{where} must be a table")
        _unknown(sec, where, {"issuer", "audience", "jwks", "jwks_file", "algorithms",
                              "scope_permissions", "subject_claim", "leeway_seconds"})
        issuer = _get(sec, where, "issuer", str, None)
        audience = _get(sec, where, "audience", str, None)
        if not issuer or not audience:
            raise ConfigError(f"{where}: 'issuer' and 'audience' are required")
        jwks = sec.get("jwks")
        if isinstance(jwks, str):
            try:
                jwks = json.loads(jwks)
            except ValueError as exc:
                raise ConfigError(f"{where}: jwks is not valid JSON: {exc}") from exc
        if sec.get("jwks_file"):
            try:
                jwks = json.loads((base / sec["jwks_file"]).read_text())
            except (OSError, ValueError) as exc:
                raise ConfigError(f"{where}: cannot read jwks_file: {exc}") from exc
        if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
            raise ConfigError(f"{where}: a JWKS document ('jwks' or 'jwks_file') is required")
        algs = tuple(sec.get("algorithms", IssuerConfig.algorithms))
        bad = [a for a in algs if a.lower() == "none" or a.startswith("HS")]
        if bad:
            raise ConfigError(f"{where}: algorithms {bad} are not allowed (asymmetric only)")
        scopes = {k: _perms(v, f"{where}.scope_permissions.{k}")
                  for k, v in _section(sec, "scope_permissions").items()}
        issuers.append(IssuerConfig(issuer, audience, jwks, algs, scopes,
                                    _get(sec, where, "subject_claim", str, "sub"),
                                    _get(sec, where, "leeway_seconds", int, 60)))

    from .model.registry import SchemaRegistry, extension_from_config

    raw_ext = raw.get("extensions", [])
    if not isinstance(raw_ext, list):
        raise ConfigError("[[extensions]] must be an array of tables")
    try:
        extensions = tuple(extension_from_config(e, f"extensions[{i}]")
                           for i, e in enumerate(raw_ext))
        SchemaRegistry.build(extensions)  # clashes between them or with built-in schemas
    except ValueError as exc:
        raise ConfigError(str(exc)) from None

    roles = {"admin": ("*",)}
    for role, perms in _section(raw, "roles").items():
        roles[role] = _perms(perms, f"roles.{role}")

    cfg = Config(
        host=_get(server, "server", "host", str, "127.0.0.1"),
        port=_get(server, "server", "port", int, DEFAULT_PORT),
        workers=_get(server, "server", "workers", int, 1),
        base_url=_get(server, "server", "base_url", str, None),
        max_body_bytes=_get(limits, "limits", "max_body_bytes", int, 1_048_576),
        max_results=_get(limits, "limits", "max_results", int, 1000),
        default_count=_get(limits, "limits", "default_count", int,
                           min(100, _get(limits, "limits", "max_results", int, 1000))),
        bulk_max_operations=_get(limits, "limits", "bulk_max_operations", int, 1000),
        bulk_max_payload_bytes=_get(limits, "limits", "bulk_max_payload_bytes", int, 8_388_608),
        auth_cache_seconds=_get(auth, "auth", "cache_seconds", float, 30.0),
        self_service_attributes=frozenset(a.lower() for a in self_service),
        passwords=passwords,
        security=security,
        audit=_audit(_section(raw, "audit")),
        soap_unqualified_names=_soap(_section(raw, "soap")),
        stores=stores,
        clients=tuple(clients),
        issuers=tuple(issuers),
        roles=roles,
        extensions=extensions,
        outbound=parse_outbound(raw.get("outbound")),
        jit=parse_jit(raw.get("jit"), base),
        source=source,
    )
    if not 0 < cfg.port < 65536:
        raise ConfigError(f"server.port: {cfg.port} is not a TCP port")
    if cfg.workers < 1:
        raise ConfigError("server.workers must be at least 1")
    if not 0 < cfg.default_count <= cfg.max_results:
        raise ConfigError("limits: 0 < default_count <= max_results")
    if cfg.max_body_bytes < 1024:
        raise ConfigError("limits.max_body_bytes must be at least 1024")
    if cfg.bulk_max_operations < 1 or cfg.bulk_max_payload_bytes < 1024:
        raise ConfigError("limits: bulk_max_operations >= 1, bulk_max_payload_bytes >= 1024")
    return cfg
