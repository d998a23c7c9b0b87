"""The user store interface: what every backend (SQL, LDAP, ...) offers the pipeline.

A store holds the users and groups of one domain. It speaks canonical
resources (``gateway.model``) and resolved filters (``gateway.model.query``),
never a wire format. Names inside a store carry no domain prefix; the
pipeline adds and strips it. Every method raises only ``gateway.errors``
classes: library errors are wrapped at this boundary.
"""

from __future__ import annotations

import abc
from contextvars import ContextVar
from dataclasses import dataclass, field

from gateway.model.query import AttrRef, Node


@dataclass(frozen=True)
class Capabilities:
    read_only: bool = False
    groups: bool = True
    password_check: bool = True
    filter_pushdown: bool = True
    sorting: bool = True
    bulk_load: bool = False
    # the store keeps passwords itself (LDAP): it gets them in clear (PlainPassword) and
    # checks them (check_password) instead of keeping the gateway's argon2 hashes
    native_passwords: bool = False


@dataclass
class Record:
    """One stored user or group as the store returns it."""

    id: str
    data: dict  # canonical attributes (userName/displayName included; no id/meta/groups)
    version: int
    created: str  # RFC 3339 UTC
    last_modified: str
    groups: list[dict] | None = None  # users: [{"value", "display"}] of direct groups
    members: list[dict] | None = None  # groups: [{"value", "type", "display"}]
    # with Query.keyset: where this record stands in the order (sort value, tie-breaker)
    position: tuple | None = None


@dataclass(frozen=True)
class Query:
    filter: Node | None = None
    sort: AttrRef | None = None
    descending: bool = False
    offset: int = 0  # 0-based
    limit: int = 100
    with_total: bool = True
    # load memberships with each record (users: groups; groups: members)
    with_relations: bool = True
    # keyset paging: only records after this position (a Record.position of an earlier
    # page), and report each record's position; offset is then 0
    after: tuple | None = None
    keyset: bool = False


@dataclass
class Page:
    records: list[Record] = field(default_factory=list)
    total: int = 0


# whether the changes made in this context are recorded for outbound provisioning (the
# pipeline turns it off for clients whose changes are only persisted)
OUTBOX: ContextVar[bool] = ContextVar("outbox", default=True)


class Journal(abc.ABC):
    """A record the pipeline wants kept with the change it makes next (a row of the audit
    trail). A store whose transactions run on ``runner`` (the database the record belongs
    in) writes it inside the change's transaction, so that both are kept or neither; any
    other store ignores it and the pipeline writes the record after the change."""

    runner: object  # the SQL runner of the database the record belongs in
    done: bool = False  # written and committed with a change

    @abc.abstractmethod
    def write(self, conn, domain: str, result) -> None:
        """Inside the change's transaction on ``conn``; ``result``: what the store
        operation returns (a Record, a list of them for several creates, or None)."""


# the record to keep with the change made in this context (the pipeline sets it)
JOURNAL: ContextVar[Journal | None] = ContextVar("journal", default=None)


class PlainPassword(str):
    """A password in clear, for a store with ``native_passwords``; never logged."""

    def __repr__(self) -> str:
        return "PlainPassword(***)"


class UNCHANGED:  # noqa: N801 - sentinel
    """Marker: leave the password as it is."""


class UserStore(abc.ABC):
    """One domain's users and groups."""

    domain: str
    capabilities: Capabilities

    # lifecycle ------------------------------------------------------------
    @abc.abstractmethod
    async def open(self) -> None:
        """Connect, create or migrate the schema."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def ping(self) -> None:
        """Cheapest round trip to the backend (health checks); raises StoreUnavailable."""

    @abc.abstractmethod
    async def check(self) -> str:
        """Connect and report what was found (for ``gateway config check``)."""

    # users ----------------------------------------------------------------
    @abc.abstractmethod
    async def create_user(self, data: dict, password_hash: str | None) -> Record: ...

    async def create_users(self, items: list[tuple[dict, str | None]]) -> list:
        """Create several users, each succeeding or failing on its own: a Record or the
        GatewayError for each. Stores that can do better than one by one override it."""
        from gateway.errors import GatewayError

        out = []
        for data, password_hash in items:
            try:
                out.append(await self.create_user(data, password_hash))
            except GatewayError as exc:
                out.append(exc)
        return out

    @abc.abstractmethod
    async def get_user(self, user_id: str, *, with_groups: bool = True) -> Record | None: ...

    @abc.abstractmethod
    async def get_user_by_name(self, user_name: str, *, with_groups: bool = True
                               ) -> Record | None: ...

    async def get_users(self, user_ids: list[str]) -> dict[str, Record]:
        """Several users by id, with their groups (missing ones are left out); stores that
        can read them in one query do."""
        return await _each(user_ids, lambda i: self.get_user(i, with_groups=True))

    @abc.abstractmethod
    async def replace_user(self, user_id: str, data: dict, *, expected_version: int | None,
                           password_hash: str | None | type[UNCHANGED] = UNCHANGED) -> Record:
        """Replace the attributes; raise NotFound, VersionMismatch or Conflict."""

    @abc.abstractmethod
    async def delete_user(self, user_id: str, *, expected_version: int | None) -> None: ...

    @abc.abstractmethod
    async def search_users(self, query: Query) -> Page: ...

    @abc.abstractmethod
    async def set_password_hash(self, user_id: str, password_hash: str) -> None: ...

    @abc.abstractmethod
    async def get_password_hash(self, user_name: str) -> tuple[Record, str | None] | None:
        """The user (with groups) and its password hash, by case-insensitive name."""

    async def check_password(self, user_name: str, password: str) -> Record | None:
        """Stores with ``native_passwords``: the user (with groups) if the password is
        right, else None."""
        raise NotImplementedError

    # groups ---------------------------------------------------------------
    @abc.abstractmethod
    async def create_group(self, data: dict, members: list[dict]) -> Record: ...

    @abc.abstractmethod
    async def get_group(self, group_id: str, *, with_members: bool = True) -> Record | None: ...

    async def get_groups(self, group_ids: list[str]) -> dict[str, Record]:
        """Several groups by id, with their members (missing ones are left out)."""
        return await _each(group_ids, lambda i: self.get_group(i, with_members=True))

    @abc.abstractmethod
    async def get_group_by_name(self, name: str, *, with_members: bool = True
                                ) -> Record | None: ...

    @abc.abstractmethod
    async def replace_group(self, group_id: str, data: dict, *, expected_version: int | None,
                            members: list[dict] | None = None) -> Record:
        """Replace attributes and, unless ``members`` is None, the whole member list."""

    @abc.abstractmethod
    async def change_members(self, group_id: str, *, expected_version: int | None,
                             add: list[dict] = (), remove: list[str] = (),
                             remove_all: bool = False, data: dict | None = None,
                             with_members: bool = True) -> Record:
        """Add/remove members (and optionally replace attributes) in one transaction.

        With ``with_members`` False the result does not list the members, so that
        changing one member of a large group never reads the others."""

    @abc.abstractmethod
    async def delete_group(self, group_id: str, *, expected_version: int | None) -> None: ...

    @abc.abstractmethod
    async def search_groups(self, query: Query) -> Page: ...


async def _each(ids: list[str], get) -> dict[str, Record]:
    """``get(id)`` for each id, one after the other: id -> the record found."""
    out = {}
    for entity_id in ids:
        rec = await get(entity_id)
        if rec is not None:
            out[entity_id] = rec
    return out
