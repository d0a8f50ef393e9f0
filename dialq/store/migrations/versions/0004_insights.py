"""insights harvested from the Conversation API

Revision ID: 0004_insights
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import dialq.store.types

revision = "0004_insights"
down_revision = "0001"
branch_labels = None
depends_on = None


def _utc(name: str, *, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, dialq.store.types.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "insights",
        sa.Column("call_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("messages", sa.JSON(), nullable=True),
        sa.Column("topics", sa.JSON(), nullable=True),
        sa.Column("questions", sa.JSON(), nullable=True),
        sa.Column("action_items", sa.JSON(), nullable=True),
        sa.Column("follow_ups", sa.JSON(), nullable=True),
        sa.Column("members", sa.JSON(), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.Column("analytics", sa.JSON(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _utc("first_tried_at", nullable=True),
        _utc("next_attempt_at", nullable=True),
        _utc("harvested_at", nullable=True),
        _utc("updated_at", nullable=False),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("call_id"),
    )
    with op.batch_alter_table("insights", schema=None) as batch_op:
        batch_op.create_index("ix_insights_due", ["status", "next_attempt_at"], unique=False)


def downgrade() -> None:
    op.drop_table("insights")
