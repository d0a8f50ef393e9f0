"""A call's page (timeline, request, transcript, insights, live) and its two actions."""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from dialq.api import cancel_call, redial_call
from dialq.http.auth import Principal
from dialq.http.dashboard import call_view
from dialq.http.dashboard.access import Actor, SignedIn
from dialq.http.dashboard.live import live
from dialq.http.dashboard.render import fragment, page
from dialq.http.dashboard.signin_routes import PREFIX
from dialq.http.lookup import owned, owned_read
from dialq.http.problems import ApiProblem, unavailable
from dialq.http.state import ApiState, api_state
from dialq.store import Call, Session, insights_repo, schedules_repo, webhooks_repo

router = APIRouter(prefix=PREFIX, include_in_schema=False)

# What an action reports back on the page it returns to (never free text in a URL).
NOTICES: Final = {
    "cancel": "Cancel requested: the call is stopped if live, never dialed if not started.",
    "redial": "Redial requested: the call is back in line.",
}
REDIALABLE: Final = frozenset({"failed", "unknown"})
FINISHED: Final = frozenset({"completed", "failed", "canceled"})


def _read(session: Session, call: Call) -> dict[str, Any]:
    insights = insights_repo.load_insights(session, call.id)
    occurrence = schedules_repo.occurrence_of_loaded_call(call)
    return {
        "call": call_view.call_facts(call),
        "timeline": call_view.timeline(call, webhooks_repo.attempts_of(session, call.id)),
        "request_shown": call_view.masked_request(call),
        "schedule": occurrence[1] if occurrence else None,
        "insights_status": (insights or {}).get("status"),
        "insights_reason": (insights or {}).get("reason"),
        "transcript": call_view.transcript_lines(insights),
        "sections": call_view.insight_sections(insights),
    }


def call_view_of(state: ApiState, principal: Principal, call_id: str) -> dict[str, Any]:
    return owned_read(state, principal, call_id, _read)


@router.get("/calls/{call_id}")
def call_page_view(
    request: Request, who: SignedIn, call_id: str, notice: str | None = None
) -> HTMLResponse:
    view = call_view_of(api_state(request), who.principal, call_id)
    status = view["call"]["status"]
    context = {
        "viewer": who,
        "notice": NOTICES.get(notice or ""),
        "can_cancel": who.can_write and status not in FINISHED,
        "can_redial": who.can_write and status in REDIALABLE,
        **view,
    }
    return page(request, "call.html", context)


@router.get("/calls/{call_id}/live")
def call_stream(request: Request, who: SignedIn, call_id: str) -> EventSourceResponse:
    state = api_state(request)
    call_view_of(state, who.principal, call_id)  # 404 now, not in the stream

    def parts() -> dict[str, str]:
        return {"call": fragment("call_live.html", call_view_of(state, who.principal, call_id))}

    return live(request, parts)


@router.post("/calls/{call_id}/cancel")
async def cancel(request: Request, who: Actor, call_id: str) -> RedirectResponse:
    state = api_state(request)
    await run_in_threadpool(owned, state, who.principal, call_id, lambda call: call.id)
    await run_in_threadpool(lambda: cancel_call(call_id, settings=state.settings))
    return RedirectResponse(f"{PREFIX}/calls/{call_id}?notice=cancel", status_code=303)


@router.post("/calls/{call_id}/redial")
async def redial(request: Request, who: Actor, call_id: str) -> RedirectResponse:
    state = api_state(request)
    await run_in_threadpool(owned, state, who.principal, call_id, lambda call: call.id)
    if not await run_in_threadpool(state.broker_answers):
        raise unavailable("broker")
    by = f"API key {who.principal.key_id} (dashboard)"
    result = await run_in_threadpool(lambda: redial_call(call_id, by=by, settings=state.settings))
    if not result.changed:
        raise ApiProblem(409, f"not redialed: {result.message}")
    return RedirectResponse(f"{PREFIX}/calls/{call_id}?notice=redial", status_code=303)
