"""What the schedule routes answer, as models (the OpenAPI document is generated from these)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from dialq.config import DEFAULT_ACCOUNT
from dialq.schedules.rules import local_iso
from dialq.store.schedule_tables import Occurrence, Schedule


class ScheduleOut(BaseModel):
    """A schedule as stored; its times are UTC, `next_local` is on the schedule's own clock."""

    name: str
    id: str
    account: str = Field(description="The account its calls are placed for.")
    state: Literal["active", "paused", "finished"]
    kind: str = Field(description="cron, every or at.")
    cron: str | None
    every_s: int | None
    at: datetime | None
    timezone: str
    start_at: datetime | None
    end_at: datetime | None
    count: int | None
    overlap: str
    misfire_grace_s: int | None = Field(description="null: the deployment's default.")
    source: str = Field(description="Where it was last written from: api, cli or file.")
    next_due_at: datetime | None = Field(description="null: paused or finished.")
    next_local: str | None
    call: dict[str, Any] = Field(description="The call template each occurrence places.")
    created_at: datetime
    updated_at: datetime


class OccurrenceOut(BaseModel):
    occurrence_at: datetime
    outcome: str = Field(description="placed, or skipped: late / overlap / invalid.")
    call_id: str | None
    detail: str | None


class ScheduleDetailOut(ScheduleOut):
    recent_occurrences: list[OccurrenceOut] = Field(description="Newest first.")


class InstantOut(BaseModel):
    local: str = Field(description="On the schedule's clock, with its offset.")
    utc: datetime


class NextOut(BaseModel):
    name: str
    timezone: str
    enabled: bool = Field(description="A paused schedule keeps these times once resumed.")
    occurrences: list[InstantOut]


def schedule_account(row: Schedule) -> str:
    return str(row.template.get("account", DEFAULT_ACCOUNT))


def schedule_out(row: Schedule) -> dict[str, Any]:
    state = "paused" if not row.enabled else "finished" if row.next_due_at is None else "active"
    return {
        "name": row.name,
        "id": row.id,
        "account": schedule_account(row),
        "state": state,
        "kind": row.kind,
        "cron": row.cron,
        "every_s": row.every_s,
        "at": row.at,
        "timezone": row.timezone,
        "start_at": row.start_at,
        "end_at": row.end_at,
        "count": row.count,
        "overlap": row.overlap,
        "misfire_grace_s": row.misfire_grace_s,
        "source": row.source,
        "next_due_at": row.next_due_at,
        "next_local": local_iso(row.next_due_at, row.timezone) if row.next_due_at else None,
        "call": row.template,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def occurrence_out(occurrence: Occurrence) -> dict[str, Any]:
    return {
        "occurrence_at": occurrence.occurrence_at,
        "outcome": occurrence.outcome,
        "call_id": occurrence.call_id,
        "detail": occurrence.detail,
    }
