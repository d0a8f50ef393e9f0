"""The calls page: counts per state, and a live table of the viewer's calls, filtered."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Final
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sse_starlette import EventSourceResponse

from dialq.calls.states import CallStatus
from dialq.http.auth import Principal
from dialq.http.dashboard.access import SignedIn
from dialq.http.dashboard.live import live
from dialq.http.dashboard.render import age, fragment, masked_target, page, span
from dialq.http.dashboard.signin_routes import PREFIX
from dialq.http.state import ApiState, api_state
from dialq.store import Call, dashboard_repo
from dialq.store.call_pages_repo import CallFilter, page_of_calls

router = APIRouter(prefix=PREFIX, include_in_schema=False)

# A screenful: the table is for following what happens now, `dialq calls` for history.
SHOWN: Final = 100
# A search looks through this many of the newest calls for a matching session name.
SEARCHED: Final = 1000


@dataclass(frozen=True)
class Filters:
    status: CallStatus | None
    account: str | None
    search: str

    def query(self) -> str:
        pairs = {"status": self.status or "", "account": self.account or "", "search": self.search}
        return urlencode({k: v for k, v in pairs.items() if v})


def _row(call: Call) -> dict[str, Any]:
    return {
        "id": call.id,
        "status": call.status,
        "age": age(call.created_at),
        "created_at": call.created_at.isoformat(),
        "account": call.account,
        "target": masked_target(call.phone_number, call.sip_uri),
        "session_name": (call.request or {}).get("session_name") or "",
        "duration": span(call.duration_s),
        "reason": call.reason or "",
    }


def calls_view(state: ApiState, principal: Principal, filters: Filters) -> dict[str, Any]:
    accounts = {filters.account} & principal.accounts if filters.account else principal.accounts
    where = CallFilter(accounts=accounts, status=filters.status.value if filters.status else None)
    needle = filters.search.casefold()
    with state.database().sessions() as session:
        counts = dashboard_repo.status_counts(session, accounts)
        calls = page_of_calls(session, where, limit=SEARCHED if needle else SHOWN)
        rows = [_row(call) for call in calls]
    if needle:
        rows = [row for row in rows if needle in str(row["session_name"]).casefold()][:SHOWN]
    return {
        "counts": [(status.value, counts.get(status.value, 0)) for status in CallStatus],
        "total": sum(counts.values()),
        "rows": rows,
    }


def _filters(status: CallStatus | None, account: str | None, search: str | None) -> Filters:
    return Filters(status=status, account=account or None, search=(search or "").strip())


StatusQ = Annotated[CallStatus | None, Query()]


@router.get("/calls")
def calls_page(
    request: Request,
    who: SignedIn,
    status: Annotated[str | None, Query()] = None,
    account: str | None = None,
    search: str | None = None,
) -> HTMLResponse:
    chosen = CallStatus(status) if status in set(CallStatus) else None
    filters = _filters(chosen, account, search)
    view = calls_view(api_state(request), who.principal, filters)
    context = {"viewer": who, "filters": filters, "statuses": list(CallStatus), **view}
    return page(request, "calls.html", context)


@router.get("/calls-live")
def calls_stream(
    request: Request,
    who: SignedIn,
    status: StatusQ = None,
    account: str | None = None,
    search: str | None = None,
) -> EventSourceResponse:
    filters = _filters(status, account, search)
    state = api_state(request)

    def parts() -> dict[str, str]:
        view = calls_view(state, who.principal, filters)
        return {"calls": fragment("calls_live.html", {"filters": filters, **view})}

    return live(request, parts)
