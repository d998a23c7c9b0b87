"""Fan-out: the rows of every store's outbox become deliveries, one per connector that
takes the row's domain and kind.

When the queue lives in the outbox's database a batch moves in one transaction;
elsewhere it is read, queued, then dropped (queuing it twice adds nothing: unique per
source, sequence and connector). A row written without the entity's name (a user that
joined or left a group: the membership change names the group only) gets its name here,
so that every delivery says whom it is about. Without connectors the outboxes are only
drained.

``unqueued`` counts what still waits in the outboxes, per connector, for the backlog
the admin API and ``/metrics`` report: a change is delivered when neither its outbox row
nor a delivery is left.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from userstores.base import OutboxRow
from userstores.registry import Stores

from . import queue

log = logging.getLogger("gateway.outbound")

FAN_OUT_BATCH = 500
UNQUEUED_CAP = 10_000  # outbox rows counted per store for the backlog (at most)

Targets = Callable[[str], Callable[[OutboxRow], list[str]]]  # domain -> row -> connectors


class FanOut:
    def __init__(self, stores: Stores, runner, targets: Targets, queueing: bool):
        """``queueing``: a queue, and a connector enabled (else the outboxes are drained)."""
        self.stores = stores
        self.runner = runner
        self.targets = targets
        self.queueing = queueing

    async def run(self) -> int:
        """Move outbox rows of every SQL store into the delivery queue; how many."""
        moved = 0
        for store in self.stores.all:
            outbox = store.outbox
            if outbox is None:
                continue
            local = not self.queueing or outbox.lives_in(self.runner)
            if local and not await outbox.waiting():
                continue  # idle: no write transaction competes with requests
            if not self.queueing:
                moved += await outbox.drain(FAN_OUT_BATCH)
                continue
            source, targets = store.domain, self.targets(store.domain)
            if local:  # the queue is in the outbox's database: one transaction
                taken: list[OutboxRow] = []

                def into(conn, rows, source=source, targets=targets, taken=taken):
                    queue.enqueue(conn, queue.delivery_rows(source, rows, targets))
                    taken.extend(rows)

                moved += await outbox.move(FAN_OUT_BATCH, into)
                await self._name(store, taken, targets)
                continue
            # read (the read is the idle check too), queued, then dropped: a fan-out done
            # twice (another dispatcher, or a crash before the drop) queues nothing twice
            rows = await outbox.take(FAN_OUT_BATCH)
            if not rows:
                continue
            await self.runner.write(queue.enqueue, queue.delivery_rows(source, rows, targets))
            await outbox.drop([r.seq for r in rows])
            await self._name(store, rows, targets)
            moved += len(rows)
        return moved

    async def _name(self, store, rows: list[OutboxRow], targets) -> None:
        """Give the deliveries of rows written without a name their entity's name (one
        read per kind); a failure here leaves them to be named when delivered."""
        nameless: dict[str, list[OutboxRow]] = {}
        for row in rows:
            if row.name is None and row.action != "delete" and targets(row):
                nameless.setdefault(row.kind, []).append(row)
        if not nameless:
            return
        names: list[tuple[int, str]] = []
        try:
            for kind, kind_rows in nameless.items():
                ids = sorted({r.entity_id for r in kind_rows})
                user = kind == "User"
                found = await (store.get_users(ids) if user else store.get_groups(ids))
                key = "userName" if user else "displayName"
                for r in kind_rows:
                    rec = found.get(r.entity_id)
                    if rec is not None and rec.data.get(key):
                        names.append((r.seq, self.stores.qualify(store.domain,
                                                                 rec.data[key])))
            await self.runner.write(queue.set_names, store.domain, names)
        except Exception:  # noqa: BLE001 - the names are a convenience, the move is done
            log.warning("could not name %d deliveries of %s; they are named when delivered",
                        sum(len(v) for v in nameless.values()), store.domain)

    async def unqueued(self) -> dict[str, tuple[int, str | None]]:
        """Per connector: outbox rows that will become its deliveries (counted up to
        ``UNQUEUED_CAP`` per store) and the oldest one's commit time."""
        out: dict[str, tuple[int, str | None]] = {}
        if not self.queueing:
            return out
        for store in self.stores.all:
            outbox = store.outbox
            if outbox is None or not await outbox.waiting():
                continue
            targets = self.targets(store.domain)
            for row in await outbox.take(UNQUEUED_CAP):
                for name in targets(row):
                    n, oldest = out.get(name, (0, None))
                    out[name] = (n + 1, row.created if oldest is None
                                 else min(oldest, row.created))
        return out
