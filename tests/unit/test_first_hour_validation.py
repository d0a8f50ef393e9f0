"""Issue #20, input rules: every broken rule named, in words that say what is wrong."""

from __future__ import annotations

from typing import Any

import pytest

from dialq.calls.request import InvalidCallRequest, parse_call_request
from dialq.schedules.spec import InvalidSchedule, parse_schedule

CALL = {"phone_number": "+14155550123"}


def fields_of(error: InvalidCallRequest) -> dict[str, str]:
    return {e.field: e.rule for e in error.errors}


def test_every_bad_item_of_a_list_is_named_not_only_the_first() -> None:
    with pytest.raises(InvalidCallRequest) as caught:
        parse_call_request({**CALL, "summary_emails": ["bad0", "ok@x.com", "bad2"]})
    assert sorted(fields_of(caught.value)) == ["summary_emails[0]", "summary_emails[2]"]


def test_good_list_items_are_still_normalised_and_deduplicated() -> None:
    parsed = parse_call_request({**CALL, "summary_emails": ["ok@X.com", " ok@x.com", "b@x.com"]})
    assert parsed.summary_emails == ["ok@x.com", "b@x.com"]


@pytest.mark.parametrize(
    ("number", "rule"),
    [
        ("+1 876 555 0123", "US or Canada"),  # Jamaica shares +1
        ("+1 900 555 0123", "premium-rate"),
    ],
)
def test_a_plus_one_number_outside_the_us_and_canada_or_premium_rate_is_refused(
    number: str, rule: str
) -> None:
    with pytest.raises(InvalidCallRequest) as caught:
        parse_call_request({"phone_number": number})
    assert rule in fields_of(caught.value)["phone_number"]


@pytest.mark.parametrize("number", ["+1 415 555 0123", "+1 416 555 0123", "+1 800 555 0123"])
def test_us_canada_and_toll_free_numbers_are_still_accepted(number: str) -> None:
    assert parse_call_request({"phone_number": number}).phone_number is not None


def schedule(**timing: Any) -> dict[str, Any]:
    return {"name": "standup", "call": CALL, **timing}


def test_a_five_field_cron_out_of_range_names_each_field_and_its_range() -> None:
    with pytest.raises(InvalidSchedule) as caught:
        parse_schedule(schedule(cron="61 25 * * *"))
    rules = [e.rule for e in caught.value.errors if e.field == "cron"]
    assert rules == [
        "the minute field (number 1) must be within 0-59",
        "the hour field (number 2) must be within 0-23",
    ]
    assert "5-field" not in str(caught.value)


def test_a_cron_with_the_wrong_number_of_fields_says_how_many_it_has() -> None:
    with pytest.raises(InvalidSchedule, match=r"must be a 5-field cron expression.*\(got 4\)"):
        parse_schedule(schedule(cron="0 9 * *"))


def test_day_units_are_read_in_a_misfire_grace() -> None:
    assert parse_schedule(schedule(every="1h", misfire_grace="2d")).misfire_grace_s == 2 * 86400
    with pytest.raises(InvalidSchedule, match="misfire_grace: must be at most 366 days"):
        parse_schedule(schedule(every="1h", misfire_grace="400d"))
