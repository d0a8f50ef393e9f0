"""The calls page: counts per state, and a live table of the viewer's calls, filtered."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
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
# As over the API: a session name is at most 200 characters, a schedule name 100.
MAX_SEARCH_CHARS: Final = 200
MAX_SCHEDULE_CHARS: Final = 100


@dataclass(frozen=True)
class Filters:
    """The API's call filters, as the page's form gives them (every field optional)."""

    status: CallStatus | None
    account: str | None
    search: str
    schedule: str = ""
    created_after: datetime | None = None
    created_before: datetime | None = None

    def query(self) -> str:
        pairs = {
            "status": self.status or "",
            "account": self.account or "",
            "search": self.search,
            "schedule": self.schedule,
            "created_after": _day(self.created_after),
            "created_before": _day(self.created_before),
        }
        return urlencode({k: v for k, v in pairs.items() if v})

    def where(self, accounts: frozenset[str]) -> CallFilter:
        return CallFilter(
            accounts=accounts,
            status=self.status.value if self.status else None,
            created_after=self.created_after,
            created_before=self.created_before,
            schedule=self.schedule or None,
            search=self.search or None,
        )


def _day(moment: datetime | None) -> str:
    return moment.date().isoformat() if moment else ""


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
    with state.database().sessions() as session:
        counts = dashboard_repo.status_counts(session, accounts)
        calls = page_of_calls(session, filters.where(frozenset(accounts)), limit=SHOWN)
        rows = [_row(call) for call in calls]
    return {
        "counts": [(status.value, counts.get(status.value, 0)) for status in CallStatus],
        "total": sum(counts.values()),
        "rows": rows,
    }


def _printable(text: str | None, limit: int) -> str:
    """A filter's text as the API would take it: control characters (PostgreSQL refuses a NUL)
    dropped, cut to the API's bound."""
    return "".join(c for c in (text or "") if c.isprintable()).strip()[:limit]


def _date(text: str | None) -> datetime | None:
    """A day from the form's date input (UTC midnight); anything else is no filter."""
    try:
        return datetime.combine(date.fromisoformat(text or ""), time(), tzinfo=UTC)
    except ValueError:
        return None


def _filters(
    status: CallStatus | None,
    account: str | None,
    search: str | None,
    schedule: str | None = None,
    created_after: str | None = None,
    created_before: str | None = None,
) -> Filters:
    return Filters(
        status=status,
        account=account or None,
        search=_printable(search, MAX_SEARCH_CHARS),
        schedule=_printable(schedule, MAX_SCHEDULE_CHARS),
        created_after=_date(created_after),
        created_before=_date(created_before),
    )


StatusQ = Annotated[CallStatus | None, Query()]


@router.get("/calls")
def calls_page(
    request: Request,
    who: SignedIn,
    status: Annotated[str | None, Query()] = None,
    account: str | None = None,
    search: str | None = None,
    schedule: str | None = None,
    created_after: str | None = None,
    created_before: str | None = None,
) -> HTMLResponse:
    chosen = CallStatus(status) if status in set(CallStatus) else None
    filters = _filters(chosen, account, search, schedule, created_after, created_before)
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
    schedule: str | None = None,
    created_after: str | None = None,
    created_before: str | None = None,
) -> EventSourceResponse:
    filters = _filters(status, account, search, schedule, created_after, created_before)
    state = api_state(request)

    def parts() -> dict[str, str]:
        view = calls_view(state, who.principal, filters)
        return {"calls": fragment("calls_live.html", {"filters": filters, **view})}

    return live(request, parts)
