"""Planned and recurring calls, the Python API: store schedules by name, pause, preview.

Python API::

    from dialq.schedules import upsert_schedule
    upsert_schedule({"name": "standup", "cron": "0 9 * * 1-5", "timezone": "America/New_York",
                     "call": {"phone_number": "+14155550123", "session_name": "Standup"}})
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from dialq.config import Settings
from dialq.schedules.service import SavedSchedule, ScheduleService, UnknownSchedule
from dialq.schedules.spec import InvalidSchedule

__all__ = [
    "InvalidSchedule",
    "SavedSchedule",
    "ScheduleService",
    "UnknownSchedule",
    "next_occurrences",
    "pause_schedule",
    "remove_schedule",
    "resume_schedule",
    "upsert_schedule",
]


# -- the Python API ---------------------------------------------------------------------------


def service_for(settings: Settings | None = None) -> ScheduleService:
    """The schedule service of the process-wide runtime for these settings."""
    from dialq.api import producer_runtime

    return producer_runtime(settings).schedules


def upsert_schedule(
    data: Mapping[str, Any], *, settings: Settings | None = None, source: str = "api"
) -> SavedSchedule:
    """Create or update a schedule by name. Raises InvalidSchedule (nothing stored)."""
    return service_for(settings).upsert(data, source=source)


def pause_schedule(name: str, *, settings: Settings | None = None) -> SavedSchedule:
    return service_for(settings).set_enabled(name, False)


def resume_schedule(name: str, *, settings: Settings | None = None) -> SavedSchedule:
    return service_for(settings).set_enabled(name, True)


def remove_schedule(name: str, *, settings: Settings | None = None) -> None:
    service_for(settings).remove(name)


def next_occurrences(
    name: str, count: int = 5, after: datetime | None = None, *, settings: Settings | None = None
) -> list[datetime]:
    return service_for(settings).next_occurrences(name, count, after)
