"""A call row as the store tests write it by hand: every required column, overridable."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from dialq.calls.states import CallStatus

NUMBER = "+14155550123"


def call_row(call_id: str, at: datetime, **overrides: Any) -> dict[str, Any]:
    """A queued call made at `at`, due within the hour; `overrides` set any other column."""
    row: dict[str, Any] = {
        "id": call_id,
        "status": CallStatus.QUEUED.value,
        "account": "default",
        "phone_number": NUMBER,
        "request": {"phone_number": NUMBER},
        "priority": 5,
        "max_duration_s": 3600,
        "deadline_at": at + timedelta(hours=1),
        "start_attempts": 0,
        "failures": 0,
        "capacity_waits": 0,
        "created_at": at,
        "updated_at": at,
    }
    row.update(overrides)
    return row
