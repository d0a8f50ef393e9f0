"""The Symbl client's errors, split by what the caller must do (style.md habit 3).

- ``NotSentError``: the request never reached the API; sending it again is safe.
- ``OutcomeUnknownError`` and ``UnexpectedResponseError``: a start request may have started a
  call; never send it again on your own (docs/architecture.md, invariant 3).
- ``APIStatusError`` and its subclasses: the API answered with an error status.

No error carries a token or an app secret: bodies are redacted before they get here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from http import HTTPStatus
from typing import Any

from dialq.symbl.headers import REQUEST_ID_HEADERS, first_header, retry_after_seconds

BODY_LIMIT_CHARS = 2048
MESSAGE_LIMIT_CHARS = 200


class SymblError(Exception):
    """Raised when anything goes wrong talking to Symbl; the root of this hierarchy."""


class NotSentError(SymblError):
    """Raised when the request certainly never reached the API; sending it again is safe."""


class TokenError(NotSentError):
    """Raised when no access token could be had, so the request it was for was never sent."""


class OutcomeUnknownError(SymblError):
    """Raised when the request may have reached the API but no response was read.

    A start request that ends here may have placed a call: it is never retried automatically.
    """


class UnexpectedResponseError(SymblError):
    """Raised when a 2xx response's body is not the documented shape.

    For a start request the call MAY have started: callers treat this like OutcomeUnknownError.
    ``connection_id`` is kept when the body had one, so the call can still be found and stopped.
    """

    def __init__(self, problem: str, *, status: int, connection_id: str | None = None) -> None:
        super().__init__(f"HTTP {status} with an unexpected body: {problem}")
        self.problem = problem
        self.status = status
        self.connection_id = connection_id


class APIStatusError(SymblError):
    """Raised when the API answers with a status this client does not treat as success."""

    def __init__(self, status: int, message: str, body: str, request_id: str | None) -> None:
        suffix = f" (request id {request_id})" if request_id else ""
        super().__init__(f"HTTP {status}: {message}{suffix}")
        self.status = status
        self.message = message
        self.body = body
        self.request_id = request_id


class BadRequestError(APIStatusError):
    """Raised when the API rejects the request as invalid (400); never retried."""


class AuthenticationError(APIStatusError):
    """Raised on 401: bad app credentials, or a token refused even after one renewal."""


class CredentialsError(APIStatusError):
    """Raised when the token endpoint refuses the account's app id or secret (any 4xx but 429).

    The account's condition, not the request's: nothing was sent with a token, and every
    request of the account meets the same answer until the credentials are fixed.
    """


class PermissionDeniedError(APIStatusError):
    """Raised when the account may not do this (403)."""


class NotFoundError(APIStatusError):
    """Raised when the connection or conversation does not exist, or is not ready (404)."""


class ConflictError(APIStatusError):
    """Raised when the request conflicts with the resource's current state (409)."""


class CapacityError(APIStatusError):
    """Raised on 429: the account has no room for another call; a capacity signal, not a failure.

    ``retry_after_s`` is the server's Retry-After in seconds, when it sent one.
    """

    def __init__(
        self,
        status: int,
        message: str,
        body: str,
        request_id: str | None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(status, message, body, request_id)
        self.retry_after_s = retry_after_s


class ServerError(APIStatusError):
    """Raised when the API fails on its side (5xx)."""


class UnexpectedStatusError(APIStatusError):
    """Raised for any other non-success status (402, 405, 413, 3xx, ...)."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
}


def error_for_status(
    status: int,
    body_text: str,
    headers: Mapping[str, str],
    now: datetime,
    secrets: tuple[str, ...] = (),
) -> APIStatusError:
    """The error for a non-success response: the one place a status becomes a class.

    ``secrets`` are removed from the body as sent and from the message as decoded: an echo of
    the app secret JSON-escaped (``\\u0061pp``) only shows after decoding.
    """
    message = redact(error_message(status, redact(body_text, secrets)), secrets)
    body = redact(body_text, secrets)[:BODY_LIMIT_CHARS]
    request_id = first_header(headers, REQUEST_ID_HEADERS)
    if status == 429:
        retry_after_s = retry_after_seconds(headers, now)
        return CapacityError(status, message, body, request_id, retry_after_s)
    if 500 <= status <= 599:
        return ServerError(status, message, body, request_id)
    cls = _BY_STATUS.get(status, UnexpectedStatusError)
    return cls(status, message, body, request_id)


def error_message(status: int, body_text: str) -> str:
    """The body's ``message`` (Symbl's documented error shape), else a short excerpt of it."""
    try:
        parsed = json.loads(body_text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        return str(parsed["message"])[:MESSAGE_LIMIT_CHARS]
    excerpt = " ".join(body_text.split())[:MESSAGE_LIMIT_CHARS]
    if excerpt:
        return excerpt
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "no message"


REDACTED = "[redacted]"


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every secret replaced, for bodies that might echo one back.

    Both as written and inside JSON: a JSON body is decoded, its strings cleaned and encoded
    again when a secret was found there in an escaped spelling.
    """
    secrets = tuple(secret for secret in secrets if secret)
    if not secrets:
        return text
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    try:
        decoded = json.loads(text)
        cleaned = _redacted_json(decoded, secrets)
    except (ValueError, RecursionError):
        return text
    return text if cleaned == decoded else json.dumps(cleaned)


def _redacted_json(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, list):
        return [_redacted_json(item, secrets) for item in value]
    if isinstance(value, dict):
        return {_redacted_json(k, secrets): _redacted_json(v, secrets) for k, v in value.items()}
    return value
