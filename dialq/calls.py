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

from dialq.config import Settings
from dialq.dispatch import MAX_COUNTDOWN_S, Publisher, capacity_delay_s
from dialq.models import CallRequest, FieldError, InvalidCallRequest, parse_call_request
from dialq.store import Call, CallStatus, Database
from dialq.store import calls_repo as repo
from dialq.store.tables import DIALABLE
from dialq.symbl.client import AttemptRecord, StartResult, SymblClient
from dialq.symbl.errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    CapacityError,
    NotSentError,
    OutcomeUnknownError,
    ServerError,
    SymblError,
    UnexpectedResponseError,
)
from dialq.symbl.payloads import start_body
from dialq.symbl.retry import backoff_seconds

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
        worker_id: str = "local",
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self._clients = clients
        self._publisher = publisher
        self._worker_id = worker_id
        self._clock = clock
        self._rng = rng or random.Random()

    # -- producing ---------------------------------------------------------------------------

    def enqueue(self, request: CallRequest) -> CallHandle:
        """Write the call row (queued) and publish its dial message.

        The same idempotency key returns the existing call and places nothing new. If the
        broker is down the row stays queued and the sweeper publishes it later (invariant 6).
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
        except IntegrityError:
            # Lost a race with a concurrent producer using the same idempotency key.
            existing = self._by_key(request.idempotency_key or "")
            if existing is None:
                raise
            return CallHandle(existing.id, existing.status, created=False)
        log.info("call %s queued for %s", call.id, request.masked_target)
        self._dispatch(call.id, call.not_before)
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
            max_duration_s=request.max_duration_s,
            callback_url=request.callback_url,
            idempotency_key=request.idempotency_key,
            not_before=request.not_before,
            deadline_at=due + timedelta(seconds=self.settings.dial_deadline_s),
            start_attempts=0,
            failures=0,
            capacity_waits=0,
            created_at=now,
            updated_at=now,
        )

    # -- dispatching -------------------------------------------------------------------------

    def _dispatch(self, call_id: str, not_before: datetime | None) -> None:
        """Publish a dial message now, or with a short countdown; farther out, leave it to sweep."""
        now = self._clock()
        delay_s = max(0.0, (not_before - now).total_seconds()) if not_before else 0.0
        if delay_s > MAX_COUNTDOWN_S:
            return  # invariant 4: long waits live in the database, not in a broker countdown
        try:
            self._publisher.publish_dial(call_id, delay_s)
        except Exception:
            log.warning("could not publish call %s; the sweeper will retry", call_id, exc_info=True)
            return
        with self.db.transaction() as session:
            repo.mark_dispatched(session, call_id, now + timedelta(seconds=delay_s))

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

    def dial(self, call_id: str) -> str:
        """Claim the call, send the start request once, and record what happened.

        Returns the status the call was left in, or "skipped" when this delivery had nothing
        to do (already claimed, finished, not yet due, or unknown).
        """
        request = self._claim(call_id)
        if request is None:
            return "skipped"
        client = self._clients(request.account, self._attempt_recorder(call_id))
        try:
            result = client.start(start_body(request), call_id=call_id)
        except SymblError as error:
            return self._after_error(call_id, error)
        except Exception as error:
            # The request may have gone out: a second call is worse than a call to reconcile.
            log.exception("call %s: unexpected error while starting", call_id)
            return self._set_unknown(call_id, f"unexpected error: {type(error).__name__}")
        return self._connected(call_id, result)

    def _claim(self, call_id: str) -> CallRequest | None:
        """Move the call to `dialing` and commit; None when this delivery must not dial."""
        now = self._clock()
        with self.db.transaction() as session:
            call = repo.get_call(session, call_id)
            if call is None or CallStatus(call.status) not in DIALABLE:
                return None
            early = call.not_before if call.not_before and call.not_before > now else None
            if early is None:
                return self._claim_due(session, call, now)
        # Early delivery (clock skew between hosts, or a stale duplicate): come back when due.
        self._dispatch(call_id, early)
        return None

    def _claim_due(self, session: Session, call: Call, now: datetime) -> CallRequest | None:
        if now >= call.deadline_at:
            self._fail(session, call, now, "deadline passed before the call could start")
            return None
        attempt = call.start_attempts + 1
        claimed = repo.transition(
            session,
            call.id,
            from_={CallStatus(call.status)},
            to=CallStatus.DIALING,
            now=now,
            detail=f"start attempt {attempt} by {self._worker_id}",
            values={"start_attempts": attempt, "claimed_by": self._worker_id, "claimed_at": now},
        )
        if not claimed:
            return None
        try:
            return parse_call_request(
                call.request, allowed_country_codes=self.settings.allowed_country_codes
            )
        except InvalidCallRequest as error:
            # Settings narrowed since the call was accepted (e.g. a country removed).
            reason = f"rejected: {error}"
            repo.transition(
                session,
                call.id,
                from_={CallStatus.DIALING},
                to=CallStatus.FAILED,
                now=now,
                detail=reason,
                values={"reason": reason, "ended_at": now},
            )
            return None

    def _fail(self, session: Session, call: Call, now: datetime, reason: str) -> None:
        repo.transition(
            session,
            call.id,
            from_={CallStatus(call.status)},
            to=CallStatus.FAILED,
            now=now,
            detail=reason,
            values={"reason": reason, "ended_at": now},
        )

    def _attempt_recorder(self, call_id: str) -> Callable[[AttemptRecord], None]:
        def record(attempt: AttemptRecord) -> None:
            with self.db.transaction() as session:
                repo.record_attempt(
                    session,
                    call_id,
                    operation=attempt.operation,
                    started_at=attempt.started_at,
                    status_code=attempt.status,
                    latency_ms=attempt.latency_ms,
                    error=attempt.error,
                )

        return record

    def _connected(self, call_id: str, result: StartResult) -> str:
        now = self._clock()
        with self.db.transaction() as session:
            repo.transition(
                session,
                call_id,
                from_={CallStatus.DIALING},
                to=CallStatus.CONNECTED,
                now=now,
                detail=f"conversation {result.conversation_id}",
                values={
                    "conversation_id": result.conversation_id,
                    "connection_id": result.connection_id,
                    "event_url": result.event_url,
                    "result_websocket_url": result.result_websocket_url,
                    "connected_at": now,
                    "reason": None,
                },
            )
        log.info("call %s connected: conversation %s", call_id, result.conversation_id)
        return CallStatus.CONNECTED.value

    def _after_error(self, call_id: str, error: SymblError) -> str:
        if isinstance(error, CapacityError):
            return self._wait_for_capacity(call_id, error)
        if isinstance(error, NotSentError | ServerError):
            return self._retry_failure(call_id, error)
        if isinstance(error, OutcomeUnknownError | UnexpectedResponseError):
            return self._set_unknown(call_id, describe(error))
        if isinstance(error, BadRequestError):
            return self._set_failed(call_id, f"rejected: {error.message}")
        if isinstance(error, AuthenticationError):
            return self._set_failed(call_id, f"unauthorized: {error.message}")
        if isinstance(error, APIStatusError):
            return self._set_failed(call_id, f"http {error.status}: {error.message}")
        return self._set_unknown(call_id, describe(error))

    def _wait_for_capacity(self, call_id: str, error: CapacityError) -> str:
        """A 429 is a capacity signal, not a failure: it spends no failure budget."""
        delay_s = capacity_delay_s(error.retry_after_s, self.settings.capacity_retry_s, self._rng)
        return self._redial_later(
            call_id, CallStatus.WAITING, delay_s, "no capacity (429)", counter="capacity_waits"
        )

    def _retry_failure(self, call_id: str, error: SymblError) -> str:
        with self.db.sessions() as session:
            call = repo.get_call(session, call_id)
            failures = (call.failures if call else 0) + 1
        if failures > self.settings.failure_retry_budget:
            return self._set_failed(call_id, f"retries exhausted: {describe(error)}")
        delay_s = backoff_seconds(
            failures, self._rng, self.settings.backoff_base_s, self.settings.backoff_max_s
        )
        return self._redial_later(
            call_id, CallStatus.QUEUED, delay_s, describe(error), counter="failures"
        )

    def _redial_later(
        self, call_id: str, to: CallStatus, delay_s: float, detail: str, *, counter: str
    ) -> str:
        now = self._clock()
        not_before = now + timedelta(seconds=delay_s)
        with self.db.transaction() as session:
            call = repo.get_call(session, call_id)
            if call is None:
                return "skipped"
            if not_before >= call.deadline_at:
                self._fail(session, call, now, f"deadline passed: {detail}")
                return CallStatus.FAILED.value
            repo.transition(
                session,
                call_id,
                from_={CallStatus.DIALING},
                to=to,
                now=now,
                detail=f"{detail}; redial in {delay_s:.1f}s",
                values={counter: getattr(call, counter) + 1, "not_before": not_before},
            )
        self._dispatch(call_id, not_before)
        return to.value

    def _set_failed(self, call_id: str, reason: str) -> str:
        return self._finish(call_id, CallStatus.FAILED, reason)

    def _set_unknown(self, call_id: str, reason: str) -> str:
        # Invariant 3: never redialed on its own; the reconciler applies the configured policy.
        log.warning("call %s: outcome of the start request unknown (%s)", call_id, reason)
        return self._finish(call_id, CallStatus.UNKNOWN, reason)

    def _finish(self, call_id: str, to: CallStatus, reason: str) -> str:
        now = self._clock()
        values: dict[str, object] = {"reason": reason}
        if to is CallStatus.FAILED:
            values["ended_at"] = now
        with self.db.transaction() as session:
            repo.transition(
                session,
                call_id,
                from_={CallStatus.DIALING},
                to=to,
                now=now,
                detail=reason,
                values=values,
            )
        return to.value


def describe(error: SymblError) -> str:
    """A short, secret-free description for reasons and events."""
    text = str(error) or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."
