"""Harvesting an ended call's transcript and insights from the Conversation API.

The database decides (docs/architecture.md, "Invariants"): a harvest first holds the call's
insights row with one conditional UPDATE (a lease, fenced by the attempt count), so duplicate
deliveries of the harvest message do nothing, and a harvest whose lease expired cannot
overwrite a newer one.
No Celery here: the task layer only calls ``harvest`` and ``sweep``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from dialq import routing
from dialq.calls.context import ClientFactory
from dialq.clock import utcnow
from dialq.config import Settings
from dialq.insights.policy import (
    SUMMARY_NOT_READY,
    TRANSCRIPT_EMPTY,
    Decision,
    Problem,
    decide,
    problem_for,
)
from dialq.insights.states import InsightsStatus
from dialq.publisher import Publisher, SafePublisher
from dialq.store import Conflict, Database, Session, calls_repo, insights_repo
from dialq.store.insights_tables import Insights
from dialq.symbl.client import AttemptRecord, SymblClient
from dialq.symbl.errors import NotFoundError, SymblError, UnexpectedResponseError

log = logging.getLogger("dialq.insights")

# Fetched in this order: messages first, so an unknown conversation stops the harvest at once.
PARTS = ("messages", "summary", "topics", "questions", "action-items", "follow-ups", "members")
OPTIONAL_PARTS = ("analytics",)
# The key each part's list is under (docs/symbl-api.md §6); analytics is kept whole.
LIST_KEYS = {
    "messages": "messages",
    "summary": "summary",
    "topics": "topics",
    "questions": "questions",
    "action-items": "actionItems",
    "follow-ups": "followUps",
    "members": "members",
}
# A harvest message may arrive a little before the row says it is due (clocks of two hosts).
EARLY_TOLERANCE_S = 1.0
# The sweeper leaves alone what a message or a running harvest should pick up by itself.
SWEEP_GRACE_S = 5.0
SWEEP_BATCH = 100


@dataclass(frozen=True)
class Held:
    """A harvest's hold on one call's insights row."""

    token: int
    account: str
    conversation_id: str
    deadline: datetime


@dataclass
class Fetched:
    parts: dict[str, Any] = field(default_factory=dict)
    problem: Problem | None = None


class InsightsService:
    """Fetches, stores and retries one ended call's insights; `sweep` is the backstop."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        clients: ClientFactory,
        publisher: Publisher,
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self._clients = clients
        self._publisher = SafePublisher(publisher)
        self._clock = clock
        self._rng = rng or random.Random()
        # Longer than the slowest harvest: every part timing out once, plus a margin.
        per_request_s = settings.http_connect_timeout_s + settings.http_read_timeout_s
        self._lease = timedelta(seconds=(len(PARTS) + 1) * per_request_s + 30)

    def harvest(self, call_id: str) -> str:
        """Fetch and store what is there: ready, try again later, or give up. Says what it did."""
        held = self._hold(call_id)
        if isinstance(held, str):
            log.info("insights for %s: nothing to do (%s)", call_id, held)
            return held
        client = self._clients(held.account, self._failure_recorder(call_id))
        fetched = fetch(client, held.conversation_id)
        return self._record(call_id, held, fetched)

    def _hold(self, call_id: str) -> Held | str:
        now = self._clock()
        try:
            with self.db.transaction() as session:
                call = calls_repo.get_call(session, call_id)
                if call is None:
                    return "missing"
                if call.status not in insights_repo.ENDED or not call.conversation_id:
                    return "not ended"
                row = self._insights_row(session, call_id, now)
                if row is None:
                    return "missing"  # the call was deleted meanwhile
                if row.status != InsightsStatus.PENDING:
                    return f"already {row.status}"
                due_by = now + timedelta(seconds=EARLY_TOLERANCE_S)
                token = insights_repo.claim(
                    session, row, due_by=due_by, now=now, lease_until=now + self._lease
                )
                if token is None:
                    return "held elsewhere or not due"
                ended_at = call.ended_at or call.updated_at
                deadline = ended_at + timedelta(seconds=self.settings.insights_deadline_s)
                return Held(token, call.account, call.conversation_id, deadline)
        except Conflict:
            # The call was deleted while its row was written (its foreign key): nothing to do.
            return "missing"

    @staticmethod
    def _insights_row(session: Session, call_id: str, now: datetime) -> Insights | None:
        """The call's insights row: written with the call's end, or now for a call ended by
        an older worker. Never a second row: of two deliveries, both then claim the one row."""
        row = insights_repo.get(session, call_id)
        if row is None:
            insights_repo.add_pending(session, call_id, now=now)
            row = insights_repo.get(session, call_id)
        return row

    def _record(self, call_id: str, held: Held, fetched: Fetched) -> str:
        now = self._clock()
        decision = decide(
            fetched.problem,
            now=now,
            deadline=held.deadline,
            deadline_s=self.settings.insights_deadline_s,
            attempt=held.token,
            rng=self._rng,
            base_s=self.settings.insights_backoff_base_s,
            max_s=self.settings.insights_backoff_max_s,
        )
        retry_in_s = decision.retry_in_s
        retry_at = None if retry_in_s is None else now + timedelta(seconds=retry_in_s)
        with self.db.transaction() as session:
            saved = insights_repo.save(
                session,
                call_id,
                held.token,
                parts=fetched.parts,
                now=now,
                status=decision.status,
                reason=decision.reason,
                next_attempt_at=retry_at,
            )
            if not saved:
                return "lease lost"  # a newer harvest holds the row; its result stands
            if decision.status.is_final:
                calls_repo.append_event(session, call_id, None, now, event_detail(decision))
        if decision.retry_in_s is not None:
            self._publish(call_id, decision.retry_in_s)
        log.info("insights for %s: %s (%s)", call_id, decision.status, decision.reason or "-")
        return decision.status.value

    def _failure_recorder(self, call_id: str) -> Callable[[AttemptRecord], None]:
        """Failed HTTP attempts go to the call's attempts; the many successful reads do not."""

        def record(attempt: AttemptRecord) -> None:
            if attempt.status is not None and attempt.status < 400:
                return
            with self.db.transaction() as session:
                calls_repo.record_attempts(session, call_id, [attempt])

        return record

    def sweep(self, *, limit: int = SWEEP_BATCH) -> int:
        """Publish the harvests that are due and whose message was lost. Bounded.

        Due rows come from ix_insights_due. A call's row is written with its end, so only a
        call ended by an older worker lacks one: those are looked for back to the insights
        deadline, no further (migration 0007 wrote the row of every call ended before it).
        """
        now = self._clock()
        stale = now - timedelta(seconds=SWEEP_GRACE_S)
        due = self._backfill(now, stale, limit)
        with self.db.transaction() as session:
            for row in insights_repo.overdue(session, due_before=stale, limit=limit):
                if insights_repo.mark_republished(session, row, now=now):
                    due.append(row.call_id)
        for call_id in due:
            self._publish(call_id, 0.0)
        return len(due)

    def _backfill(self, now: datetime, stale: datetime, limit: int) -> list[str]:
        """Write the pending row of each call ended within the deadline without one."""
        window_start = now - timedelta(seconds=self.settings.insights_deadline_s)
        with self.db.sessions() as session:
            never_started = insights_repo.ended_without_insights(
                session, ended_after=window_start, ended_before=stale, limit=limit
            )
        written: list[str] = []
        for call_id in never_started:
            try:
                with self.db.transaction() as session:
                    if insights_repo.add_pending(session, call_id, now=now):
                        written.append(call_id)
            except Conflict:
                continue  # the call was deleted meanwhile
        return written

    def _publish(self, call_id: str, countdown_s: float) -> None:
        # Safe: the row already says when the harvest is due, and the sweeper publishes it again.
        self._publisher.publish(routing.HARVEST_INSIGHTS, call_id, countdown_s)


