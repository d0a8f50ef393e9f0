"""The insights table: what the Conversation API said about one ended call."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from dialq.insights.states import InsightsStatus
from dialq.store.tables import Base, Call

__all__ = ["PART_COLUMNS", "Insights", "InsightsStatus"]


# The Conversation API parts (docs/symbl-api.md §6) and the column each is stored in.
PART_COLUMNS: dict[str, str] = {
    "messages": "messages",
    "topics": "topics",
    "questions": "questions",
    "action-items": "action_items",
    "follow-ups": "follow_ups",
    "members": "members",
    "summary": "summary",
    "analytics": "analytics",
}


class Insights(Base):
    __tablename__ = "insights"

    call_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    # Each part as the API sent its list; NULL until that part was read once.
    messages: Mapped[Any] = mapped_column(JSON, nullable=True)
    topics: Mapped[Any] = mapped_column(JSON, nullable=True)
    questions: Mapped[Any] = mapped_column(JSON, nullable=True)
    action_items: Mapped[Any] = mapped_column(JSON, nullable=True)
    follow_ups: Mapped[Any] = mapped_column(JSON, nullable=True)
    members: Mapped[Any] = mapped_column(JSON, nullable=True)
    summary: Mapped[Any] = mapped_column(JSON, nullable=True)
    analytics: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # Harvest attempts so far; also the fencing token of the harvest holding the row.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    first_tried_at: Mapped[datetime | None]
    # While pending: when the next harvest is due, or until when the running one holds it.
    next_attempt_at: Mapped[datetime | None]
    harvested_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]

    __table_args__ = (Index("ix_insights_due", "status", "next_attempt_at"),)


# The insights sweep's backfill: calls by when they ended, read back only as far as the insights
# deadline (migration 0007). Declared here, beside the harvest that needs it, on the calls table;
# a call with no conversation has nothing to harvest, so it stays out of the index.
ix_calls_ended = Index(
    "ix_calls_ended",
    Call.ended_at,
    postgresql_where=Call.conversation_id.is_not(None),
    sqlite_where=Call.conversation_id.is_not(None),
)
