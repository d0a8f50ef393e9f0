"""Next-occurrence tables: pure functions, no servers (style.md habit 9).

Each row: a rule, a starting instant, and the occurrences expected after it, written out by
hand as local wall-clock times with their UTC offsets.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from dialq.schedules.rules import Rule, local_iso, next_after, occurrences, to_instant, utc_iso

LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)


def cron(expression: str, zone: str, **extra: object) -> Rule:
    fields: dict[str, object] = {"window_start": LONG_AGO, **extra}
    return Rule(kind="cron", timezone=zone, cron=expression, **fields)  # type: ignore[arg-type]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def local_times(rule: Rule, after: str, limit: int) -> list[str]:
    return [local_iso(t, rule.timezone) for t in occurrences(rule, utc(after), limit)]


WEEKDAYS_9_NY = cron("0 9 * * 1-5", "America/New_York")
NY = "America/New_York"
LONDON = "Europe/London"
KOLKATA = "Asia/Kolkata"
LORD_HOWE = "Australia/Lord_Howe"


@pytest.mark.parametrize(
    ("rule", "after", "expected"),
    [
        pytest.param(
            WEEKDAYS_9_NY,
            "2026-03-05T00:00:00Z",
            [
                "2026-03-05T09:00:00-05:00",  # Thursday, EST
                "2026-03-06T09:00:00-05:00",  # Friday; the clocks spring forward on Sunday
                "2026-03-09T09:00:00-04:00",  # Monday, still 09:00, now EDT
                "2026-03-10T09:00:00-04:00",
            ],
            id="new-york-weekdays-across-spring-forward",
        ),
        pytest.param(
            WEEKDAYS_9_NY,
            "2026-10-29T00:00:00Z",
            [
                "2026-10-29T09:00:00-04:00",
                "2026-10-30T09:00:00-04:00",  # Friday; the clocks fall back on Sunday
                "2026-11-02T09:00:00-05:00",  # Monday, still 09:00, now EST
                "2026-11-03T09:00:00-05:00",
            ],
            id="new-york-weekdays-across-fall-back",
        ),
        pytest.param(
            cron("30 2 * * *", NY),
            "2026-03-07T00:00:00Z",
            [
                "2026-03-07T02:30:00-05:00",
                "2026-03-08T03:00:00-04:00",  # 02:30 does not exist: once, when the gap ends
                "2026-03-09T02:30:00-04:00",
            ],
            id="new-york-spring-gap-fires-once-at-the-gap-end",
        ),
        pytest.param(
            cron("30 1 * * *", NY),
            "2026-10-31T00:00:00Z",
            [
                "2026-10-31T01:30:00-04:00",
                "2026-11-01T01:30:00-04:00",  # 01:30 happens twice: only the first fires
                "2026-11-02T01:30:00-05:00",
            ],
            id="new-york-autumn-fold-fires-once",
        ),
        pytest.param(
            cron("*/30 * * * *", NY),
            "2026-11-01T04:15:00Z",
            [
                "2026-11-01T00:30:00-04:00",
                "2026-11-01T01:00:00-04:00",
                "2026-11-01T01:30:00-04:00",
                "2026-11-01T02:00:00-05:00",  # the repeated hour's wall times do not fire again
            ],
            id="new-york-half-hourly-through-the-fold",
        ),
        pytest.param(
            cron("0 9 * * *", LONDON),
            "2026-03-28T00:00:00Z",
            ["2026-03-28T09:00:00+00:00", "2026-03-29T09:00:00+01:00"],
            id="london-daily-across-spring-forward",
        ),
        pytest.param(
            cron("30 1 * * *", LONDON),
            "2026-03-28T12:00:00Z",
            ["2026-03-29T02:00:00+01:00", "2026-03-30T01:30:00+01:00"],
            id="london-spring-gap",
        ),
        pytest.param(
            cron("30 1 * * *", LONDON),
            "2026-10-24T12:00:00Z",
            ["2026-10-25T01:30:00+01:00", "2026-10-26T01:30:00+00:00"],
            id="london-autumn-fold",
        ),
        pytest.param(
            cron("0 9 * * 1-5", KOLKATA),
            "2026-03-06T00:00:00Z",
            ["2026-03-06T09:00:00+05:30", "2026-03-09T09:00:00+05:30"],
            id="kolkata-half-hour-offset-no-dst",
        ),
        pytest.param(
            cron("0 9 * * *", LORD_HOWE),
            "2026-10-02T12:00:00Z",
            ["2026-10-03T09:00:00+10:30", "2026-10-04T09:00:00+11:00"],
            id="lord-howe-daily-across-its-30-minute-spring-forward",
        ),
        pytest.param(
            cron("*/10 2 * * *", LORD_HOWE),
            "2026-10-03T12:00:00Z",
            [
                "2026-10-04T02:30:00+11:00",  # 02:00, 02:10, 02:20 do not exist: one call at 02:30
                "2026-10-04T02:40:00+11:00",
                "2026-10-04T02:50:00+11:00",
                "2026-10-05T02:00:00+11:00",
            ],
            id="lord-howe-30-minute-gap",
        ),
        pytest.param(
            cron("45 1 * * *", LORD_HOWE),
            "2026-04-04T12:00:00Z",
            ["2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"],
            id="lord-howe-30-minute-fold",
        ),
        pytest.param(
            cron("0 9 * * 1#1", NY),
            "2026-11-24T00:00:00Z",
            ["2026-12-07T09:00:00-05:00", "2027-01-04T09:00:00-05:00"],
            id="first-monday-of-each-month",
        ),
    ],
)
def test_cron_occurrences_follow_the_local_wall_clock(
    rule: Rule, after: str, expected: list[str]
) -> None:
    assert local_times(rule, after, len(expected)) == expected


@pytest.mark.parametrize(
    ("rule", "after", "expected_utc"),
    [
        pytest.param(
            Rule(kind="every", timezone=NY, window_start=LONG_AGO, every_s=900),
            "2026-03-08T06:40:00Z",
            ["2026-03-08T06:45:00Z", "2026-03-08T07:00:00Z", "2026-03-08T07:15:00Z"],
            id="every-15m-aligned-to-the-epoch-and-blind-to-dst",
        ),
        pytest.param(
            Rule(
                kind="every",
                timezone=KOLKATA,
                window_start=utc("2026-05-01T00:07:00Z"),
                anchor=utc("2026-05-01T00:07:00Z"),
                every_s=3600,
            ),
            "2026-04-01T00:00:00Z",
            ["2026-05-01T00:07:00Z", "2026-05-01T01:07:00Z"],
            id="every-hour-anchored-at-its-start",
        ),
        pytest.param(
            Rule(kind="every", timezone="UTC", window_start=LONG_AGO, every_s=5),
            "2026-05-01T00:00:05Z",
            ["2026-05-01T00:00:10Z", "2026-05-01T00:00:15Z"],
            id="an-instant-exactly-on-a-step-is-not-after-itself",
        ),
        pytest.param(
            Rule(kind="at", timezone=NY, window_start=LONG_AGO, at=utc("2026-12-01T19:30:00Z")),
            "2026-11-30T00:00:00Z",
            ["2026-12-01T19:30:00Z"],
            id="one-shot-fires-once",
        ),
        pytest.param(
            cron("0 9 * * *", NY, end_at=utc("2026-12-02T14:00:00Z")),
            "2026-11-30T00:00:00Z",
            ["2026-11-30T14:00:00Z", "2026-12-01T14:00:00Z"],
            id="end-is-exclusive",
        ),
        pytest.param(
            cron("0 9 * * *", NY, window_start=utc("2026-12-01T00:00:00Z"), count=2),
            "2026-11-01T00:00:00Z",
            ["2026-12-01T14:00:00Z", "2026-12-02T14:00:00Z"],
            id="count-counts-from-the-start",
        ),
        pytest.param(
            Rule(
                kind="every",
                timezone="UTC",
                window_start=utc("2026-01-01T00:00:00Z"),
                every_s=86_400,
                count=3,
                end_at=utc("2026-01-02T12:00:00Z"),
            ),
            "2025-12-01T00:00:00Z",
            ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"],
            id="the-sooner-of-end-and-count-wins",
        ),
    ],
)
def test_interval_one_shot_end_and_count(rule: Rule, after: str, expected_utc: list[str]) -> None:
    # Bounded rules are asked for more than they hold, to show that they stop.
    bounded = rule.kind == "at" or rule.end_at is not None or rule.count is not None
    found = occurrences(rule, utc(after), len(expected_utc) + (3 if bounded else 0))
    assert [utc_iso(t) for t in found] == expected_utc


def test_count_is_counted_from_the_window_start_not_from_the_question() -> None:
    # given a schedule of three daily occurrences from 1 December
    rule = cron("0 9 * * *", NY, window_start=utc("2026-12-01T00:00:00Z"), count=3)
    # when asked after the second one
    found = occurrences(rule, utc("2026-12-02T15:00:00Z"), 10)
    # then only the third is left
    assert [utc_iso(t) for t in found] == ["2026-12-03T14:00:00Z"]


def test_nothing_before_the_window_start_fires() -> None:
    rule = cron("0 * * * *", "UTC", window_start=utc("2026-06-01T10:30:00Z"))
    assert next_after(rule, utc("2026-06-01T00:00:00Z")) == utc("2026-06-01T11:00:00Z")


def test_an_occurrence_exactly_at_the_window_start_fires() -> None:
    rule = cron("0 * * * *", "UTC", window_start=utc("2026-06-01T10:00:00Z"))
    assert next_after(rule, utc("2026-06-01T00:00:00Z")) == utc("2026-06-01T10:00:00Z")


@pytest.mark.parametrize("zone", [NY, LONDON, KOLKATA, LORD_HOWE])
def test_hourly_for_a_year_is_strictly_increasing_and_never_repeats_a_wall_time(
    zone: str,
) -> None:
    # A property over a year of hourly occurrences: instants strictly increase, and no
    # local wall time fires twice (the fold rule), in every zone of the tables above.
    rule = cron("17 * * * *", zone)
    found = occurrences(rule, utc("2026-01-01T00:00:00Z"), 24 * 366)
    assert all(a < b for a, b in itertools.pairwise(found))
    walls = [local_iso(t, zone)[:19] for t in found]
    assert len(walls) == len(set(walls))
    assert found[-1] - found[0] > timedelta(days=364)


@pytest.mark.parametrize(
    ("wall", "zone", "expected_utc"),
    [
        (datetime(2026, 3, 8, 2, 30), NY, "2026-03-08T07:00:00Z"),  # in the gap: its end
        (datetime(2026, 11, 1, 1, 30), NY, "2026-11-01T05:30:00Z"),  # in the fold: the first
        (datetime(2026, 10, 4, 2, 15), LORD_HOWE, "2026-10-03T15:30:00Z"),
        (datetime(2026, 7, 1, 9, 0), KOLKATA, "2026-07-01T03:30:00Z"),
    ],
)
def test_a_local_wall_time_names_one_instant(wall: datetime, zone: str, expected_utc: str) -> None:
    from zoneinfo import ZoneInfo

    assert utc_iso(to_instant(wall, ZoneInfo(zone))) == expected_utc
