"""Conversation API bodies (docs/symbl-api.md §6) for a call, as of a moment in time."""

from __future__ import annotations

from typing import Any

from dialq.sandbox.content import Meeting, iso
from dialq.sandbox.state import Call


def is_processed(call: Call, now: float, insights_delay_s: float) -> bool:
    """Insights exist only once the call has ended and the processing delay has passed."""
    return call.ended_at is not None and now >= call.ended_at + insights_delay_s


def conversation_body(call: Call, meeting: Meeting) -> dict[str, Any]:
    return {
        "id": call.conversation_id,
        "type": "meeting",
        "name": call.session_name or meeting.name,
        "startTime": iso(call.started_at),
        "endTime": None if call.ended_at is None else iso(call.ended_at),
        "members": [dict(member) for member in meeting.members],
        "metadata": {},
    }


def spoken_messages(
    call: Call, meeting: Meeting, now: float, *, verbose: bool = False, sentiment: bool = False
) -> list[dict[str, Any]]:
    """While live, the messages said so far; once ended, the whole transcript."""
    elapsed = (now if call.ended_at is None else float("inf")) - call.started_at
    return [
        _message(call, raw, verbose=verbose, sentiment=sentiment)
        for raw in meeting.messages
        if raw["timeOffset"] + raw["duration"] <= elapsed
    ]


def analytics_body(call: Call, meeting: Meeting, now: float) -> dict[str, Any]:
    messages = spoken_messages(call, meeting, now)
    span = max((m["timeOffset"] + m["duration"] for m in messages), default=0.0)
    talk = sum(m["duration"] for m in messages)
    members = []
    for member in meeting.members:
        said = [m for m in messages if m["from"]["id"] == member["id"]]
        seconds = sum(m["duration"] for m in said)
        words = sum(len(m["text"].split()) for m in said)
        members.append(
            {
                "id": member["id"],
                "name": member["name"],
                "userId": member["email"],
                "pace": {"wpm": round(words / seconds * 60) if seconds else 0},
                "talkTime": {"percentage": _percent(seconds, span), "seconds": round(seconds, 3)},
                "listenTime": {
                    "percentage": _percent(span - seconds, span),
                    "seconds": round(span - seconds, 3),
                },
                "overlap": {},
            }
        )
    metrics = [
        {
            "type": "total_silence",
            "percent": _percent(span - talk, span),
            "seconds": round(span - talk, 3),
        },
        {"type": "total_talk_time", "percent": _percent(talk, span), "seconds": round(talk, 3)},
        {"type": "total_overlap", "percent": 0.0, "seconds": 0.0},
    ]
    return {"metrics": metrics, "members": members}


def _percent(part: float, whole: float) -> float:
    return round(100 * part / whole, 3) if whole else 0.0


def _message(call: Call, raw: dict[str, Any], *, verbose: bool, sentiment: bool) -> dict[str, Any]:
    start = call.started_at + raw["timeOffset"]
    message = {
        "id": raw["id"],
        "text": raw["text"],
        "from": {
            "id": raw["from"]["id"],
            "name": raw["from"]["name"],
            "email": raw["from"]["email"],
        },
        "startTime": iso(start),
        "endTime": iso(start + raw["duration"]),
        "timeOffset": raw["timeOffset"],
        "duration": raw["duration"],
        "conversationId": raw["conversationId"],
        "phrases": [],
    }
    if sentiment:
        polarity = raw["polarity"]
        suggested = "positive" if polarity > 0.3 else "negative" if polarity < -0.3 else "neutral"
        message["sentiment"] = {"polarity": {"score": polarity}, "suggested": suggested}
    if verbose:
        message["words"] = _words(raw, start)
    return message


def _words(raw: dict[str, Any], start: float) -> list[dict[str, Any]]:
    words = raw["text"].split()
    step = raw["duration"] / len(words)
    return [
        {
            "word": word,
            "startTime": iso(start + i * step),
            "endTime": iso(start + (i + 1) * step),
            "score": 0.95,
            "timeOffset": round(raw["timeOffset"] + i * step, 2),
            "duration": round(step, 2),
        }
        for i, word in enumerate(words)
    ]
