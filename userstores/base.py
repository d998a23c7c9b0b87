"""The user store interface: what every backend (SQL, LDAP, ...) offers the pipeline.

A store holds the users and groups of one domain. It speaks canonical
resources (``gateway.model``) and resolved filters (``gateway.model.query``),
never a wire format. Names inside a store carry no domain prefix; the
pipeline adds and strips it. Every method raises only ``gateway.errors``
classes: library errors are wrapped at this boundary.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

from gateway.model.query import AttrRef, Node


@dataclass(frozen=True)
class Capabilities:
    read_only: bool = False
    bulk_load: bool = False  # bulk_insert_users: many new users in one transaction
    # the store keeps passwords itself (LDAP): it gets them in clear (PlainPassword) and
    # checks them (check_password) instead of keeping the gateway's argon2 hashes
    native_passwords: bool = False
    # groups the pipeline marks hybrid (WSO2's Internal/... and Application/... roles) may
    # hold users of other stores: member references ``{"value", "domain"}`` (SQL)
    foreign_members: bool = False


@dataclass
class Record:
    """One stored user or group as the store returns it."""

    id: str
    data: dict  # canonical attributes (userName/displayName included; no id/meta/groups)
    version: int
    created: str  # RFC 3339 UTC
    last_modified: str
    # users: [{"value", "display", "type"}] of their groups (direct and indirect); the
    # pipeline adds the hybrid roles of another store with that store's "domain"
    groups: list[dict] | None = None
    # groups: [{"value", "type", "display"}]; a user of another store (in a hybrid group)
    # is {"value", "type", "domain"}, its "display" added by the pipeline
    members: list[dict] | None = None
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


@dataclass(frozen=True)
class Change:
    """How a store makes a change (every write method takes one): with a row in its outbox
    for outbound provisioning (``outbox``; off for clients whose changes are only kept,
    and for an account's own state), and with the ``journal``'s record in the same
    transaction where the store can."""

    outbox: bool = True
    journal: Journal | None = None


WRITE = Change()  # an ordinary change: outbox row, no journal
QUIET = Change(outbox=False)  # kept, not provisioned


@dataclass(frozen=True)
class OutboxRow:
    """One committed change waiting in a store's outbox."""

    seq: int  # increasing within the store
    kind: str  # User, Group
    entity_id: str
    action: str  # upsert, delete
    name: str | None
    created: str  # when it was committed (gateway.model.times)


class Outbox(abc.ABC):
    """The transactional outbox of a store that writes one row with each committed change
    (``UserStore.outbox``); the outbound dispatcher fans the rows out to its delivery
    queue and then drops them. A fan-out done twice (another dispatcher, or a crash
    before the drop) queues nothing twice: the queue is keyed by (store, seq)."""

    @abc.abstractmethod
    async def waiting(self) -> bool:
        """Whether a row waits (a read: an idle outbox costs no write transaction)."""

    @abc.abstractmethod
    async def take(self, limit: int) -> list[OutboxRow]:
        """The oldest rows, left in place."""

    @abc.abstractmethod
    async def drop(self, seqs: list[int]) -> None:
        """Forget rows that were fanned out."""

    @abc.abstractmethod
    async def drain(self, limit: int) -> int:
        """Drop the oldest rows without fanning them out (no connector wants them)."""

    @abc.abstractmethod
    async def holds(self, kind: str, entity_id: str) -> bool:
        """Whether a change of this entity still waits here."""

    def lives_in(self, database) -> bool:
        """Whether the outbox is in ``database`` (a SQL runner: the delivery queue's)."""
        return False

    async def move(self, limit: int, into) -> int:
        """For an outbox that ``lives_in`` the queue's database: take the oldest rows,
        ``into(conn, rows)`` (queue them on the same connection) and drop them, in one
        transaction; the number moved. (Elsewhere: ``take``, queue, ``drop``.)"""
        raise NotImplementedError


class PlainPassword(str):
    """A password in clear, for a store with ``native_passwords``; never logged."""

    def __repr__(self) -> str:
        return "PlainPassword(***)"


class UNCHANGED:  # noqa: N801 - sentinel
    """Marker: leave the password as it is."""


class UserStore(abc.ABC):
    """One domain's users and groups.

    Every write method takes a ``change`` (:class:`Change`): whether to write an outbox
    row, and a journal record to keep in the same transaction."""

    domain: str
    capabilities: Capabilities
    # the store's own transactional outbox, or None: the pipeline then reports each
    # committed change to the dispatcher itself (LDAP)
    outbox: Outbox | None = None

    def database(self):
        """The SQL runner of the store's database, where the gateway may keep its own
        tables (its state database), or None (a directory)."""
        return None

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
    async def create_user(self, data: dict, password_hash: str | None, *,
                          groups: list[str] = (), change: Change = WRITE) -> Record:
        """A new user, member of ``groups`` (ids of this store's groups) from the start:
        all of it or nothing (NotFound for a group that is not there)."""

    async def create_users(self, items: list[tuple[dict, str | None]], *,
                           change: Change = WRITE) -> list:
        """Create several users, each succeeding or failing on its own: a Record or the
        GatewayError for each. Stores that can do better than one by one override it."""
        from gateway.errors import GatewayError

        out = []
        for data, password_hash in items:
            try:
                out.append(await self.create_user(data, password_hash, change=change))
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
                           password_hash: str | None | type[UNCHANGED] = UNCHANGED,
                           change: Change = WRITE) -> Record:
        """Replace the attributes; raise NotFound, VersionMismatch or Conflict."""

    @abc.abstractmethod
    async def delete_user(self, user_id: str, *, expected_version: int | None,
                          change: Change = WRITE) -> None: ...

    @abc.abstractmethod
    async def search_users(self, query: Query) -> Page: ...

    @abc.abstractmethod
    async def set_password_hash(self, user_id: str, password_hash: str, *,
                                change: Change = WRITE) -> None: ...

    @abc.abstractmethod
    async def get_password_hash(self, user_name: str) -> tuple[Record, str | None] | None:
        """The user (with groups) and its password hash, by case-insensitive name."""

    async def check_password(self, user_name: str, password: str) -> Record | None:
        """Stores with ``native_passwords``: the user (with groups) if the password is
        right, else None."""
        raise NotImplementedError

    # groups ---------------------------------------------------------------
    @abc.abstractmethod
    async def create_group(self, data: dict, members: list[dict], *,
                           change: Change = WRITE, hybrid: bool = False) -> Record:
        """A new group with its members. ``hybrid`` (the pipeline's mark of a WSO2 hybrid
        role, for a store with ``foreign_members``): a member ``{"value", "domain"}`` of
        another domain is a user of that store, which the pipeline has found there; any
        other group refuses such members (InvalidValue)."""

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
                            members: list[dict] | None = None,
                            change: Change = WRITE, hybrid: bool = False) -> Record:
        """Replace attributes and, unless ``members`` is None, the whole member list
        (``hybrid``: as create_group's)."""

    @abc.abstractmethod
    async def change_members(self, group_id: str, *, expected_version: int | None,
                             add: list[dict] = (), remove: list[str] = (),
                             remove_all: bool = False, data: dict | None = None,
                             with_members: bool = True, change: Change = WRITE,
                             hybrid: bool = False) -> Record:
        """Add/remove members (and optionally replace attributes) in one transaction
        (``hybrid``: as create_group's; members are removed by id, whatever their store).

        With ``with_members`` False the result does not list the members, so that
        changing one member of a large group never reads the others."""

    @abc.abstractmethod
    async def delete_group(self, group_id: str, *, expected_version: int | None,
                           change: Change = WRITE) -> None: ...

    @abc.abstractmethod
    async def search_groups(self, query: Query) -> Page: ...

    async def foreign_groups_of(self, domain: str, user_ids: list[str]) -> dict[str, list]:
        """Stores with ``foreign_members``: the groups here holding these users of the
        store of ``domain``, as ``Record.groups`` lists them (direct: the hybrid roles they
        were added to; indirect: the groups holding those), by user id."""
        return {}


async def _each(ids: list[str], get) -> dict[str, Record]:
    """``get(id)`` for each id, one after the other: id -> the record found."""
    out = {}
    for entity_id in ids:
        rec = await get(entity_id)
        if rec is not None:
            out[entity_id] = rec
    return out
