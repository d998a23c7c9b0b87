"""A verified federated login becomes a local user: created the first time, updated after.

The login's subject (OIDC ``sub``, SAML NameID) is linked to the local user
it created (``links.py``), so later logins find that user whatever its name
became, and a second user is never made for the same subject. On a later
login only the claims the provider owns (``owned_claims``, default: every
mapped claim) are written; the rest of the user is left as it is. Role
membership follows the provider's groups for the roles the provider maps
(``roles``); other memberships are the gateway's.

Everything goes through the pipeline, as a principal of the provider
(``jit:<name>``), so validation, stores, audit and outbound provisioning are
those of any other change.
"""

from __future__ import annotations

import logging
import time

import aiohttp

from .. import operations as ops
from ..auth.principal import Principal
from ..errors import ConfigError, Conflict, InvalidValue, NotFound
from ..model.parsing import parse_path
from ..model.patch import PatchOperation, apply_patch
from ..model.times import stamp
from ..names import qualify
from ..once import Once, key_of
from . import links
from .config import JitConfig, ProviderConfig
from .errors import ConsentRequired, InvalidLogin
from .oidc import OidcVerifier
from .saml import SamlVerifier

log = logging.getLogger("gateway.jit")
PERMISSION = "jit"
LINK_CACHE = 100_000
REPLAY_GRACE = 300.0  # seconds a used id is kept past its expiry (clock skew)
ACTING = frozenset({"users:create", "users:update", "users:view", "groups:update",
                    "groups:view"})


class Provider:
    def __init__(self, cfg: ProviderConfig, verifier, users):
        self.cfg = cfg
        self.verifier = verifier
        self.principal = Principal(f"jit:{cfg.name}", "jit", ACTING)
        self.targets = dict(cfg.claims)  # claim -> canonical path
        self.paths = {claim: parse_path(users, path) for claim, path in cfg.claims}
        owned = cfg.owned_claims if cfg.owned_claims is not None else [c for c, _ in cfg.claims]
        self.owned = [c for c in owned if c in self.paths]
        self.role_map = {idp.lower(): local for idp, local in cfg.roles}


