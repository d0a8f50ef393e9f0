"""One delivery of a dial message: claim the call, send the start request once, record it.

A `Dial` lives for one task run. It collects the HTTP attempts the client reports and writes
them in the same transaction as the outcome, so a call's record is complete or not written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_incrementing

from dialq import routing
from dialq.calls import dispatch
from dialq.calls.claim import Claim, Later
from dialq.calls.context import CallContext
from dialq.calls.policy import (
    API_UNAVAILABLE,
    CANCELED_REASON,
    CANCELED_UNKNOWN,
    StartOutcome,
    capacity_delay_s,
    credentials_refused,
    failure_delay_s,
    message_due_at,
    start_outcome,
)
from dialq.calls.states import RESOLVABLE, CallStatus
from dialq.store import Call, DatabaseUnavailable, EventNumberTaken, Session
from dialq.store import calls_repo as repo
from dialq.symbl.client import AttemptRecord, StartResult
from dialq.symbl.errors import SymblError
from dialq.symbl.payloads import start_body

log = logging.getLogger("dialq.dialing")
SKIPPED = "skipped"
# No row has this id (yet): a producer hands the call its place in line before its row is
# committed, so a permit released in between sends a dial that finds nothing. The task
# looks again once, a moment later (`NO_ROW_RECHECK_S`); a row that never comes (its producer
# died) holds a permit the watchdog frees.
NO_ROW = "no row"
NO_ROW_RECHECK_S = 1.0
CANCEL_PENDING = "cancel pending"
# Writes of a known start outcome tried this often when the database connection drops.
RECORD_TRIES = 4
# The next probe comes back this long after the circuit reopens (never a moment early).
PROBE_LAG_S = 0.05


class Dial:
    def __init__(
        self, ctx: CallContext, call_id: str, on_later: Callable[[Later], None] | None = None
    ) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.db = ctx.db
        self.call_id = call_id
        self.attempts: list[AttemptRecord] = []
        self.event_in_statement = True  # the connected event rides in its UPDATE's statement
        self.claim = Claim(ctx, call_id)
        self.on_later = on_later
        self.later: Later | None = None

    @property
    def account(self) -> str:
        """The call's account, known once the claim read its row."""
        return self.claim.account

    def run(self) -> str:
        status = self._run()
        later = self.later or self.claim.later
        # Told only once the outcome is committed, so a monitor never shows what was rolled back.
        if later is not None and self.on_later is not None:
            self.on_later(later)
        return status

    def _run(self) -> str:
        request = self.claim.take()
        if request is None:
            return NO_ROW if self.claim.row_missing else SKIPPED
        client = self.ctx.clients(request.account, self.attempts.append)
        try:
            result = client.start(start_body(request), call_id=self.call_id)
        except SymblError as error:
            return self._after_error(error)
        except Exception as error:
            # The request may have gone out: a second call is worse than a call to reconcile.
            log.exception("call %s: unexpected error while starting", self.call_id)
            self._probe_unanswered()
            return self._finish(CallStatus.UNKNOWN, f"unexpected error: {type(error).__name__}")
        return self._connected(result)

    # -- outcomes ----------------------------------------------------------------------------

    def _connected(self, result: StartResult) -> str:
        # The call is live at the API and we hold its ids: a dropped database connection must
        # not turn that into `unknown` (nobody would watch, stop or harvest it). Retry the write.
        pending = list(self.attempts)
        retrying = Retrying(
            retry=retry_if_exception_type((DatabaseUnavailable, EventNumberTaken)),
            stop=stop_after_attempt(RECORD_TRIES),
            wait=wait_incrementing(start=0.2, increment=0.2),
            before_sleep=lambda _: log.warning(
                "call %s: recording its start failed; retrying", self.call_id
            ),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                self.attempts[:] = pending  # a rolled-back try wrote none of them
                moved = self._record_connected(result)
        if self.claim.learning:  # else the limit is the configured one: nothing to raise
            self.ctx.capacity.saw_success(self.account)
        self._api_answered()
        self._credentials_worked()
        if not moved:
            return self._orphan(result)
        log.info("call %s connected: conversation %s", self.call_id, result.conversation_id)
        # The lifecycle watcher takes over: end of call, maximum duration, cancel (at once when
        # a cancel came in while the start request was out).
        if moved == CANCEL_PENDING:
            self.ctx.publisher.publish(routing.WATCH_CALL, self.call_id)
        else:
            due_at = self.ctx.now() + timedelta(seconds=self.settings.watch_interval_s)
            dispatch.first_look(self.ctx, self.call_id, due_at)
        return CallStatus.CONNECTED.value

    def _record_connected(self, result: StartResult) -> bool | str:
        """Move the call to `connected` with the API's ids; False when it had moved on,
        CANCEL_PENDING when it moved but a cancel is waiting for it."""
        now = self.ctx.now()
        interval_s = self.settings.watch_interval_s
        try:
            return self._write_connected(result, now, interval_s)
        except EventNumberTaken:
            # An event (a cancel flagged) was committed while the statement waited for the
            # row: nothing was written; the next try numbers its event after that one.
            self.event_in_statement = False
            raise

    def _write_connected(self, result: StartResult, now: datetime, interval_s: float) -> bool | str:
        with self.db.transaction() as session:
            moved = repo.transition_returning(
                session,
                self.call_id,
                from_=RESOLVABLE,
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
                    "watch_due_at": now + timedelta(seconds=interval_s),
                },
                returning=[Call.cancel_requested_at],
                attempts=self.attempts,
                # One statement less per dial; when another event got in first, the retry
                # writes it as a statement of its own (see transition_returning).
                event_in_statement=self.event_in_statement,
            )
            self.attempts.clear()
            if moved is not None:
                return CANCEL_PENDING if moved.cancel_requested_at is not None else True
            # A retry after a commit whose reply was lost finds its own write: not an orphan.
            call = repo.get_call(session, self.call_id)
            if call is None or call.connection_id != result.connection_id:
                return False
        return CANCEL_PENDING if call.cancel_requested_at is not None else True

    def _orphan(self, result: StartResult) -> str:
        """A call started for a row that moved on (canceled meanwhile): stop it, never leak it."""
        log.warning("call %s: started after it was closed; stopping it", self.call_id)
        with self.db.sessions() as session:
            call = repo.get_call(session, self.call_id)
        account = call.account if call else "default"
        try:
            self.ctx.clients(account, self.attempts.append).stop(result.connection_id)
        except SymblError as error:
            log.error("call %s: could not stop the orphaned call: %s", self.call_id, error)
        with self.db.transaction() as session:
            self._record_attempts(session)
            repo.append_event(
                session,
                self.call_id,
                None,
                self.ctx.now(),
                f"started late (conversation {result.conversation_id}) and stopped at once",
            )
        return SKIPPED

    def _after_error(self, error: SymblError) -> str:
        """Apply what the pure policy decided about a start request that raised."""
        outcome = start_outcome(error)
        if outcome.kind in ("capacity", "failed", "credentials"):
            self._api_answered()  # whatever it said, it is up
        if outcome.kind in ("capacity", "failed"):
            self._credentials_worked()  # the start request went out with a token
        if outcome.kind == "credentials":
            return self._credentials_refused(outcome)
        if outcome.kind == "capacity":
            return self._no_capacity(outcome)
        if outcome.kind == "retry":
            return self._outage(outcome) or self._retry_failure(outcome)
        if outcome.kind == "unknown":
            self._probe_unanswered()
            return self._finish(CallStatus.UNKNOWN, outcome.reason)
        return self._finish(CallStatus.FAILED, outcome.reason)

    def _probe_unanswered(self) -> None:
        # A probe that got no answer (a read timeout, an unexpected error) proves nothing about
        # the API: count it as the probe's failure, so the circuit reopens after its next
        # cooldown with another call as the probe, instead of the whole parked line waiting out
        # this call's probe TTL. The head of the parked line is that probe (no watchdog needed).
        circuit = self.ctx.circuit
        if circuit is None or not self.claim.probe:
            return
        now = self.ctx.now()
        now_s = now.timestamp()
        reopens_s = circuit.failed(self.account, self.call_id, now_s)
        if reopens_s is None:
            return
        dispatch.pause_line(self.ctx, self.account)  # renewed, as every outage failure does
        head = self.ctx.capacity.head_of_line(self.account)
        if head is None or not circuit.claim_probe(self.account, head, reopens_s, now_s):
            return
        # Its row says when it is due, so the sweeper republishes a lost message and an early
        # delivery goes back to wait: the probe's message is not its only trace.
        not_before = now + timedelta(seconds=max(0.0, reopens_s - now_s) + PROBE_LAG_S)
        due_at = message_due_at(not_before, now)
        with self.db.transaction() as session:
            timed = repo.time_waiting_call(session, head, not_before, due_at)
        if not timed:
            circuit.release_probe(self.account, head)  # not waiting after all: another may
        elif due_at is not None:
            dispatch.publish_dial(self.ctx, head, due_at)

    def _no_capacity(self, outcome: StartOutcome) -> str:
        # A 429 is a capacity signal, not a failure: it spends no failure budget. With a
        # permit in hand it means the API is fuller than our permits say: cool down, learn.
        delay_s = capacity_delay_s(
            outcome.retry_after_s, self.settings.capacity_retry_s, self.ctx.rng
        )
        learned = self.ctx.capacity.saw_429(self.account, self.call_id, delay_s)
        log.warning("account %s answered 429; learned limit now %d", self.account, learned)
        return self._redial_later(CallStatus.WAITING, delay_s, outcome.reason, "capacity_waits")

    def _api_answered(self) -> None:
        if self.ctx.circuit is not None and not self.claim.circuit_clean:
            self.ctx.circuit.succeeded(self.account)
            # The parked line goes at full capacity: every free permit is handed on now.
            dispatch.wake(self.ctx, self.ctx.capacity.resume(self.account))

    def _credentials_worked(self) -> None:
        if self.ctx.credentials is not None and not self.claim.credentials_clean:
            self.ctx.credentials.succeeded(self.account)

    def _credentials_refused(self, outcome: StartOutcome) -> str:
        """The account's credentials are refused: every call of the account would meet the
        same answer, so none spends its budget on it. They wait, one probing now and then,
        until the credentials work again (fixed settings, restarted workers) or their deadline."""
        if self.ctx.credentials is None:
            return self._finish(CallStatus.FAILED, outcome.reason)
        now_s = self.ctx.now().timestamp()
        reopens_s = self.ctx.credentials.failed(self.account, self.call_id, now_s, outcome.reason)
        log.error("account %s: %s; its calls wait", self.account, outcome.reason)
        dispatch.release_permit(self.ctx, self.account, self.call_id)
        delay_s = max(0.0, (reopens_s or now_s) - now_s) + self.ctx.rng.uniform(0.0, 1.0)
        reason = credentials_refused(self.account)
        detail = f"{reason} ({outcome.reason})"
        return self._redial_later(CallStatus.WAITING, delay_s, detail, None, reason)

    def _outage(self, outcome: StartOutcome) -> str | None:
        """Count a failure the whole account shares; once the circuit is open, the call waits
        for the API (None: still closed, the call spends its own failure budget)."""
        if self.ctx.circuit is None:
            return None
        circuit = self.ctx.circuit
        now_s = self.ctx.now().timestamp()
        reopens_s = circuit.failed(self.account, self.call_id, now_s)
        if reopens_s is None:
            return None
        dispatch.pause_line(self.ctx, self.account)
        dispatch.release_permit(self.ctx, self.account, self.call_id)
        detail = f"{API_UNAVAILABLE} ({outcome.reason})"
        delay_s: float | None = None  # parked in line, like every other call of the account
        if circuit.claim_probe(self.account, self.call_id, reopens_s, now_s):
            delay_s = max(0.0, reopens_s - now_s) + PROBE_LAG_S  # the one that comes back
        return self._redial_later(CallStatus.WAITING, delay_s, detail, None, API_UNAVAILABLE)

    def _retry_failure(self, outcome: StartOutcome) -> str:
        with self.db.sessions() as session:
            call = repo.get_call(session, self.call_id)
            failures = (call.failures if call else 0) + 1
        if failures > self.settings.failure_retry_budget:
            return self._finish(CallStatus.FAILED, f"retries exhausted: {outcome.reason}")
        delay_s = failure_delay_s(
            failures, self.ctx.rng, self.settings.backoff_base_s, self.settings.backoff_max_s
        )
        dispatch.release_permit(self.ctx, self.account, self.call_id)
        return self._redial_later(CallStatus.QUEUED, delay_s, outcome.reason, "failures")

    def _redial_later(
        self,
        to: CallStatus,
        delay_s: float | None,
        detail: str,
        counter: str | None,
        reason: str | None = None,
    ) -> str:
        """Back to `to` with a dial message due in `delay_s`; with None, parked in the account's
        line (woken by a permit handed on)."""
        now = self.ctx.now()
        not_before = None if delay_s is None else now + timedelta(seconds=delay_s)
        due_at = message_due_at(not_before, now) if not_before is not None else None
        with self.db.transaction() as session:
            self._record_attempts(session)
            call = repo.get_call(session, self.call_id)
            if call is None:
                return SKIPPED
            dialing = {CallStatus.DIALING}
            if call.cancel_requested_at is not None:
                # No call started, and the person who canceled wants none: no redial.
                reason = f"{CANCELED_REASON} (the start request got: {detail})"
                repo.move(session, self.call_id, dialing, CallStatus.CANCELED, now, reason)
                dispatch.release_permit(self.ctx, self.account, self.call_id)
                return CallStatus.CANCELED.value
            if not_before is not None and not_before >= call.deadline_at:
                why = f"deadline: {detail}"
                repo.move(session, self.call_id, dialing, CallStatus.FAILED, now, why)
                return CallStatus.FAILED.value
            moved = repo.transition(
                session,
                self.call_id,
                from_={CallStatus.DIALING},
                to=to,
                now=now,
                detail=f"{detail}; "
                + ("parked in line" if delay_s is None else f"redial in {delay_s:.1f}s"),
                values={
                    **({counter: getattr(call, counter) + 1} if counter else {}),
                    **({"reason": reason} if reason else {}),
                    "not_before": not_before,
                    "dispatch_due_at": due_at,
                },
            )
            if moved and delay_s is None:
                self.later = Later("waiting", self.call_id, detail, call.start_attempts + 1)
            elif moved:
                self.later = Later("redial", self.call_id, detail, call.start_attempts, delay_s)
        if moved and delay_s is None:
            dispatch.rejoin_line(self.ctx, call)
        elif due_at is not None:
            dispatch.publish_dial(self.ctx, self.call_id, due_at)
        return to.value

    def _finish(self, to: CallStatus, reason: str) -> str:
        if to is CallStatus.UNKNOWN:
            # Invariant 3: never redialed on its own; the watchdog applies the configured policy.
            # The call may be live: its permit stays taken until its lease runs out.
            log.warning("call %s: outcome of the start request unknown (%s)", self.call_id, reason)
        else:
            dispatch.release_permit(self.ctx, self.account, self.call_id)
        with self.db.transaction() as session:
            self._record_attempts(session)
            call = repo.get_call(session, self.call_id)
            if to is CallStatus.UNKNOWN and call is not None and call.cancel_requested_at:
                # Canceled, but the call may be live at Symbl: say so, and keep the permit.
                to, reason = CallStatus.CANCELED, f"{CANCELED_UNKNOWN} ({reason})"
            repo.move(session, self.call_id, set(RESOLVABLE - {to}), to, self.ctx.now(), reason)
        return to.value

    def _record_attempts(self, session: Session) -> None:
        repo.record_attempts(session, self.call_id, self.attempts)
        self.attempts.clear()
