"""Live and ended calls, the concurrency limit, and calls that end by themselves."""

from __future__ import annotations

import heapq
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from dialq.sandbox.config import CallSeconds

Clock = Callable[[], float]
EndedBy = Literal["stop", "duration", "hangup"]
# Ids must differ between runs and sandboxes (content is derived from them), unlike call
# lengths, which follow the configured seed.
_IDS = random.Random()


@dataclass
class Call:
    """One telephony connection and the conversation it produces."""

    connection_id: str
    conversation_id: str
    started_at: float
    deadline: float | None
    endpoint: dict[str, Any]
    session_name: str | None
    call_id: str | None
    ended_at: float | None = None
    ended_by: EndedBy | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def live(self) -> bool:
        return self.ended_at is None

    def view(self) -> dict[str, Any]:
        """What the control API reports for this call."""
        return {
            "connectionId": self.connection_id,
            "conversationId": self.conversation_id,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "ended_by": self.ended_by,
            "deadline": self.deadline,
            "live": self.live,
            "type": self.endpoint.get("type"),
            "phone": self.endpoint.get("phoneNumber"),
            "uri": self.endpoint.get("uri"),
            "session_name": self.session_name,
            "call_id": self.call_id,
            "events": len(self.events),
        }


class CallBook:
    """Every call since the last reset.

    Nothing here awaits: the event loop runs each method to completion, so the capacity check
    and the insert in ``start`` cannot interleave with another request's.  Calls that reach
    their deadline are ended lazily at the next look at the book, with ``ended_at`` set to the
    deadline itself, so a slot is free exactly when the call ends, whoever asks first.
    """

    def __init__(self, clock: Clock, seed: int) -> None:
        self._clock = clock
        self._lengths = random.Random(seed)
        self._live: dict[str, Call] = {}
        self._by_connection: dict[str, Call] = {}
        self._by_conversation: dict[str, Call] = {}
        self._deadlines: list[tuple[float, str]] = []

    def reseed(self, seed: int) -> None:
        self._lengths = random.Random(seed)

    def live_count(self) -> int:
        self.expire()
        return len(self._live)

    def start(
        self,
        max_concurrent: int,
        call_seconds: CallSeconds,
        endpoint: dict[str, Any],
        session_name: str | None,
        call_id: str | None,
    ) -> Call | None:
        """A new live call, or None when ``max_concurrent`` calls are already live."""
        self.expire()
        if len(self._live) >= max_concurrent:
            return None
        now = self._clock()
        length = self._draw_length(call_seconds)
        call = Call(
            connection_id=str(uuid.uuid4()),
            conversation_id=self._new_conversation_id(),
            started_at=now,
            deadline=None if length is None else now + length,
            endpoint=endpoint,
            session_name=session_name,
            call_id=call_id,
        )
        self._live[call.connection_id] = call
        self._by_connection[call.connection_id] = call
        self._by_conversation[call.conversation_id] = call
        if call.deadline is not None:
            heapq.heappush(self._deadlines, (call.deadline, call.connection_id))
        return call

    def end(self, connection_id: str, ended_by: EndedBy) -> Call | None:
        """End a live call now; None when it is unknown or already over."""
        self.expire()
        call = self._live.pop(connection_id, None)
        if call is not None:
            call.ended_at = self._clock()
            call.ended_by = ended_by
        return call

    def live_call(self, connection_id: str) -> Call | None:
        self.expire()
        return self._live.get(connection_id)

    def by_conversation(self, conversation_id: str) -> Call | None:
        self.expire()
        return self._by_conversation.get(conversation_id)

    def all_calls(self) -> list[Call]:
        self.expire()
        return list(self._by_connection.values())

    def expire(self) -> None:
        """End every live call whose deadline has passed, as of its deadline."""
        if not self._deadlines or self._deadlines[0][0] > self._clock():
            return
        now = self._clock()
        while self._deadlines and self._deadlines[0][0] <= now:
            deadline, connection_id = heapq.heappop(self._deadlines)
            call = self._live.pop(connection_id, None)
            if call is not None:
                call.ended_at = deadline
                call.ended_by = "duration"

    def _draw_length(self, call_seconds: CallSeconds) -> float | None:
        if isinstance(call_seconds, tuple):
            return self._lengths.uniform(*call_seconds)
        return call_seconds

    def _new_conversation_id(self) -> str:
        while True:
            # 16 digits with no leading zero, as the docs describe.
            candidate = str(_IDS.randrange(10**15, 10**16))
            if candidate not in self._by_conversation:
                return candidate
