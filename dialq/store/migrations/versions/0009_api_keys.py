"""api keys: the HTTP API's keys, kept as SHA-256 digests only

Revision ID: 0009_api_keys
Revises: 0001

- api_keys: one row per key made by `dialq apikey create`: the accounts it may act for, its
  scopes, and its digest (unique: a request's key is found by its digest). The key itself is
  printed once and never stored.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import dialq.store.types

revision = "0009_api_keys"
# A branch of its own from 0001, as every feature's (see 0007).
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_sha256", sa.String(length=64), nullable=False),
        sa.Column("accounts", sa.JSON(), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_at", dialq.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", dialq.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_sha256"),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
