"""Harvest decisions as pure functions: backoff, deadline, reasons, the webhook summary."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dialq.insights.harvest import event_detail, fetch
from dialq.insights.policy import (
    SUMMARY_NOT_READY,
    TRANSCRIPT_EMPTY,
    Decision,
    Kind,
    Problem,
    decide,
    problem_for,
    retry_delay_s,
)
from dialq.store.insights_repo import summarize
from dialq.store.insights_tables import InsightsStatus
from dialq.symbl.errors import (
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    NotSentError,
    OutcomeUnknownError,
    PermissionDeniedError,
    ServerError,
    SymblError,
)

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
PENDING, READY, UNAVAILABLE = (
    InsightsStatus.PENDING,
    InsightsStatus.READY,
    InsightsStatus.UNAVAILABLE,
)


class Draw(random.Random):
    """uniform() always returns one end of its range."""

    def __init__(self, highest: bool) -> None:
        super().__init__(0)
        self.highest = highest

    def uniform(self, a: float, b: float) -> float:
        return b if self.highest else a


@pytest.mark.parametrize(
    ("attempt", "base_s", "max_s", "lowest", "highest"),
    [
        (1, 2.0, 30.0, 1.0, 2.0),
        (2, 2.0, 30.0, 2.0, 4.0),
        (4, 2.0, 30.0, 8.0, 16.0),
        (5, 2.0, 30.0, 15.0, 30.0),  # capped by the setting
        (10, 2.0, 60.0, 30.0, 60.0),  # capped by invariant 4
        (10_000, 2.0, 60.0, 30.0, 60.0),  # no overflow
    ],
)
def test_retry_delay_grows_exponentially_with_equal_jitter_and_never_exceeds_60_s(
    attempt: int, base_s: float, max_s: float, lowest: float, highest: float
) -> None:
    assert retry_delay_s(attempt, Draw(False), base_s, max_s) == lowest
    assert retry_delay_s(attempt, Draw(True), base_s, max_s) == highest


def test_retry_delay_counts_attempts_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        retry_delay_s(0, random.Random(0), 2.0, 30.0)


def test_retry_delays_with_a_real_rng_stay_inside_the_bounds() -> None:
    rng = random.Random(7)
    for attempt in range(1, 50):
        delay = retry_delay_s(attempt, rng, 2.0, 60.0)
        assert 0 < delay <= 60.0


def _decide(problem: Problem | None, *, remaining_s: float, attempt: int = 1) -> Decision:
    return decide(
        problem,
        now=NOW,
        deadline=NOW + timedelta(seconds=remaining_s),
        deadline_s=900,
        attempt=attempt,
        rng=Draw(True),
        base_s=2.0,
        max_s=30.0,
    )


@pytest.mark.parametrize(
    ("problem", "remaining_s", "attempt", "expected"),
    [
        (None, 100, 1, Decision(READY, None)),
        (None, -5, 9, Decision(READY, None)),  # ready wins even past the deadline
        (SUMMARY_NOT_READY, 100, 1, Decision(PENDING, "summary still not ready", 2.0)),
        (SUMMARY_NOT_READY, 100, 3, Decision(PENDING, "summary still not ready", 8.0)),
        # the last wait ends at the deadline, not after it
        (SUMMARY_NOT_READY, 3, 5, Decision(PENDING, "summary still not ready", 3.0)),
        (
            SUMMARY_NOT_READY,
            0,
            5,
            Decision(UNAVAILABLE, "summary still not ready after 900 s"),
        ),
        (TRANSCRIPT_EMPTY, -1, 5, Decision(UNAVAILABLE, "transcript still empty after 900 s")),
        (
            Problem("conversation not found (404)", Kind.TRANSIENT),
            50,
            1,
            Decision(PENDING, "conversation not found (404)", 2.0),
        ),
        (
            Problem("conversation not found (404)", Kind.TRANSIENT),
            -1,
            7,
            Decision(UNAVAILABLE, "conversation not found (404)"),
        ),
        # waiting cannot help: given up at once, deadline or not
        (
            Problem("401 unauthorized", Kind.PERMANENT),
            800,
            1,
            Decision(UNAVAILABLE, "401 unauthorized"),
        ),
    ],
)
def test_decide_is_ready_or_retries_before_the_deadline_or_gives_up_with_the_reason(
    problem: Problem | None, remaining_s: float, attempt: int, expected: Decision
) -> None:
    assert _decide(problem, remaining_s=remaining_s, attempt=attempt) == expected


def _status(cls: type, status: int, message: str = "msg") -> SymblError:
    error: SymblError = cls(status, message, "{}", None)
    return error


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (_status(NotFoundError, 404), Problem("conversation not found (404)", Kind.TRANSIENT)),
        (_status(AuthenticationError, 401), Problem("401 unauthorized", Kind.PERMANENT)),
        (_status(PermissionDeniedError, 403), Problem("403 forbidden", Kind.PERMANENT)),
        (
            _status(BadRequestError, 400, "bad id"),
            Problem("400 bad request: bad id", Kind.PERMANENT),
        ),
        (_status(ServerError, 503, "busy"), Problem("HTTP 503: busy", Kind.TRANSIENT)),
        (NotSentError("refused"), Problem("refused", Kind.TRANSIENT)),
        (OutcomeUnknownError("read timeout"), Problem("read timeout", Kind.TRANSIENT)),
    ],
)
def test_problem_for_names_the_error_and_whether_waiting_can_help(
    error: SymblError, expected: Problem
) -> None:
    assert problem_for(error) == expected


@pytest.mark.parametrize(
    ("decision", "expected"),
    [
        (Decision(READY, None), "insights: ready"),
        (Decision(UNAVAILABLE, "401 unauthorized"), "insights: unavailable: 401 unauthorized"),
    ],
)
def test_event_detail_tells_the_producer_ready_or_unavailable_with_the_reason(
    decision: Decision, expected: str
) -> None:
    assert event_detail(decision) == expected


def test_summarize_counts_each_kind_and_keeps_summary_and_action_item_texts() -> None:
    view: dict[str, Any] = {
        "status": "ready",
        "reason": None,
        "messages": [{"text": "a"}, {"text": "b"}, {"text": "c"}],
        "topics": [{"text": "pricing"}],
        "questions": [],
        "action_items": [{"text": "Send the deck."}, {"text": ""}, "junk"],
        "follow_ups": None,
        "members": [{"name": "A"}, {"name": "B"}],
        "summary": [{"text": "They agreed."}, {"text": "Next call Friday."}],
        "analytics": {"metrics": []},
    }
    assert summarize(view) == {
        "status": "ready",
        "reason": None,
        "counts": {
            "messages": 3,
            "topics": 1,
            "questions": 0,
            "action_items": 3,
            "follow_ups": 0,
            "members": 2,
            "summary": 2,
        },
        "summary": ["They agreed.", "Next call Friday."],
        "action_items": ["Send the deck."],
    }


class ScriptedClient:
    """Answers each conversation part from a table: a body, or an error to raise."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def conversation(self, conversation_id: str, part: str = "") -> Any:
        self.asked.append(part)
        answer = self.answers[part]
        if isinstance(answer, Exception):
            raise answer
        return answer


