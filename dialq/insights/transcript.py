"""A call's transcript and insights as text people read: pure functions, no I/O."""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

Message = Mapping[str, Any]


class TranscriptFormat(enum.StrEnum):
    TEXT = "text"
    SRT = "srt"
    JSON = "json"


def speaker(message: Message) -> str:
    who = message.get("from")
    if isinstance(who, Mapping):
        for key in ("name", "email", "userId", "id"):
            if who.get(key):
                return str(who[key])
    return "Unknown"


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _origin(messages: Sequence[Message]) -> datetime | None:
    starts = [t for t in (_parse_time(m.get("startTime")) for m in messages) if t is not None]
    return min(starts, default=None)


def message_span(message: Message, origin: datetime | None) -> tuple[float, float]:
    """Start and end in seconds from the call's start.

    ``timeOffset``/``duration`` when the API sent them, else ``startTime``/``endTime``
    counted from ``origin`` (the earliest message start), else zero.
    """
    offset, duration = message.get("timeOffset"), message.get("duration")
    if isinstance(offset, int | float):
        length = duration if isinstance(duration, int | float) else 0.0
        return float(offset), float(offset) + max(0.0, float(length))
    start, end = _parse_time(message.get("startTime")), _parse_time(message.get("endTime"))
    if start is None or origin is None:
        return 0.0, 0.0
    begin = (start - origin).total_seconds()
    finish = (end - origin).total_seconds() if end is not None else begin
    return begin, max(begin, finish)


def srt_time(seconds: float) -> str:
    """``HH:MM:SS,mmm``, as SubRip wants it; negative times are clamped to zero."""
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{millis:03d}"


def clock_time(seconds: float) -> str:
    """``MM:SS`` under an hour, ``H:MM:SS`` from then on."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def _text(message: Message) -> str:
    return " ".join(str(message.get("text") or "").split())


def render_text(messages: Sequence[Message]) -> str:
    return "".join(f"{speaker(m)}: {_text(m)}\n" for m in messages)


def render_srt(messages: Sequence[Message]) -> str:
    origin = _origin(messages)
    cues = []
    for number, message in enumerate(messages, start=1):
        start, end = message_span(message, origin)
        timing = f"{srt_time(start)} --> {srt_time(end)}"
        cues.append(f"{number}\n{timing}\n{speaker(message)}: {_text(message)}\n")
    return "\n".join(cues)


def render_json(messages: Sequence[Message]) -> str:
    return json.dumps(list(messages), indent=2, ensure_ascii=False) + "\n"


def render(messages: Sequence[Message], fmt: TranscriptFormat) -> str:
    renderers = {
        TranscriptFormat.TEXT: render_text,
        TranscriptFormat.SRT: render_srt,
        TranscriptFormat.JSON: render_json,
    }
    return renderers[fmt](messages)


def timed_lines(messages: Sequence[Message]) -> list[str]:
    """``[00:05] Roger: text``: the transcript as `dialq show` prints it."""
    origin = _origin(messages)
    return [
        f"[{clock_time(message_span(m, origin)[0])}] {speaker(m)}: {_text(m)}" for m in messages
    ]


def _items(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _assigned(item: Mapping[str, Any]) -> str:
    notes = []
    assignee = item.get("assignee")
    if isinstance(assignee, Mapping) and assignee.get("name"):
        notes.append(f"assignee: {assignee['name']}")
    due = item.get("dueBy")
    if isinstance(due, Mapping):
        due = due.get("value")
    if due:
        notes.append(f"due: {due}")
    return f" ({', '.join(notes)})" if notes else ""


def insights_lines(insights: Mapping[str, Any]) -> list[str]:
    """Every section that has something in it, as indented plain lines."""
    status = f"insights: {insights.get('status')}"
    if insights.get("reason"):
        status += f" ({insights['reason']})"
    lines = [status]
    sections: list[tuple[str, list[str]]] = [
        ("transcript", timed_lines(_items(insights.get("messages")))),
        ("summary", [_text(s) for s in _items(insights.get("summary"))]),
        ("topics", [_text(t) for t in _items(insights.get("topics"))]),
        ("questions", [f"{speaker(q)}: {_text(q)}" for q in _items(insights.get("questions"))]),
        ("action items", [_text(a) + _assigned(a) for a in _items(insights.get("action_items"))]),
        ("follow-ups", [_text(f) + _assigned(f) for f in _items(insights.get("follow_ups"))]),
        ("members", [_member(m) for m in _items(insights.get("members"))]),
    ]
    for title, entries in sections:
        if entries:
            lines.append(f"{title}:")
            lines.extend(f"  {entry}" for entry in entries)
    return lines


def _member(member: Mapping[str, Any]) -> str:
    name = str(member.get("name") or "Unknown")
    email = member.get("email") or member.get("userId")
    return f"{name} <{email}>" if email else name
