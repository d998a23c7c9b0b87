"""The SQL store's transactional outbox (``userstores.base.Outbox``): the table
``outbox`` (``tables.py``), one row written by ``rows.emit`` in each change's own
transaction, read, moved and dropped here for the outbound dispatcher.

Reads take the oldest rows first. Where the dispatcher takes rows for itself on
PostgreSQL (``move``, ``drain``), ``FOR UPDATE SKIP LOCKED`` keeps two dispatchers off
the same rows.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.engine import Connection

from gateway.database.engine import Runner
from userstores.base import Outbox, OutboxRow

from . import tables as t

_O = t.outbox


def _take(conn: Connection, limit: int, lock: bool) -> list[OutboxRow]:
    stmt = select(_O.c.seq, _O.c.kind, _O.c.entity_id, _O.c.action, _O.c.name,
                  _O.c.created).order_by(_O.c.seq).limit(limit)
    if lock and conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return [OutboxRow(*row) for row in conn.execute(stmt)]


def _drop(conn: Connection, seqs: list[int]) -> None:
    for i in range(0, len(seqs), 500):
        conn.execute(delete(_O).where(_O.c.seq.in_(seqs[i:i + 500])))


def _waiting(conn: Connection) -> bool:
    return conn.execute(select(_O.c.seq).limit(1)).first() is not None


def _holds(conn: Connection, kind: str, entity_id: str) -> bool:
    return conn.execute(select(_O.c.seq).where(_O.c.kind == kind, _O.c.entity_id == entity_id)
                        .limit(1)).first() is not None


def _drain(conn: Connection, limit: int) -> int:
    rows = _take(conn, limit, True)
    _drop(conn, [r.seq for r in rows])
    return len(rows)


def _move(conn: Connection, limit: int, into) -> int:
    rows = _take(conn, limit, True)
    into(conn, rows)
    _drop(conn, [r.seq for r in rows])
    return len(rows)


class SQLOutbox(Outbox):
    def __init__(self, runner: Runner):
        self._runner = runner

    async def waiting(self) -> bool:
        return await self._runner.read(_waiting)

    async def take(self, limit: int) -> list[OutboxRow]:
        return await self._runner.read(_take, limit, False)

    async def drop(self, seqs: list[int]) -> None:
        await self._runner.write(_drop, seqs)

    async def drain(self, limit: int) -> int:
        return await self._runner.write(_drain, limit)

    async def holds(self, kind: str, entity_id: str) -> bool:
        return await self._runner.read(_holds, kind, entity_id)

    def lives_in(self, database) -> bool:
        return database is self._runner

    async def move(self, limit: int, into) -> int:
        return await self._runner.write(_move, limit, into)
