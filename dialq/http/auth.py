"""Who is asking: the bearer key, found by its digest, bound to its accounts and scopes.

The key itself is never logged, stored or echoed: only its digest is compared, and a refusal
says why without repeating what was sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Final

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from dialq.http.keys import allows, key_digest
from dialq.http.principal import Principal
from dialq.http.problems import ApiProblem
from dialq.http.state import api_state
from dialq.store import apikeys_repo

__all__ = ["Principal", "authenticate", "requires"]

_CHALLENGE: Final = {"WWW-Authenticate": 'Bearer realm="dialq"'}

bearer = HTTPBearer(
    auto_error=False,
    description="A key from `dialq apikey create`, as `Authorization: Bearer dq_...`.",
)


def _refused(detail: str) -> ApiProblem:
    return ApiProblem(401, detail, headers=_CHALLENGE)


def authenticate(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    """The principal of the request's key; 401 when it has none, or one that is not valid."""
    if credentials is None or not credentials.credentials:
        raise _refused("an API key is required: send Authorization: Bearer <key>")
    state = api_state(request)

    def find(digest: str) -> Principal | None:
        with state.database().sessions() as session:
            key = apikeys_repo.find_active(session, digest)
            if key is None:
                return None
            accounts, scopes = frozenset(map(str, key.accounts)), frozenset(map(str, key.scopes))
            return Principal(key.id, accounts, scopes)

    principal = state.known_keys.get(key_digest(credentials.credentials), find)
    if principal is None:
        raise _refused("the API key is not valid (unknown or revoked)")
    return principal


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def broker_answered(request: Request) -> bool | None:
    """Whether this request's rate-limit count, just now, reached the broker's Redis (None:
    the request was not counted)."""
    answered: bool | None = getattr(request.state, "broker_answered", None)
    return answered


def requires(
    scope: str, *or_: str
) -> Callable[[Request, HTTPAuthorizationCredentials | None], Principal]:
    """A dependency: the request's principal, within its key's rate limit (else 429) and
    holding `scope`, or one of `or_` (else 403)."""

    def check(request: Request, credentials: Credentials) -> Principal:
        principal = authenticate(request, credentials)
        counted = api_state(request).rate_limit.count(principal.key_id)
        # The count reached the broker's Redis: a request that must write before it
        # publishes need not probe the broker again (see `broker_answered`).
        request.state.broker_answered = counted.redis_answered
        retry_after_s = counted.retry_after_s
        if retry_after_s is not None:
            raise ApiProblem(
                429,
                f"this API key made too many requests: retry in {retry_after_s} s",
                headers={"Retry-After": str(retry_after_s)},
            )
        if not allows(principal.scopes, scope, *or_):
            raise ApiProblem(403, f"this API key lacks the scope {' or '.join((scope, *or_))}")
        return principal

    return check
