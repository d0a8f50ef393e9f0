"""The Symbl API client: auth, errors, retry policy, request bodies and endpoints."""

from dialq.symbl.auth import (
    CachedToken,
    MemoryTokenStore,
    RedisTokenStore,
    TokenProvider,
    TokenStore,
)
from dialq.symbl.client import AttemptRecord, StartResult, StopResult, SymblClient
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
    TokenError,
    UnexpectedResponseError,
    UnexpectedStatusError,
    error_for_status,
)
from dialq.symbl.retry import (
    backoff_seconds,
    classify_transport_error,
    is_retryable_failure,
    retry_after_seconds,
)

__all__ = [
    "APIStatusError",
    "AttemptRecord",
    "AuthenticationError",
    "BadRequestError",
    "CachedToken",
    "CapacityError",
    "ConflictError",
    "MemoryTokenStore",
    "NotFoundError",
    "NotSentError",
    "OutcomeUnknownError",
    "PermissionDeniedError",
    "RedisTokenStore",
    "ServerError",
    "StartResult",
    "StopResult",
    "SymblClient",
    "SymblError",
    "TokenError",
    "TokenProvider",
    "TokenStore",
    "UnexpectedResponseError",
    "UnexpectedStatusError",
    "backoff_seconds",
    "classify_transport_error",
    "error_for_status",
    "is_retryable_failure",
    "retry_after_seconds",
]
