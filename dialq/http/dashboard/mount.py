"""Mounting the dashboard into the API's application."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from dialq.http.dashboard import (
    call_page,
    calls_pages,
    capacity_page,
    ops_pages,
    signin_routes,
)
from dialq.http.dashboard.access import SignInNeeded
from dialq.http.dashboard.render import HERE
from dialq.http.dashboard.signin_routes import PREFIX


async def _to_sign_in(_request: Request, _error: Exception) -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/sign-in", status_code=303)


def mount(app: FastAPI) -> None:
    """Serve the dashboard's pages under /dashboard and its vendored files under
    /dashboard/static."""
    app.add_exception_handler(SignInNeeded, _to_sign_in)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="dashboard-static")
    for routes in (signin_routes, calls_pages, call_page, capacity_page, ops_pages):
        app.include_router(routes.router)

    @app.get(PREFIX, include_in_schema=False)
    def _home() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/calls", status_code=303)
