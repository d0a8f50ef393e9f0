"""Validating schedules and deciding occurrences: plain functions, no servers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dialq.schedules.occurrences import decide, occurrence_key
from dialq.schedules.spec import InvalidSchedule, parse_schedule
from dialq.store.schedule_tables import Outcome

CALL = {"phone_number": "+1 415 555 0123", "session_name": "Standup"}


def spec(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "standup", "call": CALL, "cron": "0 9 * * 1-5"}
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


def fields_of(error: pytest.ExceptionInfo[InvalidSchedule]) -> list[str]:
    return [e.field for e in error.value.errors]


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"cron": "0 9 * *"}, "cron", "5-field"),
        ({"cron": "0 9 * * 1-5 0"}, "cron", "5-field"),
        ({"cron": "61 9 * * *"}, "cron", "minute field (number 1) must be within 0-59"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone", "IANA"),
        ({"start": "2026-05-01", "end": "2026-04-01", "cron": None, "every": "5m"}, "end", "after"),
        ({"call": {"phone_number": "+44 20 7946 0958"}}, "call.phone_number", "+1"),
        ({"call": {"session_name": "x"}}, "call.phone_number", "required"),
        ({"call": {**CALL, "not_before": "2030-01-01T00:00:00Z"}}, "call.not_before", "schedule"),
        ({"call": {**CALL, "idempotency_key": "k"}}, "call.idempotency_key", "schedule"),
        ({"every": "15m"}, "cron", "exactly one"),
        ({"cron": None}, "cron", "exactly one"),
        ({"cron": None, "every": "0s"}, "every", "between"),
        ({"cron": None, "every": "soon"}, "every", "duration"),
        ({"cron": None, "at": "tomorrow"}, "at", "ISO"),
        ({"cron": None, "at": "2030-01-01T09:00", "count": 2}, "at", "single time"),
        ({"overlap": "sometimes"}, "overlap", "skip"),
        ({"name": "two words"}, "name", "letters"),
        ({"count": 0}, "count", "at least 1"),
        ({"misfire_grace": "a while"}, "misfire_grace", "duration"),
        ({"colour": "blue"}, "colour", "unknown field"),
    ],
)
def test_an_invalid_schedule_names_the_field(
    overrides: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(InvalidSchedule) as error:
        parse_schedule(spec(**overrides))
    assert field in fields_of(error)
    message = next(e.rule for e in error.value.errors if e.field == field)
    assert words.lower() in message.lower()


def test_a_rejected_phone_number_is_not_echoed_in_the_error() -> None:
    with pytest.raises(InvalidSchedule) as error:
        parse_schedule(spec(call={"phone_number": "+44 20 7946 0958"}))
    assert "7946" not in str(error.value)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(InvalidSchedule) as error:
        parse_schedule(spec(cron="bad", call={"phone_number": "12"}, end="2020-01-01"))
    assert {"cron", "call.phone_number"} <= set(fields_of(error))


def test_a_valid_schedule_is_normalised() -> None:
    # given a template with a national number and dates written as local days
    definition = parse_schedule(
        spec(
            cron="0   9 * * 1-5",
            timezone="America/New_York",
            start="2026-03-01",
            end="2026-03-31",
            misfire_grace="2m",
            call={**CALL, "phone_number": "(415) 555-0123"},
        )
    )
    # then the number is E.164, the cron is tidy, and the days are whole local days
    assert definition.template["phone_number"] == "+14155550123"
    assert definition.cron == "0 9 * * 1-5"
    assert definition.start_at == datetime(2026, 3, 1, 5, tzinfo=UTC)  # 00:00 EST
    assert definition.end_at == datetime(2026, 4, 1, 4, tzinfo=UTC)  # 1 April 00:00 EDT
    assert definition.misfire_grace_s == 120


def test_a_naive_at_is_read_in_the_schedule_zone() -> None:
    definition = parse_schedule(
        spec(cron=None, at="2030-01-31T14:30", timezone="America/Los_Angeles")
    )
    assert definition.at == datetime(2030, 1, 31, 22, 30, tzinfo=UTC)


def test_the_timing_fingerprint_ignores_the_template_but_not_the_timing() -> None:
    first = parse_schedule(spec())
    other_call = parse_schedule(spec(call={**CALL, "session_name": "Other"}))
    other_time = parse_schedule(spec(cron="0 10 * * 1-5"))
    assert first.timing_fingerprint() == other_call.timing_fingerprint()
    assert first.timing_fingerprint() != other_time.timing_fingerprint()


T = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "overlap", "previous_live", "expected"),
    [
        (T - timedelta(seconds=2), "skip", False, Outcome.PLACED),  # ahead of time: countdown
        (T + timedelta(seconds=59), "skip", False, Outcome.PLACED),  # late, within grace
        (T + timedelta(seconds=61), "allow", False, Outcome.SKIPPED_LATE),
        (T + timedelta(seconds=61), "skip", True, Outcome.SKIPPED_LATE),  # late wins
        (T, "skip", True, Outcome.SKIPPED_OVERLAP),
        (T - timedelta(seconds=2), "skip", True, None),  # may end before T: decide later
        (T - timedelta(seconds=2), "allow", True, Outcome.PLACED),
    ],
)
def test_decide(now: datetime, overlap: str, previous_live: bool, expected: Outcome | None) -> None:
    assert decide(T, now, grace_s=60, overlap=overlap, previous_live=previous_live) == expected


def test_the_occurrence_key_is_stable_and_fits_an_idempotency_key() -> None:
    key = occurrence_key("0b8e7c8e-0000-4000-8000-000000000000", T)
    assert key == "schedule:0b8e7c8e-0000-4000-8000-000000000000:2026-11-24T14:00:00Z"
    assert len(key) <= 200
