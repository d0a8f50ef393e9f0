"""Who is looking: the session cookie's key, and the CSRF check every POST action passes."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated, Final

import redis
from fastapi import Depends, Request

from dialq.http.auth import Principal
from dialq.http.dashboard.sessions import load_session
from dialq.http.keys import CALLS_WRITE, allows
from dialq.http.problems import ApiProblem
from dialq.http.state import api_state
from dialq.store import apikeys_repo

COOKIE: Final = "dialq_dash"
CSRF_FIELD: Final = "csrf"


class SignInNeeded(Exception):
    """Raised when a page is asked for without a live session: the answer sends to sign-in."""


@dataclass(frozen=True)
class Viewer:
    """A signed-in browser: its key's principal and its session's CSRF token."""

    principal: Principal
    csrf: str

    @property
    def can_write(self) -> bool:
        return allows(self.principal.scopes, CALLS_WRITE)

    def can(self, scope: str) -> bool:
        return allows(self.principal.scopes, scope)


def viewer(request: Request) -> Viewer:
    """The signed-in viewer; SignInNeeded without a session or when its key was revoked."""
    token = request.cookies.get(COOKIE)
    if not token:
        raise SignInNeeded
    state = api_state(request)
    try:
        session = load_session(state.broker, token)
    except redis.RedisError:
        raise ApiProblem(503, "sessions are unavailable: Redis does not answer") from None
    if session is None:
        raise SignInNeeded
    with state.database().sessions() as db:
        key = apikeys_repo.find_active(db, session.key_digest)
    if key is None:
        raise SignInNeeded
    principal = Principal(
        key.id, frozenset(map(str, key.accounts)), frozenset(map(str, key.scopes))
    )
    return Viewer(principal, session.csrf)


SignedIn = Annotated[Viewer, Depends(viewer)]


def csrf_matches(expected: str, given: object) -> bool:
    return isinstance(given, str) and secrets.compare_digest(expected.encode(), given.encode())


async def checked_action(request: Request, who: SignedIn) -> Viewer:
    """A POST action's viewer: its form carries the session's CSRF token (else 403) and its
    key may write (else 403)."""
    form = await request.form()
    if not csrf_matches(who.csrf, form.get(CSRF_FIELD)):
        raise ApiProblem(403, "the form's CSRF token is missing or wrong: reload the page")
    if not who.can_write:
        raise ApiProblem(403, f"this API key lacks the scope {CALLS_WRITE}")
    return who


Actor = Annotated[Viewer, Depends(checked_action)]
