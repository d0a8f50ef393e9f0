"""The call policy: what a failed start means, and when to try again. Pure, table-tested."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from dialq.calls.policy import (
    capacity_delay_s,
    failure_delay_s,
    lease_covers_call,
    lease_s,
    message_due_at,
    start_outcome,
)
from dialq.publisher import MAX_COUNTDOWN_S
from dialq.symbl.errors import (
    CredentialsError,
    NotSentError,
    OutcomeUnknownError,
    SymblError,
    UnexpectedResponseError,
    error_for_status,
)


@pytest.mark.parametrize(
    ("retry_after_s", "expected"),
    [(0.0, 0.0), (3.0, 3.0), (-5.0, 0.0), (600.0, MAX_COUNTDOWN_S)],
)
def test_a_retry_after_header_is_honoured_within_the_countdown_cap(
    retry_after_s: float, expected: float
) -> None:
    assert capacity_delay_s(retry_after_s, 5.0, random.Random(1)) == expected


def test_without_retry_after_the_delay_is_jittered_around_the_base() -> None:
    rng = random.Random(42)
    delays = [capacity_delay_s(None, 4.0, rng) for _ in range(500)]
    assert min(delays) >= 2.0
    assert max(delays) <= 6.0
    assert len({round(d, 3) for d in delays}) > 400  # spread out, not in lockstep


def test_the_jittered_delay_never_exceeds_the_countdown_cap() -> None:
    assert capacity_delay_s(None, 59.0, random.Random(3)) <= MAX_COUNTDOWN_S


# -- what a failed start request means for its call -------------------------------------------

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def _status(status: int, body: str = '{"message": "nope"}', **headers: str) -> SymblError:
    return error_for_status(status, body, headers, NOW)


@pytest.mark.parametrize(
    ("error", "kind", "reason"),
    [
        (_status(429), "capacity", "no capacity (429)"),
        (_status(429, **{"Retry-After": "7"}), "capacity", "no capacity (429)"),
        (_status(500), "retry", "HTTP 500: nope"),
        (_status(502), "retry", "HTTP 502: nope"),
        (_status(503), "retry", "HTTP 503: nope"),
        (_status(504), "retry", "HTTP 504: nope"),
        # 501 and 505 say "this will never work": failed, not retried (the dial path used to)
        (_status(501), "failed", "http 501: nope"),
        (_status(505), "failed", "http 505: nope"),
        (NotSentError("ConnectionError: refused"), "retry", "ConnectionError: refused"),
        (OutcomeUnknownError("ReadTimeout: read timed out"), "unknown", "ReadTimeout"),
        (UnexpectedResponseError("no connectionId", status=201), "unknown", "HTTP 201"),
        (_status(400, '{"message": "\\"phoneNumber\\" is required"}'), "failed", "rejected: "),
        (_status(401, '{"message": "Token expired"}'), "failed", "unauthorized: Token expired"),
        (_status(403), "failed", "http 403: nope"),
        (_status(404), "failed", "http 404: nope"),
        (_status(409), "failed", "http 409: nope"),
        (_status(402), "failed", "http 402: nope"),
        (SymblError("something new"), "unknown", "something new"),
        # the token endpoint refusing the account's credentials: the account waits, not failed
        (CredentialsError(401, "invalid app id or secret", "", None), "credentials", "HTTP 401"),
        (CredentialsError(400, "appId is required", "", None), "credentials", "appId is required"),
    ],
)
def test_start_outcome_decides_capacity_credentials_retry_unknown_or_failed(
    error: SymblError, kind: str, reason: str
) -> None:
    outcome = start_outcome(error)
    assert outcome.kind == kind
    assert reason in outcome.reason


def test_a_429_carries_its_retry_after_in_both_forms_and_none_without_it() -> None:
    assert start_outcome(_status(429, **{"Retry-After": "7"})).retry_after_s == 7.0
    dated = _status(429, **{"Retry-After": "Sun, 29 Nov 2026 12:00:30 GMT"})
    assert start_outcome(dated).retry_after_s == 30.0
    assert start_outcome(_status(429)).retry_after_s is None


def test_a_failure_redial_is_full_jitter_and_never_longer_than_a_broker_countdown() -> None:
    class Top(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b

    assert failure_delay_s(1, Top(), 2.0, 600.0) == 2.0
    assert failure_delay_s(9, Top(), 2.0, 600.0) == MAX_COUNTDOWN_S


@pytest.mark.parametrize(
    ("offset_s", "due_offset_s"),
    [(None, 0.0), (-30.0, 0.0), (0.0, 0.0), (45.0, 45.0), (60.0, 60.0), (61.0, None)],
)
def test_a_message_is_due_now_or_at_not_before_unless_that_is_past_the_countdown_cap(
    offset_s: float | None, due_offset_s: float | None
) -> None:
    not_before = None if offset_s is None else NOW + timedelta(seconds=offset_s)
    due = message_due_at(not_before, NOW)
    expected = None if due_offset_s is None else NOW + timedelta(seconds=due_offset_s)
    assert due == expected


@pytest.mark.parametrize(
    ("start_took_s", "covered"),
    [(0.0, True), (0.2, True), (30.0, True), (30.001, False), (45.0, False)],
)
def test_a_claims_lease_is_renewed_only_when_the_start_request_ate_half_its_margin(
    start_took_s: float, covered: bool
) -> None:
    # given a call claimed at NOW with a 60 s margin, connected `start_took_s` later
    margin_s, max_duration_s = 60.0, 600.0
    connected = NOW + timedelta(seconds=start_took_s)
    # then its looks skip the renewal exactly while the claim's lease outlives the call by
    # at least half the margin
    assert lease_covers_call(NOW, connected, margin_s) is covered
    lease_end = NOW + timedelta(seconds=lease_s(max_duration_s, margin_s))
    latest_end = connected + timedelta(seconds=max_duration_s)
    spare_s = (lease_end - latest_end).total_seconds()
    assert (spare_s >= margin_s / 2) is covered
