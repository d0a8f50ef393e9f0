"""The webhook body: one JSON object per event, built by a pure function."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from dialq.store.tables import Call, Event

# Fixed forever: event ids are uuid5(NAMESPACE, "<call id>/<seq>"), the same on every retry.
EVENT_NAMESPACE = uuid.UUID("5b0e7c7e-4c55-4d0e-9f2a-6d1a3c0b9e41")
INSIGHTS_DETAIL_PREFIX = "insights"


def event_id(call_id: str, seq: int) -> str:
    """The event's stable id: receivers deduplicate on it (delivery is at least once)."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{call_id}/{seq}"))


def is_insights_event(event: Event) -> bool:
    """The insights harvester marks the event it appends once insights are stored."""
    return (event.detail or "").startswith(INSIGHTS_DETAIL_PREFIX)


def build_payload(
    call: Call,
    event: Event,
    insights: Mapping[str, Any] | None = None,
    *,
    previous_state: str | None = None,
) -> dict[str, Any]:
    """The JSON object sent for ``event`` of ``call``.

    ``previous_state`` fills in for an event recorded without its ``from_status`` (a
    transition allowed from several states); ``insights`` is the summary for an insights event.

    The phone number and SIP URI are left out on purpose: the producer gave them and keeps
    them, and webhook bodies end up in receivers' logs and queues that dialq does not control.
    The ids, reason, end and duration are the call's as they are when the event is sent.
    """
    payload: dict[str, Any] = {
        "event_id": event_id(call.id, event.seq),
        "type": "call.insights" if is_insights_event(event) else f"call.{event.to_status}",
        "call_id": call.id,
        "sequence": event.seq,
        "state": event.to_status,
        "previous_state": event.from_status or previous_state,
        "at": iso_utc(event.at),
        "detail": event.detail,
        "conversation_id": call.conversation_id,
        "connection_id": call.connection_id,
        "reason": call.reason,
        "account": call.account,
        "ended_at": iso_utc(call.ended_at) if call.ended_at else None,
        "duration_s": call.duration_s,
    }
    if is_insights_event(event):
        payload["insights"] = dict(insights) if insights is not None else None
    return payload


def encode(payload: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON: these exact bytes are signed and sent."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
