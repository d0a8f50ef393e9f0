"""What the API answers, as models: the OpenAPI document is generated from these."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dialq.calls.states import CallStatus
from dialq.insights.states import InsightsStatus


class CallOut(BaseModel):
    """A call as `dialq calls --json` shows it; only its account's keys ever see it."""

    id: str
    status: CallStatus
    reason: str | None
    account: str
    phone_number: str | None = Field(description="E.164; shown to the call's own account.")
    sip_uri: str | None
    conversation_id: str | None
    connection_id: str | None
    event_url: str | None
    result_websocket_url: str | None
    start_attempts: int
    failures: int
    capacity_waits: int
    priority: int
    idempotency_key: str | None
    not_before: datetime | None
    created_at: datetime
    updated_at: datetime
    connected_at: datetime | None
    ended_at: datetime | None
    duration_s: float | None


class AttemptOut(BaseModel):
    """One HTTP request dialq sent to Symbl for this call."""

    operation: str
    started_at: datetime
    status_code: int | None
    latency_ms: float
    error: str | None


class EventOut(BaseModel):
    """One state change of the call, in order."""

    model_config = ConfigDict(populate_by_name=True)

    seq: int
    at: datetime
    from_: CallStatus | None = Field(alias="from")
    to: CallStatus
    detail: str | None


class ScheduleOut(BaseModel):
    name: str
    id: str
    occurrence_at: datetime | None


class CallDetailOut(CallOut):
    """The call, the schedule that placed it, its attempts, its events and its request."""

    schedule: ScheduleOut | None
    attempts: list[AttemptOut]
    events: list[EventOut]
    request: dict[str, Any] = Field(description="The CallRequest as stored.")


class CallPage(BaseModel):
    items: list[CallOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: done.")


class CancelOut(BaseModel):
    id: str
    status: str = Field(description="The call's status after the cancel.")
    changed: bool = Field(description="Whether this request canceled it (or asked it to stop).")
    message: str


class CapacityOut(BaseModel):
    account: str
    configured_limit: int
    learned_limit: int
    permits_in_use: int
    waiting_calls: int
    cooldown_ms: int
    http_429_last_hour: int


class CheckOut(BaseModel):
    ok: bool
    detail: str


class ReadyOut(BaseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, CheckOut]


class HealthOut(BaseModel):
    status: Literal["ok"] = "ok"


class InsightsOut(BaseModel):
    """A call's insights as harvested: each part as Symbl returned it (docs/symbl-api.md §6)."""

    status: InsightsStatus = Field(description="ready, or unavailable (given up: see reason).")
    reason: str | None
    messages: list[Any] | None
    topics: list[Any] | None
    questions: list[Any] | None
    action_items: list[Any] | None
    follow_ups: list[Any] | None
    members: list[Any] | None
    summary: list[Any] | None
    analytics: dict[str, Any] | None
    attempts: int
    first_tried_at: datetime | None
    harvested_at: datetime | None
    updated_at: datetime | None


class RedialOut(BaseModel):
    id: str
    status: str = Field(description="The call's status after the request.")
    changed: bool = Field(description="Whether this request put the call back in line.")
    message: str