class JitService:
    def __init__(self, config: JitConfig, pipeline, runner, once: Once):
        self.config = config
        self.pipeline = pipeline
        self.runner = runner
        self.once = once  # token and assertion ids: each accepted once, by every process
        self.providers: dict[str, Provider] = {}
        self._links: dict[tuple[str, str], tuple[str, str]] = {}
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if not self.config.providers:
            return
        if self.runner is None:
            raise ConfigError("Just-in-time provisioning keeps its links in a SQL database: "
                              "set [outbound] database when PRIMARY is not SQL")
        await self.runner.write(links.create)
        self._session = aiohttp.ClientSession()
        users = self.pipeline.schemas.user
        for cfg in self.config.providers:
            verifier = (OidcVerifier(cfg, self._session) if cfg.type == "oidc"
                        else SamlVerifier(cfg))
            self.providers[cfg.name] = Provider(cfg, verifier, users)

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()

    # the login ---------------------------------------------------------------------------------
    async def login(self, caller: Principal, name: str, body: dict
                    ) -> tuple[ops.Entity, str]:
        caller.require(PERMISSION)
        provider = self.providers.get(name)
        if provider is None:
            raise NotFound(f"No identity provider named {name!r}")
        cfg = provider.cfg
        if cfg.type == "oidc":
            token = body.get("id_token")
            if not isinstance(token, str):
                raise InvalidValue("id_token is required")
            claims = await provider.verifier.verify(token)
            replay = provider.verifier.replay_key(token, claims)
            values = {k: v if isinstance(v, list) else [v] for k, v in claims.items()
                      if v is not None}
        else:
            response = body.get("saml_response")
            if not isinstance(response, str):
                raise InvalidValue("saml_response is required")
            _subject, values, replay = provider.verifier.verify(response)
        subject = _first(values.get(cfg.subject_claim))
        if not subject:
            raise InvalidLogin(f"The login has no subject ({cfg.subject_claim})")
        link = await self._link(cfg.name, str(subject))
        if link is not None:
            found = await self._existing(provider, link[0])
            if found is not None:
                await self._use_once(*replay)
                return await self._update(provider, found, values)
            self._links.pop((cfg.name, str(subject)), None)
            await self.runner.write(links.drop, cfg.name, str(subject))  # user deleted: anew
        self._ready(provider, body)  # a login refused for what the user must add is no use
        await self._use_once(*replay)
        return await self._create(provider, str(subject), values, body)

    async def _use_once(self, key: str, expires: float) -> None:
        """A token or assertion is accepted once, until it expires (and a grace for
        clocks that differ), whichever process or host sees it."""
        if not await self.once.use(key_of("jit", key), max(expires, time.time()) + REPLAY_GRACE):
            raise InvalidLogin("This token or assertion was used already (replay)")

    async def _link(self, provider: str, subject: str) -> tuple[str, str] | None:
        """The linked user (id, domain): remembered, since a link never changes (it only
        goes, with its user, which the caller notices)."""
        key = (provider, subject)
        found = self._links.get(key)
        if found is None:
            found = await self.runner.read(links.get, provider, subject)
            if found is not None:
                if len(self._links) >= LINK_CACHE:
                    self._links.clear()
                self._links[key] = found
        return found

    @staticmethod
    def _ready(provider: Provider, body: dict) -> None:
        """What a first login needs besides the token, per mode (checked before the token
        counts as used, so that it can be sent again with what was missing)."""
        mode = provider.cfg.mode
        if mode == "consent" and body.get("consent") is not True:
            raise ConsentRequired("The user has not consented: nothing was provisioned "
                                  "(send consent: true)")
        if mode == "username" and not (isinstance(body.get("username"), str)
                                       and body["username"].strip()):
            raise InvalidValue("This provider lets the user choose a username: "
                               "'username' is required at the first login")
        if mode == "password" and not (isinstance(body.get("password"), str)
                                       and body["password"]):
            raise InvalidValue("This provider lets the user set a password: 'password' "
                               "is required at the first login")

    async def _existing(self, provider: Provider, user_id: str) -> ops.Entity | None:
        try:
            return await self.pipeline.execute(provider.principal, ops.GetUser(user_id))
        except NotFound:
            return None

    def _patch(self, provider: Provider, values: dict, claims) -> list[PatchOperation]:
        out = []
        for claim in claims:
            got = values.get(claim)
            if not got:
                continue
            pref = provider.paths[claim]
            leaf = pref.sub or (pref.ref.sub if pref.ref else None) or pref.ref.attr
            multi = pref.ref.attr.multi_valued and pref.sub is None and pref.value_filter is None
            value = [str(v) for v in got] if multi and not leaf.is_complex else got[0]
            if leaf.type == "boolean" and isinstance(value, str):
                value = value.lower() == "true"
            out.append(PatchOperation("replace", provider.targets[claim], value))
        return out

    def _username(self, provider: Provider, values: dict, body: dict) -> str:
        cfg = provider.cfg
        if cfg.mode == "username":
            chosen = body.get("username")
            if not isinstance(chosen, str) or not chosen.strip():
                raise InvalidValue("This provider lets the user choose a username: "
                                   "'username' is required at the first login")
            name = chosen.strip()
        else:
            name = _first(values.get(cfg.username_claim))
            if not isinstance(name, str) or not name.strip():
                raise InvalidLogin(f"The login has no username ({cfg.username_claim})")
            name = name.strip()
        if cfg.domain.lower() == "as_in_username":
            return name
        return qualify(cfg.domain, self.pipeline.names.parts(name)[1])

    async def _create(self, provider: Provider, subject: str, values: dict, body: dict
                      ) -> tuple[ops.Entity, str]:
        cfg = provider.cfg
        if cfg.mode == "consent" and body.get("consent") is not True:
            raise ConsentRequired("The user has not consented: nothing was provisioned "
                                  "(send consent: true)")
        name = self._username(provider, values, body)
        representation = apply_patch(self.pipeline.schemas.user, {"userName": name},
                                     self._patch(provider, values, provider.paths)).resource
        if cfg.mode == "password":
            password = body.get("password")
            if not isinstance(password, str) or not password:
                raise InvalidValue("This provider lets the user set a password: 'password' "
                                   "is required at the first login")
            representation["password"] = password
        try:
            user = await self.pipeline.execute(provider.principal,
                                               ops.CreateUser(representation))
            created = "created"
        except Conflict:
            # a local user of that name: only linked when the provider is trusted to
            link = await self._link(cfg.name, subject)
            if link is not None:  # a concurrent first login of the same subject won
                found = await self._existing(provider, link[0])
                if found is not None:
                    return await self._update(provider, found, values)
            if not cfg.link_existing:
                raise Conflict(f"A local user named {name!r} exists and is not linked to "
                               f"this {cfg.name} login: nothing was provisioned") from None
            user = await self.pipeline.execute(provider.principal, ops.GetUserByName(name))
            created = "linked"
        if not await self.runner.write(links.add, cfg.name, subject, user.id, user.domain,
                                       stamp()):
            link = await self.runner.read(links.get, cfg.name, subject)
            found = await self._existing(provider, link[0]) if link else None
            if found is not None and found.id != user.id and created == "created":
                await self.pipeline.execute(provider.principal, ops.DeleteUser(user.id))
                return await self._update(provider, found, values)
        if created == "linked":
            entity, _ = await self._update(provider, user, values)
            return entity, "updated"
        await self._roles(provider, user, values)
        return await self.pipeline.execute(provider.principal, ops.GetUser(user.id)), "created"

    async def _update(self, provider: Provider, user: ops.Entity, values: dict
                      ) -> tuple[ops.Entity, str]:
        patch = self._patch(provider, values, provider.owned)
        changed = False
        if patch:  # written only when it changes something (most logins change nothing)
            before = {**user.record.data, "userName": qualify(
                user.domain, user.record.data["userName"])}
            after = apply_patch(self.pipeline.schemas.user, before, patch).resource
            if after == before:
                patch = []
        if patch:
            after = await self.pipeline.execute(provider.principal,
                                                ops.PatchUser(user.id, patch))
            changed = after.version != user.version
        changed = await self._roles(provider, user, values) or changed
        if not changed:
            return user, "unchanged"
        return await self.pipeline.execute(provider.principal, ops.GetUser(user.id)), "updated"

    async def _roles(self, provider: Provider, user: ops.Entity, values: dict) -> bool:
        cfg = provider.cfg
        if not cfg.roles_claim or not provider.role_map:
            return False
        wanted = {provider.role_map[str(g).lower()].lower()
                  for g in values.get(cfg.roles_claim, []) if str(g).lower() in provider.role_map}
        managed = {v.lower() for v in provider.role_map.values()}
        current = {qualify(g.get("domain", user.domain), g["display"]).lower()
                   for g in user.record.groups or [] if g.get("type", "direct") == "direct"}
        changed = False
        for role in sorted(managed):
            member, want = role in current, role in wanted
            if member == want:
                continue
            try:
                group = await self.pipeline.execute(provider.principal,
                                                     ops.GetGroupByName(role, with_members=False))
            except (NotFound, InvalidValue):
                log.warning("the role %r mapped for %s does not exist", role, cfg.name)
                continue
            await self.pipeline.execute(provider.principal, ops.ChangeMembers(
                group.id, add=[user.id] if want else [], remove=[] if want else [user.id]))
            changed = True
        return changed


def _first(values):
    if isinstance(values, list):
        return values[0] if values else None
    return values
