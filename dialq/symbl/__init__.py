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
    CredentialsError,
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
from dialq.symbl.headers import retry_after_seconds
from dialq.symbl.retry import is_retryable_failure
from dialq.symbl.sent import classify_transport_error

__all__ = [
    "APIStatusError",
    "AttemptRecord",
    "AuthenticationError",
    "BadRequestError",
    "CachedToken",
    "CapacityError",
    "ConflictError",
    "CredentialsError",
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
    "classify_transport_error",
    "error_for_status",
    "is_retryable_failure",
    "retry_after_seconds",
]