def fetch(client: SymblClient, conversation_id: str) -> Fetched:
    """Every part the API has now; the first problem that means "not ready" or "stop here"."""
    fetched = Fetched()
    for part in PARTS:
        try:
            fetched.parts[part] = _list_part(part, client.conversation(conversation_id, part))
        except NotFoundError as error:
            if part != "summary":
                fetched.problem = problem_for(error)
                return fetched
            # The documented way the API says "still processing" (docs/symbl-api.md §6).
            fetched.problem = SUMMARY_NOT_READY
        except SymblError as error:
            fetched.problem = problem_for(error)
            return fetched
    for part in OPTIONAL_PARTS:
        try:
            body = client.conversation(conversation_id, part)
        except SymblError as error:
            log.info("optional part %s not read: %s", part, error)
            continue
        if isinstance(body, dict):
            fetched.parts[part] = body
    if fetched.problem is None and not fetched.parts.get("messages"):
        fetched.problem = TRANSCRIPT_EMPTY
    return fetched


def _list_part(part: str, body: Any) -> list[Any]:
    value = body.get(LIST_KEYS[part]) if isinstance(body, dict) else None
    if not isinstance(value, list):
        raise UnexpectedResponseError(f"{part}: no {LIST_KEYS[part]} list", status=200)
    return value


def event_detail(decision: Decision) -> str:
    """The timeline entry, and what webhooks tell the producer."""
    if decision.status is InsightsStatus.READY:
        return "insights: ready"
    return f"insights: {decision.status}: {decision.reason}"
