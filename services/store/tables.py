"""SQLAlchemy Core tables of the governance store; migrations/versions must match these exactly."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.sql.expression import true
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

GENESIS_HASH = "0" * 64


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive, so tzinfo is re-attached)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store only takes timezone-aware datetimes")
        value = value.astimezone(UTC)
        # SQLite keeps text; one fixed naive-UTC form keeps its string comparisons chronological.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")


def _ts(name: str, **kw: Any) -> Column[datetime]:
    return Column(name, UTCDateTime(), nullable=kw.pop("nullable", False), **kw)


mutation_request = Table(
    "mutation_request",
    metadata,
    Column("request_id", String(200), primary_key=True),
    Column("state_id", String(200), nullable=False, index=True),
    Column("status", String(20), nullable=False, index=True),
    Column("pending_reason", String(30), nullable=True),
    Column("revision", Integer, nullable=False),
    _ts("expires_at", nullable=True, index=True),
    _ts("created_at"),
    _ts("updated_at"),
    # The whole aggregate; the scalar columns above are copies kept for queries and the revision CAS.
    Column("body", JSON, nullable=False),
)

# One row per decision, beside the copy in mutation_request.body: the decision log queryable by
# code, category, actor and time, and a second guard on its sequence (a duplicate fails the commit).
request_decision = Table(
    "request_decision",
    metadata,
    Column("request_id", String(200), primary_key=True),
    Column("sequence", Integer, primary_key=True),
    Column("category", String(30), nullable=False),
    Column("code", String(50), nullable=False, index=True),
    Column("reason", Text, nullable=True),
    Column("actor_id", String(200), nullable=False),
    _ts("at", index=True),
    Column("metadata", JSON, nullable=False),
)

state_document = Table(
    "state_document",
    metadata,
    Column("state_id", String(200), primary_key=True),
    Column("state_type", String(100), nullable=False),
    Column("version", Integer, nullable=False),
    Column("data", JSON, nullable=False),
    _ts("updated_at"),
)

state_history = Table(
    "state_history",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("state_id", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("request_id", String(200), nullable=False),
    Column("changes", JSON, nullable=False),
    Column("document", JSON, nullable=False),
    _ts("recorded_at"),
    UniqueConstraint("state_id", "version"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("service", String(50), nullable=False),
    Column("topic", String(255), nullable=False),
    Column("key", String(200), nullable=False),
    Column("message_id", String(200), nullable=False, unique=True),
    Column("message_type", String(100), nullable=False),
    # The exact bytes that go on the wire (UTF-8 JSON), so a re-publish is byte-identical.
    Column("payload", Text, nullable=False),
    Column("headers", JSON, nullable=True),
    _ts("created_at"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    _ts("failed_at", nullable=True),
    Column("last_error", Text, nullable=True),
    Index("ix_outbox_service_id", "service", "id"),
)

relay_lease = Table(
    "relay_lease",
    metadata,
    Column("service", String(50), primary_key=True),
    Column("holder", String(200), nullable=False),
    _ts("expires_at"),
)

processed_message = Table(
    "processed_message",
    metadata,
    Column("consumer_group", String(100), primary_key=True),
    Column("message_id", String(200), primary_key=True),
    _ts("processed_at"),
)

audit_log = Table(
    "audit_log",
    metadata,
    # Allocated from the chain head (not by the database) so the hash can cover it.
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("message_id", String(200), nullable=False, unique=True),
    Column("message_type", String(100), nullable=False),
    Column("topic", String(255), nullable=False),
    Column("request_id", String(200), nullable=True, index=True),
    Column("state_id", String(200), nullable=True, index=True),
    _ts("occurred_at"),
    _ts("recorded_at"),
    Column("payload", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

audit_chain = Table(
    "audit_chain",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("last_hash", String(64), nullable=False),
)

principal = Table(
    "principal",
    metadata,
    Column("principal_id", String(200), primary_key=True),
    Column("name", String(200), nullable=True),
    Column("roles", JSON, nullable=False),
    Column("groups", JSON, nullable=False),
    Column("active", Boolean, nullable=False, server_default=true()),
    Column("public_keys", JSON, nullable=False),
    _ts("updated_at"),
)
