"""Pure parts behind the HTTP API's later endpoints: why a transcript is missing, the operator's
redial edge, the rate limit setting."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from dialq.calls.states import (
    CallStatus,
    IllegalTransition,
    check_transition,
    operator_decision,
)
from dialq.config import Settings
from dialq.insights.availability import missing_insights, missing_transcript

READY: dict[str, Any] = {"status": "ready", "reason": None, "messages": [{"text": "hi"}]}


@pytest.mark.parametrize(
    ("status", "connected", "insights", "final", "words"),
    [
        ("failed", False, None, True, "never connected"),
        ("queued", False, None, False, "not connected yet"),
        ("completed", True, None, False, "not harvested yet"),
        ("completed", True, {"status": "pending", "reason": "summary"}, False, "still pending"),
        ("completed", True, {"status": "unavailable", "reason": "empty"}, True, "unavailable"),
    ],
)
def test_a_missing_transcript_says_why_and_whether_it_may_come_later(
    status: str, connected: bool, insights: dict[str, Any] | None, final: bool, words: str
) -> None:
    missing = missing_transcript(status, connected, insights)
    assert missing is not None
    assert missing.final is final
    assert words in missing.reason


def test_a_ready_transcript_and_given_up_insights_are_not_missing() -> None:
    assert missing_transcript("completed", True, READY) is None
    given_up = {"status": "unavailable", "reason": "empty", "messages": []}
    assert missing_insights("completed", True, given_up) is None


def test_failed_to_queued_is_allowed_only_within_an_operators_decision() -> None:
    with pytest.raises(IllegalTransition, match="failed -> queued"):
        check_transition({CallStatus.FAILED}, CallStatus.QUEUED)
    with operator_decision():
        check_transition({CallStatus.FAILED}, CallStatus.QUEUED)
        with pytest.raises(IllegalTransition, match="completed -> queued"):
            check_transition({CallStatus.COMPLETED}, CallStatus.QUEUED)
    with pytest.raises(IllegalTransition):
        check_transition({CallStatus.FAILED}, CallStatus.QUEUED)


def test_a_rate_limit_that_does_not_parse_is_refused_with_the_expected_shape() -> None:
    assert Settings(api_rate_limit="10/second").api_rate_limit == "10/second"
    with pytest.raises(ValidationError, match="must read like 120/minute"):
        Settings(api_rate_limit="lots")
