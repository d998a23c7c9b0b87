"""The provisioning pipeline: the one entry point every protocol adapter calls.

``execute(caller, operation)`` authorizes the caller, resolves the user store
domain, validates against the canonical schema, runs the operation on the
store, and returns canonical results (``Entity``/``Results``). Adapters never
touch a store.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import secrets
import time
from contextvars import ContextVar
from typing import TYPE_CHECKING, NamedTuple

from userstores.base import (
    QUIET,
    UNCHANGED,
    WRITE,
    Change,
    Journal,
    PlainPassword,
    Query,
    Record,
    UserStore,
)
from userstores.registry import PRIMARY, Stores

from . import operations as ops
from .audit import Audit, Event, about
from .auth.guard import Guard, Throttled
from .auth.principal import SYSTEM, Principal
from .config import Config
from .errors import (
    ConcurrentUpdate,
    Conflict,
    Forbidden,
    GatewayError,
    InvalidValue,
    Mutability,
    NotFound,
    NotSupported,
    Unauthorized,
    VersionMismatch,
)
from .keyed_locks import KeyedLocks
from .model.account import (
    changed_attributes,
    is_locked,
    locked_until,
    password_expires,
    password_set_now,
    sign_in_refusal,
    with_account_state,
)
from .model.patch import apply_patch
from .model.query import parse_filter
from .model.registry import SchemaRegistry
from .model.schema import WSO2_USER, ResourceType
from .model.times import stamp
from .model.validate import canonical, check_immutable
from .names import is_qualified, qualify
from .password_history import PasswordHistory
from .passwords import Passwords
from .search import Searcher

if TYPE_CHECKING:
    from .outbound.service import OutboundService

log = logging.getLogger("gateway.pipeline")

# the audit event of the change being made in this context (handlers add what they touch)
_EVENT: ContextVar[Event | None] = ContextVar("audit_event", default=None)
# how the operation being run writes to its store (Change: outbox row, journal)
_CHANGE: ContextVar[Change] = ContextVar("change", default=WRITE)
PATCH_RETRIES = 32  # a PATCH that lost a race is applied again to the newer version


async def _lost_race(attempt: int) -> None:
    """Back off a little (growing, jittered) before patching the newer version again."""
    await asyncio.sleep(random.uniform(0, 0.001 * min(attempt, 20)))  # noqa: S311
SELF_SERVICE = ("users:view", "users:update")
# operations that change something, after which outbound provisioning has its say
WRITES = frozenset({ops.CreateUser, ops.ReplaceUser, ops.PatchUser, ops.DeleteUser,
                    ops.ChangePassword, ops.CreateGroup, ops.ReplaceGroup, ops.PatchGroup,
                    ops.ChangeMembers, ops.DeleteGroup})
ADMIN_ROLE = "admin"
# operations that may change who belongs to a group, hence what [roles] grants its members
GRANTING = (ops.CreateGroup, ops.ReplaceGroup, ops.PatchGroup, ops.ChangeMembers)
MAX_ANCESTORS = 1000  # groups followed upwards when finding what a group confers


class Replacing(NamedTuple):
    """An account whose password is being replaced, and the hash it had."""

    user_id: str
    previous: str | None


class Pipeline:
    def __init__(self, config: Config, stores: Stores, passwords: Passwords,
                 guard: Guard | None = None, outbound: OutboundService | None = None,
                 schemas: SchemaRegistry | None = None):
        self.config = config
        # failed logins: throttling and lockout (its own memory unless given a started one)
        self.guard = guard if guard is not None else Guard(config.security)
        self.stores = stores
        self.names = stores.names  # splitting and qualifying names (gateway.names)
        self.passwords = passwords
        # every change and login decision (started with the state database)
        self.audit = Audit(config.audit, stores.qualify)
        # earlier passwords a new one may not repeat (started with the state database)
        self.history = PasswordHistory(config.passwords.history, passwords)
        self.schemas = schemas or SchemaRegistry.build(config.extensions)
        self.searcher = Searcher(config, stores, self.schemas)
        # called with a user id when its credentials changed, with None when memberships
        # (roles) changed: lets the authenticator forget what it remembered
        self.credential_listeners: list = []
        self._patching = KeyedLocks()  # PATCHes of one entity, one at a time here
        self.outbound = outbound  # None: nothing goes downstream (commands, tests)
        # changes are written to the outbox only when a connector may want them
        self.outbox = bool(config.outbound.active)
        self._handlers = {
            ops.CreateUser: self._create_user,
            ops.GetUser: self._get_user,
            ops.GetUserByName: self._get_user_by_name,
            ops.ReplaceUser: self._replace_user,
            ops.PatchUser: self._patch_user,
            ops.DeleteUser: self._delete_user,
            ops.SearchUsers: self.searcher.search,
            ops.CheckPassword: self._check_password,
            ops.ChangePassword: self._change_password,
            ops.CreateGroup: self._create_group,
            ops.GetGroup: self._get_group,
            ops.GetGroupByName: self._get_group_by_name,
            ops.ReplaceGroup: self._replace_group,
            ops.PatchGroup: self._patch_group,
            ops.ChangeMembers: self._change_members,
            ops.DeleteGroup: self._delete_group,
            ops.SearchGroups: self.searcher.search,
        }

    async def execute(self, caller: Principal, op: ops.Operation):
        if caller is None:
            raise Unauthorized()
        if type(op) not in WRITES or not self.audit.enabled:
            return await self._execute(caller, op)
        event = Event.now(caller.name, type(op).__name__, kind=op.kind, **_target_of(op))
        journal = self.audit.journal(event)
        token = _EVENT.set(event)
        try:
            result = await self._execute(caller, op, journal)
        except GatewayError as exc:
            await self.audit.record([event.failed(exc)])
            raise
        finally:
            _EVENT.reset(token)
        if journal is None or not journal.done:  # not kept with the change: now
            if isinstance(result, ops.Entity):
                event = about(event, result.domain, result.record, self.stores.qualify)
            await self.audit.record([event])
        return result

    async def _execute(self, caller: Principal, op: ops.Operation,
                       journal: Journal | None = None):
        if not self._self_service(caller, op):
            caller.require(op.permission)
        elif isinstance(op, ops.ReplaceUser | ops.PatchUser) and not caller.allows(op.permission):
            op = dataclasses.replace(op, only=self.config.self_service_attributes)
        if isinstance(op, GRANTING) and "*" not in caller.permissions:
            op = dataclasses.replace(op, grantor=caller)
        if not caller.store:  # provision-only: straight to the connectors, nothing kept
            from .outbound.direct import provision_only

            if self.outbound is None:
                raise NotSupported("Outbound provisioning is not running")
            return await provision_only(self.outbound, op)
        outbound = self.outbound if type(op) in WRITES and caller.provision else None
        since = stamp() if outbound is not None else ""
        token = _CHANGE.set(Change(outbox=caller.provision and self.outbox, journal=journal))
        try:
            result = await self._handlers[type(op)](op)
        finally:
            _CHANGE.reset(token)
        deleted = type(op) in (ops.DeleteUser, ops.DeleteGroup)  # they return what was there
        if outbound is not None and isinstance(result, ops.Entity):
            await outbound.committed(result, "delete" if deleted else "upsert", since)
        return None if deleted else result

    @staticmethod
    def _self_service(caller: Principal, op: ops.Operation) -> bool:
        """A store user may read and update its own user (SCIM /Me) without permissions."""
        return (caller.user_id is not None and op.kind == ops.USER
                and op.permission in SELF_SERVICE and getattr(op, "id", None) == caller.user_id)

    # helpers ----------------------------------------------------------------------------
    def _touching(self, names=None, entity: ops.Entity | None = None) -> None:
        """Tell the audit event of this change which attributes it touches (names only)
        and which entity it is about."""
        event = _EVENT.get()
        if event is None:
            return
        if names is not None:
            event.attributes = sorted(names)
        if entity is not None:
            done = about(event, entity.domain, entity.record, self.stores.qualify)
            event.target_id, event.target = done.target_id, done.target

    @staticmethod
    def _configured(rtype: ResourceType, data: dict) -> dict:
        """A stored resource without the values of extensions no longer configured."""
        return {k: v for k, v in data.items()
                if not (k.startswith("urn:") and rtype.extension(k) is None)}

    async def _credentials_changed(self, user_id: str | None) -> None:
        for listener in self.credential_listeners:
            await listener(user_id)

    async def _account_changed(self, user_id: str, domain: str, before: dict, after: dict,
                               password: str | None) -> None:
        """Logins remembered for a user end when its password or its state (disabled,
        locked, password expired) changed; an account unlocked by an administrator starts
        afresh."""
        was, now = sign_in_refusal(before), sign_in_refusal(after)
        if password is not None or was != now \
                or self._password_expired(before) != self._password_expired(after):
            await self._credentials_changed(user_id)
        if is_locked(before) and not is_locked(after):
            await self.guard.cleared(f"{domain}/{after['userName']}")

    @staticmethod
    def _self_service_limits(only: frozenset[str] | None, before: dict, after: dict,
                             password: str | None) -> None:
        """A change a user makes to its own account (SCIM /Me) touches only what
        ``[auth] self_service_attributes`` allows; anything else is 403."""
        if only is None:
            return
        touched = changed_attributes(before, after) | ({"password"} if password else set())
        refused = sorted(name for name in touched if name.lower() not in only)
        if refused:
            raise Forbidden(f"A user may not change {', '.join(refused)} of its own account")

    def read_only(self, domain: str) -> bool:
        """Whether the store of ``domain`` only reads (WSO2's isReadOnly)."""
        return self.stores.get(domain).capabilities.read_only

    def _writable(self, store: UserStore) -> UserStore:
        if store.capabilities.read_only:
            from .errors import ReadOnlyStore

            raise ReadOnlyStore(f"The user store {store.domain} is read-only")
        return store

    def _split_name(self, data: dict, key: str) -> UserStore:
        """Strip the domain from a canonical representation's name; return its store."""
        store, bare = self.stores.split(data[key], group=key == "displayName")
        data[key] = bare
        return store

    async def _find(self, kind: str, entity_id: str, relations: bool = True) -> ops.Entity:
        if "\x00" in entity_id or len(entity_id) > 64:  # no id looks like that
            raise NotFound(f"{kind} {entity_id!r} not found")
        for store in self.stores.all:
            if kind == ops.USER:
                rec = await store.get_user(entity_id, with_groups=relations)
            else:
                rec = await store.get_group(entity_id, with_members=relations)
            if rec is not None:
                return ops.Entity(kind, store.domain, rec)
        raise NotFound(f"{kind} {entity_id} not found")

    async def _resolve(self, kind: str, name: str, anywhere: bool = False
                       ) -> tuple[UserStore, str]:
        """The store a name means and the bare name there (``gateway.names``). With
        ``anywhere``, an unqualified name PRIMARY does not hold is the one other store's
        that holds it (InvalidValue when several do)."""
        store, bare = self.stores.split(name, group=kind == ops.GROUP)
        if not anywhere or is_qualified(name) or len(self.stores.all) == 1 \
                or await self._holds(store, kind, bare):
            return store, bare
        hits = [other for other in self.stores.all
                if other is not store and await self._holds(other, kind, bare)]
        if len(hits) > 1:
            raise InvalidValue(f"'{name}' exists in several user stores "
                               f"({', '.join(h.domain for h in hits)}): qualify it as "
                               "DOMAIN/name")
        return (hits[0] if hits else store), bare

    @staticmethod
    async def _holds(store: UserStore, kind: str, bare: str) -> bool:
        if kind == ops.USER:
            return await store.get_user_by_name(bare, with_groups=False) is not None
        return await store.get_group_by_name(bare, with_members=False) is not None

    async def _by_name(self, kind: str, name: str, relations: bool,
                       anywhere: bool = False) -> ops.Entity:
        store, bare = await self._resolve(kind, name, anywhere)
        if kind == ops.USER:
            rec = await store.get_user_by_name(bare, with_groups=relations)
        else:
            rec = await store.get_group_by_name(bare, with_members=relations)
        if rec is None:
            raise NotFound(f"{kind} '{name}' not found")
        return ops.Entity(kind, store.domain, rec)

    @staticmethod
    def _same_domain(kind: str, store: UserStore, current: ops.Entity) -> None:
        if store.domain != current.domain:
            raise Mutability(f"A {kind.lower()} cannot move to another user store domain")

    async def _hash(self, password: str | None, store: UserStore,
                    replacing: Replacing | None = None) -> str | None:
        """What the store keeps of a password: an argon2 hash, or, for a store that keeps
        passwords itself, the password (policy-checked) in clear. ``replacing``: the
        password of an existing account, which must not repeat its recent ones."""
        if password is None:
            return None
        self.passwords.check_policy(password)
        if store.capabilities.native_passwords:
            return PlainPassword(password)
        if replacing is not None:
            await self.history.check(store.domain, replacing.user_id, replacing.previous,
                                     password)
        return await self.passwords.hash(password, policy=False)

    async def _replacing(self, store: UserStore, rec: Record, password: str | None
                         ) -> Replacing | None:
        """With ``[passwords] history``: the account whose password ``password`` is about
        to replace, with the hash it replaces."""
        if password is None or not self.history.depth \
                or store.capabilities.native_passwords:
            return None
        found = await store.get_password_hash(rec.data["userName"])
        return Replacing(rec.id, found[1] if found and found[0].id == rec.id else None)

    async def _replaced(self, store: UserStore, replacing: Replacing | None) -> None:
        """The password of ``replacing`` was replaced: the history remembers the old one."""
        if replacing is not None:
            await self.history.superseded(store.domain, replacing.user_id,
                                          replacing.previous)

    # users --------------------------------------------------------------------------------
    async def _create_user(self, op: ops.CreateUser) -> ops.Entity:
        data, password = canonical(self.schemas.user, op.representation)
        store = self._writable(self._split_name(data, "userName"))
        self._stamp_password(data, password, store)
        self._touching(_created_names(data, password))
        rec = await store.create_user(data, await self._hash(password, store),
                                      change=_CHANGE.get())
        return ops.Entity(ops.USER, store.domain, rec)

    async def create_users(self, caller: Principal, representations: list[dict]
                           ) -> list[ops.Entity | GatewayError]:
        """Create several users, each succeeding or failing on its own (SCIM /Bulk): the
        same as that many CreateUser operations, in one store transaction per store."""
        if caller is None:
            raise Unauthorized()
        try:
            caller.require(ops.CreateUser.permission)
        except GatewayError as exc:
            return [exc] * len(representations)
        if not caller.store:  # provision-only: one by one, straight to the connectors
            out = []
            for rep in representations:
                try:
                    out.append(await self.execute(caller, ops.CreateUser(rep)))
                except GatewayError as exc:
                    out.append(exc)
            return out
        out = await self._create_users(caller, representations,
                                       caller.provision and self.outbox)
        if self.outbound is not None and caller.provision:
            self.outbound.kick()
        return out

    async def _create_users(self, caller: Principal, representations: list[dict],
                            outbox: bool) -> list[ops.Entity | GatewayError]:
        out: list = [None] * len(representations)
        batches: dict[str, list[tuple[int, dict, str | None, list[str]]]] = {}
        event = Event.now(caller.name, "CreateUser", kind=ops.USER)
        for i, rep in enumerate(representations):
            try:
                data, password = canonical(self.schemas.user, rep)
                store = self._writable(self._split_name(data, "userName"))
                self._stamp_password(data, password, store)
                batches.setdefault(store.domain, []).append(
                    (i, data, await self._hash(password, store),
                     _created_names(data, password)))
            except GatewayError as exc:
                out[i] = exc
        kept: list[Event] = []
        for domain, batch in batches.items():
            store = self.stores.get(domain)
            journal = self.audit.journal(event, [names for *_, names in batch])
            results = await store.create_users([(data, pw) for _i, data, pw, _n in batch],
                                               change=Change(outbox=outbox, journal=journal))
            for (i, _data, _pw, names), result in zip(batch, results, strict=True):
                out[i] = result if isinstance(result, GatewayError) else ops.Entity(
                    ops.USER, domain, result)
                if (journal is None or not journal.done) and isinstance(result, Record):
                    kept.append(dataclasses.replace(about(
                        event, domain, result, self.stores.qualify), attributes=names))
        for i, result in enumerate(out):
            if isinstance(result, GatewayError):
                name = representations[i].get("userName") \
                    if isinstance(representations[i], dict) else None
                kept.append(dataclasses.replace(
                    event.failed(result), target=name if isinstance(name, str) else None))
        await self.audit.record(kept)
        return out

    async def _get_user(self, op: ops.GetUser) -> ops.Entity:
        return await self._find(ops.USER, op.id, op.with_groups)

    async def _get_user_by_name(self, op: ops.GetUserByName) -> ops.Entity:
        return await self._by_name(ops.USER, op.user_name, op.with_groups, op.anywhere)

    async def _replace_user(self, op: ops.ReplaceUser) -> ops.Entity:
        current = await self._find(ops.USER, op.id, relations=False)
        data, password = canonical(self.schemas.user, op.representation)
        data = with_account_state(current.record.data, data)
        store = self._split_name(data, "userName")
        self._same_domain(ops.USER, store, current)
        check_immutable(self.schemas.user, current.record.data, data)
        self._self_service_limits(op.only, current.record.data, data, password)
        self._touching(_changed_names(current.record.data, data, password), current)
        self._stamp_password(data, password, store)
        replacing = await self._replacing(store, current.record, password)
        pw = UNCHANGED if password is None else await self._hash(password, store, replacing)
        rec = await self._writable(store).replace_user(
            op.id, data, expected_version=op.if_match, password_hash=pw, change=_CHANGE.get())
        await self._replaced(store, replacing)
        await self._account_changed(op.id, store.domain, current.record.data, data, password)
        return ops.Entity(ops.USER, store.domain, rec)

    async def _patch_user(self, op: ops.PatchUser) -> ops.Entity:
        async with self._patching.hold(op.id):
            return await self._patch_user_now(op)

    async def _patch_user_now(self, op: ops.PatchUser) -> ops.Entity:
        for attempt in range(PATCH_RETRIES):
            current = await self._find(ops.USER, op.id)
            rec = current.record
            if op.if_match is not None and rec.version != op.if_match:
                raise VersionMismatch(f"User {op.id} has changed (version {rec.version})")
            before = self._configured(self.schemas.user, rec.data)
            before["userName"] = qualify(current.domain, rec.data["userName"])
            result = apply_patch(self.schemas.user, before, op.operations)
            data = result.resource
            store = self._split_name(data, "userName")
            self._same_domain(ops.USER, store, current)
            if data == rec.data and result.password is None:
                return current
            check_immutable(self.schemas.user, rec.data, data)
            self._self_service_limits(op.only, rec.data, data, result.password)
            self._touching(_changed_names(rec.data, data, result.password), current)
            self._stamp_password(data, result.password, store)
            replacing = await self._replacing(store, rec, result.password)
            pw = (UNCHANGED if result.password is None
                  else await self._hash(result.password, store, replacing))
            try:
                new = await self._writable(store).replace_user(
                    op.id, data, expected_version=rec.version, password_hash=pw,
                    change=_CHANGE.get())
            except VersionMismatch:
                if op.if_match is not None:
                    raise
                await _lost_race(attempt)
                continue  # somebody else changed it meanwhile: patch the new version
            await self._replaced(store, replacing)
            await self._account_changed(op.id, store.domain, rec.data, data, result.password)
            return ops.Entity(ops.USER, store.domain, new)
        raise ConcurrentUpdate()

    async def _delete_user(self, op: ops.DeleteUser) -> ops.Entity:
        current = await self._find(ops.USER, op.id, relations=False)
        store = self._writable(self.stores.get(current.domain))
        self._touching(entity=current)
        await store.delete_user(op.id, expected_version=op.if_match, change=_CHANGE.get())
        await self.history.forget(store.domain, op.id)
        await self._credentials_changed(op.id)
        return current

    async def _check_password(self, op: ops.CheckPassword, *, renewing: bool = False
                              ) -> ops.Entity | None:
        """The user when the password is right and the account may sign in (not disabled,
        not locked), else None: the same answer and the same cost for every refusal.

        Throttled logins are refused (429) before any hash is computed; a failure counts
        towards the account's lockout (``gateway.auth.guard``). ``renewing``: the old
        password of a change, which an expired password still is."""
        if op.anywhere and not is_qualified(op.user_name) and "\x00" not in op.user_name:
            store, bare = await self._resolve(ops.USER, op.user_name, anywhere=True)
            op = dataclasses.replace(op, user_name=qualify(store.domain, bare), anywhere=False)
        account = self._account_name(op.user_name)
        shown = self._shown_name(op.user_name)
        decision = Event.now(shown, "CheckPassword", kind=ops.USER, target=shown,
                             outcome="refused",
                             **({"address": op.source} if op.source else {}))
        try:
            admission = await self.guard.admit(account, op.source)
        except Throttled:
            self.audit.note(dataclasses.replace(decision, detail="throttled"))
            raise
        entity = await self._verify_password(op)
        if entity is None:
            until = await self.guard.failed(admission)
            if until:
                await self._lock(account, until)
            self.audit.note(dataclasses.replace(decision, detail="invalid credentials" + (
                "; the account is now locked" if until else "")))
            return None
        data = entity.record.data
        decision.target_id = entity.id
        refusal = sign_in_refusal(data) or ("locked" if admission.locked_until else None) \
            or ("password expired" if self._password_expired(data) and not renewing else None)
        if refusal is not None:
            self.audit.note(dataclasses.replace(decision, detail=refusal))
            return None
        self.audit.note(dataclasses.replace(decision, outcome="success"))
        if admission.had_failures:
            await self.guard.cleared(account)
        if (data.get(WSO2_USER) or {}).get("accountLocked") is True:
            await self._unlock(entity)  # its lock ran out: the account says so again
        return entity

    def _shown_name(self, user_name: str) -> str:
        """A user name as the audit trail shows it (qualified, PRIMARY's bare)."""
        try:
            domain, bare = self.names.split(user_name)
        except GatewayError:
            return user_name
        return qualify(domain, bare)

    def _account_name(self, user_name: str) -> str:
        """The one spelling of an account's name that lockout and throttling count by."""
        try:
            store, bare = self.stores.split(user_name)
        except GatewayError:
            return user_name
        return f"{store.domain}/{bare}"

    async def _lock(self, account: str, until: float) -> None:
        """Record an automatic lockout on the account (WSO2's accountLocked, unlockTime);
        a store that cannot take it (read-only, a directory) leaves it to the guard."""
        try:
            store, bare = self.stores.split(account)
            rec = await store.get_user_by_name(bare, with_groups=False)
        except GatewayError:  # no such domain or name: nothing to lock but the count
            return
        if rec is not None and await self._set_lock(store, rec.id, until):
            await self._credentials_changed(rec.id)
            log.info("account %s locked after %d failed logins", account,
                     self.config.security.lockout_attempts)

    async def _unlock(self, entity: ops.Entity) -> None:
        """The account's lockout ran out: the account says so again."""
        await self._set_lock(self.stores.get(entity.domain), entity.record.id, None)

    async def _set_lock(self, store: UserStore, user_id: str, until: float | None) -> bool:
        """Write an automatic lockout until ``until`` on an account, or clear it (None)."""
        return await self._set_wso2(store, user_id, locked_until(until) if until is not None
                                    else {"accountLocked": None, "unlockTime": None})

    async def _set_wso2(self, store: UserStore, user_id: str, changes: dict) -> bool:
        """Set (a value) or remove (None) WSO2 account attributes of an account, on its
        latest version and without provisioning them (the account's own state)."""
        if store.capabilities.read_only:
            return False
        for _attempt in range(3):
            try:
                rec = await store.get_user(user_id, with_groups=False)
                if rec is None:
                    return False
                wso2 = {**(rec.data.get(WSO2_USER) or {}), **changes}
                wso2 = {k: v for k, v in wso2.items() if v is not None}
                data = {k: v for k, v in rec.data.items() if k != WSO2_USER}
                if wso2:
                    data[WSO2_USER] = wso2
                await store.replace_user(user_id, data, expected_version=rec.version,
                                         password_hash=UNCHANGED, change=QUIET)
                return True
            except VersionMismatch:
                continue  # changed meanwhile: on the newer version
            except GatewayError as exc:
                log.warning("could not record the account state of %s: %s", user_id,
                            exc.detail)
                return False
        return False

    def _stamp_password(self, data: dict, password: str | None, store: UserStore) -> None:
        """With ``[passwords] max_age_days``, note in ``data`` when its password is set
        (WSO2's lastPasswordUpdateTime, in milliseconds); a directory keeps its own."""
        if password is None or not self._tracks_password_age(store):
            return
        data[WSO2_USER] = {**(data.get(WSO2_USER) or {}), **password_set_now()}

    def _tracks_password_age(self, store: UserStore) -> bool:
        return self.config.passwords.max_age_days > 0 and not store.capabilities.native_passwords

    def _password_expired(self, data: dict) -> bool:
        return password_expires(data, self.config.passwords.max_age_days) < time.time() * 1000

    async def _verify_password(self, op: ops.CheckPassword) -> ops.Entity | None:
        """The user when the password is right, whatever the account's state, else None
        (same cost either way)."""
        try:
            if "\x00" in op.user_name:
                raise InvalidValue("no such name")
            store, bare = self.stores.split(op.user_name)
        except InvalidValue:
            await self.passwords.verify(None, op.password)
            return None
        if store.capabilities.native_passwords:  # the store checks (LDAP: a bind)
            rec = await store.check_password(bare, op.password)
            return None if rec is None else ops.Entity(ops.USER, store.domain, rec)
        found = await store.get_password_hash(bare)
        rec, stored = found if found else (None, None)
        if not await self.passwords.verify(stored, op.password) or rec is None:
            return None
        if self.passwords.needs_rehash(stored) and not store.capabilities.read_only:
            try:
                await store.set_password_hash(rec.id, await self.passwords.hash(
                    op.password, policy=False), change=QUIET)  # the same password
            except Exception:  # noqa: BLE001 - a failed upgrade must not fail the login
                log.warning("could not upgrade the password hash of %s", rec.id)
        return ops.Entity(ops.USER, store.domain, rec)

    async def _change_password(self, op: ops.ChangePassword) -> ops.Entity:
        store, bare = self.stores.split(op.user_name)
        if op.old_password is not None:
            ok = await self._check_password(ops.CheckPassword(op.user_name, op.old_password),
                                            renewing=True)
            if ok is None:
                raise Forbidden("The current password is wrong")
        rec = await store.get_user_by_name(bare, with_groups=False)
        if rec is None:
            raise NotFound(f"User '{op.user_name}' not found")
        self._touching(["password"], ops.Entity(ops.USER, store.domain, rec))
        replacing = await self._replacing(store, rec, op.new_password)
        await self._writable(store).set_password_hash(rec.id, await self._hash(
            op.new_password, store, replacing), change=_CHANGE.get())
        await self._replaced(store, replacing)
        if self._tracks_password_age(store):
            await self._set_wso2(store, rec.id, password_set_now())
        await self._credentials_changed(rec.id)
        return ops.Entity(ops.USER, store.domain, rec)

    # groups --------------------------------------------------------------------------------
    @staticmethod
    def _pop_members(data: dict) -> list[dict]:
        return [{"value": m["value"], **({"type": m["type"]} if "type" in m else {})}
                for m in data.pop("members", None) or [] if m.get("value")]

    async def _create_group(self, op: ops.CreateGroup) -> ops.Entity:
        data, _ = canonical(self.schemas.group, op.representation)
        members = self._pop_members(data)
        store = self._writable(self._split_name(data, "displayName"))
        if members:
            await self._may_grant(op.grantor, store, [data["displayName"]])
        self._touching(_created_names(data, None) + (["members"] if members else []))
        rec = await store.create_group(data, members, change=_CHANGE.get())
        return ops.Entity(ops.GROUP, store.domain, rec)

    async def _get_group(self, op: ops.GetGroup) -> ops.Entity:
        return await self._find(ops.GROUP, op.id, op.with_members)

    async def _get_group_by_name(self, op: ops.GetGroupByName) -> ops.Entity:
        return await self._by_name(ops.GROUP, op.name, op.with_members, op.anywhere)

    async def _replace_group(self, op: ops.ReplaceGroup) -> ops.Entity:
        current = await self._find(ops.GROUP, op.id, relations=False)
        data, _ = canonical(self.schemas.group, op.representation)
        members = self._pop_members(data)
        store = self._split_name(data, "displayName")
        self._same_domain(ops.GROUP, store, current)
        check_immutable(self.schemas.group, current.record.data, data)
        await self._may_grant(op.grantor, store, [current.record.data["displayName"],
                                                  data["displayName"]], op.id)
        self._touching(_changed_names(current.record.data, data, None) + ["members"], current)
        rec = await self._writable(store).replace_group(
            op.id, data, expected_version=op.if_match, members=members, change=_CHANGE.get())
        await self._credentials_changed(None)
        return ops.Entity(ops.GROUP, store.domain, rec)

    async def _patch_group(self, op: ops.PatchGroup) -> ops.Entity:
        async with self._patching.hold(op.id):
            return await self._patch_group_now(op)

    async def _patch_group_now(self, op: ops.PatchGroup) -> ops.Entity:
        for attempt in range(PATCH_RETRIES):
            current = await self._find(ops.GROUP, op.id, relations=False)
            rec = current.record
            if op.if_match is not None and rec.version != op.if_match:
                raise VersionMismatch(f"Group {op.id} has changed (version {rec.version})")
            before = self._configured(self.schemas.group, rec.data)
            before["displayName"] = qualify(current.domain, rec.data["displayName"])
            result = apply_patch(self.schemas.group, before, op.operations)
            data = result.resource
            store = self._split_name(data, "displayName")
            self._same_domain(ops.GROUP, store, current)
            changes = result.members
            if data == rec.data and not changes:
                return await self._find(ops.GROUP, op.id, op.with_members)
            check_immutable(self.schemas.group, rec.data, data)
            if changes or data["displayName"] != rec.data["displayName"]:
                await self._may_grant(op.grantor, store, [rec.data["displayName"],
                                                          data["displayName"]], op.id)
            add = changes.replace if changes.replace is not None else changes.add
            self._touching(_changed_names(rec.data, data, None)
                           + (["members"] if changes else []), current)
            # members alone are added and removed in the store's transaction, on whatever
            # version is there then; a change of attributes is made on the version read
            expected = op.if_match if data == rec.data else rec.version
            try:
                new = await self._writable(store).change_members(
                    op.id, expected_version=expected,
                    add=add, remove=changes.remove,
                    remove_all=changes.remove_all or changes.replace is not None,
                    data=None if data == rec.data else data, with_members=op.with_members,
                    change=_CHANGE.get())
            except VersionMismatch:
                if op.if_match is not None:
                    raise
                await _lost_race(attempt)
                continue
            await self._credentials_changed(None)
            return ops.Entity(ops.GROUP, store.domain, new)
        raise ConcurrentUpdate()

    async def _change_members(self, op: ops.ChangeMembers) -> ops.Entity:
        current = await self._find(ops.GROUP, op.group_id, relations=False)
        store = self._writable(self.stores.get(current.domain))
        await self._may_grant(op.grantor, store, [current.record.data["displayName"]],
                              op.group_id)
        self._touching(["members"], current)
        rec = await store.change_members(
            op.group_id, expected_version=None,
            add=[{"value": i} for i in op.add], remove=list(op.remove), change=_CHANGE.get())
        await self._credentials_changed(None)
        return ops.Entity(ops.GROUP, store.domain, rec)

    async def _delete_group(self, op: ops.DeleteGroup) -> ops.Entity:
        current = await self._find(ops.GROUP, op.id, relations=False)
        store = self._writable(self.stores.get(current.domain))
        self._touching(entity=current)
        await store.delete_group(op.id, expected_version=op.if_match, change=_CHANGE.get())
        await self._credentials_changed(None)
        return current

    async def bulk_create_users(self, caller: Principal, domain: str,
                                representations: list[tuple[str, dict]]) -> int:
        """Create many users in one store transaction (initial loads).

        Each representation comes with a label (e.g. its line number) for error messages.
        """
        caller.require("users:create")
        store = self._writable(self.stores.get(domain))
        items = []
        for label, rep in representations:
            try:
                data, password = canonical(self.schemas.user, rep)
                target, bare = self.stores.split(data["userName"])
            except GatewayError as exc:
                raise type(exc)(f"{label}: {exc.detail}") from None
            if target is not store:
                raise InvalidValue(f"{label}: '{data['userName']}' is not in the domain {domain}")
            data["userName"] = bare
            self._stamp_password(data, password, store)
            items.append((data, await self._hash(password, store)))
        event = Event.now(caller.name, "ImportUsers", kind=ops.USER, target=domain)
        change = Change(outbox=caller.provision and self.outbox)
        try:
            if not hasattr(store, "bulk_insert_users"):
                for data, pw in items:
                    await store.create_user(data, pw, change=change)
                count = len(items)
            else:
                count = await store.bulk_insert_users(items, change=change)
        except GatewayError as exc:
            await self.audit.record([event.failed(exc)])
            raise
        await self.audit.record([dataclasses.replace(event, detail=f"{count} users")])
        return count

    # bootstrap -----------------------------------------------------------------------------------
    async def ensure_admin(self, user_name: str | None, password: str | None) -> str | None:
        """Make sure an administrator exists; returns a generated password to print, if any."""
        generated = None
        name = user_name or "admin"
        store, bare = self.stores.split(name)
        if store.capabilities.read_only:  # e.g. a directory the gateway only reads
            log.warning("the user store %s is read-only: no administrator is made there; "
                        "administer the gateway with an API client ([[clients]])", store.domain)
            return None
        rec = await store.get_user_by_name(bare, with_groups=True)
        created = False
        if rec is None:
            if password is None:  # every class of character: any min_classes holds
                generated = secrets.token_urlsafe(15) + "aZ7-"
            try:
                entity = await self.execute(SYSTEM, ops.CreateUser(
                    {"userName": name, "password": password or generated}))
                rec, created = entity.record, True
            except Conflict:  # another host sharing the database created it just now
                generated = None
                rec = await store.get_user_by_name(bare, with_groups=True)
                if rec is None:
                    raise
        if password is not None and not created:  # the environment says what it is
            if await self._verify_password(ops.CheckPassword(name, password)) is None:
                await store.set_password_hash(rec.id, await self._hash(password, store))
        role = await store.get_group_by_name(ADMIN_ROLE, with_members=False)
        if role is None:
            try:
                await store.create_group({"displayName": ADMIN_ROLE}, [{"value": rec.id}])
            except Conflict:  # another host sharing the database created it first
                role = await store.get_group_by_name(ADMIN_ROLE, with_members=False)
        if role is not None:
            await store.change_members(role.id, expected_version=None, add=[{"value": rec.id}])
        return generated

    def permissions_of(self, entity: ops.Entity) -> frozenset[str]:
        return self._conferred(entity.domain, [g["display"] for g in entity.record.groups or []])

    def _conferred(self, domain: str, group_names: list[str]) -> frozenset[str]:
        """The permissions ``[roles]`` gives the members of groups of one domain."""
        from .auth.principal import role_permissions

        names = []
        for name in group_names:
            names.append(qualify(domain, name))
            if domain == PRIMARY:
                names.append(f"{PRIMARY}/{name}")
        return role_permissions(self.config.roles, names)

    async def _may_grant(self, grantor: Principal | None, store: UserStore,
                         names: list[str], group_id: str | None = None) -> None:
        """No principal gives anyone (itself included) a permission it does not hold:
        changing the members of a group, or naming a group with members, needs every
        permission the group confers by its names and the groups that hold it."""
        if grantor is None:
            return
        names = list(names)
        if group_id is not None:
            names += await self._ancestor_names(store, group_id)
        missing = sorted(p for p in self._conferred(store.domain, names)
                         if not grantor.allows(p))
        if missing:
            raise Forbidden(f"'{grantor.name}' may not change who belongs to this group: it "
                            f"grants {', '.join(missing)}, which '{grantor.name}' does not hold")

    async def _ancestor_names(self, store: UserStore, group_id: str) -> list[str]:
        """The names of the groups that hold a group, directly or through others."""
        names: list[str] = []
        seen, frontier = {group_id}, [group_id]
        while frontier and len(seen) < MAX_ANCESTORS:
            gid = frontier.pop()
            page = await store.search_groups(Query(
                filter=parse_filter(self.schemas.group, f'members.value eq "{gid}"'),
                limit=MAX_ANCESTORS, with_total=False, with_relations=False))
            for rec in page.records:
                if rec.id not in seen:
                    seen.add(rec.id)
                    frontier.append(rec.id)
                    names.append(rec.data["displayName"])
        return names


def _target_of(op: ops.Operation) -> dict:
    """What an operation names as its target, before it runs (the audit event of a
    change that fails)."""
    if isinstance(op, ops.CreateUser | ops.CreateGroup):
        rep = op.representation if isinstance(op.representation, dict) else {}
        name = rep.get("userName" if isinstance(op, ops.CreateUser) else "displayName")
        return {"target": name if isinstance(name, str) else None}
    if isinstance(op, ops.ChangePassword):
        return {"target": op.user_name}
    entity_id = getattr(op, "id", None) or getattr(op, "group_id", None)
    return {"target_id": entity_id if isinstance(entity_id, str) else None}


def _created_names(data: dict, password: str | None) -> list[str]:
    return sorted(data) + (["password"] if password is not None else [])


def _changed_names(before: dict, after: dict, password: str | None) -> list[str]:
    return sorted(changed_attributes(before, after)) + (
        ["password"] if password is not None else [])
