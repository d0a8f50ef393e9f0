"""Claiming a call for one dial delivery: the checks before its start request (row, state,
schedule, deadline, cancel, the account's API circuit and credentials, a permit), and the
commit that moves it to `dialing`. A delivery that must not dial leaves here with why: the
call waits (in line, or for its API), comes back later, or was never its to dial.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from dialq.calls import dispatch
from dialq.calls.context import CallContext
from dialq.calls.policy import (
    API_UNAVAILABLE,
    CANCELED_REASON,
    credentials_refused,
    lease_s,
    message_due_at,
    permit_score,
)
from dialq.calls.request import CallRequest, InvalidCallRequest, parse_call_request
from dialq.calls.states import DIALABLE, MAY_BE_LIVE, CallStatus
from dialq.capacity import Verdict
from dialq.circuit import all_clear
from dialq.store import EventNumberTaken, Session
from dialq.store import calls_repo as repo
from dialq.store.calls_repo import ClaimFields


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


class Claim:
    """One delivery's claim: `take` returns the request to start, or None; the attributes say
    what the claim learned for the rest of the delivery."""

    def __init__(self, ctx: CallContext, call_id: str) -> None:
        self.ctx = ctx
        self.call_id = call_id
        self.account = "default"
        self.later: Later | None = None
        self.circuit_clean = False  # the account's circuit had nothing on record at the claim
        self.credentials_clean = False  # nor its credentials hold
        self.probe = False  # this delivery is the account's one probe of an open circuit
        # The account's learned limit was below its configured one at the claim (after a 429):
        # only then does a clean start count toward raising it (a Redis round trip).
        self.learning = False
        self.row_missing = False  # no row had this id at the claim
        # The claim's event rides in its UPDATE's statement (calls_repo.transition_returning).
        self.event_in_statement = True

    def take(self) -> CallRequest | None:
        """Move the call to `dialing` and commit; None when this delivery must not dial."""
        try:
            return self._take()
        except EventNumberTaken:
            # An event was committed while the claim's statement waited for the row: nothing
            # was written. Once more, the event a statement of its own (the permit held by
            # now is this call's, and taking it again is a no-op).
            self.event_in_statement = False
            return self._take()

    def _take(self) -> CallRequest | None:
        now = self.ctx.now()
        with self.ctx.db.transaction() as session:
            call = repo.read_for_claim(session, self.call_id)
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
                # Over (canceled, failed, completed): a permit handed to it goes to the next,
                # and so does the account's probe, if it was to be this call.
                dispatch.release_permit(self.ctx, call.account, call.id)
                self._not_the_probe(call.account)
                return None
            early = call.not_before if call.not_before and call.not_before > now else None
            if early is None:
                return self._claim_due(session, call, now)
        # Early delivery (clock skew between hosts, or a stale duplicate): come back when due.
        dispatch.dispatch(self.ctx, self.call_id, early)
        return None

    def _claim_due(self, session: Session, call: ClaimFields, now: datetime) -> CallRequest | None:
        self.account = call.account
        if now >= call.deadline_at:
            status = CallStatus(call.status)
            repo.move(session, call.id, {status}, CallStatus.FAILED, now, "deadline")
            dispatch.release_permit(self.ctx, call.account, call.id)
            self._not_the_probe(call.account)
            return None
        if call.cancel_requested_at is not None:
            # Flagged while an earlier attempt was out, and that attempt put it back in line.
            status = CallStatus(call.status)
            repo.move(session, call.id, {status}, CallStatus.CANCELED, now, CANCELED_REASON)
            dispatch.release_permit(self.ctx, call.account, call.id)
            self._not_the_probe(call.account)
            return None
        probe = False
        gates = [gate for gate in (self.ctx.circuit, self.ctx.credentials) if gate is not None]
        if all_clear(call.account, *gates):
            # Neither the API circuit nor the credentials hold has anything on record: each
            # would admit the call, clean (one round trip where asking both takes two).
            self.circuit_clean = self.credentials_clean = True
        elif self.ctx.circuit is not None:
            gate = self.ctx.circuit.admit(call.account, call.id, now.timestamp())
            if not gate.allowed:
                self._park_for_api(session, call, now)
                return None
            self.circuit_clean, probe = gate.clean, gate.probe
            self.probe = probe
        if self.ctx.credentials is not None and not self.credentials_clean:
            hold = self.ctx.credentials.admit(call.account, call.id, now.timestamp())
            if not hold.allowed:
                reason = credentials_refused(call.account)
                self._wait_for_api(session, call, hold.wait_s, now, reason)
                if probe:
                    self._not_the_probe(call.account)
                return None
            self.credentials_clean = hold.clean
        admission = self.ctx.capacity.acquire(
            call.account,
            call.id,
            score=permit_score(call.priority, call.created_at),
            lease_s=lease_s(call.max_duration_s, self.ctx.settings.permit_lease_margin_s),
            probe=probe,
        )
        dispatch.wake(self.ctx, admission.handed)
        self.learning = admission.learning
        if admission.verdict is not Verdict.GRANTED:
            self._wait_for_permit(session, call, admission.verdict, now)
            if probe:
                self._not_the_probe(call.account)
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
            event_in_statement=self.event_in_statement,
        )
        if not claimed:
            return None
        try:
            # dialq wrote it: a schedule occurrence's key is in the namespace it reserves.
            return parse_call_request(
                call.request,
                allowed_country_codes=self.ctx.settings.allowed_country_codes,
                reserved_key=True,
            )
        except InvalidCallRequest as error:
            # Settings narrowed since the call was accepted (e.g. a country removed).
            reason = f"rejected: {error}"
            repo.move(session, call.id, {CallStatus.DIALING}, CallStatus.FAILED, now, reason)
            return None

    def _wait_for_permit(
        self, session: Session, call: ClaimFields, verdict: Verdict, now: datetime
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

    def _not_the_probe(self, account: str) -> None:
        """This delivery will not send a start request: if the account's circuit had chosen
        this call as its probe, it chooses another (the watchdog's next tick) instead of
        holding the circuit shut for the probe's TTL."""
        if self.ctx.circuit is not None:
            self.ctx.circuit.release_probe(account, self.call_id)

    def _park_for_api(self, session: Session, call: ClaimFields, now: datetime) -> None:
        """The account's API circuit is open: the call waits in the account's line, parked with
        the whole line at no cost to its budget, until the probe's success hands permits on."""
        dispatch.pause_line(self.ctx, call.account)
        dispatch.release_permit(self.ctx, call.account, call.id)  # paused: none handed on
        values = {"not_before": None, "dispatch_due_at": None, "reason": API_UNAVAILABLE}
        _to_waiting(session, call, now, values, f"{API_UNAVAILABLE}: parked until it answers")
        self.later = Later("waiting", call.id, API_UNAVAILABLE, call.start_attempts + 1)
        dispatch.rejoin_line(self.ctx, call)

    def _wait_for_api(
        self,
        session: Session,
        call: ClaimFields,
        wait_s: float,
        now: datetime,
        why: str = API_UNAVAILABLE,
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


def _to_waiting(
    session: Session, call: ClaimFields, now: datetime, values: dict[str, Any], detail: str
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
