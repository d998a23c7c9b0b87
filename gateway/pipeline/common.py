"""What the pipeline's modules share: the context of the operation being run, and
constants."""

from __future__ import annotations

import asyncio
import logging
import random
from contextvars import ContextVar
from typing import NamedTuple

from userstores.base import (
    WRITE,
    Change,
)

from .. import operations as ops
from ..audit import Event
from ..model.account import changed_attributes

log = logging.getLogger("gateway.pipeline")

# the audit event of the change being made in this context (handlers add what they touch)
EVENT: ContextVar[Event | None] = ContextVar("audit_event", default=None)
# how the operation being run writes to its store (Change: outbox row, journal)
CHANGE: ContextVar[Change] = ContextVar("change", default=WRITE)
PATCH_RETRIES = 32  # a PATCH that lost a race is applied again to the newer version


async def lost_race(attempt: int) -> None:
    """Back off a little (growing, jittered) before patching the newer version again."""
    await asyncio.sleep(random.uniform(0, 0.001 * min(attempt, 20)))  # noqa: S311
SELF_SERVICE = ("users:view", "users:update")
# operations that change something, after which outbound provisioning has its say
WRITES = frozenset({ops.CreateUser, ops.ReplaceUser, ops.PatchUser, ops.DeleteUser,
                    ops.ChangePassword, ops.CreateGroup, ops.ReplaceGroup, ops.PatchGroup,
                    ops.ChangeMembers, ops.DeleteGroup})
ADMIN_ROLE = "admin"
# operations that may change who belongs to a group, hence what [roles] grants its members
GRANTING = (ops.CreateUser, ops.CreateGroup, ops.ReplaceGroup, ops.PatchGroup,
            ops.ChangeMembers)
MAX_ANCESTORS = 1000  # groups followed upwards when finding what a group confers


class Replacing(NamedTuple):
    """An account whose password is being replaced, and the hash it had."""

    user_id: str
    previous: str | None




def target_of(op: ops.Operation) -> dict:
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


def created_names(data: dict, password: str | None) -> list[str]:
    return sorted(data) + (["password"] if password is not None else [])


def changed_names(before: dict, after: dict, password: str | None) -> list[str]:
    return sorted(changed_attributes(before, after)) + (
        ["password"] if password is not None else [])
