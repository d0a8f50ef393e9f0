"""A call as the dashboard shows it: facts, one timeline, the stored request (masked),
transcript and insights. Pure functions of rows already loaded."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from dialq.http.dashboard.render import masked_target, span
from dialq.insights.transcript import speaker, timed_lines
from dialq.store import Call
from dialq.store.webhook_tables import WebhookAttempt

# Insight parts in the order an operator reads them, with their headings.
SECTIONS = (
    ("summary", "Summary"),
    ("action_items", "Action items"),
    ("questions", "Questions"),
    ("topics", "Topics"),
    ("follow_ups", "Follow-ups"),
)


def _entry(at: datetime, kind: str, text: str) -> dict[str, Any]:
    return {"at": at, "kind": kind, "text": text}


def timeline(call: Call, deliveries: Iterable[WebhookAttempt]) -> list[dict[str, Any]]:
    """Every state change, HTTP attempt and webhook delivery, oldest first."""
    entries = [
        _entry(e.at, "state", f"{e.from_status or '·'} → {e.to_status}"
               + (f": {e.detail}" if e.detail else ""))
        for e in call.events
    ]  # fmt: skip
    for a in call.attempts:
        outcome = str(a.status_code) if a.status_code is not None else (a.error or "no answer")
        entries.append(
            _entry(a.started_at, "HTTP", f"{a.operation}: {outcome} in {a.latency_ms:.0f} ms")
        )
    for d in deliveries:
        outcome = str(d.status_code) if d.status_code is not None else (d.error or "no answer")
        entries.append(
            _entry(d.started_at, "webhook", f"event #{d.seq} to {d.url}: {outcome} "
                   f"in {d.latency_ms:.0f} ms")
        )  # fmt: skip
    return sorted(entries, key=lambda entry: entry["at"])


def _without_query(url: str) -> str:
    # A query string may carry the receiver's token.
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def masked_request(call: Call) -> dict[str, Any]:
    """The request as stored, with the number (or SIP user) masked and no URL query."""
    shown = dict(call.request or {})
    if shown.get("phone_number"):
        shown["phone_number"] = masked_target(str(shown["phone_number"]), None)
    if shown.get("sip_uri"):
        shown["sip_uri"] = masked_target(None, str(shown["sip_uri"]))
    if shown.get("callback_url"):
        shown["callback_url"] = _without_query(str(shown["callback_url"]))
    shown.pop("dtmf", None)  # key presses may be a PIN
    return shown


def _text(item: Mapping[str, Any]) -> str:
    return str(item.get("text") or item.get("value") or "")


def insight_sections(insights: Mapping[str, Any] | None) -> list[tuple[str, list[str]]]:
    if not insights:
        return []
    sections = []
    for part, title in SECTIONS:
        items = [i for i in insights.get(part) or [] if isinstance(i, Mapping)]
        lines = [f"{speaker(i)}: {_text(i)}" if part == "questions" else _text(i) for i in items]
        sections.append((title, [line for line in lines if line]))
    return sections


def transcript_lines(insights: Mapping[str, Any] | None) -> list[str]:
    messages = (insights or {}).get("messages") or []
    return timed_lines([m for m in messages if isinstance(m, Mapping)])


def call_facts(call: Call) -> dict[str, Any]:
    return {
        "id": call.id,
        "status": call.status,
        "reason": call.reason or "",
        "account": call.account,
        "target": masked_target(call.phone_number, call.sip_uri),
        "session_name": (call.request or {}).get("session_name") or "",
        "priority": call.priority,
        "conversation_id": call.conversation_id or "",
        "created_at": call.created_at,
        "connected_at": call.connected_at,
        "ended_at": call.ended_at,
        "duration": span(call.duration_s),
        "start_attempts": call.start_attempts,
        "capacity_waits": call.capacity_waits,
    }
