"""Webhook delivery state: one cursor per call into its events (the outbox), one row per POST."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from dialq.store.tables import Base


class WebhookCursor(Base):
    """How far a call's events have been delivered, and when to try again."""

    __tablename__ = "webhook_cursors"

    call_id: Mapped[str] = mapped_column(
        ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True
    )
    # Every event with seq <= this was accepted by the receiver (or given up and skipped).
    delivered_seq: Mapped[int] = mapped_column(Integer, default=0)
    # Failed POSTs of the current event, for the backoff; reset when the cursor moves.
    failures: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(index=True)
    # The stream is stopped for good (the callback address was refused); nothing more is sent.
    gave_up_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    # A delivery holds the call while it runs: one sender per call keeps events in order, and
    # every cursor move is conditional on the token, so a sender whose lease ran out stops.
    lease_token: Mapped[str | None] = mapped_column(String(32))
    lease_until: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class WebhookAttempt(Base):
    """One POST of one event (or one event given up without a POST)."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    event_id: Mapped[str] = mapped_column(String(36))
    # Scheme, host and path only: a query string may carry the receiver's token.
    url: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime]
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float]
    error: Mapped[str | None] = mapped_column(Text)
