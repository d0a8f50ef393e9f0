"""The dispatcher tick: turn due occurrences into calls, each exactly once (invariant 5 of
docs/architecture.md).

Beat only says "tick". A tick reads the schedules due before its horizon (an indexed query)
and, for each occurrence, records one row under the unique key (schedule, instant) in the same
transaction that writes its call and advances the schedule; a second beat, a repeated tick or a
restart finds the key taken and does nothing. Occurrences due before the next tick are
enqueued with `not_before` = the planned instant, so the dial message waits in a short broker
countdown and the start request goes out on time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from dialq.calls.request import InvalidCallRequest, parse_call_request
from dialq.calls.states import TERMINAL, CallStatus
from dialq.config import Settings
from dialq.publisher import MAX_COUNTDOWN_S
from dialq.schedules.rules import Rule, next_after, utc_iso
from dialq.schedules.spec import rule_of
from dialq.store import Conflict, Database, Session
from dialq.store import schedules_repo as repo
from dialq.store.schedule_tables import Outcome, Schedule
from dialq.store.tables import Call

if TYPE_CHECKING:
    from dialq.calls.request import CallRequest
    from dialq.calls.service import CallHandle

log = logging.getLogger("dialq.schedules")

# After an outage, at most this many late occurrences of one schedule get a row each per tick;
# the rest are skipped in one jump (a per-second schedule must not write a day of rows at once).
MAX_LATE_ROWS = 100
# Occurrences handled per schedule per tick: a bound, not a target (a few fit in a horizon).
MAX_PER_SCHEDULE = 50


class Enqueue(Protocol):
    """CallService.enqueue: writes the call and, via `also`, more rows in its transaction."""

    def __call__(
        self, request: CallRequest, *, also: Callable[[Session, Call], None] | None = None
    ) -> CallHandle: ...


def utcnow() -> datetime:
    return datetime.now(UTC)


def is_live(status: str | None) -> bool:
    """Still holding the line, or about to: anything that is not finished."""
    return status is not None and CallStatus(status) not in TERMINAL


def decide(
    occurrence_at: datetime, now: datetime, *, grace_s: float, overlap: str, previous_live: bool
) -> Outcome | None:
    """What to do with an occurrence now; None means "not yet: decide at a later tick"."""
    if (now - occurrence_at).total_seconds() > grace_s:
        return Outcome.SKIPPED_LATE
    if overlap == "skip" and previous_live:
        # A call that is live before the instant may well have ended by then: wait and see.
        return Outcome.SKIPPED_OVERLAP if occurrence_at <= now else None
    return Outcome.PLACED


def occurrence_key(schedule_id: str, occurrence_at: datetime) -> str:
    """The call's idempotency key: CallService.enqueue itself refuses a second call for it.

    Its prefix is reserved (dialq.calls.request.RESERVED_KEY_PREFIXES): producers cannot send it.
    """
    return f"schedule:{schedule_id}:{utc_iso(occurrence_at)}"


@dataclass
class TickReport:
    due: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    already_handled: int = 0

    def count(self, outcome: Outcome, n: int = 1) -> None:
        self.outcomes[outcome.value] = self.outcomes.get(outcome.value, 0) + n


class ScheduleDispatcher:
    """One tick at a time; any number of ticks may run at once, in any number of processes."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        enqueue: Enqueue,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.db = db
        self._enqueue = enqueue
        self._clock = clock

    def lookahead_s(self) -> float:
        # Two tick intervals and a margin, so an occurrence is enqueued at least one tick before
        # its instant even when a tick runs late; never beyond a broker countdown (invariant 4).
        return min(MAX_COUNTDOWN_S, 2 * self.settings.schedule_tick_s + 1.0)

    def tick(self) -> TickReport:
        now = self._clock()
        horizon = now + timedelta(seconds=self.lookahead_s())
        with self.db.sessions() as session:
            due = repo.due(session, horizon, limit=self.settings.schedule_tick_batch)
        report = TickReport(due=len(due))
        for schedule in due:
            try:
                self._run(schedule, horizon, report)
            except Exception:
                # One broken schedule must not stop the others; the next tick tries it again.
                log.exception("schedule %s: tick failed", schedule.name)
        return report

    def _run(self, schedule: Schedule, horizon: datetime, report: TickReport) -> None:
        rule = rule_of(schedule, schedule.created_at)
        grace_s = self._grace_s(schedule)
        at, last_call = schedule.next_due_at, schedule.last_call_id
        for _ in range(MAX_PER_SCHEDULE):
            if at is None or at > horizon:
                return
            now = self._clock()
            # Only "skip" needs the previous call's state: spare the query otherwise.
            check = schedule.overlap == "skip" and last_call is not None
            previous_live = check and is_live(self._status(last_call or ""))
            outcome = decide(
                at, now, grace_s=grace_s, overlap=schedule.overlap, previous_live=previous_live
            )
            if outcome is None:
                return
            if outcome is Outcome.SKIPPED_LATE:
                at = self._skip_late(schedule, rule, at, now - timedelta(seconds=grace_s), report)
            elif outcome is Outcome.SKIPPED_OVERLAP:
                at = self._skip(schedule, rule, at, outcome, report, f"call {last_call} live")
            else:
                at, placed = self._place(schedule, rule, at, report)
                last_call = placed or last_call

    def _grace_s(self, schedule: Schedule) -> float:
        if schedule.misfire_grace_s is not None:
            return float(schedule.misfire_grace_s)
        return float(self.settings.schedule_misfire_grace_s)

    def _status(self, call_id: str) -> str | None:
        with self.db.sessions() as session:
            return repo.call_status(session, call_id)

    def _skip_late(
        self, schedule: Schedule, rule: Rule, at: datetime, cutoff: datetime, report: TickReport
    ) -> datetime | None:
        """Record the late occurrences before `cutoff` (up to MAX_LATE_ROWS) in one go."""
        late: list[datetime] = [at]
        following = next_after(rule, at)
        while following is not None and following < cutoff and len(late) < MAX_LATE_ROWS:
            late.append(following)
            following = next_after(rule, following)
        if following is not None and following < cutoff:
            following = next_after(rule, cutoff - timedelta(microseconds=1))  # the long jump
        now = self._clock()
        try:
            with self.db.transaction() as session:
                for instant in late:
                    repo.add_occurrence(
                        session, schedule.id, instant, Outcome.SKIPPED_LATE, now=now
                    )
                repo.advance(session, schedule.id, from_due=at, to_due=following, now=now)
        except Conflict:
            report.already_handled += 1
            return None
        log.info("schedule %s: %d late occurrence(s) skipped", schedule.name, len(late))
        report.count(Outcome.SKIPPED_LATE, len(late))
        return following

    def _skip(
        self,
        schedule: Schedule,
        rule: Rule,
        at: datetime,
        outcome: Outcome,
        report: TickReport,
        detail: str,
    ) -> datetime | None:
        following = next_after(rule, at)
        now = self._clock()
        try:
            with self.db.transaction() as session:
                repo.add_occurrence(session, schedule.id, at, outcome, now=now, detail=detail)
                repo.advance(session, schedule.id, from_due=at, to_due=following, now=now)
        except Conflict:
            report.already_handled += 1
            return None
        report.count(outcome)
        return following

    def _place(
        self, schedule: Schedule, rule: Rule, at: datetime, report: TickReport
    ) -> tuple[datetime | None, str | None]:
        following = next_after(rule, at)

        def record(session: Session, call: Call) -> None:
            # Runs inside the call's transaction: the call, its occurrence row and the advanced
            # schedule are committed together, or not at all.
            now = self._clock()
            repo.add_occurrence(session, schedule.id, at, Outcome.PLACED, now=now, call_id=call.id)
            repo.advance(
                session, schedule.id, from_due=at, to_due=following, now=now, last_call_id=call.id
            )

        payload = {
            **schedule.template,
            "not_before": at.isoformat(),
            "idempotency_key": occurrence_key(schedule.id, at),
        }
        try:
            request = parse_call_request(
                payload,
                allowed_country_codes=self.settings.allowed_country_codes,
                summary_email_domains=self.settings.summary_email_domains,
                reserved_key=True,  # occurrence keys are in the namespace producers cannot use
            )
            handle = self._enqueue(request, also=record)
        except InvalidCallRequest as error:
            # Valid when stored, refused now (settings narrowed): record it, do not retry forever.
            detail = f"invalid call: {error}"
            return self._skip(schedule, rule, at, Outcome.SKIPPED_INVALID, report, detail), None
        except Conflict:
            report.already_handled += 1  # another tick recorded this occurrence first
            return None, None
        if not handle.created:
            report.already_handled += 1
            return None, None
        report.count(Outcome.PLACED)
        return following, handle.id
