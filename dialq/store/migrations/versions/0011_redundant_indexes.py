"""redundant indexes: drop two that every write paid for and no read needed

Revision ID: 0011_redundant_indexes
Revises: 0001

- `ix_calls_status` (status) leads `ix_calls_dispatch` (status, not_before) and `ix_calls_watch`
  (status, watch_due_at): a query by status alone uses either.
- `ix_events_call_id` (call_id) leads `uq_events_call_seq` (call_id, seq), which also serves
  the foreign key's cascade.

Each was one more index entry written with every call and every state change. On PostgreSQL
they are dropped CONCURRENTLY when Alembic owns the transaction (see 0006), else in the
migration's transaction (a drop is quick, but it waits for the table's lock).
"""

from __future__ import annotations

from alembic import op

revision = "0011_redundant_indexes"
# A branch of its own from 0001, as every feature's: both indexes are from 0001.
down_revision = "0001"
branch_labels = None
depends_on = None

# (index, table, columns) as 0001 made them, so a downgrade puts them back.
DROPPED = (
    ("ix_calls_status", "calls", ["status"]),
    ("ix_events_call_id", "events", ["call_id"]),
)


def upgrade() -> None:
    context = op.get_context()
    # Alembic has no public name for it; assume the worst if it ever goes.
    external = getattr(context, "_in_external_transaction", True)
    if context.dialect.name == "postgresql" and not external:
        with context.autocommit_block():
            for name, table, _ in DROPPED:
                op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)
        return
    for name, table, _ in DROPPED:
        op.drop_index(name, table_name=table, if_exists=True)


def downgrade() -> None:
    for name, table, columns in DROPPED:
        op.create_index(name, table, columns)
