"""The FastAPI application: state, error handlers, routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from dialq.api import close_runtimes
from dialq.config import Settings
from dialq.http import (
    calls_routes,
    dashboard,
    events_routes,
    ops_routes,
    problems,
    results_routes,
    schedules_routes,
)
from dialq.http.state import ApiState
from dialq.store import DatabaseUnavailable

log = logging.getLogger("dialq.http")

DESCRIPTION = """Place, follow and cancel transcribed phone calls.

Every `/v1` request needs `Authorization: Bearer <key>` (`dialq apikey create`); a key acts
for its accounts only. Errors are RFC 9457 problem details. See docs/http-api.md."""


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API for these settings (default: from the environment)."""
    state = ApiState.build(settings or Settings())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            state.database()  # migrates now (DIALQ_AUTO_MIGRATE), not on the first request
        except DatabaseUnavailable:
            log.warning("database unavailable at start; /readyz says when it is back")
        yield
        state.broker.close()
        close_runtimes()

    app = FastAPI(title="dialq", version="1", description=DESCRIPTION, lifespan=lifespan)
    app.state.dialq = state
    problems.install(app)
    for routes in (calls_routes, events_routes, results_routes, schedules_routes, ops_routes):
        app.include_router(routes.router)
    dashboard.mount(app)
    return app
