"""The tables: calls (one row per requested call), attempts (one per HTTP attempt), events,
and the HTTP API's keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text, desc
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from dialq.calls.states import DIALABLE, TERMINAL, CallStatus
from dialq.store.types import UTCDateTime

__all__ = [
    "DIALABLE",
    "TERMINAL",
    "ApiKey",
    "Attempt",
    "Base",
    "Call",
    "CallStateCount",
    "CallStatus",
    "Event",
]


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSON}


class Call(Base):
    __tablename__ = "calls"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # Indexed only as the first column of ix_calls_dispatch and ix_calls_watch (migration 0011).
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    account: Mapped[str] = mapped_column(String(64))
    # The one place a full phone number is kept (personal data: never in tasks or logs).
    phone_number: Mapped[str | None] = mapped_column(String(32))
    sip_uri: Mapped[str | None] = mapped_column(String(512))
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    priority: Mapped[int] = mapped_column(Integer, default=5)
    max_duration_s: Mapped[int] = mapped_column(Integer)
    callback_url: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    # What the key stands for (migration 0008): its reuse for another request is refused.
    request_fingerprint: Mapped[str | None] = mapped_column(String(64))

    not_before: Mapped[datetime | None]
    deadline_at: Mapped[datetime]
    # When the latest dial message becomes due; the sweeper republishes rows whose message is stale.
    dispatch_due_at: Mapped[datetime | None]

    start_attempts: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    capacity_waits: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claimed_at: Mapped[datetime | None]

    conversation_id: Mapped[str | None] = mapped_column(String(64))
    connection_id: Mapped[str | None] = mapped_column(String(64))
    event_url: Mapped[str | None] = mapped_column(Text)
    result_websocket_url: Mapped[str | None] = mapped_column(Text)

    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    connected_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]

    # Lifecycle (migration 0005): when the next look at a live call is due (the watchdog
    # republishes a lost one), a cancel asked for while the start request was in flight,
    # and what the stop request answered.
    watch_due_at: Mapped[datetime | None]
    cancel_requested_at: Mapped[datetime | None]
    summary_info: Mapped[list[Any] | None] = mapped_column(JSON)

    attempts: Mapped[list[Attempt]] = relationship(
        back_populates="call", order_by="Attempt.id", cascade="all, delete-orphan"
    )
    events: Mapped[list[Event]] = relationship(
        back_populates="call", order_by="Event.seq", cascade="all, delete-orphan"
    )

    @property
    def duration_s(self) -> float | None:
        """How long the call was live: connected to ended (None until both are known)."""
        if self.connected_at is None or self.ended_at is None:
            return None
        return round((self.ended_at - self.connected_at).total_seconds(), 3)

    __table_args__ = (
        Index("ix_calls_dispatch", "status", "not_before"),
        Index("ix_calls_watch", "status", "watch_due_at"),
        # `dialq calls`: newest first, read in order and stopped at the limit (migration 0006).
        Index("ix_calls_created", desc("created_at"), "id"),
    )


class Attempt(Base):
    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    operation: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime]
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float]
    error: Mapped[str | None] = mapped_column(Text)

    call: Mapped[Call] = relationship(back_populates="attempts")


class Event(Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # Indexed as the first column of uq_events_call_seq (migration 0011).
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    # Per-call sequence number: webhooks and the timeline order by it.
    seq: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime]
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(Text)

    call: Mapped[Call] = relationship(back_populates="events")

    __table_args__ = (
        Index("uq_events_call_seq", "call_id", "seq", unique=True),
        # The webhook sweep reads only the events of its retry window (migration 0006).
        Index("ix_events_at", "at"),
    )


class ApiKey(Base):
    """A key of the HTTP API (migration 0009): only its SHA-256 is kept, never the key."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    # The key's first characters, shown by `dialq apikey list` so a person can tell keys apart.
    prefix: Mapped[str] = mapped_column(String(16))
    key_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    accounts: Mapped[list[Any]] = mapped_column(JSON)
    scopes: Mapped[list[Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class CallStateCount(Base):
    """Calls by account and state, as signed changes (migration 0010): database triggers add
    one row per change of a call's state (-1 for the state it left, +1 for the one it entered),
    and `state_counts.fold` sums old rows into one per (account, state), so the sum per
    (account, state) is exact and reading it costs what changed since the last fold plus one row
    per account and state, not all of history. No index on account: the folded table is small,
    and an index would be one more write on every change of every call."""

    __tablename__ = "call_state_counts"

    # BIGINT: a busy account writes ten rows a call, for years. SQLite's rowid is 64-bit already.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    account: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    delta: Mapped[int] = mapped_column(BigInteger)
