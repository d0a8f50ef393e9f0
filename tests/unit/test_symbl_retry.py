"""The retry policy's pure functions, table by table: no sockets, no sleeps."""

from __future__ import annotations

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
from dialq.symbl.headers import retry_after_seconds
from dialq.symbl.retry import is_retryable_failure
from dialq.symbl.sent import classify_transport_error

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


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
