"""Verifying an OpenID Connect ID token as a relying party must.

- The header's ``alg`` must be one of the provider's allowed asymmetric
  algorithms, checked before anything else: ``none`` and every HMAC algorithm
  are refused, so a public key can never be used as an HMAC secret
  (algorithm confusion).
- The key is the one the header's ``kid`` names in the provider's JWKS (a
  file, inline, or fetched from ``jwks_url`` and cached); an unknown ``kid``
  makes the gateway fetch the JWKS again (at most every ``REFRESH_FLOOR``
  seconds, so forged ``kid`` values cannot make it hammer the provider).
- ``iss`` must be the provider's; ``aud`` must contain our client id (and
  ``azp``, when several audiences, must be it); ``exp`` and ``nbf``/``iat`` are
  checked with the configured leeway.
- A token is accepted once: its ``jti`` (or, without one, its hash) is
  remembered until it expires (``replay.py``); the service marks it when it
  acts on the login, so a token refused for a missing consent or username can
  be sent again with them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time

import aiohttp
import orjson
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from ..errors import InvalidValue
from .config import ProviderConfig
from .errors import InvalidLogin

REFRESH_FLOOR = 10.0  # seconds between two JWKS fetches
MAX_TOKEN = 16_384


def _segment(part: str) -> dict:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        raise InvalidLogin("The ID token is not a JWT") from None
    if not isinstance(data, dict):
        raise InvalidLogin("The ID token is not a JWT")
    return data


class OidcVerifier:
    def __init__(self, cfg: ProviderConfig, session: aiohttp.ClientSession | None):
        self.cfg = cfg
        self.session = session
        self._keys: KeySet | None = KeySet.import_key_set(cfg.jwks) if cfg.jwks else None
        self._fetched = 0.0

    async def _fetch(self) -> None:
        if self.cfg.jwks_url is None or self.session is None:
            return
        if time.monotonic() - self._fetched < REFRESH_FLOOR:
            return
        self._fetched = time.monotonic()
        try:
            async with self.session.get(self.cfg.jwks_url, allow_redirects=False,
                                        timeout=aiohttp.ClientTimeout(total=5)) as resp:
                if resp.status != 200:
                    raise InvalidLogin(f"The provider's JWKS answered {resp.status}")
                document = await resp.json(content_type=None)
            self._keys = KeySet.import_key_set(document)
        except (aiohttp.ClientError, TimeoutError, ValueError, JoseError) as exc:
            raise InvalidLogin(f"The provider's JWKS could not be read: "
                               f"{type(exc).__name__}") from None

    async def _keyset(self, kid: str | None) -> KeySet:
        stale = (self._keys is None or self.cfg.jwks_url is not None
                 and time.monotonic() - self._fetched > self.cfg.jwks_cache_seconds)
        if stale:
            try:
                await self._fetch()
            except InvalidLogin:
                if self._keys is None:
                    raise  # nothing to fall back on; cached keys stay usable otherwise
        if self._keys is not None and kid is not None and not any(
                k.kid == kid for k in self._keys.keys):
            await self._fetch()  # a new key at the provider (rotation)
        if self._keys is None:
            raise InvalidLogin("No keys of the provider are known")
        if kid is not None and not any(k.kid == kid for k in self._keys.keys):
            raise InvalidLogin(f"The ID token's key {kid!r} is not one of the provider's")
        return self._keys

    async def verify(self, token: str) -> dict:
        if not isinstance(token, str) or len(token) > MAX_TOKEN:
            raise InvalidValue("id_token must be a JWT of at most 16 KiB")
        parts = token.split(".")
        if len(parts) != 3:
            raise InvalidLogin("The ID token is not a signed JWT (JWS compact)")
        header = _segment(parts[0])
        alg = header.get("alg")
        if alg not in self.cfg.algorithms:  # none, HS*, anything not allowed: before any key
            raise InvalidLogin(f"The ID token's algorithm {alg!r} is not allowed "
                               f"(allowed: {', '.join(self.cfg.algorithms)})")
        keys = await self._keyset(header.get("kid"))
        try:
            verified = jwt.decode(token, keys, algorithms=list(self.cfg.algorithms))
        except JoseError as exc:
            raise InvalidLogin(f"The ID token's signature is not valid: "
                               f"{exc.description or type(exc).__name__}") from None
        claims = verified.claims
        self._check(claims)
        return claims

    def replay_key(self, token: str, claims: dict) -> tuple[str, float]:
        """What the replay memory keeps of a verified token, and until when."""
        key = claims.get("jti") or hashlib.sha256(token.encode()).hexdigest()
        until = float(claims["exp"])
        iat = claims.get("iat")
        if isinstance(iat, int | float):  # refused after max_age anyway: no need to keep it
            until = min(until, iat + self.cfg.max_age_seconds + self.cfg.leeway_seconds)
        return f"oidc:{self.cfg.issuer}:{key}", until

    def _check(self, claims: dict) -> None:
        cfg, now, skew = self.cfg, time.time(), self.cfg.leeway_seconds
        if claims.get("iss") != cfg.issuer:
            raise InvalidLogin("The ID token comes from another issuer")
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if cfg.audience not in audiences:
            raise InvalidLogin("The ID token is not meant for this client (aud)")
        if len(audiences) > 1 and claims.get("azp") not in (None, cfg.audience):
            raise InvalidLogin("The ID token's authorized party (azp) is another client")
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise InvalidLogin("The ID token has no expiry (exp)")
        if exp < now - skew:
            raise InvalidLogin("The ID token has expired")
        for name in ("nbf", "iat"):
            value = claims.get(name)
            if value is not None and (not isinstance(value, int | float)
                                      or value > now + skew):
                raise InvalidLogin(f"The ID token is not valid yet ({name})")
        iat = claims.get("iat")
        if isinstance(iat, int | float) and iat < now - cfg.max_age_seconds - skew:
            raise InvalidLogin(f"The ID token was issued more than {cfg.max_age_seconds} s "
                               "ago (max_age_seconds)")
        subject = claims.get(cfg.subject_claim)
        if not isinstance(subject, str) or not subject:
            raise InvalidLogin(f"The ID token has no subject ({cfg.subject_claim})")
