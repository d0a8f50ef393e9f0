"""Which failed requests may be sent again: pure, no I/O (style.md habit 4).

The delay comes from `dialq.backoff`; Retry-After parsing lives in `dialq.symbl.headers`;
whether a request without a response was ever sent is `dialq.symbl.sent`.
"""

from __future__ import annotations

from dialq.symbl.errors import NotSentError, ServerError, SymblError

# 501/505 mean "this will never work", not "try later".
RETRYABLE_SERVER_STATUSES = frozenset({500, 502, 503, 504})


def is_retryable_failure(error: SymblError) -> bool:
    """True when sending again may work and cannot place a second call.

    Only errors before sending and transient 5xx. A 429 is not a failure at all (the capacity
    path handles it); 4xx, unknown outcomes and unexpected bodies are never retried.
    """
    if isinstance(error, NotSentError):
        return True
    return isinstance(error, ServerError) and error.status in RETRYABLE_SERVER_STATUSES
