"""The typed settings of the parts that read their own sections.

The types live here, at the bottom of the layers, because ``Config`` holds them and
every layer may read ``Config``; each section is read by the part it configures
(``gateway.settings`` hands those parsers to ``gateway.config.load``):

- ``[userstores.<DOMAIN>]``: ``StoreConfig`` (and ``LdapConfig``), read by
  ``userstores.config`` (and ``userstores.ldap.config``);
- ``[outbound]``: ``OutboundConfig``, read by ``gateway.outbound.config``; each of its
  ``[[outbound.connectors]]`` is a ``connectors.config.ConnectorConfig``, read by
  ``connectors.config``;
- ``[jit]``: ``JitConfig`` (and ``ProviderConfig``), read by ``gateway.jit.config``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

from .. import redact

if TYPE_CHECKING:  # the connectors' own type: connectors sit above the settings
    from connectors.config import ConnectorConfig


def _repr_without_passwords(self) -> str:
    """The dataclass's repr with the password of every URL in it masked (``gateway.redact``):
    a store's ``url`` or the outbound ``database`` may hold one."""
    def shown(value):
        return redact.text(value) if isinstance(value, str) else value

    return (f"{type(self).__name__}("
            + ", ".join(f"{f.name}={shown(getattr(self, f.name))!r}"
                        for f in fields(self) if f.repr) + ")")


# --- [userstores.<DOMAIN>] -----------------------------------------------------------------


@dataclass(frozen=True)
class LdapConfig:
    """How an LDAP store reaches and maps its directory (see docs/ldap.md)."""

    bind_dn: str = ""
    bind_password: str = field(default="", repr=False)  # a secret: never in a repr
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
    # /health/ready needs it to answer (PRIMARY always does)
    required: bool = False

    __repr__ = _repr_without_passwords


# --- [outbound] --------------------------------------------------------------------------------


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

    __repr__ = _repr_without_passwords

    @property
    def active(self) -> tuple[ConnectorConfig, ...]:
        """The connectors that are enabled."""
        return tuple(c for c in self.connectors if c.enabled)


# --- [jit] -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderConfig:
    """One trusted identity provider whose logins create and update local users."""

    name: str
    type: str  # oidc or saml
    issuer: str  # OIDC iss / SAML IdP entity id
    audience: str  # OIDC client id / our SAML SP entity id
    algorithms: tuple[str, ...] = ("RS256", "ES256", "PS256")
    jwks: dict | None = None  # inline JWKS, or from jwks_file
    jwks_url: str | None = None  # fetched, cached, refreshed on an unknown kid
    jwks_cache_seconds: float = 3600.0
    certificates: tuple[str, ...] = ()  # SAML signing certificates (PEM)
    leeway_seconds: int = 60
    username_claim: str = "preferred_username"  # SAML: an attribute name, or NameID
    subject_claim: str = "sub"  # SAML: NameID
    claims: tuple[tuple[str, str], ...] = ()  # IdP claim / SAML attribute -> canonical path
    roles_claim: str | None = None  # the claim/attribute listing the user's IdP groups
    roles: tuple[tuple[str, str], ...] = ()  # IdP group -> local role (group) name
    mode: str = "silent"  # silent, username, password, consent
    domain: str = "PRIMARY"  # a fixed user store domain, or "as_in_username"
    link_existing: bool = False  # link to an unlinked local user of the same name
    owned_claims: tuple[str, ...] | None = None  # claims the IdP owns (default: all mapped)
    max_age_seconds: int = 3600  # a token/assertion issued longer ago is refused


@dataclass(frozen=True)
class JitConfig:
    providers: tuple[ProviderConfig, ...] = field(default_factory=tuple)
