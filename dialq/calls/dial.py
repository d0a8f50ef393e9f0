"""One delivery of a dial message: claim the call, send the start request once, record it.

A `Dial` lives for one task run. It collects the HTTP attempts the client reports and writes
them in the same transaction as the outcome, so a call's record is complete or not written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_incrementing

from dialq import routing
from dialq.calls import dispatch
from dialq.calls.context import CallContext
from dialq.calls.policy import (
    API_UNAVAILABLE,
    CANCELED_UNKNOWN,
    StartOutcome,
    capacity_delay_s,
    failure_delay_s,
    lease_s,
    message_due_at,
    permit_score,
    start_outcome,
)
from dialq.calls.request import CallRequest, InvalidCallRequest, parse_call_request
from dialq.calls.states import DIALABLE, MAY_BE_LIVE, RESOLVABLE, CallStatus
from dialq.capacity import Verdict
from dialq.store import Call, DatabaseUnavailable, Session
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
CANCELED_REASON = "canceled while dialing; not redialed"


def credentials_refused(account: str) -> str:
    """A waiting call's reason while its account's credentials are refused."""
    return f"account {account}: app id or secret refused by the token endpoint"


# Writes of a known start outcome tried this often when the database connection drops.
RECORD_TRIES = 4
# The next probe comes back this long after the circuit reopens (never a moment early).
PROBE_LAG_S = 0.05


@dataclass(frozen=True)
class Later:
    """A delivery that left its call for later, as a monitor (Flower) may show it.

    `waiting`: no permit; a released permit wakes the call. `redial`: the start request met a
    429 or a retryable failure; a new dial message is due in `delay_s`. `attempt` is the start
    attempt made (redial) or waited for (waiting). Ids and reasons only: never a phone number,
    a secret or a token.
    """

    kind: Literal["waiting", "redial"]
    call_id: str
    reason: str
    attempt: int
    delay_s: float | None = None


class Dial:
    def __init__(
        self, ctx: CallContext, call_id: str, on_later: Callable[[Later], None] | None = None
    ) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.db = ctx.db
        self.call_id = call_id
        self.attempts: list[AttemptRecord] = []
        self.account = "default"
        self.on_later = on_later
        self.later: Later | None = None
        self.circuit_clean = False  # the account's circuit had nothing on record at the claim
        self.credentials_clean = False  # nor its credentials hold
        self.row_missing = False  # no row had this id at the claim

    def run(self) -> str:
        status = self._run()
        # Told only once the outcome is committed, so a monitor never shows what was rolled back.
        if self.later is not None and self.on_later is not None:
            self.on_later(self.later)
        return status

    def _run(self) -> str:
        request = self._claim()
        if request is None:
            return NO_ROW if self.row_missing else SKIPPED
        client = self.ctx.clients(request.account, self.attempts.append)
        try:
            result = client.start(start_body(request), call_id=self.call_id)
        except SymblError as error:
            return self._after_error(error)
        except Exception as error:
            # The request may have gone out: a second call is worse than a call to reconcile.
            log.exception("call %s: unexpected error while starting", self.call_id)
            return self._finish(CallStatus.UNKNOWN, f"unexpected error: {type(error).__name__}")
        return self._connected(result)

    # -- claiming ----------------------------------------------------------------------------

    def _claim(self) -> CallRequest | None:
        """Move the call to `dialing` and commit; None when this delivery must not dial."""
        now = self.ctx.now()
        with self.db.transaction() as session:
            call = repo.get_call(session, self.call_id)
            if call is None:
                self.row_missing = True
                return None
            status = CallStatus(call.status)
            if status in MAY_BE_LIVE:
                # A duplicate delivery: the call keeps the permit it may be live on; only a
                # stale place in line is dropped.
                self.ctx.capacity.forget(call.account, call.id)
                return None
            if status not in DIALABLE:
                # Over (canceled, failed, completed): a permit handed to it goes to the next.
                dispatch.release_permit(self.ctx, call.account, call.id)
                return None
            early = call.not_before if call.not_before and call.not_before > now else None
            if early is None:
                return self._claim_due(session, call, now)
        # Early delivery (clock skew between hosts, or a stale duplicate): come back when due.
        dispatch.dispatch(self.ctx, self.call_id, early)
        return None

    def _claim_due(self, session: Session, call: Call, now: datetime) -> CallRequest | None:
        self.account = call.account
        if now >= call.deadline_at:
            self._move(session, {CallStatus(call.status)}, CallStatus.FAILED, now, "deadline")
            dispatch.release_permit(self.ctx, call.account, call.id)
            return None
        if call.cancel_requested_at is not None:
            # Flagged while an earlier attempt was out, and that attempt put it back in line.
            status = CallStatus(call.status)
            self._move(session, {status}, CallStatus.CANCELED, now, CANCELED_REASON)
            dispatch.release_permit(self.ctx, call.account, call.id)
            return None
        probe = False
        if self.ctx.circuit is not None:
            gate = self.ctx.circuit.admit(call.account, call.id, now.timestamp())
            if not gate.allowed:
                self._park_for_api(session, call, now)
                return None
            self.circuit_clean, probe = gate.clean, gate.probe
        if self.ctx.credentials is not None:
            hold = self.ctx.credentials.admit(call.account, call.id, now.timestamp())
            if not hold.allowed:
                reason = credentials_refused(call.account)
                self._wait_for_api(session, call, hold.wait_s, now, reason)
                return None
            self.credentials_clean = hold.clean
        admission = self.ctx.capacity.acquire(
            call.account,
            call.id,
            score=permit_score(call.priority, call.created_at),
            lease_s=lease_s(call.max_duration_s, self.settings.permit_lease_margin_s),
            probe=probe,
        )
        dispatch.wake(self.ctx, admission.handed)
        if admission.verdict is not Verdict.GRANTED:
            self._wait_for_permit(session, call, admission.verdict, now)
            return None
        attempt = call.start_attempts + 1
        worker = self.ctx.worker_id
        claimed = repo.transition(
            session,
            call.id,
            from_={CallStatus(call.status)},
            to=CallStatus.DIALING,
            now=now,
            detail=f"start attempt {attempt} by {worker}",
            values={"start_attempts": attempt, "claimed_by": worker, "claimed_at": now},
        )
        if not claimed:
            return None
        try:
            # dialq wrote it: a schedule occurrence's key is in the namespace it reserves.
            return parse_call_request(
                call.request,
                allowed_country_codes=self.settings.allowed_country_codes,
                reserved_key=True,
            )
        except InvalidCallRequest as error:
            # Settings narrowed since the call was accepted (e.g. a country removed).
            self._move(session, {CallStatus.DIALING}, CallStatus.FAILED, now, f"rejected: {error}")
            return None

    def _wait_for_permit(
        self, session: Session, call: Call, verdict: Verdict, now: datetime
    ) -> None:
        """No permit: the call waits, holding no thread; a released permit wakes it."""
        why = (
            "account cooling down after a 429" if verdict is Verdict.COOLDOWN else "no free permit"
        )
        waits = True
        if call.status == CallStatus.QUEUED.value:
            waits = repo.transition(
                session,
                call.id,
                from_={CallStatus.QUEUED},
                to=CallStatus.WAITING,
                now=now,
                detail=f"waiting for capacity: {why}",
                values={"not_before": None, "dispatch_due_at": None},
            )
        elif call.not_before is not None:
            # A timed wait (after a 429) that found no permit becomes a permit wait.
            repo.clear_not_before(session, call.id)
        if waits:
            self.later = Later("waiting", call.id, why, call.start_attempts + 1)

    def _park_for_api(self, session: Session, call: Call, now: datetime) -> None:
        """The account's API circuit is open: the call waits in the account's line, parked with
        the whole line at no cost to its budget, until the probe's success hands permits on."""
        self._pause_line(call.account)
        dispatch.release_permit(self.ctx, call.account, call.id)  # paused: none handed on
        values = {"not_before": None, "dispatch_due_at": None, "reason": API_UNAVAILABLE}
        _to_waiting(session, call, now, values, f"{API_UNAVAILABLE}: parked until it answers")
        self.later = Later("waiting", call.id, API_UNAVAILABLE, call.start_attempts + 1)
        self._join_line(call)

    def _pause_line(self, account: str) -> None:
        if self.ctx.circuit is not None:
            self.ctx.capacity.pause(account, self.ctx.circuit.hold_s)

    def _join_line(self, call: Call) -> None:
        """Back in the account's line; if the circuit closed meanwhile, a permit may be held
        for it at once: then its dial message goes out now."""
        score = permit_score(call.priority, call.created_at)
        if dispatch.line_up(self.ctx, call.id, call.account, score) is Verdict.GRANTED:
            self.ctx.publisher.publish(routing.DIAL, call.id)

    def _wait_for_api(
        self, session: Session, call: Call, wait_s: float, now: datetime, why: str = API_UNAVAILABLE
    ) -> None:
        """The account's API circuit (or credentials hold) is open: wait for it, out of the
        permit line, at no cost to the failure budget. A permit handed to this call goes on to
        the next in line."""
        dispatch.release_permit(self.ctx, call.account, call.id)
        # Spread over a second, so a backlog does not come back in one burst.
        delay_s = wait_s + self.ctx.rng.uniform(0.0, 1.0)
        not_before = now + timedelta(seconds=delay_s)
        due_at = message_due_at(not_before, now)
        values = {"not_before": not_before, "dispatch_due_at": due_at, "reason": why}
        _to_waiting(session, call, now, values, f"{why}; looking again in {delay_s:.1f}s")
        self.ctx.capacity.forget(call.account, call.id)
        self.later = Later("redial", call.id, why, call.start_attempts, delay_s)
        if due_at is not None:
            dispatch.publish_dial(self.ctx, call.id, due_at)

    # -- outcomes ----------------------------------------------------------------------------

    def _connected(self, result: StartResult) -> str:
        # The call is live at the API and we hold its ids: a dropped database connection must
        # not turn that into `unknown` (nobody would watch, stop or harvest it). Retry the write.
        pending = list(self.attempts)
        retrying = Retrying(
            retry=retry_if_exception_type(DatabaseUnavailable),
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
        self.ctx.capacity.saw_success(self.account)
        self._api_answered()
        self._credentials_worked()
        if not moved:
            return self._orphan(result)
        log.info("call %s connected: conversation %s", self.call_id, result.conversation_id)
        # The lifecycle watcher takes over: end of call, maximum duration, cancel (at once when
        # a cancel came in while the start request was out).
        first_look_s = 0.0 if moved == CANCEL_PENDING else self.settings.watch_interval_s
        self.ctx.publisher.publish(routing.WATCH_CALL, self.call_id, first_look_s)
        return CallStatus.CONNECTED.value

    def _record_connected(self, result: StartResult) -> bool | str:
        """Move the call to `connected` with the API's ids; False when it had moved on,
        CANCEL_PENDING when it moved but a cancel is waiting for it."""
        now = self.ctx.now()
        interval_s = self.settings.watch_interval_s
        with self.db.transaction() as session:
            self._record_attempts(session)
            moved = repo.transition(
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
            )
            # A retry after a commit whose reply was lost finds its own write: not an orphan.
            call = repo.get_call(session, self.call_id)
            moved = moved or (call is not None and call.connection_id == result.connection_id)
        if moved and call is not None and call.cancel_requested_at is not None:
            return CANCEL_PENDING
        return bool(moved)

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
            return self._finish(CallStatus.UNKNOWN, outcome.reason)
        return self._finish(CallStatus.FAILED, outcome.reason)

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
        if self.ctx.circuit is not None and not self.circuit_clean:
            self.ctx.circuit.succeeded(self.account)
            # The parked line goes at full capacity: every free permit is handed on now.
            dispatch.wake(self.ctx, self.ctx.capacity.resume(self.account))

    def _credentials_worked(self) -> None:
        if self.ctx.credentials is not None and not self.credentials_clean:
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
        self._pause_line(self.account)
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
            if call.cancel_requested_at is not None:
                # No call started, and the person who canceled wants none: no redial.
                reason = f"{CANCELED_REASON} (the start request got: {detail})"
                self._move(session, {CallStatus.DIALING}, CallStatus.CANCELED, now, reason)
                dispatch.release_permit(self.ctx, self.account, self.call_id)
                return CallStatus.CANCELED.value
            if not_before is not None and not_before >= call.deadline_at:
                self._move(
                    session, {CallStatus.DIALING}, CallStatus.FAILED, now, f"deadline: {detail}"
                )
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
            self._join_line(call)
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
            self._move(session, set(RESOLVABLE - {to}), to, self.ctx.now(), reason)
        return to.value

    def _move(
        self,
        session: Session,
        from_: set[CallStatus],
        to: CallStatus,
        now: datetime,
        reason: str,
    ) -> None:
        values: dict[str, object] = {"reason": reason}
        if to.is_terminal:
            values["ended_at"] = now
        repo.transition(
            session, self.call_id, from_=from_, to=to, now=now, detail=reason, values=values
        )

    def _record_attempts(self, session: Session) -> None:
        repo.record_attempts(session, self.call_id, self.attempts)
        self.attempts.clear()


def _to_waiting(
    session: Session, call: Call, now: datetime, values: dict[str, Any], detail: str
) -> None:
    """The call waits for its API with these values: a waiting call has them set (no new
    state, no event), any other moves to waiting with `detail`."""
    status = CallStatus(call.status)
    if status is CallStatus.WAITING:
        repo.update_waiting(session, call.id, values)
    else:
        repo.transition(
            session, call.id, from_={status}, to=CallStatus.WAITING, now=now,
            detail=detail, values=values,
        )  # fmt: skip
