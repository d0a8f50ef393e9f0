"""The schedules page (next occurrences in the zone and in UTC, recent ones linked to their
calls, pause and resume) and the health page (what `dialq doctor` checks, live)."""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from dialq.config import DEFAULT_ACCOUNT
from dialq.http.auth import Principal
from dialq.http.dashboard.access import Actor, SignedIn
from dialq.http.dashboard.live import live
from dialq.http.dashboard.render import fragment, page
from dialq.http.dashboard.signin_routes import PREFIX
from dialq.http.keys import ADMIN
from dialq.http.problems import ApiProblem
from dialq.http.state import ApiState, api_state
from dialq.ops import doctor
from dialq.schedules.rules import local_iso, utc_iso
from dialq.store import schedules_repo

router = APIRouter(prefix=PREFIX, include_in_schema=False)

NEXT_SHOWN: Final = 5
RECENT_SHOWN: Final = 5


def _account(template: dict[str, Any]) -> str:
    return str(template.get("account") or DEFAULT_ACCOUNT)


def _timing(row: Any) -> str:
    if row.kind == "cron":
        return f"cron {row.cron}"
    if row.kind == "every":
        return f"every {row.every_s} s"
    return "once"


def schedules_view(state: ApiState, principal: Principal) -> list[dict[str, Any]]:
    shown: list[dict[str, Any]] = []
    with state.database().sessions() as session:
        for row in schedules_repo.list_schedules(session):
            if not principal.sees(_account(row.template or {})):
                continue
            recent = schedules_repo.recent_occurrences(session, row.id, limit=RECENT_SHOWN)
            shown.append(
                {
                    "name": row.name,
                    "account": _account(row.template or {}),
                    "timing": _timing(row),
                    "timezone": row.timezone,
                    "enabled": row.enabled,
                    "recent": [
                        {"local": local_iso(o.occurrence_at, row.timezone),
                         "outcome": o.outcome, "call_id": o.call_id}
                        for o in recent
                    ],
                }
            )  # fmt: skip
    service = state.runtime.schedules
    for entry in shown:
        upcoming = service.next_occurrences(entry["name"], NEXT_SHOWN) if entry["enabled"] else []
        entry["next"] = [
            {"local": local_iso(at, entry["timezone"]), "utc": utc_iso(at)} for at in upcoming
        ]
    return shown


@router.get("/schedules")
def schedules_page(request: Request, who: SignedIn) -> HTMLResponse:
    view = schedules_view(api_state(request), who.principal)
    return page(request, "schedules.html", {"viewer": who, "schedules": view})


async def _set_enabled(request: Request, who: Actor, name: str, enabled: bool) -> None:
    state = api_state(request)
    visible = {s["name"] for s in await run_in_threadpool(schedules_view, state, who.principal)}
    if name not in visible:
        raise ApiProblem(404, "no such schedule")
    service = state.runtime.schedules
    await run_in_threadpool(service.set_enabled, name, enabled)


@router.post("/schedules/{name}/pause")
async def pause(request: Request, who: Actor, name: str) -> RedirectResponse:
    await _set_enabled(request, who, name, False)
    return RedirectResponse(f"{PREFIX}/schedules", status_code=303)


@router.post("/schedules/{name}/resume")
async def resume(request: Request, who: Actor, name: str) -> RedirectResponse:
    await _set_enabled(request, who, name, True)
    return RedirectResponse(f"{PREFIX}/schedules", status_code=303)


# `dialq doctor` pings workers and asks Symbl for tokens: every few seconds is plenty.
HEALTH_POLL_S: Final = 5.0


def health_view(state: ApiState) -> dict[str, Any]:
    checks, elapsed_s = doctor.timed(state.settings)
    return {"checks": checks, "elapsed_s": elapsed_s, "ok": all(c.ok for c in checks)}


@router.get("/health")
async def health_page(request: Request, who: SignedIn) -> HTMLResponse:
    # Doctor's details name servers, ports and workers: an operator's, not every key's.
    if not who.can(ADMIN):
        return page(request, "needs_admin.html", {"viewer": who, "what": "Health"}, 403)
    view = await run_in_threadpool(health_view, api_state(request))
    return page(request, "health.html", {"viewer": who, **view})


@router.get("/health-live")
def health_stream(request: Request, who: SignedIn) -> EventSourceResponse:
    if not who.can(ADMIN):
        raise ApiProblem(403, f"this API key lacks the scope {ADMIN}")
    state = api_state(request)

    def parts() -> dict[str, str]:
        return {"health": fragment("health_live.html", health_view(state))}

    return live(request, parts, poll_s=HEALTH_POLL_S)
