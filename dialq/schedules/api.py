"""Planned and recurring calls: store schedules by name, preview them, tick the dispatcher.

Python API::

    from dialq.schedules import upsert_schedule
    upsert_schedule({"name": "standup", "cron": "0 9 * * 1-5", "timezone": "America/New_York",
                     "call": {"phone_number": "+14155550123", "session_name": "Standup"}})
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dialq.config import Settings
from dialq.schedules.occurrences import ScheduleDispatcher, TickReport
from dialq.schedules.service import SavedSchedule, ScheduleService, UnknownSchedule
from dialq.schedules.spec import InvalidSchedule
from dialq.store import Database

if TYPE_CHECKING:
    from dialq.runtime import Runtime

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

_lock = threading.Lock()
_services: dict[str, ScheduleService] = {}


def service_for(settings: Settings | None = None) -> ScheduleService:
    """The process-wide schedule service for these settings' database."""
    settings = settings or Settings()
    url = settings.database_url_resolved
    with _lock:
        if url not in _services:
            db = Database(url)
            if settings.auto_migrate:
                db.upgrade()
            _services[url] = ScheduleService(settings, db)
        return _services[url]


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


# -- the beat tick ----------------------------------------------------------------------------


def dispatch_due(runtime: Runtime) -> TickReport:
    """One dispatcher tick in a worker: reload the schedules file if it changed, then dispatch."""
    from dialq.schedules.file import FileWatcher

    with _lock:
        parts = getattr(runtime, "dialq_schedules", None)
        if parts is None:
            service = ScheduleService(runtime.settings, runtime.db)
            dispatcher = ScheduleDispatcher(runtime.settings, runtime.db, runtime.service.enqueue)
            parts = (FileWatcher(service, runtime.settings.schedules_file), dispatcher)
            runtime.dialq_schedules = parts  # type: ignore[attr-defined]
    watcher, dispatcher = parts
    watcher.sync_if_changed()
    return dispatcher.tick()
