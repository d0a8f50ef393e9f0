"""Durations as people type them, and back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialq.validation.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("0", 0),
        ("90s", 90),
        ("30m", 1800),
        ("1h", 3600),
        ("1h30m", 5400),
        ("2m30s", 150),
        ("1h0m5s", 3605),
        ("4h", 14400),
        (" 1H30M ", 5400),
        ("90m", 5400),  # parts need not be normalised
        ("400d", 400 * 86400),
        ("1d12h", 129600),
    ],
)
def test_parse_duration_reads_seconds_and_hms_parts(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text",
    ["", " ", "h", "d", "1h1d", "1.5h", "-5", "+5", "1h1h", "30m1h", "1 h", "1h 30m", "١٢", "5 min",
     "1" * 10, "1" * 10 + "s"],
)  # fmt: skip
def test_parse_duration_rejects_anything_else_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match=r"not a duration: .*e\.g\. 90, 30m, 1h30m"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (45, "45s"), (60, "1m"), (150, "2m30s"), (3600, "1h"), (5400, "1h30m"),
     (3661, "1h1m1s"), (86400, "24h"), (59.9, "59s")],
)  # fmt: skip
def test_format_duration_is_compact(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_format_duration_refuses_negative_durations() -> None:
    with pytest.raises(ValueError, match="negative"):
        format_duration(-1)


@given(st.integers(min_value=0, max_value=10**8))
def test_format_then_parse_is_the_identity(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds
