"""webhook cursors and delivery attempts

Revision ID: 0003_webhooks
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import dialq.store.types

revision = "0003_webhooks"
down_revision = "0001"
branch_labels = None
depends_on = None


def _utc(name: str, *, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, dialq.store.types.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "webhook_cursors",
        sa.Column("call_id", sa.String(length=36), nullable=False),
        sa.Column("delivered_seq", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        _utc("next_attempt_at", nullable=True),
        _utc("gave_up_at", nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("lease_token", sa.String(length=32), nullable=True),
        _utc("lease_until", nullable=True),
        _utc("updated_at", nullable=False),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("call_id"),
    )
    with op.batch_alter_table("webhook_cursors", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webhook_cursors_next_attempt_at"), ["next_attempt_at"], unique=False
        )

    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("call_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        _utc("started_at", nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Double(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_webhook_attempts_call_id"), ["call_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_attempts_call_id"))
    op.drop_table("webhook_attempts")
    with op.batch_alter_table("webhook_cursors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_cursors_next_attempt_at"))
    op.drop_table("webhook_cursors")
