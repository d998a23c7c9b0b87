"""The tables the gateway keeps in its state database, beside the outbound queue.

The state database is ``[outbound] database`` when set, else the PRIMARY SQL
store's (``open_home``); every worker and host that shares it shares
these: ``used_once`` (``gateway.once``), ``auth_failures``
(``gateway.auth.guard``) and ``login_epoch`` (``gateway.auth.epoch``).
"""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from gateway.database.engine import Runner, make_runner, schema_lock
from userstores.registry import Stores

metadata = MetaData()


def create(conn: Connection) -> None:
    """Create what is missing (every process at start-up, under the schema lock)."""
    schema_lock(conn)
    metadata.create_all(conn)


def open_home(database: str | None, stores: Stores) -> tuple[Runner | None, bool]:
    """The state database for a command that runs without the outbound service (``gateway
    import``, the bootstrap): ``[outbound] database`` (a runner of its own, True: the
    caller closes it), else the PRIMARY SQL store's (None when PRIMARY is not SQL)."""
    if database:
        return make_runner(database, 4), True
    return stores.primary.database(), False
