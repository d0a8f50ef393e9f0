"""The call service: a thin facade, one line per use case. It imports no Celery (style.md 1).

Use cases receive the `CallContext` built here, never this facade (see dialq.calls.context).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime
from typing import Any

from dialq.calls import cancel, dial, dispatch, enqueue, redial, watch, watchdog
from dialq.calls.claim import Later
from dialq.calls.context import CallContext, ClientFactory
from dialq.calls.enqueue import CallHandle, Placed
from dialq.calls.request import CallRequest
from dialq.calls.watch import CancelResult
from dialq.capacity import Capacity
from dialq.circuit import Circuit
from dialq.clock import utcnow
from dialq.config import Settings
from dialq.lookwindows import LookWindows
from dialq.publisher import Publisher, SafePublisher
from dialq.store import Call, Database, Session

__all__ = ["CallHandle", "CallService", "ClientFactory"]


class CallService:
    """Validates and records calls, and places them through the Symbl connect API."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        clients: ClientFactory,
        publisher: Publisher,
        *,
        capacity: Capacity,
        circuit: Circuit | None = None,
        credentials: Circuit | None = None,
        worker_id: str = "local",
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self.ctx = CallContext(
            settings=settings,
            db=db,
            capacity=capacity,
            circuit=circuit,
            credentials=credentials,
            clients=clients,
            publisher=SafePublisher(publisher),
            worker_id=worker_id,
            looks=LookWindows(capacity.redis),
            clock=clock,
            rng=rng or random.Random(),
        )
        self.settings, self.db, self.capacity = settings, db, capacity

    def enqueue(
        self, request: CallRequest, *, also: Callable[[Session, Call], None] | None = None
    ) -> CallHandle:
        """Write the call row (queued) and publish its dial message (see calls.enqueue)."""
        return enqueue.enqueue(self.ctx, request, also=also)

    def place(self, request: CallRequest, *, by: str | None = None) -> Placed:
        """As `enqueue`, with the call's row as this request left it (see calls.enqueue)."""
        return enqueue.place(self.ctx, request, by=by)

    def enqueue_message(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], *, message_id: str
    ) -> dict[str, Any]:
        """Validate and enqueue a by-name `dialq.place_call` message (see calls.enqueue)."""
        return enqueue.enqueue_message(self.ctx, args, kwargs, message_id=message_id)

    def dial(self, call_id: str, on_later: Callable[[Later], None] | None = None) -> str:
        """Claim the call, send the start request once, record what happened (see calls.dial)."""
        return dial.Dial(self.ctx, call_id, on_later).run()

    def watch(self, call_id: str) -> str:
        """One look at a live call (see calls.watch)."""
        return watch.Lifecycle(self.ctx).watch(call_id)

    def cancel(self, call_id: str) -> CancelResult:
        """Cancel a call: never dialed if not started, stopped if live, untouched if finished."""
        return cancel.cancel_call(self.ctx, call_id)

    def redial(self, call_id: str, *, by: str = "an operator") -> redial.RedialResult:
        """Put a failed or unknown call back in line: a person's decision (see calls.redial)."""
        return redial.redial_call(self.ctx, call_id, by=by)

    def sweep(self, *, grace_s: float = 60.0, horizon_s: float = 10.0) -> int:
        """Publish dialable calls that are due and whose message is missing or stale."""
        return dispatch.sweep(self.ctx, grace_s=grace_s, horizon_s=horizon_s)

    def watchdog(self) -> dict[str, int]:
        """The beat tick that repairs stuck states (see calls.watchdog)."""
        return watchdog.run_watchdog(self.ctx)
