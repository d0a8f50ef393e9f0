"""Planned and recurring calls: rules (pure DST maths), spec, service, file (TOML), the tick.

`dialq.schedules.upsert_schedule` and friends are the documented Python API (see
`dialq.schedules.api`); they are imported on first use, so the pure parts (`rules`, `spec`)
load without the database or Redis.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from dialq.schedules.api import (
        next_occurrences,
        pause_schedule,
        remove_schedule,
        resume_schedule,
        upsert_schedule,
    )
    from dialq.schedules.service import SavedSchedule, ScheduleService, UnknownSchedule
    from dialq.schedules.spec import InvalidSchedule

_LAZY = {
    "upsert_schedule": "dialq.schedules.api",
    "pause_schedule": "dialq.schedules.api",
    "resume_schedule": "dialq.schedules.api",
    "remove_schedule": "dialq.schedules.api",
    "next_occurrences": "dialq.schedules.api",
    "SavedSchedule": "dialq.schedules.service",
    "ScheduleService": "dialq.schedules.service",
    "UnknownSchedule": "dialq.schedules.service",
    "InvalidSchedule": "dialq.schedules.spec",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'dialq.schedules' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
