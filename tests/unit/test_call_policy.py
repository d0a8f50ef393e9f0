"""The call policy: what a failed start means, and when to try again. Pure, table-tested."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from dialq.calls.policy import (
    capacity_delay_s,
    failure_delay_s,
    lease_renewal_due,
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
    ("since_s", "interval_s", "margin_s", "due"),
    [
        (5.0, 5.0, 60.0, True),  # the first look moves the claim's lease to the call's times
        (2.0, 5.0, 60.0, True),  # a look taken early in a page is still the first
        (10.0, 5.0, 60.0, False),  # later looks would write the same value
        (25.0, 5.0, 60.0, False),
        (30.0, 5.0, 60.0, True),  # each half margin, one look repairs a lease Redis lost
        (33.0, 5.0, 60.0, True),  # (the look after the boundary, whenever it lands)
        (36.0, 5.0, 60.0, False),
        (61.0, 5.0, 60.0, True),
        (10.0, 5.0, 0.0, True),  # no margin: every look renews
        (0.75, 0.25, 60.0, False),  # short looks: once at the start, then every 30 s
    ],
)
def test_a_looks_renewal_of_the_lease_comes_first_then_once_every_half_margin(
    since_s: float, interval_s: float, margin_s: float, due: bool
) -> None:
    # given a call connected `since_s` ago, looked at every `interval_s`
    connected = NOW - timedelta(seconds=since_s)
    # then the look renews its lease exactly when due
    assert lease_renewal_due(connected, NOW, interval_s, margin_s) is due


def test_between_two_renewals_a_lease_always_outlives_its_call_by_half_its_margin() -> None:
    # given a call of 600 s whose lease is renewed whenever a look at 5 s intervals says so
    margin_s, interval_s, max_duration_s = 60.0, 5.0, 600.0
    # and a start request that took 45 s: the claim's lease ends 45 s early for this call
    connected = NOW
    lease_end = connected - timedelta(seconds=45) + timedelta(seconds=max_duration_s + margin_s)
    for look in range(1, int(max_duration_s / interval_s) + 1):
        now = connected + timedelta(seconds=look * interval_s)
        # then at every look the lease held runs past the call's latest end by half a margin
        # or the look renews it now
        if lease_renewal_due(connected, now, interval_s, margin_s):
            remaining_s = (connected + timedelta(seconds=max_duration_s) - now).total_seconds()
            lease_end = now + timedelta(seconds=max(0.0, remaining_s) + margin_s)
        latest_end = connected + timedelta(seconds=max_duration_s)
        assert lease_end >= latest_end + timedelta(seconds=margin_s / 2)
