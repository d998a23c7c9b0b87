"""The SQL store's user operations, each over one ``Connection`` in the caller's transaction."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DataError, IntegrityError

from gateway.database.cursor import fetch, insert_rows
from gateway.errors import Conflict, GatewayError, InvalidValue
from gateway.model.schema import ResourceType
from userstores.base import UNCHANGED, Record

from . import indexing
from . import tables as t
from .groups import change_members
from .rows import (
    CHUNK,
    INSERT_USER,
    USER_BY,
    bump,
    check_unique,
    drop_values,
    dumps,
    emit,
    groups_of,
    lock_row,
    now,
    record,
    touch_groups_of,
    write_values,
)


def create_user(conn: Connection, rtype: ResourceType, data: dict,
                password_hash: str | None, groups: list[str] = (), domain: str = "") -> Record:
    """A new user, and a member of ``groups`` (ids) in the same transaction."""
    uid, ts = str(uuid.uuid4()), now()
    name = data["userName"]
    try:
        (seq,) = insert_rows(conn, INSERT_USER, [{
            "id": uid, "user_name": name, "user_name_ci": name.lower(),
            "external_id": data.get("externalId"), "password_hash": password_hash,
            "data": dumps(data), "version": 1, "created": ts, "last_modified": ts,
        }], returning=True)
    except IntegrityError as exc:
        raise Conflict(f"User '{name}' already exists") from exc
    write_values(conn, t.user_values, indexing.rows(rtype, seq, data))
    check_unique(conn, rtype, t.user_values, seq, data)
    emit(conn, [("User", uid, "upsert", name)])
    for group_id in groups:
        _join(conn, group_id, uid, domain)
    return Record(uid, data, 1, ts, ts,
                  groups=groups_of(conn, [uid])[uid] if groups else [])


def _join(conn: Connection, group_id: str, member_id: str, domain: str) -> None:
    """``member_id`` (a user) joins the group ``group_id``: its version moves, both are
    recorded in the outbox; NotFound when there is no such group."""
    change_members(conn, None, group_id, None, [{"value": member_id, "type": "User"}], [],
                   False, None, domain, with_members=False)


def _insert_users(conn: Connection, rtype: ResourceType,
                  items: list[tuple[dict, str | None]]) -> list[Record]:
    """Many new users in multi-row statements; Conflict if any name is taken."""
    if not items:
        return []
    ts = now()
    rows = [{
        "id": str(uuid.uuid4()), "user_name": data["userName"],
        "user_name_ci": data["userName"].lower(), "external_id": data.get("externalId"),
        "password_hash": password_hash, "data": dumps(data), "version": 1,
        "created": ts, "last_modified": ts,
    } for data, password_hash in items]
    try:
        # RETURNING without sort_by_parameter_order: SQLAlchemy can then batch the rows;
        # the generated ids say which seq belongs to which user
        returned = conn.execute(t.users.insert().returning(t.users.c.seq, t.users.c.id),
                                rows).all()
    except IntegrityError as exc:
        raise Conflict("A user of this batch already exists") from exc
    seq_of = {uid: seq for seq, uid in returned}
    values = []
    for row, (data, _) in zip(rows, items, strict=True):
        seq = seq_of[row["id"]]
        values.extend(indexing.rows(rtype, seq, data))
        check_unique(conn, rtype, t.user_values, seq, data, pending=values)
    write_values(conn, t.user_values, values)
    emit(conn, [("User", row["id"], "upsert", row["user_name"]) for row in rows])
    return [Record(row["id"], data, 1, ts, ts, groups=[])
            for row, (data, _) in zip(rows, items, strict=True)]


def bulk_insert_users(conn: Connection, rtype: ResourceType,
                      items: list[tuple[dict, str | None]]) -> int:
    return len(_insert_users(conn, rtype, items))


def create_users(conn: Connection, rtype: ResourceType,
                 items: list[tuple[dict, str | None]]) -> list[Record | GatewayError]:
    """Create several users, each succeeding or failing on its own (SCIM /Bulk).

    All at once in multi-row statements inside a savepoint; when one of them is
    refused, the savepoint is undone and each is created in a savepoint of its own,
    so that the others still are."""
    try:
        with conn.begin_nested():
            return list(_insert_users(conn, rtype, items))
    except (GatewayError, IntegrityError, DataError):
        pass
    out: list[Record | GatewayError] = []
    for data, password_hash in items:
        try:
            with conn.begin_nested():
                out.append(create_user(conn, rtype, data, password_hash))
        except GatewayError as exc:
            out.append(exc)
        except IntegrityError:
            out.append(Conflict(f"User '{data['userName']}' already exists"))
        except DataError as exc:
            detail = str(exc.orig).splitlines()[0][:200] if exc.orig else "invalid data"
            out.append(InvalidValue(f"A value cannot be stored: {detail}"))
    return out


def get_user(conn: Connection, by: str, value: str, with_groups: bool
             ) -> tuple[Record, str | None] | None:
    """The user by ``id`` or by (lower-cased) ``name``, and its password hash."""
    found = fetch(conn, USER_BY[by], {"v": value})
    row = found[0] if found else None
    if row is None:
        return None
    groups = None
    if with_groups:
        groups = groups_of(conn, [row.id])[row.id] if row.in_groups else []
    return record(row, groups, "User"), row.password_hash


def get_users(conn: Connection, user_ids: list[str]) -> dict[str, Record]:
    """Users by id, with their groups (missing ones are left out)."""
    out: dict[str, Record] = {}
    for i in range(0, len(user_ids), CHUNK):
        chunk = user_ids[i:i + CHUNK]
        rows = conn.execute(select(t.users).where(t.users.c.id.in_(chunk))).all()
        groups = groups_of(conn, [r.id for r in rows])
        out.update((r.id, record(r, groups[r.id], "User")) for r in rows)
    return out


def replace_user(conn: Connection, rtype: ResourceType, user_id: str, data: dict,
                 expected_version: int | None, password_hash) -> Record:
    name = data["userName"]
    values = {"user_name": name, "user_name_ci": name.lower(),
              "external_id": data.get("externalId"), "data": dumps(data)}
    if password_hash is not UNCHANGED:
        values["password_hash"] = password_hash
    row = lock_row(conn, t.users, user_id, expected_version, "User")
    try:
        ts = bump(conn, t.users, row, values, "User", user_id)
    except IntegrityError as exc:
        raise Conflict(f"User '{name}' already exists") from exc
    drop_values(conn, t.user_values, row.seq)
    write_values(conn, t.user_values, indexing.rows(rtype, row.seq, data))
    check_unique(conn, rtype, t.user_values, row.seq, data)
    emit(conn, [("User", user_id, "upsert", name)])
    groups = groups_of(conn, [user_id])[user_id]
    return Record(user_id, data, row.version + 1, row.created, ts, groups=groups)


def set_password_hash(conn: Connection, user_id: str, password_hash: str) -> None:
    row = lock_row(conn, t.users, user_id, None, "User")
    bump(conn, t.users, row, {"password_hash": password_hash}, "User", user_id)
    emit(conn, [("User", user_id, "upsert", row.name)])


def delete_user(conn: Connection, user_id: str, expected_version: int | None) -> None:
    row = lock_row(conn, t.users, user_id, expected_version, "User")
    touch_groups_of(conn, user_id)
    drop_values(conn, t.user_values, row.seq)
    conn.execute(delete(t.users).where(t.users.c.seq == row.seq))
    emit(conn, [("User", user_id, "delete", row.name)])