FULL = {
    "messages": {"messages": [{"text": "hi"}]},
    "summary": {"summary": [{"text": "s"}]},
    "topics": {"topics": [{"text": "t"}]},
    "questions": {"questions": []},
    "action-items": {"actionItems": [{"text": "a"}]},
    "follow-ups": {"followUps": []},
    "members": {"members": [{"name": "m"}]},
    "analytics": {"metrics": [], "members": []},
}


def test_fetch_with_every_part_answered_has_no_problem_and_keeps_each_list() -> None:
    fetched = fetch(ScriptedClient(FULL), "123")  # type: ignore[arg-type]
    assert fetched.problem is None
    assert fetched.parts["action-items"] == [{"text": "a"}]
    assert fetched.parts["analytics"] == {"metrics": [], "members": []}


def test_fetch_with_summary_404_reads_the_other_parts_and_says_not_ready() -> None:
    client = ScriptedClient({**FULL, "summary": _status(NotFoundError, 404)})
    fetched = fetch(client, "123")  # type: ignore[arg-type]
    assert fetched.problem == SUMMARY_NOT_READY
    assert "summary" not in fetched.parts
    assert fetched.parts["topics"] == [{"text": "t"}]


def test_fetch_of_an_unknown_conversation_stops_after_the_first_request() -> None:
    client = ScriptedClient({**FULL, "messages": _status(NotFoundError, 404)})
    fetched = fetch(client, "123")  # type: ignore[arg-type]
    assert fetched.problem == Problem("conversation not found (404)", Kind.TRANSIENT)
    assert client.asked == ["messages"]


def test_fetch_without_analytics_is_still_complete() -> None:
    client = ScriptedClient({**FULL, "analytics": _status(ServerError, 500)})
    fetched = fetch(client, "123")  # type: ignore[arg-type]
    assert fetched.problem is None
    assert "analytics" not in fetched.parts


def test_fetch_with_an_empty_transcript_is_not_ready() -> None:
    client = ScriptedClient({**FULL, "messages": {"messages": []}})
    assert fetch(client, "123").problem == TRANSCRIPT_EMPTY  # type: ignore[arg-type]


def test_fetch_with_a_malformed_part_is_a_transient_problem() -> None:
    client = ScriptedClient({**FULL, "topics": {"unexpected": 1}})
    problem = fetch(client, "123").problem  # type: ignore[arg-type]
    assert problem is not None
    assert problem.kind is Kind.TRANSIENT
    assert "topics" in problem.reason
