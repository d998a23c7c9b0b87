"""Authentication for every API: HTTP Basic (API clients, store users) and bearer JWTs.

- Basic with a configured API client's name and secret: the client's permissions.
- Basic with a store user's name (``alice`` or ``SECONDARY/alice``) and password:
  the permissions of the roles (groups) the user belongs to, per ``[roles]``.
- Bearer JWT signed by a configured issuer (asymmetric algorithms only; issuer,
  audience, expiry and not-before checked with a leeway): the permissions its
  scopes map to.

- A WS-Security PasswordDigest (``digest``) from an API client with a plain
  secret: the digest is checked against the secret, the creation time must be
  recent and each nonce is accepted once, by every process and host sharing the
  state database (``gateway.once``).

A successful check is remembered for ``[auth] cache_seconds`` under a keyed
hash of the credentials (never the credentials themselves), so that a client
sending the same header does not pay an argon2 verification per request. The
cache is per process; a password, state, membership or deletion change made by
this process drops the entries concerned at once, one made by another process
within about a second (``gateway.auth.epoch``). Requests that arrive with the same
header while it is being checked (a client's burst when its entry has just
expired) wait for that one check instead of each running their own.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import hashlib
import hmac
import os
import time
from dataclasses import replace

import orjson
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from .. import metrics
from ..audit import Event
from ..config import Config, IssuerConfig
from ..errors import ClientError, Unauthorized
from ..model.account import sign_in_refusal
from ..once import Once, key_of
from ..operations import CheckPassword, GetUserByName
from ..passwords import Passwords
from ..request_context import authenticated
from .epoch import LoginEpoch
from .guard import Throttled
from .principal import SYSTEM, Principal

MAX_CACHE = 10_000
DIGEST_WINDOW = 300  # seconds a PasswordDigest's creation time may be off (either way)
LOCKED_TOKEN = "Invalid bearer token: its account is disabled or locked"  # noqa: S105


class Authenticator:
    def __init__(self, config: Config, pipeline, passwords: Passwords, once: Once,
                 epoch: LoginEpoch):
        self.config = config
        self.pipeline = pipeline
        self.passwords = passwords
        self.once = once  # digest nonces: each accepted once, by every process
        self.epoch = epoch  # credential changes made by other processes
        self._clients = {c.name: c for c in config.clients}
        self._issuers: dict[str, tuple[IssuerConfig, KeySet]] = {}
        for issuer in config.issuers:
            self._issuers[issuer.issuer] = (issuer, KeySet.import_key_set(issuer.jwks))
        self._cache: dict[bytes, tuple[float, Principal]] = {}
        self._key = os.urandom(32)
        self._checking: dict[bytes, asyncio.Future] = {}  # Basic checks under way, by key
        pipeline.credential_listeners.append(self.forget)

    # cache -----------------------------------------------------------------------
    def _cache_key(self, header: str) -> bytes:
        return hashlib.blake2b(header.encode(), key=self._key, digest_size=32).digest()

    def _cached(self, key: bytes) -> Principal | None:
        hit = self._cache.get(key)
        if hit is None:
            return None
        if hit[0] < time.monotonic():
            self._cache.pop(key, None)
            return None
        return hit[1]

    def _remember(self, key: bytes, principal: Principal, ttl: float | None = None) -> None:
        ttl = self.config.auth_cache_seconds if ttl is None else ttl
        if ttl <= 0:
            return
        if len(self._cache) >= MAX_CACHE:
            now = time.monotonic()
            self._cache = {k: v for k, v in self._cache.items() if v[0] >= now}
            if len(self._cache) >= MAX_CACHE:
                self._cache.clear()
        self._cache[key] = (time.monotonic() + ttl, principal)

    async def forget(self, user_id: str | None) -> None:
        """Drop cached logins of a user (its password or state changed, it was deleted),
        or of every store user (memberships, hence roles, changed); and tell the other
        processes (at once for a user, soon for memberships)."""
        self._forget_here(user_id)
        if user_id is None:
            self.epoch.bump_soon()
        else:
            await self.epoch.bump()

    def _forget_here(self, user_id: str | None) -> None:
        """Drop what is remembered of store users' logins (Basic, or a token naming one):
        of one user, or of all."""
        self._cache = {k: v for k, v in self._cache.items()
                       if v[1].user_id is None or (user_id is not None
                                                   and v[1].user_id != user_id)}

    # entry -------------------------------------------------------------------------
    async def authenticate_request(self, request) -> Principal:
        """The principal of an HTTP request (its Authorization header, from its address)."""
        return await self.authenticate(request.headers.get("Authorization"), request.remote)

    async def authenticate(self, header: str | None, source: str | None = None) -> Principal:
        """The principal a request's ``Authorization`` header names; ``source`` (the
        caller's address) is what failed logins are throttled by besides the name."""
        scheme = header.strip().partition(" ")[0].lower() if header else "none"
        if scheme not in ("basic", "bearer"):
            scheme = "other" if header else "none"
        try:
            principal = await self._authenticate(header, source)
        except Throttled:
            metrics.authenticated(scheme, "throttled")
            raise
        except Unauthorized as exc:
            metrics.authenticated(scheme, "locked" if exc.detail == LOCKED_TOKEN else "failure")
            raise
        metrics.authenticated(scheme, "success")
        authenticated(principal.name)
        return principal

    async def _authenticate(self, header: str | None, source: str | None) -> Principal:
        if not header:
            raise Unauthorized("Authentication required (HTTP Basic or Bearer)")
        scheme, _, credentials = header.strip().partition(" ")
        credentials = credentials.strip()
        scheme = scheme.lower()
        if scheme not in ("basic", "bearer") or not credentials:
            raise Unauthorized("Unsupported authorization scheme (use Basic or Bearer)")
        if await self.epoch.moved():  # credentials changed in another process
            self._forget_here(None)
        key = self._cache_key(header.strip())
        principal = self._cached(key)
        if principal is not None:
            return principal
        if scheme == "basic":
            return await self._basic_once(key, credentials, source)
        try:
            principal, expires = self._bearer(credentials)
            principal = await self._token_account(principal)
        except Unauthorized as exc:
            self._decided("token", "Bearer", source, exc.detail)
            raise
        self._decided(principal.name, "Bearer", source)
        self._remember(key, principal, min(self.config.auth_cache_seconds,
                                           expires - time.time()))
        return principal

    def _decided(self, actor: str, how: str, source: str | None,
                 refusal: str | None = None) -> None:
        """Note an authentication decision other than a store user's password (which the
        pipeline notes) in the audit trail."""
        self.pipeline.audit.note(Event.now(
            actor, f"Authenticate{how}", outcome="refused" if refusal else "success",
            detail=refusal, **({"address": source} if source else {})))

    async def _token_account(self, principal: Principal) -> Principal:
        """A token whose subject is a store user's name is that user's: refused when the
        account is disabled or locked (the token's scopes still say what it may do)."""
        subject = principal.name.removeprefix("token:")
        try:
            entity = await self.pipeline.execute(SYSTEM, GetUserByName(subject,
                                                                       with_groups=False))
        except ClientError:  # no such user (a service's token), or no such name at all
            return principal
        if sign_in_refusal(entity.record.data) is not None:
            raise Unauthorized(LOCKED_TOKEN)
        return replace(principal, user_id=entity.id)

    async def _basic_once(self, key: bytes, credentials: str, source: str | None
                          ) -> Principal:
        """One check per header at a time, as a task of its own that every request with
        that header awaits: a request that goes away (its client disconnected) does not
        take the check away from the others. A failure is theirs too (same header)."""
        check = self._checking.get(key)
        if check is None:
            check = self._checking[key] = asyncio.ensure_future(
                self._basic(credentials, source))
            check.add_done_callback(lambda task: self._checked(key, task))
        return await asyncio.shield(check)

    def _checked(self, key: bytes, task: asyncio.Task) -> None:
        del self._checking[key]
        if not task.cancelled() and task.exception() is None:  # exception() marks it seen
            self._remember(key, task.result())

    async def _basic(self, credentials: str, source: str | None) -> Principal:
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise Unauthorized("Malformed Basic credentials") from None
        name, sep, secret = decoded.partition(":")
        if not sep or not name:
            raise Unauthorized("Malformed Basic credentials")
        client = self._clients.get(name)
        if client is not None:
            # by address only: failures in an API client's name must not shut it out
            guard = self.pipeline.guard
            admission = await guard.admit(f"client:{name}", source, by_name=False)
            if client.secret is not None:
                ok = hmac.compare_digest(client.secret.encode(), secret.encode())
            else:
                ok = await self.passwords.verify(client.secret_hash, secret)
            if not ok:
                await guard.failed(admission)  # an API client is throttled, never locked
                self._decided(f"client:{name}", "Basic", source, "invalid credentials")
                raise Unauthorized("Invalid credentials")
            self._decided(f"client:{name}", "Basic", source)
            return self._client_principal(name)
        entity = await self.pipeline.execute(SYSTEM, CheckPassword(name, secret, source))
        if entity is None:
            raise Unauthorized("Invalid credentials")
        perms = self.pipeline.permissions_of(entity)
        return Principal(name, "user", perms, user_id=entity.id)

    async def digest(self, name: str, digest: str, nonce: bytes, created: str) -> Principal:
        """A WS-Security PasswordDigest: Base64(SHA-1(nonce + created + secret))."""
        try:
            principal = await self._digest(name, digest, nonce, created)
        except Unauthorized:
            metrics.authenticated("digest", "failure")
            raise
        metrics.authenticated("digest", "success")
        authenticated(principal.name)
        return principal

    async def _digest(self, name: str, digest: str, nonce: bytes, created: str) -> Principal:
        client = self._clients.get(name)
        if client is None or client.secret is None:
            raise Unauthorized("PasswordDigest works only for API clients with a plain secret; "
                               "send the password as PasswordText over TLS")
        try:
            when = dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
            if when.tzinfo is None:
                raise ValueError("no time zone")
        except ValueError:
            raise Unauthorized("The UsernameToken's Created time is not valid") from None
        now = time.time()
        if abs(now - when.timestamp()) > DIGEST_WINDOW:
            raise Unauthorized("The UsernameToken is too old (or from the future)")
        expected = base64.b64encode(hashlib.sha1(  # noqa: S324 - the profile's algorithm
            nonce + created.encode() + client.secret.encode()).digest()).decode()
        if not hmac.compare_digest(expected.encode(), digest.encode()):
            self._decided(f"client:{name}", "Digest", None, "invalid credentials")
            raise Unauthorized("Invalid credentials")
        if not await self.once.use(key_of("digest", name, nonce, created),
                                   now + 2 * DIGEST_WINDOW):
            self._decided(f"client:{name}", "Digest", None, "nonce replayed")
            raise Unauthorized("The UsernameToken's nonce was used already")
        self._decided(f"client:{name}", "Digest", None)
        return self._client_principal(name)

    def _client_principal(self, name: str) -> Principal:
        """The principal of a configured API client that proved its secret."""
        client = self._clients[name]
        return Principal(f"client:{name}", "client", frozenset(client.permissions),
                         provision=client.provisioning != "persist",
                         store=client.provisioning != "provision")

    def _bearer(self, token: str) -> tuple[Principal, float]:
        parts = token.split(".")
        try:
            if len(parts) != 3:
                raise ValueError("not a JWS compact token")
            payload = orjson.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
            iss = payload.get("iss") if isinstance(payload, dict) else None
        except (ValueError, TypeError, binascii.Error):
            raise Unauthorized("Malformed bearer token") from None
        found = self._issuers.get(iss) if isinstance(iss, str) else None
        if found is None:
            raise Unauthorized("The token's issuer is not trusted")
        issuer, keys = found
        try:
            verified = jwt.decode(token, keys, algorithms=list(issuer.algorithms))
            registry = jwt.JWTClaimsRegistry(
                leeway=issuer.leeway_seconds,
                iss={"essential": True, "value": issuer.issuer},
                aud={"essential": True, "value": issuer.audience},
                exp={"essential": True},
            )
            registry.validate(verified.claims)
        except (JoseError, ValueError, TypeError) as exc:
            raise Unauthorized(f"Invalid bearer token: {exc}") from None
        claims = verified.claims
        scopes = claims.get("scope", claims.get("scp", ""))
        if isinstance(scopes, str):
            scopes = scopes.split()
        perms: set[str] = set()
        for scope in scopes if isinstance(scopes, list) else []:
            perms.update(issuer.scope_permissions.get(scope, ()))
        subject = str(claims.get(issuer.subject_claim, "?"))
        return Principal(f"token:{subject}", "token", frozenset(perms)), float(claims["exp"])
