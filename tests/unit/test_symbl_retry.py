"""The retry policy's pure functions, table by table: no sockets, no sleeps."""

from __future__ import annotations

import random
import socket
import ssl
from datetime import UTC, datetime
from http.client import RemoteDisconnected

import pytest
import requests
import urllib3.exceptions as u3
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool

from dialq.symbl.errors import (
    AuthenticationError,
    BadRequestError,
    CapacityError,
    NotFoundError,
    NotSentError,
    OutcomeUnknownError,
    PermissionDeniedError,
    ServerError,
    SymblError,
    TokenError,
    UnexpectedResponseError,
)
from dialq.symbl.retry import (
    backoff_seconds,
    classify_transport_error,
    is_retryable_failure,
    retry_after_seconds,
)

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


class HighestDraw(random.Random):
    """Always draws the top of the range, to read the jitter's ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.mark.parametrize(
    ("attempt", "base_s", "max_s", "ceiling_s"),
    [
        (1, 2.0, 60.0, 2.0),
        (2, 2.0, 60.0, 4.0),
        (3, 2.0, 60.0, 8.0),
        (5, 2.0, 60.0, 32.0),
        (6, 2.0, 60.0, 60.0),
        (4, 1.0, 5.0, 5.0),
        (10_000, 2.0, 60.0, 60.0),
        (3, 2.0, 600.0, 8.0),
        (9, 2.0, 600.0, 60.0),  # max_s above 60 is held to 60 (broker countdown cap)
    ],
)
def test_backoff_ceiling_doubles_per_attempt_up_to_the_cap(
    attempt: int, base_s: float, max_s: float, ceiling_s: float
) -> None:
    assert backoff_seconds(attempt, HighestDraw(), base_s, max_s) == ceiling_s


def test_backoff_is_full_jitter_between_zero_and_the_ceiling() -> None:
    rng = random.Random(7)
    draws = [backoff_seconds(4, rng, 2.0, 60.0) for _ in range(500)]
    assert all(0.0 <= d <= 16.0 for d in draws)
    assert min(draws) < 2.0 < 14.0 < max(draws)  # spread over the whole range


def test_backoff_is_reproducible_with_the_same_seed() -> None:
    first = [backoff_seconds(n, random.Random(3), 2.0, 60.0) for n in range(1, 8)]
    again = [backoff_seconds(n, random.Random(3), 2.0, 60.0) for n in range(1, 8)]
    assert first == again


def test_backoff_rejects_attempt_zero() -> None:
    with pytest.raises(ValueError, match="from 1"):
        backoff_seconds(0, random.Random(1), 2.0, 60.0)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "7"}, 7.0),
        ({"RETRY-AFTER": " 12 "}, 12.0),
        ({"Retry-After": "0"}, 0.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"Retry-After": "-3"}, 0.0),
        ({"Retry-After": "Sun, 01 Mar 2026 12:00:30 GMT"}, 30.0),
        ({"Retry-After": "Sun, 01 Mar 2026 11:59:00 GMT"}, 0.0),  # in the past
        ({"Retry-After": "Sun, 01 Mar 2026 12:02:00 -0000"}, 120.0),
        ({"Retry-After": ""}, None),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "nan"}, None),
        ({"Retry-After": "inf"}, None),
        ({"Retry-After": "Sun, 99 Foo 2026"}, None),
        ({"X-Retry-After": "5"}, None),
    ],
)
def test_retry_after_reads_both_forms_and_ignores_garbage(
    headers: dict[str, str], expected: float | None
) -> None:
    assert retry_after_seconds(headers, NOW) == expected


def test_retry_after_works_with_requests_case_insensitive_headers() -> None:
    headers = requests.structures.CaseInsensitiveDict({"Retry-After": "4"})
    assert retry_after_seconds(headers, NOW) == 4.0


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (NotSentError("refused"), True),
        (TokenError("no token"), True),
        (ServerError(500, "m", "", None), True),
        (ServerError(502, "m", "", None), True),
        (ServerError(503, "m", "", None), True),
        (ServerError(504, "m", "", None), True),
        (ServerError(501, "m", "", None), False),
        (BadRequestError(400, "m", "", None), False),
        (AuthenticationError(401, "m", "", None), False),
        (PermissionDeniedError(403, "m", "", None), False),
        (NotFoundError(404, "m", "", None), False),
        (CapacityError(429, "m", "", None, 5.0), False),  # capacity, not a failure
        (OutcomeUnknownError("read timeout"), False),
        (UnexpectedResponseError("html", status=201), False),
    ],
)
def test_only_errors_that_cannot_place_a_second_call_are_retryable(
    error: SymblError, retryable: bool
) -> None:
    assert is_retryable_failure(error) is retryable


def _max_retry(reason: Exception) -> u3.MaxRetryError:
    return u3.MaxRetryError(POOL, "/v1/endpoint:connect", reason)


# Never connected: only named by the errors.
CONN = HTTPConnection("127.0.0.1", 9)
POOL = HTTPConnectionPool("127.0.0.1", 9)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (requests.ConnectTimeout(_max_retry(u3.ConnectTimeoutError(CONN, "t"))), NotSentError),
        (
            requests.ConnectionError(_max_retry(u3.NewConnectionError(CONN, "refused"))),
            NotSentError,
        ),
        (
            requests.ConnectionError(
                _max_retry(
                    u3.NameResolutionError(
                        "x.invalid", CONN, socket.gaierror(-2, "Name or service not known")
                    )
                )
            ),
            NotSentError,
        ),
        (
            requests.exceptions.SSLError(
                _max_retry(u3.SSLError(ssl.SSLCertVerificationError(1, "verify failed")))
            ),
            NotSentError,
        ),
        (requests.exceptions.MissingSchema("no scheme"), NotSentError),
        (requests.exceptions.InvalidURL("bad"), NotSentError),
        (requests.ConnectionError(u3.ClosedPoolError(POOL, "closed")), NotSentError),
        (
            requests.ReadTimeout(u3.ReadTimeoutError(POOL, "/", "read timed out")),
            OutcomeUnknownError,
        ),
        (
            requests.ConnectionError(
                u3.ProtocolError(
                    "Connection aborted.",
                    RemoteDisconnected("Remote end closed connection without response"),
                )
            ),
            OutcomeUnknownError,
        ),
        (
            requests.ConnectionError(
                u3.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))
            ),
            OutcomeUnknownError,
        ),
        (
            requests.ConnectionError(
                _max_retry(u3.ProtocolError("Connection aborted.", ConnectionResetError()))
            ),
            OutcomeUnknownError,
        ),
        (
            requests.exceptions.ChunkedEncodingError(
                u3.ProtocolError("incomplete", u3.IncompleteRead(3, 9))
            ),
            OutcomeUnknownError,
        ),
        (requests.exceptions.ContentDecodingError("bad gzip"), OutcomeUnknownError),
        # An SSL error with no proof it happened in the handshake may have come after sending.
        (
            requests.exceptions.SSLError(_max_retry(u3.SSLError("bad record mac"))),
            OutcomeUnknownError,
        ),
        (requests.RequestException("who knows"), OutcomeUnknownError),
        (requests.ConnectionError("bare"), OutcomeUnknownError),
    ],
)
def test_classify_sends_only_proven_unsent_requests_to_not_sent(
    exc: requests.RequestException, expected: type[SymblError]
) -> None:
    assert type(classify_transport_error(exc)) is expected


def test_classified_reason_names_the_innermost_cause_not_the_url() -> None:
    exc = requests.ConnectionError(
        _max_retry(u3.NewConnectionError(CONN, "Failed to establish a new connection"))
    )
    exc.__context__ = None
    reason = str(classify_transport_error(exc))
    assert reason.startswith("ConnectionError: NewConnectionError")
    assert "/v1/endpoint:connect" not in reason
