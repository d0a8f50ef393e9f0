"""The call service: enqueue, claim, dial, record. It imports no Celery (style.md habit 1)."""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dialq import routing
from dialq.calls.cancel import cancel_call
from dialq.calls.dial import Dial, Later
from dialq.calls.request import CallRequest, FieldError, InvalidCallRequest
from dialq.calls.watch import CancelResult, Lifecycle
from dialq.calls.watchdog import run_watchdog
from dialq.capacity import Capacity
from dialq.config import Settings
from dialq.publisher import MAX_COUNTDOWN_S, Publisher
from dialq.store import Call, CallStatus, Database
from dialq.store import calls_repo as repo
from dialq.symbl.client import AttemptRecord, SymblClient

log = logging.getLogger("dialq.calls")


def utcnow() -> datetime:
    return datetime.now(UTC)


class ClientFactory(Protocol):
    def __call__(
        self, account: str, on_attempt: Callable[[AttemptRecord], None]
    ) -> SymblClient: ...


@dataclass(frozen=True)
class CallHandle:
    """What a producer gets back: the call's id, its status, and whether this request made it."""

    id: str
    status: str
    created: bool


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
        worker_id: str = "local",
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self._clients = clients
        self._publisher = publisher
        self._worker_id = worker_id
        self.capacity = capacity
        self._clock = clock
        self._rng = rng or random.Random()

    # -- producing ---------------------------------------------------------------------------

    def enqueue(
        self, request: CallRequest, *, also: Callable[[Session, Call], None] | None = None
    ) -> CallHandle:
        """Write the call row (queued) and publish its dial message.

        The same idempotency key returns the existing call and places nothing new. If the
        broker is down the row stays queued and the sweeper publishes it later (invariant 6).
        `also` writes more rows in the call's own transaction (a schedule's occurrence), so
        both are committed or neither is.
        """
        if request.account not in self.settings.accounts:
            raise InvalidCallRequest([FieldError("account", "names no configured account")])
        if request.idempotency_key:
            existing = self._by_key(request.idempotency_key)
            if existing is not None:
                return CallHandle(existing.id, existing.status, created=False)
        call = self._new_call(request)
        try:
            with self.db.transaction() as session:
                repo.add_call(session, call)
                if also is not None:
                    also(session, call)
        except IntegrityError:
            # Lost a race with a concurrent producer using the same idempotency key.
            existing = self._by_key(request.idempotency_key or "")
            if existing is None:
                raise
            return CallHandle(existing.id, existing.status, created=False)
        log.info("call %s queued for %s", call.id, request.masked_target)
        if call.dispatch_due_at is not None:
            self._publish(call.id, call.dispatch_due_at)
        return CallHandle(call.id, call.status, created=True)

    def _by_key(self, key: str) -> Call | None:
        with self.db.sessions() as session:
            return repo.find_by_idempotency_key(session, key)

    def _new_call(self, request: CallRequest) -> Call:
        now = self._clock()
        due = request.not_before or now
        return Call(
            id=str(uuid.uuid4()),
            status=CallStatus.QUEUED.value,
            account=request.account,
            phone_number=request.phone_number,
            sip_uri=request.sip_uri,
            request=request.model_dump(mode="json"),
            priority=request.priority,
            max_duration_s=request.max_duration_s or self.settings.default_max_duration_s,
            callback_url=request.callback_url,
            idempotency_key=request.idempotency_key,
            not_before=request.not_before,
            deadline_at=due + timedelta(seconds=self.settings.dial_deadline_s),
            # Marked before the publish: if the publish fails, the sweeper finds it stale.
            dispatch_due_at=self._message_due_at(request.not_before, now),
            start_attempts=0,
            failures=0,
            capacity_waits=0,
            created_at=now,
            updated_at=now,
        )

    # -- dispatching -------------------------------------------------------------------------

    def _message_due_at(self, not_before: datetime | None, now: datetime) -> datetime | None:
        """When a dial message published now would run; None when too far out for a countdown."""
        if not_before is None or not_before <= now:
            return now
        if (not_before - now).total_seconds() > MAX_COUNTDOWN_S:
            return None  # invariant 4: long waits live in the database, not in a broker countdown
        return not_before

    def _publish(self, call_id: str, due_at: datetime) -> None:
        delay_s = max(0.0, (due_at - self._clock()).total_seconds())
        try:
            self._publisher.publish_dial(call_id, delay_s)
        except Exception:
            log.warning("could not publish call %s; the sweeper will retry", call_id, exc_info=True)

    def _dispatch(self, call_id: str, not_before: datetime | None) -> None:
        """Mark, then publish a dial message now or with a short countdown; farther out, wait."""
        due_at = self._message_due_at(not_before, self._clock())
        if due_at is None:
            return
        with self.db.transaction() as session:
            repo.mark_dispatched(session, call_id, due_at)
        self._publish(call_id, due_at)

    def sweep(self, *, grace_s: float = 60.0, horizon_s: float = 10.0) -> int:
        """Publish dialable calls that are due and whose message is missing or stale."""
        now = self._clock()
        with self.db.sessions() as session:
            due = repo.due_for_dispatch(
                session,
                now=now - timedelta(seconds=grace_s),
                horizon=now + timedelta(seconds=horizon_s),
            )
        for call_id, not_before in due:
            self._dispatch(call_id, not_before)
        return len(due)

    # -- dialing -----------------------------------------------------------------------------

    def dial(self, call_id: str, on_later: Callable[[Later], None] | None = None) -> str:
        """Claim the call, send the start request once, and record what happened.

        Returns the status the call was left in, or "skipped" when this delivery had nothing
        to do (already claimed, finished, not yet due, or unknown). `on_later` hears, once the
        outcome is committed, that the call was left waiting or due for a redial.
        """
        return Dial(self, call_id, on_later).run()

    # -- what the lifecycle pieces share ---------------------------------------------------------

    @property
    def worker_id(self) -> str:
        return self._worker_id

    @property
    def rng(self) -> random.Random:
        return self._rng

    def now(self) -> datetime:
        return self._clock()

    def clients(self, account: str, on_attempt: Callable[[AttemptRecord], None]) -> SymblClient:
        return self._clients(account, on_attempt)

    def publish(self, task: str, call_id: str, countdown_s: float = 0.0) -> None:
        """Publish a call-id task; a broker failure is logged, and a sweeper catches up later."""
        try:
            self._publisher.publish(task, call_id, countdown_s)
        except Exception:
            log.warning("could not publish %s for call %s", task, call_id, exc_info=True)

    def publish_dial(self, call_id: str, due_at: datetime) -> None:
        self._publish(call_id, due_at)

    def message_due_at(self, not_before: datetime | None, now: datetime) -> datetime | None:
        return self._message_due_at(not_before, now)

    def dispatch(self, call_id: str, not_before: datetime | None) -> None:
        self._dispatch(call_id, not_before)

    def release_permit(self, account: str, call_id: str) -> None:
        """Give a call's permit back and wake, at once, the waiting calls that may now start."""
        try:
            for waiting_id in self.capacity.release(account, call_id):
                self.publish(routing.DIAL, waiting_id)
        except Exception:
            # The lease runs out by itself and the watchdog wakes waiters: log, don't fail.
            log.warning("could not release the permit of call %s", call_id, exc_info=True)

    def pass_on(self, account: str, call_id: str) -> None:
        """A call that no longer waits leaves the waiting index; the permit it was woken
        for goes to the next waiter."""
        if self.capacity.forget(account, call_id):
            self.release_permit(account, "")

    def call_ended(self, call_id: str) -> None:
        """A live call ended (seen ended, stopped, canceled): collect transcript and insights."""
        self.publish(routing.HARVEST_INSIGHTS, call_id)

    # -- after the start ---------------------------------------------------------------------

    def watch(self, call_id: str) -> str:
        """One look at a live call (see dialq.calls.watch)."""
        return Lifecycle(self).watch(call_id)

    def cancel(self, call_id: str) -> CancelResult:
        """Cancel a call: never dialed if not started, stopped if live, untouched if finished."""
        return cancel_call(self, call_id)

    def watchdog(self) -> dict[str, int]:
        """The beat tick that repairs stuck states (see dialq.calls.watchdog)."""
        return run_watchdog(self)
