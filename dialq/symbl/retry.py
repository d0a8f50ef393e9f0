"""Retry policy as pure functions: time and randomness come in, no I/O (style.md habit 4)."""

from __future__ import annotations

import math
import random
import ssl
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType

import requests
import urllib3.exceptions as u3

from dialq.symbl.errors import NotSentError, OutcomeUnknownError, ServerError, SymblError

# No broker countdown may be longer than this (design.md §2, invariant 4).
MAX_BACKOFF_S = 60.0
# 501/505 mean "this will never work", not "try later".
RETRYABLE_SERVER_STATUSES = frozenset({500, 502, 503, 504})

# Raised only by urllib3 before a single byte of the request is written.
_BEFORE_SENDING: tuple[type[BaseException], ...] = (
    u3.NewConnectionError,  # refused, unreachable, DNS (NameResolutionError is a subclass)
    u3.ConnectTimeoutError,
    u3.EmptyPoolError,
    u3.ClosedPoolError,
    u3.LocationParseError,
    ssl.SSLCertVerificationError,  # certificates are checked in the handshake, before sending
    requests.exceptions.ConnectTimeout,
    requests.exceptions.URLRequired,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidHeader,
)
# Functions that open the connection; urllib3 writes the request only after they return.
_CONNECTING_FUNCTIONS = frozenset({"connect", "_new_conn"})


def backoff_seconds(attempt: int, rng: random.Random, base_s: float, max_s: float) -> float:
    """Delay before retry number ``attempt`` (1-based): exponential with full jitter.

    ``uniform(0, min(cap, base_s * 2 ** (attempt - 1)))`` with ``cap = min(max_s, 60)``. Full
    jitter spreads workers that failed together, so they do not all come back at once.
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    cap = min(max_s, MAX_BACKOFF_S)
    # The exponent is bounded so a huge attempt number cannot overflow the float.
    ceiling = min(cap, base_s * 2.0 ** min(attempt - 1, 64))
    return rng.uniform(0.0, max(ceiling, 0.0))


def retry_after_seconds(headers: Mapping[str, str], now: datetime) -> float | None:
    """Seconds the server asked us to wait: Retry-After as delta-seconds or as an HTTP-date.

    Case-insensitive lookup; a time in the past gives 0; anything unparseable gives None.
    """
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None or not value.strip():
        return None
    seconds = _delta_seconds(value.strip())
    if seconds is None:
        seconds = _seconds_until_date(value.strip(), now)
    return None if seconds is None else max(0.0, seconds)


def _delta_seconds(value: str) -> float | None:
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) else None


def _seconds_until_date(value: str, now: datetime) -> float | None:
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" means UTC by RFC 5322; HTTP-dates are always GMT
        when = when.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return (when - now).total_seconds()


def is_retryable_failure(error: SymblError) -> bool:
    """True when sending again may work and cannot place a second call.

    Only errors before sending and transient 5xx. A 429 is not a failure at all (the capacity
    path handles it); 4xx, unknown outcomes and unexpected bodies are never retried.
    """
    if isinstance(error, NotSentError):
        return True
    return isinstance(error, ServerError) and error.status in RETRYABLE_SERVER_STATUSES


def classify_transport_error(
    exc: requests.RequestException,
) -> NotSentError | OutcomeUnknownError:
    """Whether a request that got no response certainly never reached the API.

    NotSentError only with proof: an exception type urllib3 raises before sending (refused,
    DNS, connect timeout, bad URL), or an error raised inside connection setup (TCP connect
    or TLS handshake). Everything else, and anything unrecognised, is OutcomeUnknownError:
    a second phone call is worse than a call left for the reconciler.
    """
    chain = list(_exception_chain(exc))
    reason = _reason(exc)
    if any(isinstance(e, _BEFORE_SENDING) for e in chain) or any(
        _raised_while_connecting(e.__traceback__) for e in chain
    ):
        return NotSentError(reason)
    return OutcomeUnknownError(reason)


def _exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it wraps: causes, contexts, ``args[0]``, MaxRetryError.reason."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending.extend(_wrapped(current))


def _wrapped(exc: BaseException) -> list[BaseException]:
    candidates = [getattr(exc, "reason", None), *exc.args[:2], exc.__cause__, exc.__context__]
    return [c for c in candidates if isinstance(c, BaseException)]


def _raised_while_connecting(tb: TracebackType | None) -> bool:
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_name in _CONNECTING_FUNCTIONS and code.co_filename.endswith(
            "urllib3/connection.py"
        ):
            return True
        tb = tb.tb_next
    return False


def _reason(exc: BaseException) -> str:
    """Outer and innermost exception, short: enough to debug, no URL or body."""
    innermost, seen = exc, {id(exc)}
    while (inner := next(iter(_wrapped(innermost)), None)) is not None and id(inner) not in seen:
        seen.add(id(inner))
        innermost = inner
    detail = str(innermost).strip()[:160] or type(innermost).__name__
    if innermost is exc:
        return f"{type(exc).__name__}: {detail}"
    return f"{type(exc).__name__}: {type(innermost).__name__}: {detail}"
