"""initial schema

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import dialq.store.types

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("phone_number", sa.String(length=32), nullable=True),
        sa.Column("sip_uri", sa.String(length=512), nullable=True),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("max_duration_s", sa.Integer(), nullable=False),
        sa.Column("callback_url", sa.Text(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("not_before", dialq.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("deadline_at", dialq.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("dispatch_due_at", dialq.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("start_attempts", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("capacity_waits", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.String(length=200), nullable=True),
        sa.Column("claimed_at", dialq.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("conversation_id", sa.String(length=64), nullable=True),
        sa.Column("connection_id", sa.String(length=64), nullable=True),
        sa.Column("event_url", sa.Text(), nullable=True),
        sa.Column("result_websocket_url", sa.Text(), nullable=True),
        sa.Column("created_at", dialq.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", dialq.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("connected_at", dialq.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", dialq.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.create_index("ix_calls_dispatch", ["status", "not_before"], unique=False)
        batch_op.create_index(batch_op.f("ix_calls_status"), ["status"], unique=False)

    op.create_table(
        "attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("call_id", sa.String(length=36), nullable=False),
        sa.Column("operation", sa.String(length=16), nullable=False),
        sa.Column("started_at", dialq.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Double(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_attempts_call_id"), ["call_id"], unique=False)

    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("call_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("at", dialq.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_events_call_id"), ["call_id"], unique=False)
        batch_op.create_index("uq_events_call_seq", ["call_id", "seq"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("uq_events_call_seq")
        batch_op.drop_index(batch_op.f("ix_events_call_id"))

    op.drop_table("events")
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attempts_call_id"))

    op.drop_table("attempts")
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_calls_status"))
        batch_op.drop_index("ix_calls_dispatch")

    op.drop_table("calls")
