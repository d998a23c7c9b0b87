"""WSO2's hybrid roles (``Internal/…``, ``Application/…``): groups of PRIMARY that hold
users of any store.

A hybrid role lives in PRIMARY's store (its home); a member of another store is kept
there as a reference with that store's domain (``{"value", "domain"}``), which only a
store with ``foreign_members`` (SQL) can keep. The pipeline is the one place that knows
where a member lives:

- writing: a member of a hybrid role is looked up in the other stores first (each
  user in its own store); one found there is passed down with its domain, and the
  store accepts it only because the pipeline marks the group ``hybrid``. Groups of
  other stores (nested groups) stay PRIMARY's own;
- reading: a foreign member's name comes from its own store, and a user of another
  store gets the hybrid roles that hold it (and the groups holding those) appended to
  its groups, each with the home's ``domain``;
- deleting a user of another store takes it out of the hybrid roles that held it.
"""

from __future__ import annotations

from userstores.base import Change, UserStore

from .. import operations as ops
from ..errors import InvalidValue, NotFound
from ..names import PRIMARY
from .common import CHANGE


class HybridRoles:
    """Mixed into :class:`gateway.pipeline.core.Pipeline`."""

    def _is_hybrid(self, store: UserStore, name: str) -> bool:
        """Whether the group ``name`` (bare, as its store holds it) of ``store`` is a
        WSO2 hybrid role: a PRIMARY group named ``Internal/…`` or ``Application/…``."""
        return store.domain.upper() == PRIMARY and self.names.is_hybrid(name)

    def _home(self) -> UserStore | None:
        """The store keeping the hybrid roles' members of other stores, if it can."""
        if len(self.stores.all) == 1:
            return None
        home = self.stores.primary
        return home if home.capabilities.foreign_members else None

    async def _members_of_any_store(self, store: UserStore, members: list[dict],
                                    hybrid: bool) -> list[dict]:
        """The members of a new or changed group as its store takes them: for a hybrid
        group, each one that is a user of another store (found there) with that store's
        domain; the others are left to the group's own store to check."""
        if not hybrid or not members or len(self.stores.all) == 1:
            return members
        pending = {m["value"]: m for m in members
                   if isinstance(m["value"], str) and "\x00" not in m["value"]
                   and len(m["value"]) <= 64}
        for user_id in await store.get_users(list(pending)) if pending else ():
            del pending[user_id]  # its own users (one query), before any other store's
        foreign = []
        for other in self.stores.all:
            if other is store or not pending:
                continue
            for user_id in await other.get_users(list(pending)):
                given = pending.pop(user_id).get("type")
                if given not in (None, ops.USER):
                    raise InvalidValue(f"Member {user_id} is a User, not a {given}")
                foreign.append({"value": user_id, "type": ops.USER, "domain": other.domain})
        if foreign and not store.capabilities.foreign_members:
            raise InvalidValue(f"The user store {store.domain} cannot keep users of other "
                               "stores in its hybrid roles")
        found = {m["value"] for m in foreign}
        return [m for m in members if m["value"] not in found] + foreign

    async def _keeps_foreign(self, group_id: str, removed: list[str]) -> bool:
        """Whether the group holds a user of another store that ``removed`` leaves in."""
        group = await self._find(ops.GROUP, group_id, relations=True)
        gone = set(removed)
        return any("domain" in m and m["value"] not in gone
                   for m in group.record.members or [])

    async def _completed(self, result):
        """A result as the adapters get it: users of other stores with the hybrid roles
        holding them, and hybrid groups' members of other stores with their names."""
        if isinstance(result, ops.Results):
            entities = result.entities
        elif isinstance(result, ops.Entity):
            entities = [result]
        else:
            return result
        if len(self.stores.all) > 1 and entities:
            await self._with_hybrid_roles([e for e in entities if e.kind == ops.USER])
            await self._name_foreign_members([e for e in entities if e.kind == ops.GROUP])
        return result

    async def _with_hybrid_roles(self, users: list[ops.Entity]) -> None:
        home = self._home()
        if home is None:
            return
        by_domain: dict[str, list[ops.Entity]] = {}
        for user in users:
            if user.record.groups is not None and user.domain.upper() != home.domain.upper():
                by_domain.setdefault(user.domain, []).append(user)
        for domain, some in by_domain.items():
            found = await home.foreign_groups_of(domain, [u.id for u in some])
            for user in some:
                extra = found.get(user.id)
                if extra:
                    user.record.groups = list(user.record.groups) + [
                        {**g, "domain": home.domain} for g in extra]

    async def _name_foreign_members(self, groups: list[ops.Entity]) -> None:
        wanted: dict[str, set[str]] = {}
        for group in groups:
            for m in group.record.members or []:
                if "domain" in m:
                    wanted.setdefault(m["domain"].upper(), set()).add(m["value"])
        for domain, ids in wanted.items():
            try:
                store = self.stores.get(domain)
            except InvalidValue:  # a store no longer configured: its users stay unnamed
                continue
            found = await store.get_users(sorted(ids))
            for group in groups:
                for m in group.record.members or []:
                    if m.get("domain", "").upper() == domain:
                        m["domain"] = store.domain  # as configured
                        rec = found.get(m["value"])
                        if rec is not None:
                            m["display"] = rec.data["userName"]

    async def _join_hybrid_roles(self, user: ops.Entity, group_ids: list[str]) -> None:
        """A new user of another store joins hybrid roles (after its creation)."""
        home = self.stores.primary
        change = Change(outbox=CHANGE.get().outbox)
        for group_id in group_ids:
            await home.change_members(
                group_id, expected_version=None, hybrid=True, with_members=False,
                add=[{"value": user.id, "type": ops.USER, "domain": user.domain}],
                change=change)

    async def _leave_hybrid_roles(self, user: ops.Entity) -> None:
        """A user of another store was deleted: the hybrid roles holding it let it go."""
        home = self._home()
        if home is None or user.domain.upper() == home.domain.upper():
            return
        found = await home.foreign_groups_of(user.domain, [user.id])
        change = Change(outbox=CHANGE.get().outbox)
        for group in found.get(user.id, []):
            if group["type"] != "direct":
                continue
            try:
                await home.change_members(group["value"], expected_version=None,
                                          remove=[user.id], with_members=False,
                                          change=change)
            except NotFound:  # the role went meanwhile
                pass
