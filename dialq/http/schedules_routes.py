"""/v1/schedules: planned and recurring calls by name, bound to the key's accounts.

Validation is `dialq.schedules`' own (the CLI's, the TOML file's): a broken schedule is a 422
naming every field, and nothing is stored. A schedule belongs to the account of its call
template; another account's schedule is no more visible than a missing one.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any, Final
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from dialq.config import DEFAULT_ACCOUNT
from dialq.http.auth import Principal, requires
from dialq.http.body import json_object
from dialq.http.keys import CALLS_READ, SCHEDULES_READ, SCHEDULES_WRITE
from dialq.http.links import SCHEDULE_LINKS
from dialq.http.problems import ApiProblem, responses
from dialq.http.schedule_schemas import (
    NextOut,
    ScheduleDetailOut,
    ScheduleOut,
    occurrence_out,
    schedule_account,
    schedule_out,
)
from dialq.http.state import api_state
from dialq.schedules.rules import local_iso
from dialq.schedules.service import SavedSchedule, ScheduleService, UnknownSchedule
from dialq.schedules.spec import NAME_PATTERN, InvalidSchedule, input_schema
from dialq.store import schedules_repo as repo
from dialq.store.errors import translated
from dialq.store.schedule_tables import Schedule
from dialq.validation.errors import FieldError

log = logging.getLogger("dialq.http")
router = APIRouter(prefix="/v1/schedules", tags=["schedules"])

RECENT_OCCURRENCES: Final = 20
_BODY: Final = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": input_schema(),
                "example": {
                    "cron": "0 9 * * 1-5",
                    "timezone": "America/New_York",
                    "call": {"phone_number": "+14155550123", "session_name": "Standup"},
                },
            }
        },
    }
}

Writer = Annotated[Principal, Depends(requires(SCHEDULES_WRITE))]
Reader = Annotated[Principal, Depends(requires(SCHEDULES_READ, CALLS_READ))]
Name = Annotated[str, Path(min_length=1, max_length=100, pattern=NAME_PATTERN)]


def _service(request: Request) -> ScheduleService:
    state = api_state(request)
    state.database()
    with translated():
        return state.runtime.schedules


def _invalid(errors: list[FieldError]) -> ApiProblem:
    return ApiProblem(422, "invalid schedule", errors=errors)


def _owned(service: ScheduleService, principal: Principal, name: str) -> Schedule:
    try:
        row = service.get(name)
    except UnknownSchedule:
        row = None
    if row is None or not principal.sees(schedule_account(row)):
        raise ApiProblem(404, "no such schedule")
    return row


def _with_account(data: dict[str, Any], principal: Principal) -> dict[str, Any]:
    """The call template's account, when the key acts for one account and it names none."""
    call = data.get("call")
    if not isinstance(call, dict) or "account" in call or DEFAULT_ACCOUNT in principal.accounts:
        return data
    if len(principal.accounts) == 1:
        return {**data, "call": {**call, "account": next(iter(principal.accounts))}}
    rule = f"is required: this API key acts for {', '.join(sorted(principal.accounts))}"
    raise _invalid([FieldError("call.account", rule)])


@router.put(
    "/{name}",
    status_code=201,
    response_model=ScheduleOut,
    summary="Create or replace a schedule",
    openapi_extra=_BODY,
    responses={
        201: {"description": "Created", "links": SCHEDULE_LINKS},
        200: {"model": ScheduleOut, "description": "Replaced", "links": SCHEDULE_LINKS},
        **responses(401, 403, 409, 413, 422, 503),
    },
)
async def put_schedule(
    request: Request, response: Response, principal: Writer, name: Name
) -> dict[str, Any]:
    """The schedule of this name, as given (the body's `name` may be left out). 201: created;
    200: replaced (a changed timing starts over from now). 409: the name is taken by another
    account's schedule, or by the schedules file."""
    body = await json_object(request)
    if body.get("name", name) != name:
        raise _invalid([FieldError("name", "differs from the name in the path")])
    data = _with_account({**body, "name": name}, principal)
    # The database work runs in a worker thread, as every plain route's does.
    saved, view = await run_in_threadpool(_put, request, principal, data)
    response.status_code = 201 if saved.created else 200
    response.headers["Location"] = f"{router.prefix}/{name}"
    log.info("schedule %s %s over HTTP by key %s", name,
             "created" if saved.created else "replaced", principal.key_id)  # fmt: skip
    return view


