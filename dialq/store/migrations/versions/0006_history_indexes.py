"""history indexes: `dialq calls` and the webhook sweep read only what they return

Revision ID: 0006_history_indexes
Revises: 0001

On PostgreSQL the indexes are built with CREATE INDEX CONCURRENTLY, so a large live table keeps
taking writes, whenever Alembic owns the transaction: the block it needs commits the migrations
before it. `Database.upgrade` (and env.py) hand Alembic a connection already inside their own
transaction, which Alembic cannot commit; there the indexes are built in that transaction,
which is atomic but holds writes to the table until it commits.
"""

from __future__ import annotations

from typing import NamedTuple

import sqlalchemy as sa
from alembic import op

revision = "0006_history_indexes"
# A branch of its own from 0001, as every feature's: the indexed columns are all from 0001.
down_revision = "0001"
branch_labels = None
depends_on = None


# Not a dataclass: Alembic loads this file outside sys.modules, which dataclasses need.
class NewIndex(NamedTuple):
    name: str
    table: str
    columns: tuple[str | sa.TextClause, ...]


INDEXES = (
    # list_calls: newest first, ties by id.
    NewIndex("ix_calls_created", "calls", (sa.text("created_at DESC"), "id")),
    # The webhook sweep: the events of its retry window.
    NewIndex("ix_events_at", "events", ("at",)),
)


def upgrade() -> None:
    if _can_build_concurrently():
        with op.get_context().autocommit_block():
            for index in INDEXES:
                _drop_if_invalid(index.name)
                op.create_index(
                    index.name,
                    index.table,
                    list(index.columns),
                    postgresql_concurrently=True,
                    if_not_exists=True,
                )
        return
    for index in INDEXES:
        op.create_index(index.name, index.table, list(index.columns))


def downgrade() -> None:
    for index in reversed(INDEXES):
        op.drop_index(index.name, table_name=index.table)


def _can_build_concurrently() -> bool:
    """PostgreSQL, and a transaction Alembic began (autocommit_block refuses any other)."""
    context = op.get_context()
    # Alembic has no public name for it; assume the worst if it ever goes.
    external = getattr(context, "_in_external_transaction", True)
    return context.dialect.name == "postgresql" and not external


def _drop_if_invalid(name: str) -> None:
    """A concurrent build that failed leaves an invalid index; IF NOT EXISTS would keep it."""
    bind = op.get_bind()
    invalid = bind.execute(
        sa.text(
            "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = :name AND c.relnamespace = current_schema()::regnamespace "
            "AND NOT i.indisvalid"
        ),
        {"name": name},
    ).first()
    if invalid is not None:
        op.drop_index(name, postgresql_concurrently=True)
