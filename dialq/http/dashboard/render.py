"""The templates, and the few filters they share: masked targets, ages and durations."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from fastapi import Request
from fastapi.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from dialq.clock import utcnow
from dialq.validation.fields import mask_phone, mask_sip_uri

HERE: Final = Path(__file__).parent
# Pages are never cached: they show live data and a per-session CSRF token.
NO_STORE: Final = {"Cache-Control": "no-store"}
# Scripts and styles from this origin only (vendored files), never framed by another site.
CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


def masked_target(phone_number: str | None, sip_uri: str | None) -> str:
    if phone_number:
        return mask_phone(phone_number)
    if sip_uri:
        return mask_sip_uri(sip_uri)
    return ""


def span(seconds: float | None) -> str:
    """12 s, 3 min 4 s, 2 h 5 min: as short as the reader needs."""
    if seconds is None:
        return ""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


def age(at: datetime | str | None, now: datetime | None = None) -> str:
    if at is None:
        return ""
    moment = datetime.fromisoformat(at) if isinstance(at, str) else at
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return span(((now or utcnow()) - moment).total_seconds())


def clock_time(at: datetime | str | None) -> str:
    if at is None:
        return ""
    moment = datetime.fromisoformat(at) if isinstance(at, str) else at
    return moment.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if moment.utcoffset() is not None else "")


templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters.update(age=age, span=span, clock=clock_time)


def page(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """A whole page (or a fragment) rendered with the request, without caching."""
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    response.headers.update(NO_STORE)
    response.headers["Content-Security-Policy"] = CSP
    return response


def fragment(name: str, context: dict[str, Any]) -> str:
    """A fragment's HTML, for an SSE event."""
    return templates.get_template(name).render(context)
