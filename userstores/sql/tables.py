"""The SQL store's tables (one database per domain).

``users`` and ``groups`` hold each resource's canonical attributes as JSON
plus the columns searched most (userName, displayName, externalId); every
other attribute value is copied into ``user_values``/``group_values`` (one row
per attribute value, lower-cased unless the attribute is caseExact) so that
any filter is an index lookup, never a scan of the JSON. On PostgreSQL the
searchable text columns use the "C" collation, so that prefix searches
(``sw``) are plain index range scans.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

# 2: memberships.member_domain (members of other stores in hybrid roles)
SCHEMA_VERSION = 2

metadata = MetaData()

_SEQ = BigInteger().with_variant(Integer, "sqlite")


def _text(length: int) -> String:
    return String(length).with_variant(String(length, collation="C"), "postgresql")


schema_version = Table(
    "gateway_schema",
    metadata,
    Column("version", Integer, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("seq", _SEQ, primary_key=True, autoincrement=True),
    Column("id", String(36), nullable=False, unique=True),
    Column("user_name", String(512), nullable=False),
    Column("user_name_ci", _text(512), nullable=False, unique=True),
    Column("external_id", _text(512)),
    Column("password_hash", String(256)),
    Column("data", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created", String(32), nullable=False),
    Column("last_modified", String(32), nullable=False),
)
Index("ix_users_external_id", users.c.external_id)

groups = Table(
    "groups",
    metadata,
    Column("seq", _SEQ, primary_key=True, autoincrement=True),
    Column("id", String(36), nullable=False, unique=True),
    Column("display_name", String(512), nullable=False),
    Column("display_name_ci", _text(512), nullable=False, unique=True),
    Column("external_id", _text(512)),
    Column("data", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created", String(32), nullable=False),
    Column("last_modified", String(32), nullable=False),
)
Index("ix_groups_external_id", groups.c.external_id)

memberships = Table(
    "memberships",
    metadata,
    Column("group_seq", _SEQ, ForeignKey("groups.seq", ondelete="CASCADE"), primary_key=True),
    Column("member_id", String(36), primary_key=True),
    Column("member_type", String(8), nullable=False),
    # NULL: a user or group of this store; else the (upper-cased) domain of the store
    # that holds the member: a user of another store in a WSO2 hybrid role (Internal/...)
    Column("member_domain", String(64)),
)
Index("ix_memberships_member", memberships.c.member_id)


def _values_table(name: str, owner: str) -> Table:
    table = Table(
        name,
        metadata,
        Column("entity", _SEQ, ForeignKey(f"{owner}.seq", ondelete="CASCADE"),
               primary_key=True),
        Column("attr", String(160), primary_key=True),
        Column("sub", String(64), primary_key=True),
        Column("item", Integer, primary_key=True),
        # the first INDEX_LENGTH characters (indexed), and the whole value when longer
        Column("value", _text(512)),
        Column("full", Text),
        Column("num", Float),
        sqlite_with_rowid=False,
    )
    Index(f"ix_{name}_lookup", table.c.attr, table.c.sub, table.c.value)
    return table


user_values = _values_table("user_values", "users")
group_values = _values_table("group_values", "groups")


# the transactional outbox: one row per committed change, written in the change's own
# transaction; the outbound dispatcher (gateway/outbound) fans them out and deletes them
outbox = Table(
    "outbox",
    metadata,
    Column("seq", _SEQ, primary_key=True, autoincrement=True),
    Column("kind", String(8), nullable=False),  # User, Group
    Column("entity_id", String(36), nullable=False),
    Column("action", String(8), nullable=False),  # upsert, delete
    Column("name", String(512)),  # userName/displayName when known (for deletes)
    Column("created", String(32), nullable=False),
    # never reuse a sequence number (SQLite would, once the table is empty): deliveries
    # are unique per (store, sequence, connector)
    sqlite_autoincrement=True,
)
