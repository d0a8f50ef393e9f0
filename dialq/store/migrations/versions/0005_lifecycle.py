"""lifecycle: watch due time, cancel request, stop summary

Revision ID: 0005_lifecycle
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import dialq.store.types

revision = "0005_lifecycle"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("watch_due_at", dialq.store.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "cancel_requested_at", dialq.store.types.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(sa.Column("summary_info", sa.JSON(), nullable=True))
        batch_op.create_index("ix_calls_watch", ["status", "watch_due_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index("ix_calls_watch")
        batch_op.drop_column("summary_info")
        batch_op.drop_column("cancel_requested_at")
        batch_op.drop_column("watch_due_at")
