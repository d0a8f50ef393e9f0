"""schedules and their occurrences

Revision ID: 0002_schedules
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import dialq.store.types

revision = "0002_schedules"
down_revision = "0001"
branch_labels = None
depends_on = None


def _utc(name: str, *, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, dialq.store.types.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("template", sa.JSON(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("cron", sa.String(length=200), nullable=True),
        sa.Column("every_s", sa.Integer(), nullable=True),
        _utc("at", nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        _utc("start_at", nullable=True),
        _utc("end_at", nullable=True),
        sa.Column("count", sa.Integer(), nullable=True),
        sa.Column("timing_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("misfire_grace_s", sa.Integer(), nullable=True),
        sa.Column("overlap", sa.String(length=8), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        _utc("next_due_at", nullable=True),
        sa.Column("last_call_id", sa.String(length=36), nullable=True),
        _utc("created_at", nullable=False),
        _utc("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    with op.batch_alter_table("schedules", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_schedules_next_due_at"), ["next_due_at"])

    op.create_table(
        "schedule_occurrences",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("schedule_id", sa.String(length=36), nullable=False),
        _utc("occurrence_at", nullable=False),
        sa.Column("outcome", sa.String(length=24), nullable=False),
        sa.Column("call_id", sa.String(length=36), nullable=True),
        _utc("recorded_at", nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["schedule_id"], ["schedules.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("schedule_occurrences", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_schedule_occurrences_call_id"), ["call_id"])
        batch_op.create_index(
            "uq_schedule_occurrences_key", ["schedule_id", "occurrence_at"], unique=True
        )


def downgrade() -> None:
    op.drop_table("schedule_occurrences")
    op.drop_table("schedules")
