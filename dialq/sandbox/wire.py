"""Raw ASGI moves the faults need: read a body, answer bytes, hold a reply, drop a connection."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from email.utils import formatdate
from typing import Any

from dialq.sandbox.exchange import Reply

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Scope = MutableMapping[str, Any]


async def read_body(receive: Receive, limit: int | None = None) -> bytes | None:
    """The whole body, or None as soon as it grows past ``limit`` bytes (the rest unread)."""
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def declared_length(scope: Scope) -> int | None:
    """The Content-Length the client sent, if it sent a readable one."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def send_reply(send: Send, reply: Reply) -> None:
    headers = []
    if reply.status != 204:  # a 204 carries neither a body nor its length (RFC 9110 8.6)
        headers.append((b"content-type", reply.content_type.encode("latin-1")))
        headers.append((b"content-length", str(len(reply.body)).encode("ascii")))
    if reply.headers:
        headers.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers.items())
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body, "more_body": False})


def retry_after_value(value: float | str, now: float | None = None) -> str:
    """A Retry-After header value: seconds, ``date`` (1 s ahead), ``date:S``, or verbatim."""
    if isinstance(value, str):
        kind, _, seconds = value.partition(":")
        if kind != "date":
            return value
        delay = float(seconds) if seconds else 1.0
        return formatdate((time.time() if now is None else now) + delay, usegmt=True)
    return str(max(0, math.ceil(value)))


async def hold(seconds: float | None, receive: Receive, stopping: asyncio.Event) -> bool:
    """Wait ``seconds`` (None: forever) unless the client leaves; True if it is still there.

    The request body has been read, so the next ``receive`` only completes when the client
    disconnects; the shutdown event keeps a held reply from blocking the server's exit.
    """
    gone = asyncio.ensure_future(receive())
    waiters: list[asyncio.Future[Any]] = [gone, asyncio.ensure_future(stopping.wait())]
    if seconds is not None:
        waiters.append(asyncio.ensure_future(asyncio.sleep(seconds)))
    done, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for waiter in pending:
        waiter.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return gone not in done


async def drop(send: Send, receive: Receive) -> None:
    """Close the TCP connection without a byte of response.

    uvicorn's ``send`` is a bound method of its request cycle, which holds the transport;
    closing it is what a crashed upstream or a reset load balancer looks like to a client.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        # Another server: start a response and abandon it, the closest available cut.
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"64")]}
        )
        raise ConnectionAbortedError("sandbox fault: connection dropped")
    transport.close()
    # Let connection_lost mark the cycle disconnected, so uvicorn does not answer a 500 itself.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(receive(), timeout=1.0)
