"""The outermost ASGI app: logs every API request and applies faults around the handlers.

It is pure ASGI, not Starlette middleware, because a dropped connection needs uvicorn's own
``send`` (which carries the transport) and a fault must be chosen before the handlers run.
"""

from __future__ import annotations

import hmac
import time
from typing import Any

from dialq.sandbox.api import SymblApi
from dialq.sandbox.config import SandboxConfig
from dialq.sandbox.control_api import PREFIX, ControlApi
from dialq.sandbox.core import Sandbox
from dialq.sandbox.exchange import Reply, error, open_exchange
from dialq.sandbox.faults import FaultAction
from dialq.sandbox.state import Clock
from dialq.sandbox.wire import (
    Message,
    Receive,
    Scope,
    Send,
    declared_length,
    drop,
    hold,
    read_body,
    retry_after_value,
    send_reply,
)


class SandboxApp:
    def __init__(self, config: SandboxConfig | None = None, clock: Clock = time.time) -> None:
        self.sandbox = Sandbox(config or SandboxConfig(), clock)
        self._api = SymblApi(self.sandbox)
        self._control = ControlApi(self.sandbox).router()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            declared = declared_length(scope)
            if declared is not None and declared > self.sandbox.config.max_body_bytes:
                await send_reply(send, _TOO_LARGE)  # refused before a byte of it is read
            elif scope["path"].startswith(PREFIX + "/"):
                await self._serve_control(scope, receive, send)
            else:
                await self._serve(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            # Result sockets are not emulated; refusing the handshake is an honest answer.
            await send({"type": "websocket.close", "code": 1008})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.sandbox.loop_started()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _serve_control(self, scope: Scope, receive: Receive, send: Send) -> None:
        expected = self.sandbox.config.control_token
        if expected is not None and not _bearer_matches(scope, expected):
            await send_reply(send, error(401, "the control API needs its token (Bearer)"))
            return
        raw = await read_body(receive, self.sandbox.config.max_body_bytes)
        if raw is None:
            await send_reply(send, _TOO_LARGE)
            return
        await self._control(scope, _replay(raw, receive), send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        sandbox = self.sandbox
        raw = await read_body(receive, sandbox.config.max_body_bytes)
        if raw is None:
            await send_reply(send, _TOO_LARGE)
            return
        exchange = open_exchange(
            scope, raw, sandbox.log.open_entry, sandbox.clock(), sandbox.vouches
        )
        entry = exchange.entry
        fault = sandbox.faults.pick(scope["path"], scope["method"], exchange.operation)
        if fault is not None:
            entry["fault"] = fault.kind
            if not fault.processes:
                await self._instead(fault, send, receive, entry)
                return
        try:
            reply = self._api.handle(
                scope["method"], scope["path"], scope["query_string"], exchange
            )
        except Exception:
            entry["status"] = 500
            raise
        entry["status"] = reply.status
        if fault is None:
            await send_reply(send, reply)
            entry["delivered"] = True
        else:
            await self._after(fault, reply, send, receive, entry)

    async def _instead(
        self, fault: FaultAction, send: Send, receive: Receive, entry: dict[str, Any]
    ) -> None:
        """Faults that answer in place of the API: nothing is processed, no call is made."""
        if fault.kind == "drop":
            await drop(send, receive)
            return
        await self._replace(fault, send, entry)

    async def _after(
        self, fault: FaultAction, reply: Reply, send: Send, receive: Receive, entry: dict[str, Any]
    ) -> None:
        """Faults that let the API run and then spoil, delay or withhold its reply."""
        if fault.kind == "drop_after":
            await drop(send, receive)
        elif fault.kind in ("hang", "slow"):
            if await hold(fault.seconds, receive, self.sandbox.stopping):
                await send_reply(send, reply)
                entry["delivered"] = True
        else:
            entry["processed_status"] = reply.status
            await self._replace(fault, send, entry)

    async def _replace(self, fault: FaultAction, send: Send, entry: dict[str, Any]) -> None:
        headers = {}
        if fault.retry_after is not None:
            headers["retry-after"] = retry_after_value(fault.retry_after, self.sandbox.clock())
        await send_reply(send, Reply(fault.status, fault.body, headers, fault.content_type))
        entry["status"] = fault.status
        entry["delivered"] = True


_TOO_LARGE = error(413, "Request body too large.")


def _bearer_matches(scope: Scope, expected: str) -> bool:
    for name, value in scope["headers"]:
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            return hmac.compare_digest(value[7:].strip(), expected.encode())
    return False


def _replay(raw: bytes, receive: Receive) -> Receive:
    """A receive that hands the body already read, then waits on the client as before."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    return replay
