"""Sign-in with an API key (a form, never a URL), and sign-out.

Before a session exists the sign-in form is protected by a double-submit token: a random value
in a SameSite=Strict cookie that the form posts back, so another site cannot sign a browser in
with a key of its choosing.
"""

from __future__ import annotations

import secrets
from typing import Final

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from dialq.http.dashboard.access import COOKIE, CSRF_FIELD, SignedIn, csrf_matches
from dialq.http.dashboard.render import page
from dialq.http.dashboard.sessions import SESSION_TTL_S, close_session, open_session
from dialq.http.keys import key_digest
from dialq.http.problems import ApiProblem
from dialq.http.state import api_state
from dialq.store import apikeys_repo

PREFIX: Final = "/dashboard"
PRE_COOKIE: Final = "dialq_dash_signin"
router = APIRouter(prefix=PREFIX, include_in_schema=False)


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        # Behind https (uvicorn's proxy headers included) the cookie never travels in clear.
        secure=request.url.scheme == "https",
    )


def _sign_in_page(request: Request, error: str | None, status_code: int) -> HTMLResponse:
    token = secrets.token_urlsafe(32)
    response = page(
        request, "signin.html", {"csrf": token, "error": error, "viewer": None}, status_code
    )
    _set_cookie(request, response, PRE_COOKIE, token, max_age=3600)
    return response


@router.get("/sign-in")
def sign_in_form(request: Request) -> HTMLResponse:
    return _sign_in_page(request, None, 200)


@router.post("/sign-in", response_model=None)
async def sign_in(request: Request) -> Response:
    form = await request.form()
    if not csrf_matches(request.cookies.get(PRE_COOKIE, ""), form.get(CSRF_FIELD)) or not (
        request.cookies.get(PRE_COOKIE)
    ):
        raise ApiProblem(403, "the sign-in form's CSRF token is missing or wrong: reload it")
    given = form.get("api_key")
    key = given.strip() if isinstance(given, str) else ""
    state = api_state(request)
    digest = key_digest(key)
    with state.database().sessions() as db:
        found = apikeys_repo.find_active(db, digest) if key else None
    if found is None:
        return _sign_in_page(request, "That API key is not valid (unknown or revoked).", 401)
    token = open_session(state.broker, digest)
    response = RedirectResponse(f"{PREFIX}/calls", status_code=303)
    _set_cookie(request, response, COOKIE, token, max_age=SESSION_TTL_S)
    response.delete_cookie(PRE_COOKIE, path=PREFIX)
    return response


@router.post("/sign-out")
async def sign_out(request: Request, who: SignedIn) -> RedirectResponse:
    form = await request.form()
    if not csrf_matches(who.csrf, form.get(CSRF_FIELD)):
        raise ApiProblem(403, "the form's CSRF token is missing or wrong: reload the page")
    close_session(api_state(request).broker, request.cookies.get(COOKIE, ""))
    response = RedirectResponse(f"{PREFIX}/sign-in", status_code=303)
    response.delete_cookie(COOKIE, path=PREFIX)
    return response
