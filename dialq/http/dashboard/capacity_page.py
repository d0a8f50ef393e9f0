"""The capacity page: per account, permits in use against the learned and configured limit,
the waiting line in the order it is served, 429s, the API circuit, and live calls over the
last hour as a chart."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sse_starlette import EventSourceResponse

from dialq.clock import utcnow
from dialq.http.auth import Principal
from dialq.http.dashboard.access import SignedIn
from dialq.http.dashboard.live import live
from dialq.http.dashboard.render import age, fragment, masked_target, page
from dialq.http.dashboard.series import live_steps
from dialq.http.dashboard.signin_routes import PREFIX
from dialq.http.keys import ADMIN
from dialq.http.problems import ApiProblem
from dialq.http.state import ApiState, api_state
from dialq.store import dashboard_repo

router = APIRouter(prefix=PREFIX, include_in_schema=False)

WINDOW: Final = timedelta(hours=1)
# The head of the line is what an operator acts on; the count says how long it is.
LINE_SHOWN: Final = 50


def _accounts(state: ApiState, principal: Principal) -> list[str]:
    return sorted(principal.accounts & set(state.settings.accounts))


def capacity_view(state: ApiState, principal: Principal) -> dict[str, Any]:
    accounts = _accounts(state, principal)
    runtime = state.runtime
    with state.database().sessions() as session:
        line = dashboard_repo.waiting_line(session, accounts, limit=LINE_SHOWN)
        spans = dashboard_repo.live_spans(session, accounts, utcnow() - WINDOW)
        waiting = [
            {"id": c.id, "account": c.account, "priority": c.priority, "wait": age(c.created_at),
             "target": masked_target(c.phone_number, c.sip_uri), "reason": c.reason or ""}
            for c in line
        ]  # fmt: skip
    now = utcnow()
    rows = []
    for account in accounts:
        usage = runtime.capacity.usage(account)
        _, counts = live_steps([(c, e) for a, c, e in spans if a == account], now - WINDOW, now)
        rows.append(
            {
                "usage": usage,
                "circuit": runtime.circuit.state(account, time.time()),
                "waiting": sum(1 for w in waiting if w["account"] == account),
                "peak": max(counts),
            }
        )
    return {"rows": rows, "line": waiting}


def series_view(state: ApiState, principal: Principal) -> dict[str, Any]:
    accounts = _accounts(state, principal)
    now = utcnow()
    with state.database().sessions() as session:
        spans = dashboard_repo.live_spans(session, accounts, now - WINDOW)
    charts = []
    for account in accounts:
        usage = state.runtime.capacity.usage(account)
        times, counts = live_steps([(c, e) for a, c, e in spans if a == account], now - WINDOW, now)
        charts.append(
            {
                "account": account,
                "times": times,
                "live": counts,
                "configured": usage.configured_limit,
                "learned": usage.learned_limit,
            }
        )
    return {"charts": charts}


@router.get("/capacity")
def capacity_page(request: Request, who: SignedIn) -> HTMLResponse:
    if not who.can(ADMIN):
        return page(request, "needs_admin.html", {"viewer": who, "what": "Capacity"}, 403)
    view = capacity_view(api_state(request), who.principal)
    return page(request, "capacity.html", {"viewer": who, **view})


@router.get("/capacity-live")
def capacity_stream(request: Request, who: SignedIn) -> EventSourceResponse:
    if not who.can(ADMIN):
        raise ApiProblem(403, f"this API key lacks the scope {ADMIN}")
    state = api_state(request)

    def parts() -> dict[str, str]:
        return {
            "capacity": fragment("capacity_live.html", capacity_view(state, who.principal)),
            "series": json.dumps(series_view(state, who.principal)),
        }

    return live(request, parts)
