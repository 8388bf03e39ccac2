"""Initial schema: requests, states and history, outbox and relay lease, processed messages, audit, principals.

Revision ID: 0001
Revises:
Create Date: 2025-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the types in services.store.tables: a migration must not change when the app code does.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def ts(name: str, nullable: bool = False) -> sa.Column:
    """A timezone-aware timestamp column."""
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "mutation_request",
        sa.Column("request_id", sa.String(200), nullable=False),
        sa.Column("state_id", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("pending_reason", sa.String(30), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        ts("expires_at", nullable=True),
        ts("created_at"),
        ts("updated_at"),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_mutation_request")),
    )
    for column in ("state_id", "status", "expires_at"):
        op.create_index(op.f(f"ix_mutation_request_{column}"), "mutation_request", [column])

    op.create_table(
        "state_document",
        sa.Column("state_id", sa.String(200), nullable=False),
        sa.Column("state_type", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        ts("updated_at"),
        sa.PrimaryKeyConstraint("state_id", name=op.f("pk_state_document")),
    )

    op.create_table(
        "state_history",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("state_id", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(200), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        ts("recorded_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_state_history")),
        sa.UniqueConstraint("state_id", "version", name=op.f("uq_state_history_state_id_version")),
    )

    op.create_table(
        "outbox",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("service", sa.String(50), nullable=False),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("message_id", sa.String(200), nullable=False),
        sa.Column("message_type", sa.String(100), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=True),
        ts("created_at"),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        ts("failed_at", nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("message_id", name=op.f("uq_outbox_message_id")),
    )
    op.create_index("ix_outbox_service_id", "outbox", ["service", "id"])

    op.create_table(
        "relay_lease",
        sa.Column("service", sa.String(50), nullable=False),
        sa.Column("holder", sa.String(200), nullable=False),
        ts("expires_at"),
        sa.PrimaryKeyConstraint("service", name=op.f("pk_relay_lease")),
    )

    op.create_table(
        "processed_message",
        sa.Column("consumer_group", sa.String(100), nullable=False),
        sa.Column("message_id", sa.String(200), nullable=False),
        ts("processed_at"),
        sa.PrimaryKeyConstraint("consumer_group", "message_id", name=op.f("pk_processed_message")),
    )

    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("message_id", sa.String(200), nullable=False),
        sa.Column("message_type", sa.String(100), nullable=False),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("request_id", sa.String(200), nullable=True),
        sa.Column("state_id", sa.String(200), nullable=True),
        ts("occurred_at"),
        ts("recorded_at"),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_log")),
        sa.UniqueConstraint("message_id", name=op.f("uq_audit_log_message_id")),
    )
    op.create_index(op.f("ix_audit_log_request_id"), "audit_log", ["request_id"])
    op.create_index(op.f("ix_audit_log_state_id"), "audit_log", ["state_id"])

    audit_chain = op.create_table(
        "audit_chain",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain")),
    )
    # The chain head exists from the start, so appenders only ever compare-and-set it.
    op.bulk_insert(audit_chain, [{"id": 1, "last_seq": 0, "last_hash": "0" * 64}])

    op.create_table(
        "principal",
        sa.Column("principal_id", sa.String(200), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("groups", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("public_keys", sa.JSON(), nullable=False),
        ts("updated_at"),
        sa.PrimaryKeyConstraint("principal_id", name=op.f("pk_principal")),
    )


def downgrade() -> None:
    for table in (
        "principal",
        "audit_chain",
        "audit_log",
        "processed_message",
        "relay_lease",
        "outbox",
        "state_history",
        "state_document",
        "mutation_request",
    ):
        op.drop_table(table)
