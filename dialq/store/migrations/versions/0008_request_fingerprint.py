"""request fingerprint: an idempotency key reused for a different request is refused

Revision ID: 0008_request_fingerprint
Revises: 0001

- calls.request_fingerprint: a digest of the validated request without its key
  (dialq.calls.enqueue.request_fingerprint). Rows written before this revision have none;
  enqueue computes theirs from the stored request when their key is used again.
- Schedule occurrences' keys ("schedule:...") are now refused from producers by the request
  validator, and dialq stores a request holding one without it (the key stays in its column).
  Calls not yet dialed lose it here too: the dial validates the stored request again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_request_fingerprint"
# A branch of its own from 0001, as every feature's (see 0007).
down_revision = "0001"
branch_labels = None
depends_on = None

# The states whose stored request a dial may still validate, at this revision.
NOT_DIALED = ("queued", "waiting", "dialing", "unknown")


def upgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_fingerprint", sa.String(64), nullable=True))
    if op.get_context().dialect.name == "postgresql":
        stripped = "(request::jsonb - 'idempotency_key')::json"
    else:
        stripped = "json_remove(request, '$.idempotency_key')"
    states = ", ".join(f"'{state}'" for state in NOT_DIALED)
    op.execute(
        f"UPDATE calls SET request = {stripped} "  # noqa: S608  (constants only)
        f"WHERE status IN ({states}) AND idempotency_key LIKE 'schedule:%'"
    )


def downgrade() -> None:
    # The stripped keys stay stripped: each is still in calls.idempotency_key.
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_column("request_fingerprint")