def _put(
    request: Request, principal: Principal, data: dict[str, Any]
) -> tuple[SavedSchedule, dict[str, Any]]:
    service, name = _service(request), str(data["name"])
    try:
        definition = service.parse(data)
    except InvalidSchedule as error:
        raise _invalid(error.errors) from None
    account = str(definition.template.get("account", DEFAULT_ACCOUNT))
    if not principal.sees(account):
        raise ApiProblem(403, f"this API key cannot place calls for account {account}")
    try:
        existing: Schedule | None = service.get(name)
    except UnknownSchedule:
        existing = None
    if existing is not None and not principal.sees(schedule_account(existing)):
        raise ApiProblem(409, "this name is taken by a schedule this key cannot change")
    if existing is not None and existing.source == "file":
        raise ApiProblem(409, "this schedule follows the schedules file: change it there")
    try:
        saved = service.upsert(definition, source="api")
    except InvalidSchedule as error:
        raise _invalid(error.errors) from None
    return saved, schedule_out(service.get(name))


@router.get(
    "", response_model=list[ScheduleOut], summary="List schedules", responses=responses(401, 403)
)
def list_schedules(request: Request, principal: Reader) -> list[dict[str, Any]]:
    """The schedules of the key's accounts, by name."""
    service = _service(request)
    with service.db.sessions() as session:
        rows = repo.list_schedules(session)
    return [schedule_out(r) for r in rows if principal.sees(schedule_account(r))]


@router.get(
    "/{name}",
    response_model=ScheduleDetailOut,
    summary="Read a schedule",
    responses=responses(401, 403, 404, 422),
)
def get_schedule(request: Request, principal: Reader, name: Name) -> dict[str, Any]:
    """The schedule and what became of its recent occurrences."""
    service = _service(request)
    row = _owned(service, principal, name)
    with service.db.sessions() as session:
        recent = repo.recent_occurrences(session, row.id, limit=RECENT_OCCURRENCES)
    return {**schedule_out(row), "recent_occurrences": [occurrence_out(o) for o in recent]}


def _set_enabled(request: Request, principal: Principal, name: str, enabled: bool) -> Any:
    service = _service(request)
    _owned(service, principal, name)
    service.set_enabled(name, enabled)
    log.info("schedule %s %s over HTTP by key %s", name,
             "resumed" if enabled else "paused", principal.key_id)  # fmt: skip
    return schedule_out(service.get(name))


@router.post(
    "/{name}/pause",
    response_model=ScheduleOut,
    summary="Pause a schedule",
    responses=responses(401, 403, 404, 422),
)
def pause(request: Request, principal: Writer, name: Name) -> dict[str, Any]:
    """No occurrence is due while paused; pausing a paused schedule changes nothing."""
    result: dict[str, Any] = _set_enabled(request, principal, name, False)
    return result


@router.post(
    "/{name}/resume",
    response_model=ScheduleOut,
    summary="Resume a schedule",
    responses=responses(401, 403, 404, 422),
)
def resume(request: Request, principal: Writer, name: Name) -> dict[str, Any]:
    """Due again from now on: occurrences missed while paused are not replayed."""
    result: dict[str, Any] = _set_enabled(request, principal, name, True)
    return result


@router.delete(
    "/{name}",
    status_code=204,
    summary="Delete a schedule",
    responses=responses(401, 403, 404, 422),
)
def delete(request: Request, principal: Writer, name: Name) -> Response:
    """The schedule and its occurrence records go; the calls it placed are kept."""
    service = _service(request)
    _owned(service, principal, name)
    try:
        service.remove(name)
    except UnknownSchedule:
        raise ApiProblem(404, "no such schedule") from None
    log.info("schedule %s deleted over HTTP by key %s", name, principal.key_id)
    return Response(status_code=204)


@router.get(
    "/{name}/next",
    response_model=NextOut,
    summary="Next occurrences",
    responses=responses(401, 403, 404, 422),
)
def next_occurrences(
    request: Request,
    principal: Reader,
    name: Name,
    count: Annotated[int, Query(ge=1, le=1000)] = 5,
    after: Annotated[
        datetime | None, Query(description="Default: now. Without an offset: the schedule's clock.")
    ] = None,
) -> NextOut:
    """The next times it places a call, on its own clock and in UTC."""
    service = _service(request)
    row = _owned(service, principal, name)
    zone = ZoneInfo(row.timezone)
    since = after.replace(tzinfo=zone) if after and after.tzinfo is None else after
    instants = service.next_occurrences(name, count, since)
    return NextOut.model_validate(
        {
            "name": row.name,
            "timezone": row.timezone,
            "enabled": row.enabled,
            "occurrences": [{"local": local_iso(i, row.timezone), "utc": i} for i in instants],
        }
    )
