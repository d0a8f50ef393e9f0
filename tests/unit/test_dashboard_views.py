"""The dashboard's pure parts: live calls as steps, and what a call's page may show."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest

from dialq.http.dashboard.call_view import masked_request
from dialq.http.dashboard.render import age, span
from dialq.http.dashboard.series import live_steps
from dialq.store import Call

T0 = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_live_steps_count_each_connect_and_end_within_the_window() -> None:
    # given one call live before the window, and two that come and go inside it
    spans = [(at(-30), at(20)), (at(10), at(40)), (at(20), None)]
    # when the steps of the window [0, 60] are drawn
    times, counts = live_steps(spans, at(0), at(60))
    # then they start with the call already live, and an end and a start at the same instant
    # never show one call too many
    assert times == [at(s).timestamp() for s in (0, 10, 20, 40, 60)]
    assert counts == [1, 2, 2, 1, 1]


def test_live_steps_of_a_quiet_hour_are_zero_from_start_to_now() -> None:
    assert live_steps([], at(0), at(3600)) == ([at(0).timestamp(), at(3600).timestamp()], [0, 0])


def test_a_permit_handed_straight_on_never_draws_above_the_limit() -> None:
    # given a limit of 2, each call starting the instant another ends
    spans = [(at(0), at(5)), (at(0), at(5)), (at(5), at(9)), (at(5), at(9))]
    _, counts = live_steps(spans, at(-1), at(10))
    assert max(counts) == 2


def _call(request: dict[str, Any]) -> Call:
    return cast(Call, SimpleNamespace(request=request))


def test_the_stored_request_shows_no_number_no_sip_user_no_key_presses_no_url_query() -> None:
    shown = masked_request(
        _call(
            {
                "phone_number": "+14155550123",
                "dtmf": ",,1234#",
                "callback_url": "https://hooks.example.com/in?token=abc",
                "session_name": "Review",
            }
        )
    )
    assert shown == {
        "phone_number": "+1******0123",
        "callback_url": "https://hooks.example.com/in",
        "session_name": "Review",
    }
    sip = masked_request(_call({"sip_uri": "sip:4155550123@pbx.example.com"}))
    assert sip == {"sip_uri": "sip:***@pbx.example.com"}


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, ""), (-3, "0 s"), (12.7, "12 s"), (184, "3 min 4 s"), (7500, "2 h 5 min")],
)
def test_spans_read_as_short_as_the_reader_needs(seconds: float | None, shown: str) -> None:
    assert span(seconds) == shown


def test_an_age_is_counted_from_a_naive_time_as_utc() -> None:
    assert age(datetime(2026, 12, 6, 9, 59), now=T0) == "1 min 0 s"
