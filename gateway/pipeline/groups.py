"""The pipeline's group operations, and who may grant what: a group that ``[roles]``
maps to permissions is changed only by a principal holding them all."""

from __future__ import annotations

from userstores.base import (
    Query,
    UserStore,
)
from userstores.registry import PRIMARY

from .. import operations as ops
from ..auth.principal import Principal
from ..errors import (
    Forbidden,
    InvalidValue,
    VersionMismatch,
)
from ..model.parsing import parse_filter
from ..model.patch import apply_patch
from ..model.validate import canonical, check_immutable
from ..names import qualify
from .common import (
    CHANGE,
    MAX_ANCESTORS,
    changed_names,
    created_names,
)


class GroupOperations:
    """Mixed into :class:`gateway.pipeline.core.Pipeline`."""

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
        self._touching(created_names(data, None) + (["members"] if members else []))
        hybrid = self._is_hybrid(store, data["displayName"])
        members = await self._members_of_any_store(store, members, hybrid)
        rec = await store.create_group(data, members, change=CHANGE.get(), hybrid=hybrid)
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
        self._touching(changed_names(current.record.data, data, None) + ["members"], current)
        hybrid = self._is_hybrid(store, data["displayName"])
        members = await self._members_of_any_store(store, members, hybrid)
        rec = await self._writable(store).replace_group(
            op.id, data, expected_version=op.if_match, members=members, change=CHANGE.get(),
            hybrid=hybrid)
        await self._credentials_changed(None)
        return ops.Entity(ops.GROUP, store.domain, rec)

    async def _patch_group(self, op: ops.PatchGroup) -> ops.Entity:
        return await self._patch(op, self._patch_group_once)

    async def _patch_group_once(self, op: ops.PatchGroup) -> ops.Entity:
        """The PATCH applied to the version read now (VersionMismatch: it changed)."""
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
        hybrid = self._is_hybrid(store, data["displayName"])
        replacing = changes.remove_all or changes.replace is not None
        if not hybrid and self._is_hybrid(store, rec.data["displayName"]) and not replacing \
                and await self._keeps_foreign(op.id, list(changes.remove)):
            raise InvalidValue(f"'{rec.data['displayName']}' holds users of other stores: a "
                               "role that is not a hybrid role (Internal/, Application/) "
                               "cannot keep them")
        add = await self._members_of_any_store(store, list(add), hybrid)
        self._touching(changed_names(rec.data, data, None)
                       + (["members"] if changes else []), current)
        # members alone are added and removed in the store's transaction, on whatever
        # version is there then; a change of attributes is made on the version read
        expected = op.if_match if data == rec.data else rec.version
        new = await self._writable(store).change_members(
            op.id, expected_version=expected, add=add, remove=changes.remove,
            remove_all=replacing, data=None if data == rec.data else data,
            with_members=op.with_members, change=CHANGE.get(), hybrid=hybrid)
        await self._credentials_changed(None)
        return ops.Entity(ops.GROUP, store.domain, new)

    async def _change_members(self, op: ops.ChangeMembers) -> ops.Entity:
        current = await self._find(ops.GROUP, op.group_id, relations=False)
        store = self._writable(self.stores.get(current.domain))
        await self._may_grant(op.grantor, store, [current.record.data["displayName"]],
                              op.group_id)
        self._touching(["members"], current)
        hybrid = self._is_hybrid(store, current.record.data["displayName"])
        add = await self._members_of_any_store(store, [{"value": i} for i in op.add], hybrid)
        rec = await store.change_members(
            op.group_id, expected_version=None, add=add, remove=list(op.remove),
            change=CHANGE.get(), hybrid=hybrid)
        await self._credentials_changed(None)
        return ops.Entity(ops.GROUP, store.domain, rec)

    async def _delete_group(self, op: ops.DeleteGroup) -> ops.Entity:
        current = await self._find(ops.GROUP, op.id, relations=False)
        store = self._writable(self.stores.get(current.domain))
        self._touching(entity=current)
        await store.delete_group(op.id, expected_version=op.if_match, change=CHANGE.get())
        await self._credentials_changed(None)
        return current

    def _conferred(self, domain: str, group_names: list[str]) -> frozenset[str]:
        """The permissions ``[roles]`` gives the members of groups of one domain."""
        from ..auth.principal import role_permissions

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
            raise Forbidden(f"'{grantor.name}' may not change who belongs to '{names[0]}': it "
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

    def permissions_of(self, entity: ops.Entity) -> frozenset[str]:
        """What ``[roles]`` gives a user by its groups (a hybrid role of a user of another
        store by its own store's name: ``"domain"``)."""
        by_domain: dict[str, list[str]] = {}
        for g in entity.record.groups or []:
            by_domain.setdefault(g.get("domain", entity.domain), []).append(g["display"])
        conferred: frozenset[str] = frozenset()
        for domain, names in by_domain.items():
            conferred |= self._conferred(domain, names)
        return conferred
