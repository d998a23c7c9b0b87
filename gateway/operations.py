"""Canonical provisioning operations: what every protocol adapter turns its request into.

Representations are dicts in the canonical shape (SCIM 2.0 JSON: core
attributes at the top level, extensions under their URN, ``password`` as a
plain attribute); names may carry a user store domain (``SECONDARY/alice``).
``Pipeline.execute`` takes any of these with the caller's identity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from userstores.base import Record

from .model.patch import PatchOperation

if TYPE_CHECKING:
    from .auth.principal import Principal

USER, GROUP = "User", "Group"


@dataclass(frozen=True)
class Operation:
    kind = ""  # User or Group
    permission = ""


# users ----------------------------------------------------------------------------
@dataclass(frozen=True)
class CreateUser(Operation):
    representation: dict
    # ids of groups of the user's store it joins, in the same transaction (SOAP addUser's
    # roleList): needs groups:update too, and whatever those groups grant
    groups: tuple[str, ...] = ()
    # set by the pipeline when the caller lacks '*': whose permissions bound what it grants
    grantor: Principal | None = None
    kind = USER
    permission = "users:create"


@dataclass(frozen=True)
class CreateUsers(Operation):
    """Several users, each created or refused on its own (SCIM /Bulk): the same as that
    many CreateUser, written in one store transaction per store. The result is a list
    with an Entity or the GatewayError of each, in order."""
    representations: tuple[dict, ...]
    kind = USER
    permission = "users:create"


@dataclass(frozen=True)
class ImportUsers(Operation):
    """Many new users of one store in one transaction, all or none (initial loads). Each
    representation comes with a label (its line) for error messages; the result is the
    number created."""
    domain: str
    items: tuple[tuple[str, dict], ...]
    kind = USER
    permission = "users:create"


@dataclass(frozen=True)
class GetUser(Operation):
    id: str
    with_groups: bool = True
    kind = USER
    permission = "users:view"


@dataclass(frozen=True)
class GetUserByName(Operation):
    user_name: str
    with_groups: bool = True
    # an unqualified name: PRIMARY's user, else the one other store's that has it
    # (WSO2 reads it as PRIMARY's only; ``[soap] unqualified_names = "any_store"``)
    anywhere: bool = False
    kind = USER
    permission = "users:view"


@dataclass(frozen=True)
class ReplaceUser(Operation):
    id: str
    representation: dict
    if_match: int | None = None
    # set by the pipeline for a user changing its own account: what it may touch
    only: frozenset[str] | None = None
    kind = USER
    permission = "users:update"


@dataclass(frozen=True)
class PatchUser(Operation):
    id: str
    operations: list[PatchOperation]
    if_match: int | None = None
    # set by the pipeline for a user changing its own account: what it may touch
    only: frozenset[str] | None = None
    kind = USER
    permission = "users:update"


@dataclass(frozen=True)
class DeleteUser(Operation):
    id: str
    if_match: int | None = None
    kind = USER
    permission = "users:delete"


@dataclass(frozen=True)
class Search(Operation):
    filter: str | None = None
    sort_by: str | None = None
    descending: bool = False
    start_index: int = 1  # 1-based, as SCIM has it
    count: int | None = None
    domain: str | None = None
    with_relations: bool = True
    cursor: str | None = None  # RFC 9865: "" for the first page, then a nextCursor


@dataclass(frozen=True)
class SearchUsers(Search):
    kind = USER
    permission = "users:list"


@dataclass(frozen=True)
class CheckPassword(Operation):
    user_name: str
    password: str
    source: str | None = None  # the caller's address, for throttling failed logins
    anywhere: bool = False  # as GetUserByName's
    kind = USER
    permission = "users:authenticate"


@dataclass(frozen=True)
class ChangePassword(Operation):
    user_name: str
    new_password: str
    old_password: str | None = None  # when given, it must match first
    history: bool = True  # False: the operator's (bootstrap) reset, not checked against it
    kind = USER
    permission = "users:update"


# groups ----------------------------------------------------------------------------
@dataclass(frozen=True)
class CreateGroup(Operation):
    representation: dict
    # set by the pipeline when the caller lacks '*': whose permissions bound what it grants
    grantor: Principal | None = None
    kind = GROUP
    permission = "groups:create"


@dataclass(frozen=True)
class GetGroup(Operation):
    id: str
    with_members: bool = True
    kind = GROUP
    permission = "groups:view"


@dataclass(frozen=True)
class GetGroupByName(Operation):
    name: str
    with_members: bool = True
    anywhere: bool = False  # as GetUserByName's
    kind = GROUP
    permission = "groups:view"


@dataclass(frozen=True)
class ReplaceGroup(Operation):
    id: str
    representation: dict
    if_match: int | None = None
    # set by the pipeline when the caller lacks '*': whose permissions bound what it grants
    grantor: Principal | None = None
    kind = GROUP
    permission = "groups:update"


@dataclass(frozen=True)
class PatchGroup(Operation):
    id: str
    operations: list[PatchOperation]
    if_match: int | None = None
    with_members: bool = True  # False: the result need not list the members
    # set by the pipeline when the caller lacks '*': whose permissions bound what it grants
    grantor: Principal | None = None
    kind = GROUP
    permission = "groups:update"


@dataclass(frozen=True)
class ChangeMembers(Operation):
    group_id: str
    add: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    # set by the pipeline when the caller lacks '*': whose permissions bound what it grants
    grantor: Principal | None = None
    kind = GROUP
    permission = "groups:update"


@dataclass(frozen=True)
class DeleteGroup(Operation):
    id: str
    if_match: int | None = None
    kind = GROUP
    permission = "groups:delete"


@dataclass(frozen=True)
class SearchGroups(Search):
    kind = GROUP
    permission = "groups:list"


# results -----------------------------------------------------------------------------
@dataclass
class Entity:
    """A stored user or group with the domain it lives in."""

    kind: str
    domain: str
    record: Record

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def version(self) -> int:
        return self.record.version


@dataclass
class Results:
    entities: list[Entity]
    total: int
    start_index: int | None  # None with cursor paging
    next_cursor: str | None = None
