"""insights due: the insights sweep reads due rows, not every ended call

Revision ID: 0007_insights_due
Revises: 0001

From this revision on, a call's pending insights row is written in the transaction that ends
the call, so the sweep starts from due rows (ix_insights_due). Two things make that true for the
calls already in the database:

- a pending row, due now, for every ended call with a conversation and no insights row: the
  calls the sweep before this revision would still have found, whatever their age, so each gets
  the one harvest it would have had (ready, or unavailable past its deadline);
- ix_calls_ended, calls by end time where there was a conversation: the sweep reads back through
  it, as far as the insights deadline, for calls ended by a worker older than this revision.

On PostgreSQL the index is built with CREATE INDEX CONCURRENTLY whenever Alembic owns the
transaction, as in 0006; inside a transaction handed over by `Database.upgrade` it is built in
that transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql, sqlite

import dialq.store.types

revision = "0007_insights_due"
# A branch of its own from 0001, as every feature's (a depends_on 0004 would take 0004 out
# of the recorded heads, and `dialq doctor` would call the schema behind).
down_revision = "0001"
branch_labels = None
depends_on = None

INDEX = "ix_calls_ended"
# The states whose insights are harvested (dialq.store.insights_repo.ENDED at this revision).
ENDED = ("completed", "canceled")

# The columns this revision reads and writes, as they are at this revision (not the models').
_utc = dialq.store.types.UTCDateTime(timezone=True)
calls = sa.table(
    "calls",
    sa.column("id", sa.String()),
    sa.column("status", sa.String()),
    sa.column("conversation_id", sa.String()),
)
insights = sa.table(
    "insights",
    sa.column("call_id", sa.String()),
    sa.column("status", sa.String()),
    sa.column("attempts", sa.Integer()),
    sa.column("next_attempt_at", _utc),
    sa.column("updated_at", _utc),
)


def upgrade() -> None:
    # Alembic orders sibling branches as it likes: before 0004 there is no insights table, and
    # no call whose harvest could have started, so nothing to write.
    if sa.inspect(op.get_bind()).has_table("insights"):
        _add_pending_rows()
    if _can_build_concurrently():
        with op.get_context().autocommit_block():
            _drop_if_invalid(INDEX)
            _create_index(concurrently=True)
        return
    _create_index(concurrently=False)


def downgrade() -> None:
    # The pending rows stay: they are what a harvest before this revision would have written.
    op.drop_index(INDEX, table_name="calls")


def _add_pending_rows() -> None:
    """A pending row due now for each ended call whose harvest never started.

    ON CONFLICT: a worker still on the older code may write one of these rows meanwhile.
    """
    now = sa.literal(datetime.now(UTC), _utc)
    never_started = sa.select(calls.c.id, sa.literal("pending"), sa.literal(0), now, now).where(
        calls.c.status.in_(ENDED),
        calls.c.conversation_id.is_not(None),
        ~sa.exists().where(insights.c.call_id == calls.c.id),
    )
    columns = ["call_id", "status", "attempts", "next_attempt_at", "updated_at"]
    dialect = postgresql if op.get_context().dialect.name == "postgresql" else sqlite
    op.execute(
        dialect.insert(insights).from_select(columns, never_started).on_conflict_do_nothing()
    )


def _create_index(*, concurrently: bool) -> None:
    # Spelled as dialq.store.insights_tables declares it.
    where = sa.text("conversation_id IS NOT NULL")
    op.create_index(
        INDEX,
        "calls",
        ["ended_at"],
        postgresql_where=where,
        sqlite_where=where,
        postgresql_concurrently=concurrently,
        # Built outside any transaction, the index outlives a run that failed before it
        # recorded this revision: the rerun keeps it.
        if_not_exists=concurrently,
    )


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
