"""The SQL store's group operations, each over one ``Connection`` in the caller's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from gateway.errors import Conflict, InvalidValue
from gateway.model.schema import ResourceType
from userstores.base import Record

from . import indexing
from . import tables as t
from .rows import (
    CHUNK,
    GROUP_BY,
    INSERT_GROUP,
    bump,
    check_unique,
    drop_values,
    dumps,
    emit,
    groups_of,
    lock_row,
    members_of,
    now,
    record,
    touch_groups_of,
    write_values,
)


def resolve(conn: Connection, ids: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for i in range(0, len(ids), CHUNK):
        chunk = ids[i:i + CHUNK]
        for (uid,) in conn.execute(select(t.users.c.id).where(t.users.c.id.in_(chunk))):
            found[uid] = "User"
        for (gid,) in conn.execute(select(t.groups.c.id).where(t.groups.c.id.in_(chunk))):
            found[gid] = "Group"
    return found


def _foreign(members: Iterable[dict], domain: str) -> tuple[list[dict], list[dict]]:
    """(members of this store, users of other stores: those with another ``domain``)."""
    local, foreign = [], []
    for m in members:
        other = m.get("domain")
        (foreign if other and other.upper() != domain.upper() else local).append(m)
    return local, foreign


def _check_members(conn: Connection, members: Iterable[dict], group_id: str,
                   domain: str, hybrid: bool = False) -> list[dict]:
    """Members as stored: each id must be a user or group of this store, or, in a group
    the pipeline marks ``hybrid`` (a WSO2 hybrid role), a user of another store that the
    pipeline found there (``{"value", "domain"}``)."""
    members, foreign = _foreign(members, domain)
    if foreign and not hybrid:
        raise InvalidValue(f"A group of {domain} can only hold members of {domain}")
    rows = [{"member_id": m["value"], "member_type": "User",
             "member_domain": m["domain"].upper()} for m in foreign]
    return _check_local(conn, members, group_id, domain) + rows


def _check_local(conn: Connection, members: Iterable[dict], group_id: str,
                 domain: str) -> list[dict]:
    wanted = {m["value"]: m.get("type") for m in members}
    if not wanted:
        return []
    if group_id in wanted:
        raise InvalidValue("A group cannot be a member of itself")
    found = resolve(conn, list(wanted))
    missing = [i for i in wanted if i not in found]
    if missing:
        raise InvalidValue(f"Unknown member id(s) in {domain}: {', '.join(missing[:10])}")
    nested = [i for i in wanted if found[i] == "Group"]
    if nested:
        # a group may not contain a group it is itself (indirectly) a member of
        ancestors = {g["value"] for g in groups_of(conn, [group_id])[group_id]}
        circular = [i for i in nested if i in ancestors]
        if circular:
            raise InvalidValue(f"Group {circular[0]} contains this group (directly or through "
                               "other groups): adding it would make a cycle")
    for mid, given in wanted.items():
        if given is not None and given != found[mid]:
            raise InvalidValue(f"Member {mid} is a {found[mid]}, not a {given}")
    return [{"member_id": mid, "member_type": found[mid], "member_domain": None}
            for mid in wanted]


def _add_members(conn: Connection, seq: int, rows: list[dict]) -> None:
    if rows:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(dialect.insert(t.memberships).on_conflict_do_nothing(),
                     [{"group_seq": seq, **r} for r in rows])


def _membership_changes(conn: Connection, seq: int, add_rows: list[dict], remove: list[str],
                        remove_all: bool) -> dict[str, str | None]:
    """The members whose membership adding/removing these changes (only they are read),
    each with its store's domain when it is another store's (else None)."""
    m = t.memberships
    wanted = {r["member_id"]: r["member_domain"] for r in add_rows}
    if remove_all:  # a replacement: compare the sets
        current = dict(conn.execute(
            select(m.c.member_id, m.c.member_domain).where(m.c.group_seq == seq)).all())
        return {mid: d for mid, d in (current | wanted).items()
                if (mid in current) != (mid in wanted)}
    ids, present = list(set(wanted) | set(remove)), {}
    for i in range(0, len(ids), CHUNK):
        present.update(conn.execute(
            select(m.c.member_id, m.c.member_domain).where(
                m.c.group_seq == seq, m.c.member_id.in_(ids[i:i + CHUNK]))).all())
    moved = {mid: d for mid, d in wanted.items() if mid not in present}
    moved.update((mid, present[mid]) for mid in remove if mid in present)
    return moved


def _member_events(rows) -> list[tuple[str, str, str, None]]:
    """The outbox rows of members whose groups changed: this store's only (a user of
    another store is not in this store's outbox: its own store's dispatcher reads it)."""
    return [(kind, mid, "upsert", None) for mid, kind, domain in rows if domain is None]


def create_group(conn: Connection, rtype: ResourceType, data: dict, members: list[dict],
                 domain: str, hybrid: bool = False) -> Record:
    gid, ts = str(uuid.uuid4()), now()
    name = data["displayName"]
    rows = _check_members(conn, members, gid, domain, hybrid)
    try:
        seq = conn.execute(INSERT_GROUP, {
            "id": gid, "display_name": name, "display_name_ci": name.lower(),
            "external_id": data.get("externalId"), "data": dumps(data), "version": 1,
            "created": ts, "last_modified": ts,
        }).scalar_one()
    except IntegrityError as exc:
        raise Conflict(f"Group '{name}' already exists") from exc
    write_values(conn, t.group_values, indexing.rows(rtype, seq, data))
    check_unique(conn, rtype, t.group_values, seq, data)
    _add_members(conn, seq, rows)
    emit(conn, [("Group", gid, "upsert", name)] + _member_events(
        (r["member_id"], r["member_type"], r["member_domain"]) for r in rows))
    return Record(gid, data, 1, ts, ts, members=members_of(conn, [seq])[seq])


def get_group(conn: Connection, by: str, value: str, with_members: bool) -> Record | None:
    row = conn.execute(GROUP_BY[by], {"v": value}).first()
    if row is None:
        return None
    members = members_of(conn, [row.seq])[row.seq] if with_members else None
    return record(row, members, "Group")


def get_groups(conn: Connection, group_ids: list[str]) -> dict[str, Record]:
    """Groups by id, with their members (missing ones are left out)."""
    out: dict[str, Record] = {}
    for i in range(0, len(group_ids), CHUNK):
        chunk = group_ids[i:i + CHUNK]
        rows = conn.execute(select(t.groups).where(t.groups.c.id.in_(chunk))).all()
        members = members_of(conn, [r.seq for r in rows]) if rows else {}
        out.update((r.id, record(r, members[r.seq], "Group")) for r in rows)
    return out


def change_members(conn: Connection, rtype: ResourceType, group_id: str,
                   expected_version: int | None, add,
                   remove, remove_all: bool, data: dict | None, domain: str,
                   with_members: bool = True, hybrid: bool = False) -> Record:
    m = t.memberships
    row = lock_row(conn, t.groups, group_id, expected_version, "Group")
    rows = _check_members(conn, add, group_id, domain, hybrid)
    moved = _membership_changes(conn, row.seq, rows, list(remove), remove_all)
    if data is not None or moved:
        values = {}
        if data is not None:
            name = data["displayName"]
            values = {"display_name": name, "display_name_ci": name.lower(),
                      "external_id": data.get("externalId"), "data": dumps(data)}
        try:
            bump(conn, t.groups, row, values, "Group", group_id)
        except IntegrityError as exc:
            raise Conflict(f"Group '{data['displayName']}' already exists") from exc
        if data is not None:
            drop_values(conn, t.group_values, row.seq)
            write_values(conn, t.group_values, indexing.rows(rtype, row.seq, data))
            check_unique(conn, rtype, t.group_values, row.seq, data)
        if remove_all:
            conn.execute(delete(m).where(m.c.group_seq == row.seq))
        elif remove:
            ids = list(remove)
            for i in range(0, len(ids), CHUNK):
                conn.execute(delete(m).where(m.c.group_seq == row.seq,
                                             m.c.member_id.in_(ids[i:i + CHUNK])))
        _add_members(conn, row.seq, rows)
        local = [mid for mid, d in moved.items() if d is None]
        kinds = dict(resolve(conn, local)) if local else {}
        emit(conn, [("Group", group_id, "upsert",
                     data["displayName"] if data is not None else row.name)]
             + _member_events((mid, kinds.get(mid, "User"), moved[mid])
                              for mid in sorted(moved)))
    # no change: nothing written, the version stays
    full = conn.execute(select(t.groups).where(t.groups.c.seq == row.seq)).one()
    return record(full, members_of(conn, [row.seq])[row.seq] if with_members else None,
                  "Group")


def delete_group(conn: Connection, group_id: str, expected_version: int | None) -> None:
    row = lock_row(conn, t.groups, group_id, expected_version, "Group")
    touch_groups_of(conn, group_id)
    m = t.memberships
    emit(conn, [("Group", group_id, "delete", row.name)] + _member_events(conn.execute(
        select(m.c.member_id, m.c.member_type, m.c.member_domain)
        .where(m.c.group_seq == row.seq))))
    conn.execute(delete(t.memberships).where(t.memberships.c.group_seq == row.seq))
    drop_values(conn, t.group_values, row.seq)
    conn.execute(delete(t.groups).where(t.groups.c.seq == row.seq))
