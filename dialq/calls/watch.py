"""After a call starts: watch it until it ends, stop it at its maximum duration, cancel it.

Looks at live calls are `dialq.watch_call` messages that publish the next one with a short
countdown; `watch_due_at` records when each call's next look is due, so the watchdog can
republish a lost one. A message looks at its own call and a page of other connected calls due
by then, so at scale a message serves a page of calls. Each look is claimed first (a
conditional update of `watch_due_at`, which also reads the call):
a duplicate message (redelivered, republished, sent by anyone, or a call's own message after
another page took its look) finds the look not yet due and ends at once, so extra messages
never multiply polling. Stopping is claimed
(`connected → stopping`, committed) before the stop request, so duplicate deliveries send one
stop.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dialq import routing
from dialq.calls import dispatch
from dialq.calls.context import CallContext
from dialq.calls.policy import lease_renewal_due
from dialq.calls.states import LIVE, CallStatus
from dialq.store import Call, Session, insights_repo
from dialq.store import calls_repo as repo
from dialq.symbl.client import AttemptRecord
from dialq.symbl.errors import NotFoundError, SymblError

log = logging.getLogger("dialq.lifecycle")
# A stop claimed longer ago than this lost its worker (the HTTP timeouts plus a margin).
STOP_STALE_MARGIN_S = 15.0
# What a watch message for a look not yet due does: nothing (another message holds the chain).
DUPLICATE = "duplicate"


@dataclass(frozen=True)
class CancelResult:
    """What `cancel` did, in words for the CLI and the Python API."""

    call_id: str
    status: str
    changed: bool
    message: str


def parse_end_time(value: Any) -> datetime | None:
    """The conversation's ``endTime`` as an aware UTC time; None when absent or unreadable.

    Symbl's times are UTC: one written without an offset is read as UTC. A time that leaves the
    calendar in UTC is unreadable, not an error: the watch goes on, the maximum duration holds.
    """
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


class Lifecycle:
    def __init__(self, ctx: CallContext) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.db = ctx.db

    # -- watching ----------------------------------------------------------------------------

    def watch(self, call_id: str) -> str:
        """One look at a live call, and at a page of other connected calls due by then; then
        one next message for each time a look falls due, unless every call ended.

        A message for a look not yet due is a duplicate ("duplicate"), unless a cancel waits
        for the connected call. The looks are claimed and the calls read in two statements of
        one transaction. When another message's page took a call's look, the call's own
        message finds it not due: the chains of messages merge as pages fill, so at scale a
        message looks at a page of calls, not one (`DIALQ_WATCH_PAGE`). Such a message may have
        carried a page of its own, so it takes the looks now overdue (only those: duplicates
        never poll early) and carries them on.
        """
        now = self.ctx.now()
        interval_s = self.settings.watch_interval_s
        due_by = now + timedelta(seconds=interval_s / 2)
        next_due = now + timedelta(seconds=interval_s)
        page = self.settings.watch_page
        with self.db.transaction() as session:
            call = repo.take_look(session, call_id, due_by=due_by, next_due=next_due)
            if call is None:
                outcome = self._not_taken(session, call_id)
                others = repo.take_due_looks(session, due_by=now, next_due=next_due, limit=page)
            else:
                outcome = "watching"
                others = repo.take_due_looks(
                    session, due_by=due_by, next_due=next_due, limit=page - 1
                )
        next_looks: dict[str, float] = {}
        try:
            if call is not None:
                own = self._look(call, now)
                if isinstance(own, float):
                    next_looks[call.id] = own
                else:
                    outcome = own
        finally:
            # Whatever became of its own look, the page's calls are looked at and go on.
            for other in others:
                self._look_in_page(other, now, next_looks)
            self._publish_next(next_looks)
        return outcome

    def _look_in_page(self, call: Call, now: datetime, next_looks: dict[str, float]) -> None:
        try:
            outcome = self._look(call, now)
        except Exception:
            # Claimed and not looked at: the page's next message looks at it again.
            log.exception("call %s: look failed; looking again next interval", call.id)
            outcome = self.settings.watch_interval_s
        if isinstance(outcome, float):
            next_looks[call.id] = outcome

    def _publish_next(self, next_looks: dict[str, float]) -> None:
        """One message for each time a look falls due (its call's look is then due, so the
        message takes it and a page with it); nearly always one, the interval."""
        by_delay: dict[float, str] = {}
        for call_id, delay_s in next_looks.items():
            by_delay.setdefault(delay_s, call_id)
        for delay_s, call_id in by_delay.items():
            self.ctx.publisher.publish(routing.WATCH_CALL, call_id, delay_s)

    def _look(self, call: Call, now: datetime) -> str | float:
        """Look at a claimed call: its outcome, or the seconds until its next look."""
        interval_s = self.settings.watch_interval_s
        if call.status == CallStatus.STOPPING.value:
            return self._retry_stale_stop(call, now)
        if call.cancel_requested_at is not None:
            return self.stop(call.id, "canceled: stopped while live", to=CallStatus.CANCELED)
        if self._past_max_duration(call, now):
            return self.stop(call.id, "max duration")
        delay_s = self._next_delay_s(call, now)
        if delay_s < interval_s:
            # The maximum duration comes before the next interval: its look is due then.
            with self.db.transaction() as session:
                repo.set_watch_due(session, call.id, now + timedelta(seconds=delay_s))
        ended_at = self._end_seen(call)
        if ended_at is not None:
            return self._ended(call.id, ended_at, "ended")
        self._renew_permit(call, now)
        return delay_s

    @staticmethod
    def _not_taken(session: Session, call_id: str) -> str:
        """Why a message took no look: the call is not live, or its look is not due.

        The chain's own message arrives when its look is due. A duplicate arrives earlier and
        ends, or, in the last half interval, takes the look over and the chain's own message
        then ends: one chain survives, and no stream of duplicates can poll more often than
        twice an interval. (A look running early beyond that only delays; the watchdog
        republishes a look overdue.)
        """
        call = repo.get_call(session, call_id)
        if call is None or CallStatus(call.status) not in LIVE:
            return "skipped"
        return DUPLICATE

    def _renew_permit(self, call: Call, now: datetime) -> None:
        margin_s = self.settings.permit_lease_margin_s
        started = call.connected_at or call.created_at
        if not lease_renewal_due(started, now, self.settings.watch_interval_s, margin_s):
            return
        remaining_s = (started + timedelta(seconds=call.max_duration_s) - now).total_seconds()
        lease_s = max(0.0, remaining_s) + margin_s
        self.ctx.capacity.renew(call.account, call.id, lease_s)

    def _past_max_duration(self, call: Call, now: datetime) -> bool:
        started = call.connected_at or call.created_at
        return now >= started + timedelta(seconds=call.max_duration_s)

    def _end_seen(self, call: Call) -> datetime | None:
        if not call.conversation_id:
            return None
        client = self.ctx.clients(call.account, _ignore)
        try:
            conversation = client.conversation(call.conversation_id)
        except SymblError as error:
            # Not fatal: the next look tries again; the maximum duration still applies.
            log.info("call %s: conversation lookup failed: %s", call.id, type(error).__name__)
            return None
        end = conversation.get("endTime") if isinstance(conversation, dict) else None
        return parse_end_time(end)

    def _next_delay_s(self, call: Call, now: datetime) -> float:
        """Until the next look: an interval, or less when the maximum duration comes first."""
        started = call.connected_at or call.created_at
        until_max_s = (started + timedelta(seconds=call.max_duration_s) - now).total_seconds()
        return max(0.0, min(self.settings.watch_interval_s, until_max_s))

    # -- ending ------------------------------------------------------------------------------

    def _ended(self, call_id: str, ended_at: datetime, reason: str) -> str:
        moved = self._finish(
            call_id, {CallStatus.CONNECTED}, CallStatus.COMPLETED, reason, ended_at
        )
        return CallStatus.COMPLETED.value if moved else "skipped"

    def _finish(
        self,
        call_id: str,
        from_: set[CallStatus],
        to: CallStatus,
        reason: str,
        ended_at: datetime,
        summary_info: list[Any] | None = None,
    ) -> bool:
        values: dict[str, Any] = {"reason": reason, "ended_at": ended_at, "watch_due_at": None}
        if summary_info is not None:
            values["summary_info"] = summary_info
        now = self.ctx.now()
        with self.db.transaction() as session:
            # What the end needs of the row comes back with the UPDATE: no read after it.
            moved = repo.transition_returning(
                session,
                call_id,
                from_=from_,
                to=to,
                now=now,
                detail=reason,
                values=values,
                returning=[Call.account, Call.conversation_id],
            )
            if moved is not None and moved.conversation_id:
                # With the end, in its transaction: a crash before the harvest message is sent
                # leaves a due row for the insights sweep, never an ended call nobody harvests.
                insights_repo.add_pending(session, call_id, now=now)
        if moved is None:
            return False
        log.info("call %s %s: %s", call_id, to.value, reason)
        dispatch.release_permit(self.ctx, moved.account, call_id)
        dispatch.call_ended(self.ctx, call_id)
        return True

    def stop(self, call_id: str, reason: str, *, to: CallStatus = CallStatus.COMPLETED) -> str:
        """Claim the stop (connected → stopping), send it once, and record the outcome."""
        now = self.ctx.now()
        with self.db.transaction() as session:
            claimed = repo.transition(
                session,
                call_id,
                from_={CallStatus.CONNECTED},
                to=CallStatus.STOPPING,
                now=now,
                detail=f"stopping: {reason}",
                values={"reason": reason},
            )
        if not claimed:
            return "skipped"
        return self._send_stop(call_id, reason, to)

    def _send_stop(self, call_id: str, reason: str, to: CallStatus) -> str:
        with self.db.sessions() as session:
            call = repo.get_call(session, call_id)
        if call is None or not call.connection_id:
            return "skipped"
        attempts: list[AttemptRecord] = []
        client = self.ctx.clients(call.account, attempts.append)
        try:
            result = client.stop(call.connection_id)
        except NotFoundError:
            # The call had already ended at Symbl's side: completed, not failed.
            self._record(call_id, attempts)
            self._finish(
                call_id, {CallStatus.STOPPING}, to, f"{reason} (already ended)", self.ctx.now()
            )
            return to.value
        except SymblError as error:
            # Stopping twice is harmless (a second stop answers 404), so the next look retries.
            self._record(call_id, attempts)
            log.warning("call %s: stop failed (%s); will retry", call_id, type(error).__name__)
            self.ctx.publisher.publish(routing.WATCH_CALL, call_id, self.settings.watch_interval_s)
            return CallStatus.STOPPING.value
        self._record(call_id, attempts)
        self._finish(
            call_id, {CallStatus.STOPPING}, to, reason, self.ctx.now(), result.summary_info
        )
        return to.value

    def _retry_stale_stop(self, call: Call, now: datetime) -> str:
        stale_s = (
            self.settings.http_connect_timeout_s
            + self.settings.http_read_timeout_s
            + STOP_STALE_MARGIN_S
        )
        if (now - call.updated_at).total_seconds() < stale_s:
            self.ctx.publisher.publish(routing.WATCH_CALL, call.id, self.settings.watch_interval_s)
            return "stopping"
        # Re-claim with the updated_at we saw, so only one of several deliveries retries.
        with self.db.transaction() as session:
            reclaimed = repo.reclaim_stop(session, call.id, seen_at=call.updated_at, now=now)
        if not reclaimed:
            return "skipped"
        to = CallStatus.CANCELED if call.cancel_requested_at else CallStatus.COMPLETED
        return self._send_stop(call.id, call.reason or "stop", to)

    def _record(self, call_id: str, attempts: list[AttemptRecord]) -> None:
        if not attempts:
            return
        with self.db.transaction() as session:
            repo.record_attempts(session, call_id, attempts)


def _ignore(_attempt: AttemptRecord) -> None:
    """Polling GETs are not recorded as attempts: one a few seconds per live call is noise."""
