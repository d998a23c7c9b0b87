"""The SQL user store on SQLAlchemy 2 Core: SQLite (embedded) or PostgreSQL.

Each method is one store operation (``users.py``, ``groups.py``, ``search.py``) run by the runner
(``engine.py``) in one transaction; database errors are wrapped here into the
gateway's own.
"""

from __future__ import annotations

from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    OperationalError,
    SQLAlchemyError,
)

from gateway.database.engine import Runner, make_runner
from gateway.errors import Conflict, GatewayError, InvalidValue, ReadOnlyStore, StoreUnavailable
from gateway.model.registry import DEFAULT, SchemaRegistry
from userstores.base import (
    UNCHANGED,
    WRITE,
    Capabilities,
    Change,
    Journal,
    Page,
    Query,
    Record,
    UserStore,
)

from . import groups, rows, search, users
from .filters import FilterCompiler
from .outbox import SQLOutbox


class SQLUserStore(UserStore):
    def __init__(self, domain: str, url: str, *, read_only: bool = False, pool_size: int = 8,
                 schemas: SchemaRegistry = DEFAULT):
        self.domain = domain
        self.url = url
        self.schemas = schemas
        self._users = FilterCompiler(schemas.user)
        self._groups = FilterCompiler(schemas.group)
        self.capabilities = Capabilities(read_only=read_only, bulk_load=True,
                                         foreign_members=True)
        self._pool_size = pool_size
        self._runner: Runner | None = None

    # plumbing --------------------------------------------------------------------
    def _wrap(self, exc: Exception) -> GatewayError:
        """A database error as the gateway's own."""
        if isinstance(exc, IntegrityError):
            return Conflict("A resource with this name already exists")
        if isinstance(exc, DataError):  # e.g. a character PostgreSQL cannot store
            detail = str(exc.orig).splitlines()[0][:200] if exc.orig else "invalid data"
            return InvalidValue(f"A value cannot be stored in {self.domain}: {detail}")
        if isinstance(exc, OperationalError | DBAPIError | OSError | ConnectionError):
            return StoreUnavailable(f"user store {self.domain} is unavailable")
        return StoreUnavailable(f"user store {self.domain} failed")

    async def _read(self, fn, *args):
        try:
            return await self._runner.read(fn, *args)
        except GatewayError:
            raise
        except (SQLAlchemyError, OSError, ConnectionError) as exc:
            raise self._wrap(exc) from exc

    async def _read_point(self, fn, *args):
        """A read of one entity by a unique index (``Runner.read_point``)."""
        try:
            return await self._runner.read_point(fn, *args)
        except GatewayError:
            raise
        except (SQLAlchemyError, OSError, ConnectionError) as exc:
            raise self._wrap(exc) from exc

    async def _write(self, fn, *args, change: Change):
        if self.capabilities.read_only:
            raise ReadOnlyStore(f"The user store {self.domain} is read-only")
        if not change.outbox:
            fn = _without_outbox(fn)
        journal = change.journal
        if journal is not None and not journal.done and journal.runner is self._runner:
            fn = _journaled(fn, journal, self.domain)
        else:
            journal = None
        try:
            result = await self._runner.write(fn, *args)
            if journal is not None:
                journal.done = True
            return result
        except GatewayError:
            raise
        except (SQLAlchemyError, OSError, ConnectionError) as exc:
            raise self._wrap(exc) from exc

    # lifecycle ----------------------------------------------------------------
    def database(self) -> Runner | None:
        return self._runner

    async def open(self) -> None:
        self._runner = make_runner(self.url, self._pool_size)
        self.outbox = SQLOutbox(self._runner)
        try:
            await self._runner.write(rows.migrate, self.domain)
        except GatewayError:
            await self.close()
            raise
        except (SQLAlchemyError, OSError, ConnectionError) as exc:
            await self.close()
            raise self._wrap(exc) from exc

    async def close(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.close()

    async def ping(self) -> None:
        await self._read(rows.ping)

    async def check(self) -> str:
        n_users, n_groups = await self._read(rows.counts)
        return f"{self._runner.dialect}: {n_users} users, {n_groups} groups"

    # users -----------------------------------------------------------------------
    async def create_user(self, data: dict, password_hash: str | None, *,
                          groups: list[str] = (), change: Change = WRITE) -> Record:
        return await self._write(users.create_user, self.schemas.user, data, password_hash,
                                 list(groups), self.domain, change=change)

    async def create_users(self, items: list[tuple[dict, str | None]], *,
                           change: Change = WRITE) -> list[Record | GatewayError]:
        """Create several users in one transaction, each succeeding or failing alone."""
        return await self._write(users.create_users, self.schemas.user, list(items),
                                 change=change)

    async def bulk_insert_users(self, items: list[tuple[dict, str | None]], *,
                                change: Change = WRITE) -> int:
        """Insert many new users in one transaction (the loader's path); returns the count."""
        return await self._write(users.bulk_insert_users, self.schemas.user, list(items),
                                 change=change)

    async def get_user(self, user_id: str, *, with_groups: bool = True) -> Record | None:
        found = await self._read_point(users.get_user, "id", user_id, with_groups)
        return found[0] if found else None

    async def get_user_by_name(self, user_name: str, *, with_groups: bool = True
                               ) -> Record | None:
        found = await self._read_point(users.get_user, "name", user_name.lower(), with_groups)
        return found[0] if found else None

    async def get_users(self, user_ids: list[str]) -> dict[str, Record]:
        return await self._read(users.get_users, user_ids)

    async def get_password_hash(self, user_name: str) -> tuple[Record, str | None] | None:
        return await self._read_point(users.get_user, "name", user_name.lower(), True)

    async def replace_user(self, user_id: str, data: dict, *, expected_version: int | None,
                           password_hash=UNCHANGED, change: Change = WRITE) -> Record:
        return await self._write(users.replace_user, self.schemas.user, user_id, data,
                                 expected_version, password_hash, change=change)

    async def set_password_hash(self, user_id: str, password_hash: str, *,
                                change: Change = WRITE) -> None:
        await self._write(users.set_password_hash, user_id, password_hash, change=change)

    async def delete_user(self, user_id: str, *, expected_version: int | None,
                          change: Change = WRITE) -> None:
        await self._write(users.delete_user, user_id, expected_version, change=change)

    async def search_users(self, query: Query) -> Page:
        lookup = self._lookup(query, self._users)
        if lookup is None:
            return await self._read(search.search, query, self._users)
        fn, args = lookup
        # one user by a unique index, or a few: a read like get_user's, on the event loop
        read = self._read_point if fn is search.point else self._read
        return await read(fn, query, "User", *args)

    # groups --------------------------------------------------------------------------
    async def create_group(self, data: dict, members: list[dict], *,
                           change: Change = WRITE, hybrid: bool = False) -> Record:
        return await self._write(groups.create_group, self.schemas.group, data, members,
                                 self.domain, hybrid, change=change)

    async def get_group(self, group_id: str, *, with_members: bool = True) -> Record | None:
        return await self._read(groups.get_group, "id", group_id, with_members)

    async def get_groups(self, group_ids: list[str]) -> dict[str, Record]:
        return await self._read(groups.get_groups, group_ids)

    async def get_group_by_name(self, name: str, *, with_members: bool = True) -> Record | None:
        return await self._read(groups.get_group, "name", name.lower(), with_members)

    async def replace_group(self, group_id: str, data: dict, *, expected_version: int | None,
                            members: list[dict] | None = None,
                            change: Change = WRITE, hybrid: bool = False) -> Record:
        return await self.change_members(group_id, expected_version=expected_version,
                                         data=data, remove_all=members is not None,
                                         add=members or [], change=change, hybrid=hybrid)

    async def change_members(self, group_id: str, *, expected_version: int | None,
                             add=(), remove=(), remove_all: bool = False,
                             data: dict | None = None, with_members: bool = True,
                             change: Change = WRITE, hybrid: bool = False) -> Record:
        return await self._write(groups.change_members, self.schemas.group, group_id,
                                 expected_version, list(add), list(remove), remove_all, data,
                                 self.domain, with_members, hybrid, change=change)

    async def foreign_groups_of(self, domain: str, user_ids: list[str]) -> dict[str, list]:
        if not user_ids:
            return {}
        return await self._read(rows.foreign_groups_of, domain, list(user_ids))

    async def delete_group(self, group_id: str, *, expected_version: int | None,
                           change: Change = WRITE) -> None:
        await self._write(groups.delete_group, group_id, expected_version, change=change)

    async def search_groups(self, query: Query) -> Page:
        lookup = self._lookup(query, self._groups)
        if lookup is None:
            return await self._read(search.search, query, self._groups)
        fn, args = lookup  # a group's members may be many: never on the event loop
        return await self._read(fn, query, "Group", *args)

    @staticmethod
    def _lookup(query: Query, compiler: FilterCompiler) -> tuple | None:
        """For a search in the default order (by offset) whose filter is one ``eq``
        lookup: the prebuilt read that answers it and its arguments (``search.point``
        for a column with an index of its own, ``search.by_value`` for a string of the
        values table); else None."""
        if query.sort is not None or query.descending or query.after is not None \
                or query.keyset:
            return None
        point = compiler.point(query.filter)
        if point is not None:
            return search.point, point
        by_value = compiler.value_point(query.filter)
        if by_value is not None:
            return search.by_value, by_value
        return None


def _without_outbox(fn):
    """The store operation, recording nothing in the outbox."""
    def run(conn, *args):
        conn.info["outbox_off"] = True
        try:
            return fn(conn, *args)
        finally:
            conn.info.pop("outbox_off", None)
    return run


def _journaled(fn, journal: Journal, domain: str):
    """The store operation, writing the journal's record in its transaction."""
    def run(conn, *args):
        result = fn(conn, *args)
        journal.write(conn, domain, result)
        return result
    return run
