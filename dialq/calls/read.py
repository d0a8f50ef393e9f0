"""Calls as plain data: the shape of `dialq show --json`, `dialq calls --json` and the demo."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dialq.store import Call, schedules_repo


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def call_summary(call: Call) -> dict[str, Any]:
    return {
        "id": call.id,
        "status": call.status,
        "reason": call.reason,
        "account": call.account,
        "phone_number": call.phone_number,
        "sip_uri": call.sip_uri,
        "conversation_id": call.conversation_id,
        "connection_id": call.connection_id,
        "event_url": call.event_url,
        "result_websocket_url": call.result_websocket_url,
        "start_attempts": call.start_attempts,
        "failures": call.failures,
        "capacity_waits": call.capacity_waits,
        "priority": call.priority,
        "idempotency_key": call.idempotency_key,
        "not_before": _iso(call.not_before),
        "created_at": _iso(call.created_at),
        "updated_at": _iso(call.updated_at),
        "connected_at": _iso(call.connected_at),
        "ended_at": _iso(call.ended_at),
        "duration_s": call.duration_s,
    }


def call_detail(call: Call) -> dict[str, Any]:
    """The summary plus its schedule occurrence, every HTTP attempt and every state change."""
    detail = call_summary(call)
    detail["schedule"] = schedule_of(call)
    detail["attempts"] = [
        {
            "operation": a.operation,
            "started_at": _iso(a.started_at),
            "status_code": a.status_code,
            "latency_ms": round(a.latency_ms, 1),
            "error": a.error,
        }
        for a in call.attempts
    ]
    detail["events"] = [
        {
            "seq": e.seq,
            "at": _iso(e.at),
            "from": e.from_status,
            "to": e.to_status,
            "detail": e.detail,
        }
        for e in call.events
    ]
    return detail


def schedule_of(call: Call) -> dict[str, Any] | None:
    """The schedule and occurrence that placed this call, if a schedule did."""
    found = schedules_repo.occurrence_of_loaded_call(call)
    if found is None:
        return None
    occurrence, name = found
    return {
        "name": name,
        "id": occurrence.schedule_id,
        "occurrence_at": _iso(occurrence.occurrence_at),
    }
