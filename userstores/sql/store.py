"""The SQL user store on SQLAlchemy 2 Core (SQLite or PostgreSQL, async drivers)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterable

import orjson
from sqlalchemy import delete, func, select, text, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.errors import (
    Conflict,
    GatewayError,
    InvalidValue,
    NotFound,
    ReadOnlyStore,
    StoreUnavailable,
    VersionMismatch,
)
from gateway.model.query import normalise_datetime
from gateway.model.schema import GROUP, USER
from userstores.base import UNCHANGED, Capabilities, Page, Query, Record, UserStore

from . import indexing
from . import tables as t
from .engine import make_engines
from .filters import FilterCompiler

_USERS = FilterCompiler("User")
_GROUPS = FilterCompiler("Group")


def now() -> str:
    from datetime import UTC, datetime

    return normalise_datetime(datetime.now(UTC))


def _dumps(data: dict) -> str:
    return orjson.dumps(data).decode()


class SQLUserStore(UserStore):
    def __init__(self, domain: str, url: str, *, read_only: bool = False, pool_size: int = 8):
        self.domain = domain
        self.url = url
        self.capabilities = Capabilities(read_only=read_only, bulk_load=True)
        self._pool_size = pool_size
        self._write_engine = None
        self._read_engine = None

    # lifecycle ----------------------------------------------------------------
    async def open(self) -> None:
        self._write_engine, self._read_engine = make_engines(self.url, self._pool_size)
        async with self._guard():
            async with self._write_engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    # several gateway processes may start at once against one database
                    await conn.execute(text("SELECT pg_advisory_xact_lock(7164937)"))
                await conn.run_sync(t.metadata.create_all)
                version = (await conn.execute(select(t.schema_version.c.version))).scalar()
                if version is None:
                    await conn.execute(t.schema_version.insert().values(version=t.SCHEMA_VERSION))
                elif version > t.SCHEMA_VERSION:
                    raise StoreUnavailable(
                        f"store {self.domain}: database schema version {version} is newer than "
                        f"this gateway ({t.SCHEMA_VERSION}); upgrade the gateway"
                    )
                # migrations from older versions go here, one step per version

    async def close(self) -> None:
        for engine in {self._write_engine, self._read_engine}:
            if engine is not None:
                await engine.dispose()

    async def ping(self) -> None:
        async with self._read() as conn:
            await conn.execute(text("SELECT 1"))

    async def check(self) -> str:
        async with self._guard(), self._read() as conn:
            users = (await conn.execute(select(func.count()).select_from(t.users))).scalar_one()
            groups = (await conn.execute(select(func.count()).select_from(t.groups))).scalar_one()
        return f"{self._write_engine.dialect.name}: {users} users, {groups} groups"

    # plumbing --------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        """Wrap database errors into the gateway's own."""
        try:
            yield
        except GatewayError:
            raise
        except IntegrityError as exc:
            raise Conflict("A resource with this name already exists") from exc
        except DataError as exc:  # e.g. a character PostgreSQL cannot store
            raise InvalidValue(f"A value cannot be stored in {self.domain}: "
                               f"{str(exc.orig).splitlines()[0][:200]}") from exc
        except (OperationalError, DBAPIError, OSError, ConnectionError) as exc:
            raise StoreUnavailable(f"user store {self.domain} is unavailable") from exc
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"user store {self.domain} failed") from exc

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        if self.capabilities.read_only:
            raise ReadOnlyStore(f"The user store {self.domain} is read-only")
        async with self._guard(), self._write_engine.begin() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        async with self._guard(), self._read_engine.connect() as conn:
            yield conn

    def _insert_ignore(self, conn: AsyncConnection, table):
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        return dialect.insert(table).on_conflict_do_nothing()

    @staticmethod
    def _record(row, relations: list[dict] | None, kind: str) -> Record:
        rec = Record(
            id=row.id,
            data=orjson.loads(row.data),
            version=row.version,
            created=row.created,
            last_modified=row.last_modified,
        )
        if kind == "User":
            rec.groups = relations
        else:
            rec.members = relations
        return rec

    # users -----------------------------------------------------------------------
    async def create_user(self, data: dict, password_hash: str | None) -> Record:
        uid, ts = str(uuid.uuid4()), now()
        name = data["userName"]
        async with self._write() as conn:
            try:
                seq = (await conn.execute(
                    t.users.insert().values(
                        id=uid, user_name=name, user_name_ci=name.lower(),
                        external_id=data.get("externalId"), password_hash=password_hash,
                        data=_dumps(data), version=1, created=ts, last_modified=ts,
                    ).returning(t.users.c.seq)
                )).scalar_one()
            except IntegrityError as exc:
                raise Conflict(f"User '{name}' already exists") from exc
            await self._write_values(conn, t.user_values, indexing.rows(USER, seq, data))
        return Record(uid, data, 1, ts, ts, groups=[])

    async def bulk_insert_users(self, items: Iterable[tuple[dict, str | None]]) -> int:
        """Insert many new users in one transaction (the loader's path); returns the count."""
        ts = now()
        async with self._write() as conn:
            batch = []
            for data, password_hash in items:
                name = data["userName"]
                batch.append({
                    "id": str(uuid.uuid4()), "user_name": name, "user_name_ci": name.lower(),
                    "external_id": data.get("externalId"), "password_hash": password_hash,
                    "data": _dumps(data), "version": 1, "created": ts, "last_modified": ts,
                    "_data": data,
                })
            if not batch:
                return 0
            try:
                rows = (await conn.execute(
                    t.users.insert().returning(t.users.c.seq, t.users.c.id,
                                               sort_by_parameter_order=True),
                    [{k: v for k, v in b.items() if k != "_data"} for b in batch],
                )).all()
            except IntegrityError as exc:
                raise Conflict("A user of this batch already exists") from exc
            values = []
            for (seq, _id), b in zip(rows, batch, strict=True):
                values.extend(indexing.rows(USER, seq, b["_data"]))
            await self._write_values(conn, t.user_values, values)
        return len(batch)

    @staticmethod
    async def _write_values(conn: AsyncConnection, table, rows: list[dict]) -> None:
        for i in range(0, len(rows), 5000):
            await conn.execute(table.insert(), rows[i:i + 5000])

    async def _groups_of(self, conn: AsyncConnection, user_ids: list[str]) -> dict[str, list]:
        m, g = t.memberships, t.groups
        out: dict[str, list] = {uid: [] for uid in user_ids}
        if not user_ids:
            return out
        q = (select(m.c.member_id, g.c.id, g.c.display_name)
             .select_from(m.join(g, g.c.seq == m.c.group_seq))
             .where(m.c.member_id.in_(user_ids))
             .order_by(g.c.display_name_ci))
        for member_id, gid, display in (await conn.execute(q)).all():
            out[member_id].append({"value": gid, "display": display, "type": "direct"})
        return out

    async def _user_where(self, where, with_groups: bool) -> Record | None:
        async with self._read() as conn:
            row = (await conn.execute(select(t.users).where(where))).first()
            if row is None:
                return None
            groups = (await self._groups_of(conn, [row.id]))[row.id] if with_groups else None
        return self._record(row, groups, "User")

    async def get_user(self, user_id: str, *, with_groups: bool = True) -> Record | None:
        return await self._user_where(t.users.c.id == user_id, with_groups)

    async def get_user_by_name(self, user_name: str, *, with_groups: bool = True
                               ) -> Record | None:
        return await self._user_where(t.users.c.user_name_ci == user_name.lower(), with_groups)

    async def get_password_hash(self, user_name: str) -> tuple[Record, str | None] | None:
        async with self._read() as conn:
            row = (await conn.execute(
                select(t.users).where(t.users.c.user_name_ci == user_name.lower())
            )).first()
            if row is None:
                return None
            groups = (await self._groups_of(conn, [row.id]))[row.id]
        return self._record(row, groups, "User"), row.password_hash

    async def _lock_row(self, conn, table, entity_id: str, expected_version: int | None,
                        kind: str):
        row = (await conn.execute(
            select(table.c.seq, table.c.version, table.c.created).where(table.c.id == entity_id)
        )).first()
        if row is None:
            raise NotFound(f"{kind} {entity_id} not found")
        if expected_version is not None and row.version != expected_version:
            raise VersionMismatch(f"{kind} {entity_id} has changed (version {row.version})")
        return row

    async def _bump(self, conn, table, row, values: dict, kind: str, entity_id: str) -> str:
        ts = now()
        res = await conn.execute(
            update(table)
            .where(table.c.seq == row.seq, table.c.version == row.version)
            .values(version=row.version + 1, last_modified=ts, **values)
        )
        if res.rowcount != 1:
            raise VersionMismatch(f"{kind} {entity_id} was changed concurrently")
        return ts

    async def replace_user(self, user_id: str, data: dict, *, expected_version: int | None,
                           password_hash=UNCHANGED) -> Record:
        name = data["userName"]
        values = {"user_name": name, "user_name_ci": name.lower(),
                  "external_id": data.get("externalId"), "data": _dumps(data)}
        if password_hash is not UNCHANGED:
            values["password_hash"] = password_hash
        async with self._write() as conn:
            row = await self._lock_row(conn, t.users, user_id, expected_version, "User")
            try:
                ts = await self._bump(conn, t.users, row, values, "User", user_id)
            except IntegrityError as exc:
                raise Conflict(f"User '{name}' already exists") from exc
            await conn.execute(delete(t.user_values).where(t.user_values.c.entity == row.seq))
            await self._write_values(conn, t.user_values, indexing.rows(USER, row.seq, data))
            groups = (await self._groups_of(conn, [user_id]))[user_id]
        return Record(user_id, data, row.version + 1, row.created, ts, groups=groups)

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        async with self._write() as conn:
            row = await self._lock_row(conn, t.users, user_id, None, "User")
            await self._bump(conn, t.users, row, {"password_hash": password_hash}, "User",
                             user_id)

    async def _touch_groups_of(self, conn, member_id: str) -> None:
        m = t.memberships
        await conn.execute(
            update(t.groups)
            .where(t.groups.c.seq.in_(select(m.c.group_seq).where(m.c.member_id == member_id)))
            .values(version=t.groups.c.version + 1, last_modified=now())
        )
        await conn.execute(delete(m).where(m.c.member_id == member_id))

    async def delete_user(self, user_id: str, *, expected_version: int | None) -> None:
        async with self._write() as conn:
            row = await self._lock_row(conn, t.users, user_id, expected_version, "User")
            await self._touch_groups_of(conn, user_id)
            await conn.execute(delete(t.user_values).where(t.user_values.c.entity == row.seq))
            await conn.execute(delete(t.users).where(t.users.c.seq == row.seq))

    async def _search(self, query: Query, table, compiler: FilterCompiler):
        where = compiler.compile(query.filter) if query.filter is not None else true()
        async with self._read() as conn:
            total = 0
            if query.with_total:
                total = (await conn.execute(
                    select(func.count()).select_from(table).where(where)
                )).scalar_one()
            rows = []
            if query.limit > 0:
                order = []
                if query.sort is not None:
                    key = compiler.sort_key(query.sort)
                    # resources without a value come last ascending, first descending
                    order.append(key.desc().nulls_first() if query.descending
                                 else key.asc().nulls_last())
                order.append(table.c.seq.desc() if query.descending else table.c.seq.asc())
                rows = (await conn.execute(
                    select(table).where(where).order_by(*order)
                    .offset(query.offset).limit(query.limit)
                )).all()
            relations = None
            if query.with_relations and rows:
                ids = [r.id for r in rows]
                if table is t.users:
                    relations = await self._groups_of(conn, ids)
                else:
                    relations = await self._members_of(conn, [r.seq for r in rows])
                    relations = {r.id: relations[r.seq] for r in rows}
        kind = "User" if table is t.users else "Group"
        records = [self._record(r, relations[r.id] if relations else None, kind) for r in rows]
        return Page(records, total if query.with_total else len(records))

    async def search_users(self, query: Query) -> Page:
        return await self._search(query, t.users, _USERS)

    # groups --------------------------------------------------------------------------
    async def _members_of(self, conn, group_seqs: list[int]) -> dict[int, list]:
        m, u, g = t.memberships, t.users, t.groups.alias("mg")
        out: dict[int, list] = {s: [] for s in group_seqs}
        q = (select(m.c.group_seq, m.c.member_id, m.c.member_type,
                    func.coalesce(u.c.user_name, g.c.display_name))
             .select_from(m.outerjoin(u, u.c.id == m.c.member_id)
                          .outerjoin(g, g.c.id == m.c.member_id))
             .where(m.c.group_seq.in_(group_seqs))
             .order_by(m.c.group_seq, m.c.member_id))
        for seq, mid, mtype, display in (await conn.execute(q)).all():
            item = {"value": mid, "type": mtype}
            if display is not None:
                item["display"] = display
            out[seq].append(item)
        return out

    async def _check_members(self, conn, members: Iterable[dict], group_id: str) -> list[dict]:
        """Members as stored: each id must be a user or group of this store."""
        wanted = {}
        for m in members:
            wanted[m["value"]] = m.get("type")
        if not wanted:
            return []
        if group_id in wanted:
            raise InvalidValue("A group cannot be a member of itself")
        found = await self._resolve(conn, list(wanted))
        missing = [i for i in wanted if i not in found]
        if missing:
            raise InvalidValue(f"Unknown member id(s) in {self.domain}: {', '.join(missing[:10])}")
        for mid, given in wanted.items():
            if given is not None and given != found[mid]:
                raise InvalidValue(f"Member {mid} is a {found[mid]}, not a {given}")
        return [{"member_id": mid, "member_type": found[mid]} for mid in wanted]

    async def _resolve(self, conn, ids: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            for (uid,) in (await conn.execute(select(t.users.c.id).where(t.users.c.id.in_(chunk)))):
                found[uid] = "User"
            for (gid,) in (await conn.execute(
                select(t.groups.c.id).where(t.groups.c.id.in_(chunk))
            )):
                found[gid] = "Group"
        return found

    async def resolve_members(self, ids: list[str]) -> dict[str, str]:
        async with self._read() as conn:
            return await self._resolve(conn, ids)

    async def _add_members(self, conn, seq: int, rows: list[dict]) -> None:
        if rows:
            await conn.execute(self._insert_ignore(conn, t.memberships),
                               [{"group_seq": seq, **r} for r in rows])

    async def create_group(self, data: dict, members: list[dict]) -> Record:
        gid, ts = str(uuid.uuid4()), now()
        name = data["displayName"]
        async with self._write() as conn:
            rows = await self._check_members(conn, members, gid)
            try:
                seq = (await conn.execute(
                    t.groups.insert().values(
                        id=gid, display_name=name, display_name_ci=name.lower(),
                        external_id=data.get("externalId"), data=_dumps(data), version=1,
                        created=ts, last_modified=ts,
                    ).returning(t.groups.c.seq)
                )).scalar_one()
            except IntegrityError as exc:
                raise Conflict(f"Group '{name}' already exists") from exc
            await self._write_values(conn, t.group_values, indexing.rows(GROUP, seq, data))
            await self._add_members(conn, seq, rows)
            out = (await self._members_of(conn, [seq]))[seq]
        return Record(gid, data, 1, ts, ts, members=out)

    async def _group_where(self, where, with_members: bool) -> Record | None:
        async with self._read() as conn:
            row = (await conn.execute(select(t.groups).where(where))).first()
            if row is None:
                return None
            members = (await self._members_of(conn, [row.seq]))[row.seq] if with_members else None
        return self._record(row, members, "Group")

    async def get_group(self, group_id: str, *, with_members: bool = True) -> Record | None:
        return await self._group_where(t.groups.c.id == group_id, with_members)

    async def get_group_by_name(self, name: str, *, with_members: bool = True) -> Record | None:
        return await self._group_where(t.groups.c.display_name_ci == name.lower(), with_members)

    async def replace_group(self, group_id: str, data: dict, *, expected_version: int | None,
                            members: list[dict] | None = None) -> Record:
        return await self.change_members(group_id, expected_version=expected_version,
                                         data=data, remove_all=members is not None,
                                         add=members or [])

    async def change_members(self, group_id: str, *, expected_version: int | None,
                             add=(), remove=(), remove_all: bool = False,
                             data: dict | None = None) -> Record:
        m = t.memberships
        async with self._write() as conn:
            row = await self._lock_row(conn, t.groups, group_id, expected_version, "Group")
            values = {}
            if data is not None:
                name = data["displayName"]
                values = {"display_name": name, "display_name_ci": name.lower(),
                          "external_id": data.get("externalId"), "data": _dumps(data)}
            rows = await self._check_members(conn, add, group_id)
            changed = data is not None or await self._membership_changes(
                conn, row.seq, rows, list(remove), remove_all)
            if not changed:  # nothing to do: the version stays
                members = (await self._members_of(conn, [row.seq]))[row.seq]
                full = (await conn.execute(select(t.groups).where(t.groups.c.seq == row.seq))
                        ).one()
                return self._record(full, members, "Group")
            try:
                ts = await self._bump(conn, t.groups, row, values, "Group", group_id)
            except IntegrityError as exc:
                raise Conflict(f"Group '{data['displayName']}' already exists") from exc
            if data is not None:
                await conn.execute(delete(t.group_values).where(t.group_values.c.entity == row.seq))
                await self._write_values(conn, t.group_values,
                                         indexing.rows(GROUP, row.seq, data))
            if remove_all:
                await conn.execute(delete(m).where(m.c.group_seq == row.seq))
            elif remove:
                ids = list(remove)
                for i in range(0, len(ids), 500):
                    await conn.execute(delete(m).where(m.c.group_seq == row.seq,
                                                       m.c.member_id.in_(ids[i:i + 500])))
            await self._add_members(conn, row.seq, rows)
            full = (await conn.execute(select(t.groups).where(t.groups.c.seq == row.seq))).one()
            members = (await self._members_of(conn, [row.seq]))[row.seq]
        rec = self._record(full, members, "Group")
        rec.last_modified = ts
        return rec

    @staticmethod
    async def _membership_changes(conn, seq: int, add_rows: list[dict], remove: list[str],
                                  remove_all: bool) -> bool:
        """Whether adding/removing these members changes anything (only they are read)."""
        m = t.memberships
        wanted = {r["member_id"] for r in add_rows}
        if remove_all:  # a replacement: compare the sets
            current = {mid for (mid,) in await conn.execute(
                select(m.c.member_id).where(m.c.group_seq == seq))}
            return current != wanted
        ids, present = list(wanted | set(remove)), set()
        for i in range(0, len(ids), 500):
            present.update(mid for (mid,) in await conn.execute(
                select(m.c.member_id).where(m.c.group_seq == seq,
                                            m.c.member_id.in_(ids[i:i + 500]))))
        return bool(wanted - present) or bool(set(remove) & present)

    async def delete_group(self, group_id: str, *, expected_version: int | None) -> None:
        async with self._write() as conn:
            row = await self._lock_row(conn, t.groups, group_id, expected_version, "Group")
            await self._touch_groups_of(conn, group_id)
            await conn.execute(delete(t.memberships).where(t.memberships.c.group_seq == row.seq))
            await conn.execute(delete(t.group_values).where(t.group_values.c.entity == row.seq))
            await conn.execute(delete(t.groups).where(t.groups.c.seq == row.seq))

    async def search_groups(self, query: Query) -> Page:
        return await self._search(query, t.groups, _GROUPS)


__all__ = ["SQLUserStore"]
