"""The provisioning pipeline: the one entry point every protocol adapter calls.

``execute(caller, operation)`` authorizes the caller, resolves the user store
domain, validates against the canonical schema, runs the operation on the
store, and returns canonical results (``Entity``/``Results``). Adapters never
touch a store.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from userstores.base import (
    Change,
    Journal,
    UserStore,
)
from userstores.registry import Stores

from .. import operations as ops
from ..audit import Audit, Event, about
from ..auth.guard import Guard
from ..auth.principal import Principal
from ..config import Config
from ..errors import (
    ConcurrentUpdate,
    GatewayError,
    InvalidValue,
    Mutability,
    NotFound,
    NotSupported,
    Unauthorized,
    VersionMismatch,
)
from ..keyed_locks import KeyedLocks
from ..model.registry import SchemaRegistry
from ..model.schema import ResourceType
from ..model.times import stamp
from ..names import is_qualified
from ..outbound.service import ProvisioningFailed
from ..password_history import PasswordHistory
from ..passwords import Passwords
from ..search import Searcher

if TYPE_CHECKING:
    from ..outbound.service import OutboundService


from .accounts import AccountOperations
from .common import (
    CHANGE,
    EVENT,
    GRANTING,
    PATCH_RETRIES,
    SELF_SERVICE,
    WRITES,
    lost_race,
    target_of,
)
from .groups import GroupOperations
from .hybrid import HybridRoles
from .users import UserOperations


class Pipeline(UserOperations, AccountOperations, GroupOperations, HybridRoles):
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
        self.audit = Audit(config.audit)
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
        if isinstance(op, ops.CreateUsers | ops.ImportUsers):  # audited item by item
            return await self._batch(caller, op)
        if type(op) not in WRITES or not self.audit.enabled:
            return await self._execute(caller, op)
        event = Event.now(caller.name, type(op).__name__, kind=op.kind, **target_of(op))
        journal = self.audit.journal(event)
        token = EVENT.set(event)
        try:
            result = await self._execute(caller, op, journal)
        except ProvisioningFailed as exc:  # saved here, not (yet) at a blocking connector
            kept = journal is not None and journal.done
            await self.audit.record(([] if kept else [event]) + [dataclasses.replace(
                event.failed(exc), detail=f"{exc.status} the change was saved; its "
                "provisioning did not finish")])
            raise
        except GatewayError as exc:
            await self.audit.record([event.failed(exc)])
            raise
        finally:
            EVENT.reset(token)
        if journal is None or not journal.done:  # not kept with the change: now
            if isinstance(result, ops.Entity):
                event = about(event, result.domain, result.record)
            await self.audit.record([event])
        return result

    async def _execute(self, caller: Principal, op: ops.Operation,
                       journal: Journal | None = None):
        if not self._self_service(caller, op):
            caller.require(op.permission)
            if isinstance(op, ops.CreateUser) and op.groups:  # joining them is a change too
                caller.require(ops.ChangeMembers.permission)
        elif isinstance(op, ops.ReplaceUser | ops.PatchUser) and not caller.allows(op.permission):
            op = dataclasses.replace(op, only=self.config.self_service_attributes)
        if isinstance(op, GRANTING) and "*" not in caller.permissions:
            op = dataclasses.replace(op, grantor=caller)
        if not caller.store:  # provision-only: straight to the connectors, nothing kept
            from ..outbound.direct import provision_only

            if self.outbound is None:
                raise NotSupported("Outbound provisioning is not running")
            return await provision_only(self.outbound, op)
        outbound = self.outbound if type(op) in WRITES and caller.provision else None
        since = stamp() if outbound is not None else ""
        token = CHANGE.set(Change(outbox=caller.provision and self.outbox, journal=journal))
        try:
            result = await self._completed(await self._handlers[type(op)](op))
        finally:
            CHANGE.reset(token)
        deleted = type(op) in (ops.DeleteUser, ops.DeleteGroup)  # they return what was there
        if outbound is not None and isinstance(result, ops.Entity):
            await outbound.committed(result, "delete" if deleted else "upsert", since)
            for group_id in getattr(op, "groups", ()):  # a new user's groups changed too
                await outbound.committed(await self._find(ops.GROUP, group_id, False),
                                         "upsert", since)
        return None if deleted else result

    async def _batch(self, caller: Principal, op: ops.CreateUsers | ops.ImportUsers):
        """Many users at once: the caller needs the permission for all of them."""
        caller.require(op.permission)
        if isinstance(op, ops.CreateUsers):
            return await self._create_users(caller, op)
        if not caller.store:
            raise NotSupported("A client that only provisions cannot load users")
        return await self._import_users(caller, op)

    @staticmethod
    def _self_service(caller: Principal, op: ops.Operation) -> bool:
        """A store user may read and update its own user (SCIM /Me) without permissions."""
        return (caller.user_id is not None and op.kind == ops.USER
                and op.permission in SELF_SERVICE and getattr(op, "id", None) == caller.user_id)

    async def _patch(self, op, once) -> ops.Entity:
        """A PATCH (of a user or a group): one at a time per entity in this process, and,
        without If-Match, applied again to the newer version when another change won the
        race (``once(op)`` raises VersionMismatch), at most PATCH_RETRIES times."""
        async with self._patching.hold(op.id):
            for attempt in range(PATCH_RETRIES):
                try:
                    return await once(op)
                except VersionMismatch:
                    if op.if_match is not None:
                        raise
                    await lost_race(attempt)
            raise ConcurrentUpdate()

    def _touching(self, names=None, entity: ops.Entity | None = None) -> None:
        """Tell the audit event of this change which attributes it touches (names only)
        and which entity it is about."""
        event = EVENT.get()
        if event is None:
            return
        if names is not None:
            event.attributes = sorted(names)
        if entity is not None:
            done = about(event, entity.domain, entity.record)
            event.target_id, event.target = done.target_id, done.target

    @staticmethod
    def _configured(rtype: ResourceType, data: dict) -> dict:
        """A stored resource without the values of extensions no longer configured."""
        return {k: v for k, v in data.items()
                if not (k.startswith("urn:") and rtype.extension(k) is None)}

    def read_only(self, domain: str) -> bool:
        """Whether the store of ``domain`` only reads (WSO2's isReadOnly)."""
        return self.stores.get(domain).capabilities.read_only

    def _writable(self, store: UserStore) -> UserStore:
        if store.capabilities.read_only:
            from ..errors import ReadOnlyStore

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
