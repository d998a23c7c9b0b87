"""Just-in-time provisioning settings: ``[[jit.providers]]`` (see docs/jit.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..config_values import string_table, typed
from ..errors import ConfigError

MODES = ("silent", "username", "password", "consent")
KEYS = {
    "name", "type", "issuer", "audience", "algorithms", "jwks", "jwks_file", "jwks_url",
    "jwks_cache_seconds", "certificates", "certificate_files", "leeway_seconds",
    "username_claim", "subject_claim", "claims", "roles_claim", "roles", "mode", "domain",
    "link_existing", "owned_claims", "max_age_seconds",
}
ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
              "ES512", "EdDSA")


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


def parse_jit(raw: dict | None, base: Path) -> JitConfig:
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ConfigError("[jit] must be a table")
    # replay_cache_size: the size of the per-process replay memory there was; replays
    # are now kept in the state database (gateway.once), and the key is ignored
    unknown = set(raw) - {"providers", "replay_cache_size"}
    if unknown:
        raise ConfigError(f"[jit]: unknown keys {sorted(unknown)}")
    providers, names = [], set()
    raw_providers = raw.get("providers", [])
    if not isinstance(raw_providers, list):
        raise ConfigError("[[jit.providers]] must be an array of tables")
    for i, sec in enumerate(raw_providers):
        where = f"jit.providers[{i}]"
        if not isinstance(sec, dict):
            raise ConfigError(f"{where} must be a table")
        unknown = set(sec) - KEYS
        if unknown:
            raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
        name, kind = typed(sec, where, "name", str, None), typed(sec, where, "type", str, None)
        issuer, audience = typed(sec, where, "issuer", str, None), typed(sec, where, "audience",
                                                                      str, None)
        if not name or kind not in ("oidc", "saml") or not issuer or not audience:
            raise ConfigError(f"{where}: name, type (oidc or saml), issuer and audience "
                              "are required")
        if name in names:
            raise ConfigError(f"{where}: the provider name {name!r} is used twice")
        names.add(name)
        mode = typed(sec, where, "mode", str, "silent")
        if mode not in MODES:
            raise ConfigError(f"{where}.mode is one of {', '.join(MODES)}")
        algorithms = tuple(sec.get("algorithms", ProviderConfig.algorithms))
        bad = [a for a in algorithms if a not in ASYMMETRIC]
        if bad:
            raise ConfigError(f"{where}.algorithms {bad} are not allowed (asymmetric "
                              f"signatures only: {', '.join(ASYMMETRIC)})")
        jwks = sec.get("jwks")
        if isinstance(jwks, str):
            try:
                jwks = json.loads(jwks)
            except ValueError as exc:
                raise ConfigError(f"{where}.jwks is not JSON: {exc}") from None
        if sec.get("jwks_file"):
            try:
                jwks = json.loads((base / sec["jwks_file"]).read_text())
            except (OSError, ValueError) as exc:
                raise ConfigError(f"{where}: cannot read jwks_file: {exc}") from None
        jwks_url = typed(sec, where, "jwks_url", str, None)
        certificates = list(sec.get("certificates", []))
        for path in sec.get("certificate_files", []):
            try:
                certificates.append((base / path).read_text())
            except OSError as exc:
                raise ConfigError(f"{where}: cannot read {path}: {exc}") from None
        if kind == "oidc" and jwks is None and not jwks_url:
            raise ConfigError(f"{where}: an OIDC provider needs jwks, jwks_file or jwks_url")
        if kind == "saml" and not certificates:
            raise ConfigError(f"{where}: a SAML provider needs its signing certificates")
        owned = sec.get("owned_claims")
        providers.append(ProviderConfig(
            name=name, type=kind, issuer=issuer, audience=audience, algorithms=algorithms,
            jwks=jwks, jwks_url=jwks_url,
            jwks_cache_seconds=typed(sec, where, "jwks_cache_seconds", float, 3600.0),
            certificates=tuple(certificates),
            leeway_seconds=typed(sec, where, "leeway_seconds", int, 60),
            username_claim=typed(sec, where, "username_claim", str,
                                "preferred_username" if kind == "oidc" else "NameID"),
            subject_claim=typed(sec, where, "subject_claim", str,
                               "sub" if kind == "oidc" else "NameID"),
            claims=string_table(sec, where, "claims"),
            roles_claim=typed(sec, where, "roles_claim", str, None),
            roles=string_table(sec, where, "roles"),
            mode=mode,
            domain=typed(sec, where, "domain", str, "PRIMARY"),
            link_existing=typed(sec, where, "link_existing", bool, False),
            owned_claims=tuple(owned) if isinstance(owned, list) else None,
            max_age_seconds=typed(sec, where, "max_age_seconds", int, 3600),
        ))
    return JitConfig(tuple(providers))
