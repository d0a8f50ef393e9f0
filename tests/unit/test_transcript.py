"""Transcript and insights rendering, table by table: no database, no servers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from dialq.insights.transcript import (
    TranscriptFormat,
    clock_time,
    insights_lines,
    message_span,
    render,
    render_srt,
    render_text,
    speaker,
    srt_time,
    timed_lines,
)

ROGER = {"name": "Roger", "email": "roger@example.com"}
ANNA = {"name": "Anna Lee", "email": "anna.lee@example.com"}


def message(text: str, who: dict[str, str], **times: Any) -> dict[str, Any]:
    return {"id": "1", "text": text, "from": who, **times}


WITH_OFFSETS = [
    message("Hello there.", ROGER, timeOffset=1.25, duration=2.5),
    message("Hi, Roger!", ANNA, timeOffset=4.0, duration=1.0),
]
WITH_TIMES_ONLY = [
    message(
        "Hello there.",
        ROGER,
        startTime="2026-03-01T12:00:10.000Z",
        endTime="2026-03-01T12:00:12.500Z",
    ),
    message(
        "Hi, Roger!",
        ANNA,
        startTime="2026-03-01T12:01:12.750Z",
        endTime="2026-03-01T12:01:14.000Z",
    ),
]


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0.0, "00:00:00,000"),
        (1.25, "00:00:01,250"),
        (59.9994, "00:00:59,999"),
        (59.9996, "00:01:00,000"),  # rounds to the millisecond, carrying into the minute
        (3661.5, "01:01:01,500"),
        (36000.0, "10:00:00,000"),
        (-3.0, "00:00:00,000"),  # never a negative subtitle time
    ],
)
def test_srt_time_is_hours_minutes_seconds_comma_milliseconds(
    seconds: float, expected: str
) -> None:
    assert srt_time(seconds) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0, "00:00"), (5.9, "00:05"), (75, "01:15"), (3599, "59:59"), (3600, "1:00:00")],
)
def test_clock_time_shows_hours_only_past_an_hour(seconds: float, expected: str) -> None:
    assert clock_time(seconds) == expected


@pytest.mark.parametrize(
    ("msg", "origin_index", "expected"),
    [
        (WITH_OFFSETS[0], None, (1.25, 3.75)),
        (message("x", ROGER, timeOffset=2, duration=None), None, (2.0, 2.0)),
        (WITH_TIMES_ONLY[1], 0, (62.75, 64.0)),
        (message("x", ROGER), None, (0.0, 0.0)),  # no times at all
    ],
)
def test_message_span_prefers_offsets_and_falls_back_to_start_and_end_times(
    msg: dict[str, Any], origin_index: int | None, expected: tuple[float, float]
) -> None:
    origin = None if origin_index is None else datetime(2026, 3, 1, 12, 0, 10, tzinfo=UTC)
    assert message_span(msg, origin) == expected


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ({"name": "Roger", "email": "r@example.com"}, "Roger"),
        ({"email": "r@example.com"}, "r@example.com"),
        ({"userId": "u-1"}, "u-1"),
        ({}, "Unknown"),
        (None, "Unknown"),
    ],
)
def test_speaker_is_the_name_else_the_best_identifier(who: Any, expected: str) -> None:
    assert speaker({"text": "x", "from": who}) == expected


def test_text_format_is_one_name_colon_text_line_per_message() -> None:
    assert render_text(WITH_OFFSETS) == "Roger: Hello there.\nAnna Lee: Hi, Roger!\n"


@pytest.mark.parametrize(
    ("messages", "first_timing", "second_timing"),
    [
        (WITH_OFFSETS, "00:00:01,250 --> 00:00:03,750", "00:00:04,000 --> 00:00:05,000"),
        # startTime/endTime only: counted from the first message's start
        (WITH_TIMES_ONLY, "00:00:00,000 --> 00:00:02,500", "00:01:02,750 --> 00:01:04,000"),
    ],
)
def test_srt_numbers_cues_from_one_with_timings_and_blank_lines_between(
    messages: list[dict[str, Any]], first_timing: str, second_timing: str
) -> None:
    assert render_srt(messages) == (
        f"1\n{first_timing}\nRoger: Hello there.\n\n2\n{second_timing}\nAnna Lee: Hi, Roger!\n"
    )


def test_json_format_is_the_messages_list_unchanged() -> None:
    assert json.loads(render(WITH_OFFSETS, TranscriptFormat.JSON)) == WITH_OFFSETS


@pytest.mark.parametrize("fmt", list(TranscriptFormat))
def test_an_empty_transcript_renders_without_error(fmt: TranscriptFormat) -> None:
    assert render([], fmt) in ("", "[]\n")


def test_text_collapses_line_breaks_inside_a_message() -> None:
    assert render_text([message("one\ntwo  three", ROGER)]) == "Roger: one two three\n"


def test_timed_lines_show_the_offset_before_the_speaker() -> None:
    assert timed_lines(WITH_TIMES_ONLY) == [
        "[00:00] Roger: Hello there.",
        "[01:02] Anna Lee: Hi, Roger!",
    ]


def test_insights_lines_show_each_non_empty_section_with_assignee_and_due_date() -> None:
    insights: dict[str, Any] = {
        "status": "ready",
        "reason": None,
        "messages": WITH_OFFSETS,
        "summary": [{"text": "Roger greeted Anna."}],
        "topics": [{"text": "greetings"}],
        "questions": [{"text": "How are you?", "from": ANNA}],
        "action_items": [
            {"text": "Send the deck.", "assignee": {"name": "Roger"}, "dueBy": "2026-03-02"}
        ],
        "follow_ups": [{"text": "Call back.", "assignee": {}, "dueBy": None}],
        "members": [ROGER, {"name": "Anna Lee"}],
    }
    assert insights_lines(insights) == [
        "insights: ready",
        "transcript:",
        "  [00:01] Roger: Hello there.",
        "  [00:04] Anna Lee: Hi, Roger!",
        "summary:",
        "  Roger greeted Anna.",
        "topics:",
        "  greetings",
        "questions:",
        "  Anna Lee: How are you?",
        "action items:",
        "  Send the deck. (assignee: Roger, due: 2026-03-02)",
        "follow-ups:",
        "  Call back.",
        "members:",
        "  Roger <roger@example.com>",
        "  Anna Lee",
    ]


def test_insights_lines_of_a_pending_harvest_give_the_reason_and_skip_empty_sections() -> None:
    pending = {"status": "pending", "reason": "summary still not ready", "messages": None}
    assert insights_lines(pending) == ["insights: pending (summary still not ready)"]
