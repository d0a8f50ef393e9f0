"""Did a request that got no response reach the API? The answer decides whether a start may be
sent again (docs/architecture.md, invariant 3), so only proof counts as "never sent"."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from types import TracebackType

import requests
import urllib3.exceptions as u3

from dialq.symbl.errors import NotSentError, OutcomeUnknownError

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
