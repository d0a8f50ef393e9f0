"""One HTTP attempt: send, read, classify, report. Shared by the token fetch and the endpoints."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlsplit

import requests

from dialq import __version__
from dialq.symbl.errors import (
    APIStatusError,
    CapacityError,
    SymblError,
    UnexpectedResponseError,
    error_for_status,
)
from dialq.symbl.sent import classify_transport_error

if TYPE_CHECKING:
    from requests.sessions import _Settings  # the stubs' name for what requests returns

log = logging.getLogger("dialq.symbl")

USER_AGENT = f"dialq/{__version__}"
Operation = Literal["start", "stop", "token", "conversation"]
T = TypeVar("T")


class ApiSession(requests.Session):
    """A `requests.Session` that reads the environment's HTTP settings once per host.

    requests looks up proxies, `no_proxy` and the CA bundle in the environment on every request
    (`merge_environment_settings` walks os.environ): a fifth of the CPU of each exchange with
    the API, and a watch or a harvest is mostly such exchanges. The environment is read at a
    host's first request, so a process sees proxy settings as they were when it started.
    """

    def __init__(self) -> None:
        super().__init__()
        self._environment: dict[tuple[Any, ...], _Settings] = {}

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> _Settings:
        if proxies:  # per-request proxies: merged as requests does, not remembered
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc, stream, verify, cert)
        merged = self._environment.get(key)
        if merged is None:
            merged = super().merge_environment_settings(url, proxies, stream, verify, cert)
            self._environment[key] = merged
        fresh = merged.copy()  # requests may change what it is given: never the one kept
        fresh["proxies"] = dict(merged["proxies"])
        return fresh


@dataclass(frozen=True)
class AttemptRecord:
    """One HTTP attempt, as the attempts table stores it. Never holds a secret or a body."""

    operation: str
    started_at: datetime
    status: int | None
    latency_ms: float
    error: str | None
    retry_after_s: float | None = None


AttemptHook = Callable[[AttemptRecord], None]


@dataclass(frozen=True)
class HttpRequest:
    """What to send. ``secrets`` are scrubbed from any error body built from the answer."""

    operation: Operation
    method: str
    url: str
    headers: Mapping[str, str]
    json_body: Any = None
    secrets: tuple[str, ...] = ()


def exchange(
    session: requests.Session,
    request: HttpRequest,
    parse: Callable[[int, str], T],
    *,
    timeout_s: tuple[float, float],
    on_attempt: AttemptHook | None,
) -> T:
    """Send once and return ``parse(status, text)`` for a 2xx; raise a SymblError otherwise.

    Reports exactly one AttemptRecord, whatever happens.
    """
    started_at = datetime.now(UTC)
    began = time.perf_counter()
    response: requests.Response | None = None
    try:
        response = session.request(
            request.method,
            request.url,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json", **request.headers},
            json=request.json_body,
            timeout=timeout_s,
            # A redirect would carry x-api-key to wherever it points, and resend a start.
            allow_redirects=False,
        )
        # Reads the whole body (a cut-off body raises here). JSON is UTF-8 (RFC 8259).
        text = response.content.decode("utf-8", errors="replace")
        result = _result(request, response, text, parse)
    except Exception as exc:
        status = None if response is None else response.status_code
        error = classify_transport_error(exc) if isinstance(exc, requests.RequestException) else exc
        _report(on_attempt, request, started_at, began, status, error)
        if error is exc:
            raise
        raise error from exc
    _report(on_attempt, request, started_at, began, response.status_code, None)
    return result


def _result(
    request: HttpRequest, response: requests.Response, text: str, parse: Callable[[int, str], T]
) -> T:
    if not 200 <= response.status_code <= 299:
        raise error_for_status(
            response.status_code, text, response.headers, datetime.now(UTC), request.secrets
        )
    return parse(response.status_code, text)


def _report(
    on_attempt: AttemptHook | None,
    request: HttpRequest,
    started_at: datetime,
    began: float,
    status: int | None,
    error: Exception | None,
) -> None:
    if on_attempt is None:
        return
    record = AttemptRecord(
        operation=request.operation,
        started_at=started_at,
        status=status,
        latency_ms=(time.perf_counter() - began) * 1000.0,
        error=None if error is None else describe(error),
        retry_after_s=error.retry_after_s if isinstance(error, CapacityError) else None,
    )
    try:
        on_attempt(record)
    except Exception:
        # Failing to record must not lose the answer: a started call would become "unknown".
        log.exception("could not record a %s attempt", request.operation)


def describe(error: Exception) -> str:
    """Class name and reason, short; our errors never hold secrets, so this is safe to store."""
    if not isinstance(error, SymblError):
        return type(error).__name__  # not ours: its text might quote anything
    if isinstance(error, APIStatusError):
        text = f"HTTP {error.status}: {error.message}"
    else:
        text = str(error)
    return f"{type(error).__name__}: {text}"[:300]


def json_object(status: int, text: str) -> dict[str, Any]:
    """The body as a JSON object, or UnexpectedResponseError saying what it was instead.

    The body itself is never quoted: a token response carries the token.
    """
    try:
        parsed = json.loads(text)
    except ValueError:
        raise UnexpectedResponseError(
            f"body is not JSON ({len(text)} characters)", status=status
        ) from None
    if not isinstance(parsed, dict):
        kind = type(parsed).__name__
        raise UnexpectedResponseError(f"body is JSON {kind}, not an object", status=status)
    return parsed


def required_str(body: Mapping[str, Any], key: str, status: int) -> str:
    """``body[key]`` when it is a non-empty string, else UnexpectedResponseError."""
    value = body.get(key)
    if not isinstance(value, str) or not value:
        found = body.get("connectionId")
        raise UnexpectedResponseError(
            f"{key} is {_kind(value)}, not a non-empty string",
            status=status,
            connection_id=found if isinstance(found, str) and found else None,
        )
    return value


def _kind(value: object) -> str:
    return "missing or null" if value is None else f"a {type(value).__name__}"
