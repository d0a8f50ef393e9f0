"""What a call produced: its transcript (text, SRT or JSON) and its insights, once harvested."""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Query, Request, Response

from dialq.http.auth import Principal, requires
from dialq.http.keys import CALLS_READ
from dialq.http.lookup import owned_read
from dialq.http.problems import ApiProblem, responses
from dialq.http.schemas import InsightsOut
from dialq.http.state import api_state
from dialq.insights.availability import Missing, missing_insights, missing_transcript
from dialq.insights.transcript import TranscriptFormat, render
from dialq.store import Call, Session, insights_repo

router = APIRouter(prefix="/v1/calls", tags=["calls"])

MEDIA_TYPES: Final = {
    TranscriptFormat.TEXT: "text/plain; charset=utf-8",
    TranscriptFormat.SRT: "application/x-subrip; charset=utf-8",
    TranscriptFormat.JSON: "application/json",
}

Reader = Annotated[Principal, Depends(requires(CALLS_READ))]
Found = tuple[str, bool, dict[str, Any] | None]


def _read(session: Session, call: Call) -> Found:
    insights = insights_repo.load_insights(session, call.id)
    return call.status, call.connected_at is not None, insights


def _missing(what: str, missing: Missing) -> ApiProblem:
    # Never connected: there never will be any (404). Not yet: ask again later (409).
    return ApiProblem(404 if missing.final else 409, f"no {what} for this call: {missing.reason}")


@router.get(
    "/{call_id}/transcript",
    summary="Read a call's transcript",
    response_class=Response,
    responses={
        200: {
            "description": "The transcript: one line per message (text), SubRip cues (srt), or "
            "the messages as Symbl sent them (json).",
            "content": {media: {"schema": {"type": "string"}} for media in MEDIA_TYPES.values()},
        },
        **responses(401, 403, 404, 409, 422),
    },
)
def transcript(
    request: Request,
    principal: Reader,
    call_id: str,
    format: Annotated[TranscriptFormat, Query(description="text, srt or json.")] = (
        TranscriptFormat.TEXT
    ),
) -> Response:
    """404 when the call never connected (or has no messages for good); 409 while its insights
    are not harvested yet."""
    status, connected, insights = owned_read(api_state(request), principal, call_id, _read)
    missing = missing_transcript(status, connected, insights)
    if missing is not None or insights is None:
        raise _missing("transcript", missing or Missing(False, "not harvested yet"))
    return Response(render(insights["messages"], format), media_type=MEDIA_TYPES[format])


@router.get(
    "/{call_id}/insights",
    response_model=InsightsOut,
    summary="Read a call's insights",
    responses=responses(401, 403, 404, 409),
)
def insights(request: Request, principal: Reader, call_id: str) -> dict[str, Any]:
    """Every part Symbl returned (messages, topics, questions, action items, follow-ups,
    members, summary, analytics) once harvested, or `unavailable` with its reason. 404 when the
    call never connected; 409 while the harvest is not done."""
    status, connected, found = owned_read(api_state(request), principal, call_id, _read)
    missing = missing_insights(status, connected, found)
    if missing is not None or found is None:
        raise _missing("insights", missing or Missing(False, "not harvested yet"))
    return found
