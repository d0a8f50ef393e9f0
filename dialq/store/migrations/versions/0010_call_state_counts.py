"""call state counts: calls by state kept by triggers, so the metrics never count history

Revision ID: 0010_call_state_counts
Revises: 0001

- call_state_counts: signed changes per account (-1 the state left, +1 the state entered),
  written by triggers on `calls` in the transaction of each change, seeded with the current
  counts; the sum per (account, state) is the number of the account's calls in it
  (dialq.store.state_counts folds old rows).

Seeding and the triggers are one step against concurrent writers: on PostgreSQL the table lock
is taken first and held to the commit; on SQLite the seed's INSERT takes the write lock before
the triggers exist, and holds it to the commit.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_call_state_counts"
# A branch of its own from 0001, as every feature's: `calls.status` is from 0001.
down_revision = "0001"
branch_labels = None
depends_on = None

SEED = (
    "INSERT INTO call_state_counts (account, status, delta) "
    "SELECT account, status, count(*) FROM calls GROUP BY account, status"
)

# A bulk INSERT or DELETE (a fill, a purge) adds one row per (account, state) it touched, not
# one per call. A call's account never changes today, but the update trigger counts a change of
# it too, so the counts cannot drift if one ever does.
PG_FUNCTIONS = """
CREATE FUNCTION dialq_count_new_calls() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO call_state_counts (account, status, delta)
        SELECT account, status, count(*) FROM new_calls GROUP BY account, status;
    RETURN NULL;
END $$;
CREATE FUNCTION dialq_count_gone_calls() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO call_state_counts (account, status, delta)
        SELECT account, status, -count(*) FROM gone_calls GROUP BY account, status;
    RETURN NULL;
END $$;
CREATE FUNCTION dialq_count_moved_call() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO call_state_counts (account, status, delta)
        VALUES (OLD.account, OLD.status, -1), (NEW.account, NEW.status, 1);
    RETURN NULL;
END $$;
"""
PG_TRIGGERS = (
    "CREATE TRIGGER calls_count_insert AFTER INSERT ON calls REFERENCING NEW TABLE AS new_calls "
    "FOR EACH STATEMENT EXECUTE FUNCTION dialq_count_new_calls()",
    "CREATE TRIGGER calls_count_delete AFTER DELETE ON calls REFERENCING OLD TABLE AS gone_calls "
    "FOR EACH STATEMENT EXECUTE FUNCTION dialq_count_gone_calls()",
    "CREATE TRIGGER calls_count_update AFTER UPDATE OF status, account ON calls FOR EACH ROW "
    "WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.account IS DISTINCT FROM NEW.account) "
    "EXECUTE FUNCTION dialq_count_moved_call()",
)
SQLITE_TRIGGERS = (
    "CREATE TRIGGER calls_count_insert AFTER INSERT ON calls BEGIN "
    "INSERT INTO call_state_counts (account, status, delta) VALUES (NEW.account, NEW.status, 1); "
    "END",
    "CREATE TRIGGER calls_count_delete AFTER DELETE ON calls BEGIN "
    "INSERT INTO call_state_counts (account, status, delta) VALUES (OLD.account, OLD.status, -1); "
    "END",
    "CREATE TRIGGER calls_count_update AFTER UPDATE OF status, account ON calls "
    "WHEN OLD.status IS NOT NEW.status OR OLD.account IS NOT NEW.account BEGIN "
    "INSERT INTO call_state_counts (account, status, delta) "
    "VALUES (OLD.account, OLD.status, -1), (NEW.account, NEW.status, 1); END",
)
TRIGGERS = ("calls_count_insert", "calls_count_delete", "calls_count_update")
FUNCTIONS = ("dialq_count_new_calls", "dialq_count_gone_calls", "dialq_count_moved_call")


def upgrade() -> None:
    op.create_table(
        "call_state_counts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("delta", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    if op.get_context().dialect.name == "postgresql":
        # No write to calls between the seed's snapshot and the triggers' first change.
        op.execute("LOCK TABLE calls IN SHARE ROW EXCLUSIVE MODE")
        op.execute(SEED)
        op.execute(PG_FUNCTIONS)
        for trigger in PG_TRIGGERS:
            op.execute(trigger)
        return
    op.execute(SEED)
    for trigger in SQLITE_TRIGGERS:
        op.execute(trigger)


def downgrade() -> None:
    for trigger in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}" + _on_calls())
    if op.get_context().dialect.name == "postgresql":
        for function in FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    op.drop_table("call_state_counts")


def _on_calls() -> str:
    return " ON calls" if op.get_context().dialect.name == "postgresql" else ""
