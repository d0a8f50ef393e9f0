"""Live fragments over Server-Sent Events: a page's parts re-rendered on the server and sent
when they change (htmx's SSE extension swaps them in), so no page ever needs a refresh."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Final

from fastapi import Request
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from dialq.http.dashboard.access import SignInNeeded, viewer

# How often the server looks again: live enough to follow a call, cheap for the database.
POLL_S: Final = 1.0
# Ages and waits in the fragments move with the clock: resent this often even if unchanged.
REFRESH_S: Final = 10.0
PING_S: Final = 15

Parts = Callable[[], dict[str, str]]


def _signed_in(request: Request) -> bool:
    try:
        viewer(request)
    except SignInNeeded:
        return False
    return True


async def _events(request: Request, parts: Parts, poll_s: float) -> AsyncIterator[ServerSentEvent]:
    sent: dict[str, str] = {}
    refreshed = time.monotonic()
    while not await request.is_disconnected():
        # A signed-out session or a revoked key ends the stream (the browser's reconnect is
        # then sent to sign-in).
        if not await run_in_threadpool(_signed_in, request):
            return
        fresh = await run_in_threadpool(parts)
        stale = time.monotonic() - refreshed > REFRESH_S
        if stale:
            refreshed = time.monotonic()
        for name, body in fresh.items():
            if stale or sent.get(name) != body:
                sent[name] = body
                yield ServerSentEvent(body, event=name)
        await asyncio.sleep(poll_s)


def live(request: Request, parts: Parts, poll_s: float = POLL_S) -> EventSourceResponse:
    """A stream of `parts()` (event name -> HTML or JSON), each sent when it changed."""
    return EventSourceResponse(
        _events(request, parts, poll_s), ping=PING_S, headers={"Cache-Control": "no-store"}
    )
