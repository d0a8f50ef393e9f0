"""GET /v1/calls/{id}/events: a call's state changes as Server-Sent Events, live.

The stream polls the database (the source of truth) rather than a pub/sub channel: an event is
a row before anyone may see it, so a follower that reconnects with `Last-Event-ID` misses
nothing and sees nothing twice.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Header, Request
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from dialq.calls.states import CallStatus
from dialq.http.auth import Principal, requires
from dialq.http.keys import CALLS_READ
from dialq.http.lookup import owned
from dialq.http.problems import ApiProblem, responses
from dialq.http.schemas import EventOut
from dialq.http.state import ApiState, api_state
from dialq.store import Call, Event
from dialq.validation.errors import FieldError

router = APIRouter(prefix="/v1/calls", tags=["calls"])

# How often a stream looks for new events: live enough to follow, cheap for the database.
POLL_S: Final = 0.5
# A comment line this often keeps proxies from closing a quiet stream.
PING_S: Final = 15
EVENT_STREAM: Final = "text/event-stream"

Reader = Annotated[Principal, Depends(requires(CALLS_READ))]


def _after(last_event_id: str | None) -> int:
    if last_event_id is None:
        return 0
    if not last_event_id.isdigit():
        rule = "must be the id (seq) of an event this stream sent"
        raise ApiProblem(
            422, "invalid parameters", errors=[FieldError("header.Last-Event-ID", rule)]
        )
    return int(last_event_id)


Poll = tuple[bool, list[dict[str, Any]]]


def _event_data(event: Event) -> dict[str, Any]:
    row = {"seq": event.seq, "at": event.at, "from": event.from_status, "to": event.to_status}
    out = EventOut.model_validate({**row, "detail": event.detail})
    return out.model_dump(mode="json", by_alias=True)


def _newer(after: int) -> Callable[[Call], Poll]:
    """What a poll reads: whether the call is over, then its events past `after`. The status is
    read first, so a final status's own event is among the events read after it."""

    def read(call: Call) -> Poll:
        final = CallStatus(call.status).is_terminal
        events = sorted((e for e in call.events if e.seq > after), key=lambda e: e.seq)
        return final, [_event_data(e) for e in events]

    return read


async def _stream(
    state: ApiState, principal: Principal, call_id: str, after: int
) -> AsyncIterator[ServerSentEvent]:
    while True:
        final, events = await run_in_threadpool(owned, state, principal, call_id, _newer(after))
        for event in events:
            after = int(event["seq"])
            yield ServerSentEvent(
                json.dumps({"call_id": call_id, **event}), event=str(event["to"]), id=str(after)
            )
        if final:
            return
        await asyncio.sleep(POLL_S)


@router.get(
    "/{call_id}/events",
    summary="Follow a call's events (Server-Sent Events)",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "One SSE event per state change: `id` its seq, `event` the state "
            "it moved to, `data` the event as JSON. Ends once the call is over.",
            "content": {EVENT_STREAM: {"schema": {"type": "string"}}},
        },
        **responses(401, 403, 404, 422),
    },
)
async def follow_events(
    request: Request,
    principal: Reader,
    call_id: str,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", description="Resume after this event's seq.")
    ] = None,
) -> EventSourceResponse:
    """Every event of the call from the first (or after `Last-Event-ID`), then each new one as
    it happens, polled every half second; the stream ends after the call's final state."""
    state = api_state(request)
    after = _after(last_event_id)
    await run_in_threadpool(owned, state, principal, call_id, lambda call: call.id)  # 404 now
    stream = _stream(state, principal, call_id, after)
    return EventSourceResponse(stream, ping=PING_S, headers={"Cache-Control": "no-cache"})
