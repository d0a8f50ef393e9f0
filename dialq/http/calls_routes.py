"""/v1/calls: place a call, list calls, read one, cancel one."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import AwareDatetime
from starlette.concurrency import run_in_threadpool

from dialq.api import cancel_call, redial_call
from dialq.calls.enqueue import Placed
from dialq.calls.read import call_detail, call_summary
from dialq.calls.request import CallRequest, InvalidCallRequest, parse_call_request
from dialq.calls.states import CallStatus
from dialq.config import DEFAULT_ACCOUNT
from dialq.http.auth import Credentials, Principal, broker_answered, requires
from dialq.http.body import parse_object, read_body
from dialq.http.cursor import decode_cursor, encode_cursor
from dialq.http.keys import CALLS_READ, CALLS_WRITE
from dialq.http.links import CALL_LINKS
from dialq.http.lookup import owned
from dialq.http.problems import ApiProblem, responses, unavailable
from dialq.http.schemas import CallDetailOut, CallOut, CallPage, CancelOut, RedialOut
from dialq.http.state import ApiState, api_state
from dialq.store import Call
from dialq.store.call_pages_repo import CallFilter, page_of_calls
from dialq.validation.errors import FieldError

log = logging.getLogger("dialq.http")
router = APIRouter(prefix="/v1/calls", tags=["calls"])

KEY_FIELD: Final = "idempotency_key"
# A session name is at most 200 characters: a longer term can match nothing.
MAX_SEARCH_CHARS: Final = 200
# No control characters in a filter: PostgreSQL refuses a NUL in any text it is sent.
PRINTABLE: Final = r"^[^\x00-\x1f\x7f]+$"
# The body is read by hand (size limit, dialq's own validation): its schema is the model's.
_CALL_REQUEST_BODY: Final = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": CallRequest.model_json_schema(),
                "example": {"phone_number": "+14155550123", "session_name": "Standup"},
            }
        },
    }
}

Writer = Annotated[Principal, Depends(requires(CALLS_WRITE))]
# POST /v1/calls checks its key in the same worker thread as its writes (see _placed).
_may_place = requires(CALLS_WRITE)
Reader = Annotated[Principal, Depends(requires(CALLS_READ))]


def _with_key(data: dict[str, Any], header: str | None) -> dict[str, Any]:
    """The body with the Idempotency-Key header as its key; both given must agree."""
    if header is None:
        return data
    given = data.get(KEY_FIELD)
    if given is not None and given != header:
        rule = "differs from the Idempotency-Key header: give one, or the same in both"
        raise ApiProblem(422, "invalid call request", errors=[FieldError(KEY_FIELD, rule)])
    return {**data, KEY_FIELD: header}


def _with_at(data: dict[str, Any]) -> dict[str, Any]:
    """`at` is another name for `not_before` (a delayed call): give one of them."""
    if "at" not in data:
        return data
    if "not_before" in data:
        rule = "is another name for not_before: give one of them"
        raise ApiProblem(422, "invalid call request", errors=[FieldError("at", rule)])
    rest = {k: v for k, v in data.items() if k != "at"}
    return {**rest, "not_before": data["at"]}


def _with_account(data: dict[str, Any], principal: Principal) -> dict[str, Any]:
    """A key for one account places its calls there without naming it; a key for several
    must name one, unless `default` is among them (the request's own default)."""
    if "account" in data or DEFAULT_ACCOUNT in principal.accounts:
        return data
    if len(principal.accounts) == 1:
        return {**data, "account": next(iter(principal.accounts))}
    rule = f"is required: this API key acts for {', '.join(sorted(principal.accounts))}"
    raise ApiProblem(422, "invalid call request", errors=[FieldError("account", rule)])


def _parsed(state: ApiState, data: dict[str, Any]) -> CallRequest:
    try:
        return parse_call_request(
            data,
            allowed_country_codes=state.settings.allowed_country_codes,
            summary_email_domains=state.settings.summary_email_domains,
        )
    except InvalidCallRequest as error:
        raise ApiProblem(422, "invalid call request", errors=error.errors) from None


def _placed(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None,
    body: bytes,
    idempotency_key: str | None,
) -> tuple[Placed, Principal]:
    """Everything of a POST after its body is read, in one worker thread: the key (401, 429,
    403), the request (422), the broker probe (503), then the writes; the call comes back as
    written, not read again."""
    principal = _may_place(request, credentials)
    state = api_state(request)
    data = _with_account(_with_key(parse_object(body), idempotency_key), principal)
    call_request = _parsed(state, _with_at(data))
    if not principal.sees(call_request.account):
        raise ApiProblem(403, f"this API key cannot place calls for account {call_request.account}")
    # Checked before anything is written: a call recorded while Redis is down would wait for
    # the sweeper; the client learns now and retries with its key. The key's rate-limit count
    # just asked the broker's Redis (and a count it could not answer is that probe, failed).
    answered = broker_answered(request)
    if not (state.broker_answers() if answered is None else answered):
        raise unavailable("broker")
    try:
        by = f"key {principal.key_id} over HTTP"  # its log line says who placed it
        return state.service().place(call_request, by=by), principal
    except InvalidCallRequest as error:
        if any(e.field == KEY_FIELD for e in error.errors):
            raise ApiProblem(409, str(error), errors=error.errors) from None
        raise ApiProblem(422, "invalid call request", errors=error.errors) from None


def _detail(call: Call) -> dict[str, Any]:
    return {**call_detail(call), "request": call.request}


@router.post(
    "",
    status_code=201,
    response_model=CallOut,
    summary="Place a call",
    openapi_extra=_CALL_REQUEST_BODY,
    responses={
        201: {"description": "Made now", "links": CALL_LINKS},
        200: {
            "model": CallOut,
            "description": "A replay: the call this key already made",
            "links": CALL_LINKS,
        },
        **responses(401, 403, 409, 413, 422, 503),
    },
)
async def place_call(
    request: Request,
    response: Response,
    credentials: Credentials,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> dict[str, Any]:
    """Record the call (queued) and hand it to the workers. 201: made now; 200: the same
    request with the same key made it before; 409: the key was used for another request.
    Needs the scope calls:write."""
    body = await read_body(request)
    # One hop to a worker thread for the key, the checks and the writes (the busiest route).
    placed, principal = await run_in_threadpool(
        _placed, request, credentials, body, idempotency_key
    )
    call_id, created = placed.handle.id, placed.handle.created
    response.status_code = 201 if created else 200
    response.headers["Location"] = f"{router.prefix}/{call_id}"
    if not created:  # a new call's own log line names the key already
        log.info("call %s replayed over HTTP by key %s", call_id, principal.key_id)
    return call_summary(placed.call)


@router.get("", response_model=CallPage, summary="List calls", responses=responses(401, 403, 422))
def list_calls(
    request: Request,
    principal: Reader,
    status: CallStatus | None = None,
    account: Annotated[str | None, Query(description="Default: every account of the key.")] = None,
    created_after: AwareDatetime | None = None,
    created_before: AwareDatetime | None = None,
    schedule: Annotated[
        str | None,
        Query(max_length=100, pattern=PRINTABLE, description="Only calls this schedule placed."),
    ] = None,
    search: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=MAX_SEARCH_CHARS,
            pattern=PRINTABLE,
            description="A part of the session name, in any case.",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the last page.")] = None,
) -> CallPage:
    """The key's calls, newest first, a page at a time."""
    if account is not None and not principal.sees(account):
        raise ApiProblem(403, f"this API key cannot read calls of account {account}")
    after = _cursor(cursor)
    where = CallFilter(
        accounts={account} if account else principal.accounts,
        status=status.value if status else None,
        created_after=created_after,
        created_before=created_before,
        schedule=schedule,
        search=search,
    )
    with api_state(request).database().sessions() as session:
        calls = page_of_calls(session, where, limit=limit, after=after)
    last = calls[-1] if len(calls) == limit else None
    return CallPage.model_validate(
        {
            "items": [call_summary(call) for call in calls],
            "next_cursor": encode_cursor(last.created_at, last.id) if last else None,
        }
    )


def _cursor(cursor: str | None) -> tuple[datetime, str] | None:
    if cursor is None:
        return None
    try:
        return decode_cursor(cursor)
    except ValueError:
        rule = "is not a cursor this API gave out: pass next_cursor as it came"
        raise ApiProblem(
            422, "invalid parameters", errors=[FieldError("query.cursor", rule)]
        ) from None


@router.get(
    "/{call_id}",
    response_model=CallDetailOut,
    summary="Read a call",
    responses=responses(401, 403, 404),
)
def get_call(request: Request, principal: Reader, call_id: str) -> dict[str, Any]:
    """The call with its attempts, its events and its stored request."""
    return owned(api_state(request), principal, call_id, _detail)


@router.post(
    "/{call_id}/cancel",
    response_model=CancelOut,
    summary="Cancel a call",
    responses=responses(401, 403, 404, 503),
)
def cancel(request: Request, principal: Writer, call_id: str) -> CancelOut:
    """Never dialed if not started, stopped if live, left as it is if finished."""
    state = api_state(request)
    owned(state, principal, call_id, lambda call: call.id)
    result = cancel_call(call_id, settings=state.settings)
    return CancelOut(
        id=call_id, status=result.status, changed=result.changed, message=result.message
    )


@router.post(
    "/{call_id}/redial",
    response_model=RedialOut,
    summary="Redial a failed or unknown call",
    responses=responses(401, 403, 404, 409, 503),
)
def redial(request: Request, principal: Writer, call_id: str) -> RedialOut:
    """An operator's decision: the call goes back in line with a fresh deadline, and its events
    record which key asked. An `unknown` call may be live at Symbl already: check first. 409
    when the call is in any other state (it is left as it is)."""
    state = api_state(request)
    owned(state, principal, call_id, lambda call: call.id)
    if not state.broker_answers():
        raise unavailable("broker")
    result = redial_call(call_id, by=f"API key {principal.key_id}", settings=state.settings)
    if not result.changed:
        raise ApiProblem(409, f"not redialed: {result.message}")
    log.info("call %s redialed over HTTP by key %s", call_id, principal.key_id)
    return RedialOut(
        id=call_id, status=result.status, changed=result.changed, message=result.message
    )
