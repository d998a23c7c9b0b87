"""Federated identities linked to local users: (provider, subject) -> user id.

Kept apart from ``userName``: renaming a user, or an IdP renaming its user,
never makes a second local user for the same federated subject. The table
lives in the gateway's state database (``[outbound] database``, by default
the PRIMARY store's).
"""

from __future__ import annotations

from sqlalchemy import Column, MetaData, String, Table, delete, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from gateway.database.engine import schema_lock

metadata = MetaData()

links = Table(
    "federated_links",
    metadata,
    Column("provider", String(128), primary_key=True),
    Column("subject", String(512), primary_key=True),
    Column("user_id", String(64), nullable=False, index=True),
    Column("domain", String(64), nullable=False),
    Column("created", String(32), nullable=False),
)


def create(conn: Connection) -> None:
    schema_lock(conn)
    metadata.create_all(conn)


def get(conn: Connection, provider: str, subject: str) -> tuple[str, str] | None:
    row = conn.execute(select(links.c.user_id, links.c.domain).where(
        links.c.provider == provider, links.c.subject == subject)).first()
    return None if row is None else (row.user_id, row.domain)


def add(conn: Connection, provider: str, subject: str, user_id: str, domain: str,
        created: str) -> bool:
    """Link a subject; False if it was linked meanwhile (another login won the race)."""
    try:
        with conn.begin_nested():
            conn.execute(links.insert().values(provider=provider, subject=subject,
                                               user_id=user_id, domain=domain,
                                               created=created))
    except IntegrityError:
        return False
    return True


def drop(conn: Connection, provider: str, subject: str) -> None:
    conn.execute(delete(links).where(links.c.provider == provider, links.c.subject == subject))
