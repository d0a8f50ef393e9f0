"""One function maps a status to its error; what each error carries, and what it never does."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from dialq.symbl.errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    CapacityError,
    ConflictError,
    NotFoundError,
    NotSentError,
    OutcomeUnknownError,
    PermissionDeniedError,
    ServerError,
    SymblError,
    UnexpectedResponseError,
    UnexpectedStatusError,
    error_for_status,
    redact,
)

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
CAPACITY_MESSAGE = (
    "Maximum number of concurrent jobs reached. Please wait for some requests to complete."
)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (429, CapacityError),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (504, ServerError),
        (599, ServerError),
        (402, UnexpectedStatusError),
        (405, UnexpectedStatusError),
        (413, UnexpectedStatusError),
        (302, UnexpectedStatusError),
    ],
)
def test_each_status_maps_to_one_class(status: int, cls: type[APIStatusError]) -> None:
    error = error_for_status(status, '{"message": "m"}', {}, NOW)
    assert type(error) is cls
    assert error.status == status
    assert isinstance(error, SymblError)


def test_message_comes_from_the_documented_message_field() -> None:
    # given Symbl's documented error shape
    body = json.dumps({"message": CAPACITY_MESSAGE, "code": 429})
    # when it is mapped
    error = error_for_status(429, body, {}, NOW)
    # then the message is the API's, and the whole body is kept
    assert error.message == CAPACITY_MESSAGE
    assert error.body == body
    assert str(error) == f"HTTP 429: {CAPACITY_MESSAGE}"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("<html><body>\n  Bad   Gateway </body></html>", "<html><body> Bad Gateway </body></html>"),
        ('{"error": "nope"}', '{"error": "nope"}'),
        ('{"message": 42}', '{"message": 42}'),
        ("", "Service Unavailable"),
    ],
)
def test_message_falls_back_to_a_short_excerpt_or_the_reason_phrase(
    body: str, message: str
) -> None:
    assert error_for_status(503, body, {}, NOW).message == message


def test_message_excerpt_and_body_are_truncated() -> None:
    body = "x" * 10_000
    error = error_for_status(500, body, {}, NOW)
    assert len(error.message) == 200
    assert len(error.body) == 2048


@pytest.mark.parametrize(
    "headers",
    [{"X-Request-Id": "req-1"}, {"x-request-id": "req-1"}, {"x-amzn-RequestId": "req-1"}],
)
def test_request_id_is_read_from_common_headers(headers: dict[str, str]) -> None:
    error = error_for_status(500, "{}", headers, NOW)
    assert error.request_id == "req-1"
    assert "(request id req-1)" in str(error)


def test_request_id_is_none_without_such_a_header() -> None:
    assert error_for_status(500, "{}", {"Content-Type": "text/plain"}, NOW).request_id is None


@pytest.mark.parametrize(
    ("headers", "retry_after_s"),
    [
        ({}, None),
        ({"Retry-After": "9"}, 9.0),
        ({"retry-after": "Sun, 01 Mar 2026 12:00:05 GMT"}, 5.0),
        ({"Retry-After": "later"}, None),
    ],
)
def test_capacity_error_carries_retry_after_in_both_forms(
    headers: dict[str, str], retry_after_s: float | None
) -> None:
    error = error_for_status(429, "{}", headers, NOW)
    assert isinstance(error, CapacityError)
    assert error.retry_after_s == retry_after_s


def test_unexpected_response_says_what_was_wrong_and_keeps_the_connection_id() -> None:
    error = UnexpectedResponseError("conversationId is missing", status=201, connection_id="c-1")
    assert str(error) == "HTTP 201 with an unexpected body: conversationId is missing"
    assert error.connection_id == "c-1"
    assert not isinstance(error, NotSentError | OutcomeUnknownError | APIStatusError)


def test_redact_removes_every_secret_from_an_echoed_body() -> None:
    body = '{"message": "bad secret s3cr3t for token tok-9 (s3cr3t)"}'
    redacted = redact(body, ("s3cr3t", "tok-9", ""))
    assert "s3cr3t" not in redacted
    assert "tok-9" not in redacted
    assert redacted.count("[redacted]") == 3


def test_errors_built_from_redacted_bodies_hold_no_secret_in_str_or_repr() -> None:
    body = redact('{"message": "token tok-9 expired"}', ("tok-9",))
    error = error_for_status(401, body, {}, NOW)
    for text in (str(error), repr(error), error.body, error.message):
        assert "tok-9" not in text
