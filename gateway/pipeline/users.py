"""The pipeline's user operations: create (one or several, and bulk loads), read,
replace, PATCH (applied again on the newer version when it lost a race) and delete."""

from __future__ import annotations

import dataclasses

from userstores.base import (
    UNCHANGED,
    Change,
    Record,
)

from .. import operations as ops
from ..audit import Event, about
from ..auth.principal import Principal
from ..errors import (
    Forbidden,
    GatewayError,
    InvalidValue,
    VersionMismatch,
)
from ..model.account import (
    changed_attributes,
    with_account_state,
)
from ..model.patch import apply_patch
from ..model.validate import canonical, check_immutable
from ..names import qualify
from .common import (
    CHANGE,
    changed_names,
    created_names,
)


class UserOperations:
    """Mixed into :class:`gateway.pipeline.core.Pipeline`."""

    async def _create_user(self, op: ops.CreateUser) -> ops.Entity:
        data, password = canonical(self.schemas.user, op.representation)
        store = self._writable(self._split_name(data, "userName"))
        self._stamp_password(data, password, store)
        own, hybrid = [], []  # the groups it joins: of its store, or hybrid roles; grantable
        for group_id in op.groups:
            group = await self._find(ops.GROUP, group_id, relations=False)
            home = self.stores.get(group.domain)
            name = group.record.data["displayName"]
            if group.domain == store.domain:
                own.append(group_id)
            elif self._is_hybrid(home, name) and self._home() is home:
                hybrid.append(group_id)
            else:
                raise InvalidValue(f"Group '{name}' is in the user store {group.domain}; a "
                                   f"user of {store.domain} can only join groups of "
                                   f"{store.domain} and hybrid roles")
            await self._may_grant(op.grantor, home, [name], group_id)
        self._touching(created_names(data, password) + (["groups"] if op.groups else []))
        rec = await store.create_user(data, await self._hash(password, store),
                                      groups=own, change=CHANGE.get())
        created = ops.Entity(ops.USER, store.domain, rec)
        if hybrid:  # in another database: after the user, which goes again if they fail
            try:
                await self._join_hybrid_roles(created, hybrid)
            except Exception:
                await store.delete_user(rec.id, expected_version=None,
                                        change=Change(outbox=CHANGE.get().outbox))
                await self._leave_hybrid_roles(created)
                raise
        if op.groups:
            await self._credentials_changed(None)  # what the groups grant moved
        if hybrid:  # read again, with the roles joined
            return await self._find(ops.USER, rec.id)
        return created

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
        self._touching(changed_names(current.record.data, data, password), current)
        self._stamp_password(data, password, store)
        replacing = await self._replacing(store, current.record, password)
        pw = UNCHANGED if password is None else await self._hash(password, store, replacing)
        rec = await self._writable(store).replace_user(
            op.id, data, expected_version=op.if_match, password_hash=pw, change=CHANGE.get())
        await self._replaced(store, replacing)
        await self._account_changed(op.id, store.domain, current.record.data, data, password)
        return ops.Entity(ops.USER, store.domain, rec)

    async def _patch_user(self, op: ops.PatchUser) -> ops.Entity:
        return await self._patch(op, self._patch_user_once)

    async def _patch_user_once(self, op: ops.PatchUser) -> ops.Entity:
        """The PATCH applied to the version read now (VersionMismatch: it changed)."""
        current = await self._find(ops.USER, op.id, relations=False)  # the store's write
        rec = current.record  # answers with the groups
        if op.if_match is not None and rec.version != op.if_match:
            raise VersionMismatch(f"User {op.id} has changed (version {rec.version})")
        before = self._configured(self.schemas.user, rec.data)
        before["userName"] = qualify(current.domain, rec.data["userName"])
        result = apply_patch(self.schemas.user, before, op.operations)
        data = result.resource
        store = self._split_name(data, "userName")
        self._same_domain(ops.USER, store, current)
        if data == rec.data and result.password is None:
            return await self._find(ops.USER, op.id)  # nothing to write: as it is
        check_immutable(self.schemas.user, rec.data, data)
        self._self_service_limits(op.only, rec.data, data, result.password)
        self._touching(changed_names(rec.data, data, result.password), current)
        self._stamp_password(data, result.password, store)
        replacing = await self._replacing(store, rec, result.password)
        pw = (UNCHANGED if result.password is None
              else await self._hash(result.password, store, replacing))
        new = await self._writable(store).replace_user(
            op.id, data, expected_version=rec.version, password_hash=pw, change=CHANGE.get())
        await self._replaced(store, replacing)
        await self._account_changed(op.id, store.domain, rec.data, data, result.password)
        return ops.Entity(ops.USER, store.domain, new)

    async def _delete_user(self, op: ops.DeleteUser) -> ops.Entity:
        current = await self._find(ops.USER, op.id, relations=False)
        store = self._writable(self.stores.get(current.domain))
        self._touching(entity=current)
        await store.delete_user(op.id, expected_version=op.if_match, change=CHANGE.get())
        await self._leave_hybrid_roles(current)  # of another store: its hybrid roles
        await self.history.forget(store.domain, op.id)
        await self._credentials_changed(op.id)
        return current

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

    async def _create_users(self, caller: Principal, op: ops.CreateUsers
                            ) -> list[ops.Entity | GatewayError]:
        representations = list(op.representations)
        if not caller.store:  # provision-only: one by one, straight to the connectors
            out = []
            for rep in representations:
                try:
                    out.append(await self.execute(caller, ops.CreateUser(rep)))
                except GatewayError as exc:
                    out.append(exc)
            return out
        outbox = caller.provision and self.outbox
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
                     created_names(data, password)))
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
                        event, domain, result), attributes=names))
        for i, result in enumerate(out):
            if isinstance(result, GatewayError):
                name = representations[i].get("userName") \
                    if isinstance(representations[i], dict) else None
                kept.append(dataclasses.replace(
                    event.failed(result), target=name if isinstance(name, str) else None))
        await self.audit.record(kept)
        if self.outbound is not None and caller.provision:
            self.outbound.kick()
        return out

    async def _import_users(self, caller: Principal, op: ops.ImportUsers) -> int:
        domain = op.domain
        store = self._writable(self.stores.get(domain))
        items = []
        for label, rep in op.items:
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
            if not store.capabilities.bulk_load:
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
