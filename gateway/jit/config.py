"""Just-in-time provisioning settings: ``[[jit.providers]]`` (see docs/jit.md).

``JitConfig`` and ``ProviderConfig`` live with the other settings types in
``gateway.config`` (``Config`` holds them); they are named here too, next to the code
they configure.
"""

from __future__ import annotations

from pathlib import Path

from ..config import JitConfig, ProviderConfig
from ..config_values import ASYMMETRIC, algorithms, jwks, string_table, typed, unknown
from ..errors import ConfigError

__all__ = ["ASYMMETRIC", "KEYS", "MODES", "JitConfig", "ProviderConfig", "parse_jit"]

MODES = ("silent", "username", "password", "consent")
KEYS = {
    "name", "type", "issuer", "audience", "algorithms", "jwks", "jwks_file", "jwks_url",
    "jwks_cache_seconds", "certificates", "certificate_files", "leeway_seconds",
    "username_claim", "subject_claim", "claims", "roles_claim", "roles", "mode", "domain",
    "link_existing", "owned_claims", "max_age_seconds",
}


def parse_jit(raw: dict | None, base: Path) -> JitConfig:
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ConfigError("[jit] must be a table")
    # replay_cache_size: the size of the per-process replay memory there was; replays
    # are now kept in the state database (gateway.once), and the key is ignored
    unknown({k: v for k, v in raw.items() if k != "replay_cache_size"}, "jit", {"providers"})
    providers, names = [], set()
    raw_providers = raw.get("providers", [])
    if not isinstance(raw_providers, list):
        raise ConfigError("[[jit.providers]] must be an array of tables")
    for i, sec in enumerate(raw_providers):
        where = f"jit.providers[{i}]"
        if not isinstance(sec, dict):
            raise ConfigError(f"{where} must be a table")
        unknown(sec, where, KEYS)
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
        signed_with = algorithms(sec, where, ProviderConfig.algorithms)
        keys = jwks(sec, where, base)
        jwks_url = typed(sec, where, "jwks_url", str, None)
        certificates = list(sec.get("certificates", []))
        for path in sec.get("certificate_files", []):
            try:
                certificates.append((base / path).read_text())
            except OSError as exc:
                raise ConfigError(f"{where}: cannot read {path}: {exc}") from None
        if kind == "oidc" and keys is None and not jwks_url:
            raise ConfigError(f"{where}: an OIDC provider needs jwks, jwks_file or jwks_url")
        if kind == "saml" and not certificates:
            raise ConfigError(f"{where}: a SAML provider needs its signing certificates")
        owned = sec.get("owned_claims")
        providers.append(ProviderConfig(
            name=name, type=kind, issuer=issuer, audience=audience, algorithms=signed_with,
            jwks=keys, jwks_url=jwks_url,
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
