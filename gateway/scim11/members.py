"""Group members given by name only, as WSO2's outbound SCIM 1.1 connector sends them.

The connector (``identity-outbound-provisioning-scim``) writes members as
``{"display": "alice"}`` (and ``{"display": "bob", "operation": "delete"}``) without
their ``value`` (the id) when it PATCHes and PUTs groups. Such a member is looked up
by name through the pipeline (a user, else a group; ``type`` says which when given);
an unqualified name is looked up in the group's own domain first. A member to add that
is not found is a 400; one to delete that is not found is ignored (it is no member).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from .. import operations as ops
from ..errors import InvalidValue, NotFound
from ..model.patch import PatchOperation

Run = Callable[[ops.Operation], Awaitable]
DomainHint = Callable[[], Awaitable[str | None]]
SEPARATOR = "/"


def by_name_only(member) -> bool:
    return (isinstance(member, dict) and not member.get("value")
            and isinstance(member.get("display"), str) and bool(member["display"].strip()))


async def _find(run: Run, name: str, kind: str | None, hint: DomainHint) -> ops.Entity | None:
    kinds = [kind] if kind in (ops.USER, ops.GROUP) else [ops.USER, ops.GROUP]
    names = [name]
    if SEPARATOR not in name:  # members are in the group's store: that domain first
        domain = await hint()
        if domain and domain.upper() != "PRIMARY":
            names.insert(0, f"{domain}{SEPARATOR}{name}")
    for candidate in names:
        for k in kinds:
            op = (ops.GetUserByName(candidate, with_groups=False) if k == ops.USER
                  else ops.GetGroupByName(candidate, with_members=False))
            try:
                return await run(op)
            except (NotFound, InvalidValue):  # no such name, or no such domain
                continue
    return None


async def resolve(run: Run, members, hint: DomainHint, *, deleting: bool = False):
    """``members`` with every name-only member replaced by ``{"value": id, "type": ...}``."""
    if not isinstance(members, list) or not any(by_name_only(m) for m in members):
        return members
    out = []
    for member in members:
        if not by_name_only(member):
            out.append(member)
            continue
        kind = member.get("type")
        kind = kind.capitalize() if isinstance(kind, str) else None
        found = await _find(run, member["display"].strip(), kind, hint)
        if found is None:
            if deleting:
                continue
            raise InvalidValue(f"members: no user or group is named '{member['display']}'")
        out.append({"value": found.id, "type": found.kind})
    return out


async def resolve_patch(run: Run, operations: list[PatchOperation], hint: DomainHint
                        ) -> list[PatchOperation]:
    """The operations on ``members`` with name-only members resolved (an emptied removal
    is dropped)."""
    out = []
    for op in operations:
        if op.path == "members" and isinstance(op.value, list):
            value = await resolve(run, op.value, hint, deleting=op.op == "remove")
            if not value:
                continue
            op = PatchOperation(op.op, op.path, value)
        out.append(op)
    return out


def group_domain(name) -> str | None:
    """The domain a group name is written with (``SECONDARY/eng`` -> ``SECONDARY``)."""
    if isinstance(name, str) and SEPARATOR in name:
        return name.split(SEPARATOR, 1)[0]
    return None
