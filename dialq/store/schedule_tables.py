"""The schedule tables: schedules (one row per named schedule) and their occurrences."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from dialq.store.tables import Base


class Outcome(enum.StrEnum):
    """What became of one occurrence."""

    PLACED = "placed"
    SKIPPED_LATE = "skipped: late"  # more than the misfire grace late (an outage, a stopped beat)
    SKIPPED_OVERLAP = "skipped: overlap"  # the previous occurrence's call was still live
    SKIPPED_INVALID = "skipped: invalid"  # the template no longer passes validation


class Schedule(Base):
    __tablename__ = "schedules"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # Where it was last written from (cli, api, file): file schedules follow the file.
    source: Mapped[str] = mapped_column(String(16))
    template: Mapped[dict[str, Any]] = mapped_column(JSON)

    kind: Mapped[str] = mapped_column(String(8))
    cron: Mapped[str | None] = mapped_column(String(200))
    every_s: Mapped[int | None] = mapped_column(Integer)
    at: Mapped[datetime | None]
    timezone: Mapped[str] = mapped_column(String(64))
    start_at: Mapped[datetime | None]
    end_at: Mapped[datetime | None]
    count: Mapped[int | None] = mapped_column(Integer)
    timing_fingerprint: Mapped[str] = mapped_column(String(64))

    misfire_grace_s: Mapped[int | None] = mapped_column(Integer)  # None: the setting's default
    overlap: Mapped[str] = mapped_column(String(8))
    enabled: Mapped[bool] = mapped_column(Boolean)

    # The next occurrence not yet handled; NULL when paused or finished. Indexed: a tick reads
    # only the rows due before its horizon, however many schedules are stored.
    next_due_at: Mapped[datetime | None] = mapped_column(index=True)
    last_call_id: Mapped[str | None] = mapped_column(String(36))

    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Occurrence(Base):
    __tablename__ = "schedule_occurrences"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    schedule_id: Mapped[str] = mapped_column(ForeignKey("schedules.id", ondelete="CASCADE"))
    occurrence_at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(24))
    # No foreign key: calls outlive schedules, and occurrences are kept when calls are purged.
    call_id: Mapped[str | None] = mapped_column(String(36), index=True)
    recorded_at: Mapped[datetime]
    detail: Mapped[str | None] = mapped_column(Text)

    # The occurrence key: two beats, a repeated tick or a restart cannot record one twice.
    __table_args__ = (
        Index("uq_schedule_occurrences_key", "schedule_id", "occurrence_at", unique=True),
    )
