"""SQLite's WAL checkpoints run in a thread of their own, not in a request's commit.

In WAL mode with ``synchronous=NORMAL`` the checkpoint holds the only fsync.
SQLite's automatic checkpoint runs inside the commit that crosses its
threshold, and every write waiting behind that commit waited for the fsync
(stalls of 0.1 to 0.5 s at 500 writes/s on this machine's disk). The SQL
store's runner checkpoints in the background while there are writes instead.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.database.engine import CHECKPOINT_SECONDS, WAL_AUTOCHECKPOINT, make_runner

ROWS = 2000
ROW = 2000  # bytes: ROWS rows are about 1,000 WAL pages, SQLite's own threshold
POLL = 0.05


def size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


async def test_writes_are_checkpointed_in_the_background_not_in_their_commit(tmp_path):
    db = tmp_path / "c.db"
    runner = make_runner(f"sqlite:///{db}")
    try:
        await runner.write(lambda conn: conn.exec_driver_sql(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))

        def add(conn, i):
            conn.exec_driver_sql("INSERT INTO t (v) VALUES (?)", (f"{i:08d}" * (ROW // 8),))

        await asyncio.gather(*(runner.write(add, i) for i in range(ROWS)))
        # the writers' connection leaves checkpoints to the background (it would do one
        # itself only far beyond SQLite's default of 1,000 pages)
        setting = await runner.write(
            lambda conn: conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar())
        assert setting == WAL_AUTOCHECKPOINT > 10 * 1000
        # and yet the rows reach the database file itself within a few intervals
        for _ in range(int(20 * CHECKPOINT_SECONDS / POLL)):
            if size(db) >= ROWS * ROW:
                break
            await asyncio.sleep(POLL)
        assert size(db) >= ROWS * ROW, (size(db), ROWS * ROW)
        count = await runner.read(
            lambda conn: conn.exec_driver_sql("SELECT count(*) FROM t").scalar())
        assert count == ROWS
    finally:
        await runner.close()
    # closing checkpointed the rest: the WAL is gone and every row is in the file
    assert size(Path(f"{db}-wal")) == 0


async def test_the_checkpointer_stops_when_writes_stop(tmp_path):
    runner = make_runner(f"sqlite:///{tmp_path / 'idle.db'}")
    try:
        await runner.write(lambda conn: conn.exec_driver_sql("CREATE TABLE t (v TEXT)"))
        assert runner._checkpointer is not None
        for _ in range(int(10 * CHECKPOINT_SECONDS / POLL)):
            if runner._checkpointer is None:
                break
            await asyncio.sleep(POLL)
        assert runner._checkpointer is None  # no wake-ups of an idle gateway
        await runner.write(lambda conn: conn.exec_driver_sql("INSERT INTO t VALUES ('x')"))
        assert runner._checkpointer is not None  # the next write starts it again
    finally:
        await runner.close()
