"""Signed webhook delivery: follow each call's events (the outbox) with a cursor.

One delivery at a time per call (a lease on its cursor row) sends the events past the cursor
in sequence order and moves the cursor after each 2xx. A failure (non-2xx, timeout, refused
connection) schedules a retry with backoff; an event still not accepted
``webhook_retry_window_s`` after it happened is given up, recorded and skipped, so the final
states still reach a receiver that comes back. A refused address stops the call's stream.
Delivery runs on its own queue: a failing receiver never holds up a call.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dialq import routing
from dialq.backoff import backoff_s
from dialq.config import Settings
from dialq.publisher import MAX_COUNTDOWN_S, Publisher, SafePublisher
from dialq.store import Conflict, Database, Session
from dialq.store import webhooks_repo as repo
from dialq.store.tables import Call, Event
from dialq.store.webhook_tables import WebhookAttempt, WebhookCursor
from dialq.webhooks.guard import Resolver, display_url, parse_networks, system_resolver
from dialq.webhooks.payload import build_payload, encode, event_id, is_insights_event
from dialq.webhooks.sender import Sent, WebhookSender
from dialq.webhooks.transport import PinnedHTTP, Transport

log = logging.getLogger("dialq.webhooks")

# Events one delivery sends before handing over to a fresh message (fairness between calls).
MAX_EVENTS_PER_RUN = 50
# The sweeper leaves a new event this long to the nudge published at commit time.
SWEEP_QUIET_S = 5.0
SWEEP_BATCH = 500

InsightsLoader = Callable[[Session, str], Mapping[str, Any] | None]


def utcnow() -> datetime:
    return datetime.now(UTC)


def no_insights(_session: Session, _call_id: str) -> Mapping[str, Any] | None:
    return None


def webhook_backoff_s(failures: int, rng: random.Random, base_s: float, max_s: float) -> float:
    """Delay before delivery retry number `failures`: equal jitter, so waits surely grow and a
    receiver that is down is not hammered. The due time lives in the database, so no 60 s cap."""
    return backoff_s(failures, rng, base_s=base_s, max_s=max_s, jitter="equal")


@dataclass(frozen=True)
class Pending:
    """The next event of a call to send, read in one short transaction."""

    seq: int
    event_id: str
    at: datetime
    body: bytes
    failures: int


class WebhookService:
    """Delivers each call's events to its callback URL; imports no Celery."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        publisher: Publisher,
        *,
        transport: Transport | None = None,
        resolver: Resolver = system_resolver,
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
        insights: InsightsLoader = no_insights,
    ) -> None:
        self.settings = settings
        self.db = db
        self._publisher = SafePublisher(publisher)
        self._clock = clock
        self._rng = rng or random.Random()
        self._insights = insights
        self._sender = WebhookSender(
            settings.webhook_secret.get_secret_value(),
            parse_networks(settings.webhook_allow_networks),
            transport or PinnedHTTP(),
            resolver,
            settings.webhook_timeout_s,
            clock,
        )
        # Long enough for one POST (connect + read) and its bookkeeping; renewed per event.
        self._lease = timedelta(seconds=2 * settings.webhook_timeout_s + 30)

    @property
    def enabled(self) -> bool:
        """Nothing is sent unsigned: without a secret, deliveries wait until one is set."""
        return bool(self.settings.webhook_secret.get_secret_value())

    # -- delivering ----------------------------------------------------------------------------

    def deliver(self, call_id: str) -> str:
        """Send the call's undelivered events in order; returns what happened, for logs."""
        if not self.enabled:
            return "skipped: no webhook_secret"
        url = self._callback_of(call_id)
        if url is None:
            return "skipped: no callback"
        token = uuid.uuid4().hex
        refusal = self._take_lease(call_id, token)
        if refusal is not None:
            return refusal
        retry_in: float | None = None
        try:
            outcome, retry_in = self._drain(call_id, url, token)
        finally:
            self._update(call_id, token, lease_token=None, lease_until=None)
        if outcome == "delivered" and self._has_undelivered(call_id):
            # An event committed after our last look, whose nudge found the call still held:
            # looking again after the release leaves no gap for the sweeper to cover.
            retry_in = 0.0
        # Invariant 4: longer waits stay in next_attempt_at, where the sweeper finds them.
        if retry_in is not None and retry_in <= MAX_COUNTDOWN_S:
            self._publisher.publish(routing.DELIVER_WEBHOOKS, call_id, retry_in)
        return outcome

    def _callback_of(self, call_id: str) -> str | None:
        with self.db.sessions() as session:
            call = session.get(Call, call_id)
            if call is None:
                return None
            return call.callback_url or self.settings.default_callback_url or None

    def _take_lease(self, call_id: str, token: str) -> str | None:
        """None when this delivery now holds the call; otherwise why it does nothing."""
        now = self._clock()
        try:
            with self.db.transaction() as session:
                if repo.get_cursor(session, call_id) is None:
                    session.add(repo.new_cursor(call_id, now))
        except Conflict:
            pass  # a concurrent delivery created it first
        with self.db.transaction() as session:
            if repo.take_lease(session, call_id, token=token, now=now, until=now + self._lease):
                return None
            cursor = repo.get_cursor(session, call_id)
        if cursor is None or cursor.gave_up_at is not None:
            return "skipped: stopped"
        if cursor.next_attempt_at is not None and cursor.next_attempt_at > now:
            return "skipped: retry not due"
        return "skipped: busy"

    def _has_undelivered(self, call_id: str) -> bool:
        with self.db.sessions() as session:
            cursor = repo.get_cursor(session, call_id)
            seq = cursor.delivered_seq if cursor else 0
            return repo.next_event(session, call_id, seq) is not None

    def _drain(self, call_id: str, url: str, token: str) -> tuple[str, float | None]:
        for _ in range(MAX_EVENTS_PER_RUN):
            pending = self._next(call_id)
            if pending is None:
                return "delivered", None
            now = self._clock()
            if now - pending.at > timedelta(seconds=self.settings.webhook_retry_window_s):
                if not self._give_up(call_id, token, pending, url, now):
                    return "lease lost", None
                continue
            sent = self._sender.send(url, pending.event_id, pending.body)
            outcome = self._after(call_id, token, pending, sent)
            if outcome is not None:
                return outcome
        return "more pending", 0.0

    def _next(self, call_id: str) -> Pending | None:
        with self.db.sessions() as session:
            cursor = repo.get_cursor(session, call_id)
            if cursor is None:
                return None
            event = repo.next_event(session, call_id, cursor.delivered_seq)
            # The call is read after its event: an event commits with the row's new values, so
            # a row read first could predate it (a `connected` event without its ids).
            call = session.get(Call, call_id) if event is not None else None
            if event is None or call is None:
                return None
            previous = None
            if event.from_status is None and event.seq > 1:
                previous = repo.state_before(session, call_id, event.seq)
            payload = build_payload(
                call, event, self._insights_for(session, event), previous_state=previous
            )
            return Pending(
                seq=event.seq,
                event_id=event_id(call_id, event.seq),
                at=event.at,
                body=encode(payload),
                failures=cursor.failures,
            )

    def _insights_for(self, session: Session, event: Event) -> Mapping[str, Any] | None:
        return self._insights(session, event.call_id) if is_insights_event(event) else None

    def _after(
        self, call_id: str, token: str, pending: Pending, sent: Sent
    ) -> tuple[str, float | None] | None:
        """Record the POST and move the cursor; None means go on with the next event."""
        now = self._clock()
        host = sent.host
        log.info("webhook call %s seq %d to %s: %s", call_id, pending.seq, host, sent.status)
        if sent.ok:
            held = self._record(
                call_id,
                token,
                pending,
                sent,
                now,
                delivered_seq=pending.seq,
                failures=0,
                next_attempt_at=None,
                last_error=None,
                lease_until=now + self._lease,
            )
            return None if held else ("lease lost", None)
        if sent.refused:
            log.warning("webhook call %s: %s (%s); stream stopped", call_id, sent.error, host)
            self._record(call_id, token, pending, sent, now, gave_up_at=now, last_error=sent.error)
            return "refused", None
        failures = pending.failures + 1
        delay_s = webhook_backoff_s(
            failures,
            self._rng,
            self.settings.webhook_backoff_base_s,
            self.settings.webhook_backoff_max_s,
        )
        self._record(
            call_id,
            token,
            pending,
            sent,
            now,
            failures=failures,
            next_attempt_at=now + timedelta(seconds=delay_s),
            last_error=sent.error,
        )
        return f"retry in {delay_s:.1f}s", delay_s

    def _give_up(self, call_id: str, token: str, pending: Pending, url: str, now: datetime) -> bool:
        window_s = self.settings.webhook_retry_window_s
        error = f"gave up: not accepted within {window_s:g}s of the event"
        log.warning("webhook call %s seq %d: %s", call_id, pending.seq, error)
        sent = Sent(display_url(url), now, None, 0.0, error)
        return self._record(
            call_id,
            token,
            pending,
            sent,
            now,
            delivered_seq=pending.seq,
            failures=0,
            next_attempt_at=None,
            last_error=error,
        )

    def _record(
        self, call_id: str, token: str, pending: Pending, sent: Sent, now: datetime, **values: Any
    ) -> bool:
        """The attempt row and the cursor change, together; False when the lease was lost."""
        with self.db.transaction() as session:
            held = repo.update_held(session, call_id, token, updated_at=now, **values)
            repo.record_attempt(
                session,
                WebhookAttempt(
                    call_id=call_id,
                    seq=pending.seq,
                    event_id=pending.event_id,
                    url=sent.url,
                    started_at=sent.started_at,
                    status_code=sent.status,
                    latency_ms=sent.latency_ms,
                    error=sent.error,
                ),
            )
        return held

    def _update(self, call_id: str, token: str, **values: Any) -> bool:
        with self.db.transaction() as session:
            return repo.update_held(session, call_id, token, **values)

    # -- sweeping ------------------------------------------------------------------------------

    def sweep(self) -> int:
        """Publish deliveries that are due again, or whose nudge was lost; bounded per tick."""
        if not self.enabled:
            return 0
        now = self._clock()
        with self.db.sessions() as session:
            due = repo.due_for_delivery(
                session,
                now=now,
                quiet_before=now - timedelta(seconds=SWEEP_QUIET_S),
                window_start=now - timedelta(seconds=self.settings.webhook_retry_window_s),
                any_call=bool(self.settings.default_callback_url),
                limit=SWEEP_BATCH,
            )
        for call_id in due:
            self._publisher.publish(routing.DELIVER_WEBHOOKS, call_id, 0.0)
        return len(due)

    def cursor(self, call_id: str) -> WebhookCursor | None:
        with self.db.sessions() as session:
            return repo.get_cursor(session, call_id)


def register(db: Database, publisher: Publisher, settings: Settings) -> None:
    """Publish a delivery for every call that gained events in a commit and has a callback."""
    publisher = SafePublisher(publisher)
    if not settings.webhook_secret.get_secret_value():
        return  # nothing would be sent; the sweeper catches up once a secret is set

    def nudge(changed: set[str]) -> None:
        if settings.default_callback_url:
            call_ids = sorted(changed)
        else:
            with db.sessions() as session:
                call_ids = repo.calls_with_callback(session, changed)
        for call_id in call_ids:
            publisher.publish(routing.DELIVER_WEBHOOKS, call_id, 0.0)

    db.on_change(nudge)
