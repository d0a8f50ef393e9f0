"""WebhookService on SQLite and PostgreSQL with a real receiver; the clock is set by hand."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from dialq import routing
from dialq.config import Settings
from dialq.store import CallStatus, Database, calls_repo
from dialq.store import webhooks_repo as repo
from dialq.store.tables import Call
from dialq.webhooks.delivery import WebhookService, register
from tests.webhook_receiver import Receiver, running_receiver

T0 = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
DAY_S = 86400.0


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Publisher:
    sent: list[tuple[str, str, float]] = field(default_factory=list)

    def publish(self, task: str, call_id: str, countdown_s: float = 0.0) -> None:
        assert task != routing.DIAL, "webhooks never dial"
        self.sent.append((task, call_id, countdown_s))


@dataclass
class World:
    db: Database
    clock: Clock
    publisher: Publisher
    receiver: Receiver

    def service(self, **settings: object) -> WebhookService:
        values: dict[str, object] = {
            "database_url": self.db.url,
            "webhook_secret": "whsec-store",
            "webhook_allow_networks": ["127.0.0.0/8"],
            "webhook_timeout_s": 1.0,
            "webhook_backoff_base_s": 100.0,
            "webhook_backoff_max_s": 3600.0,
            **settings,
        }
        return WebhookService(
            Settings(**values),  # type: ignore[arg-type]
            self.db,
            self.publisher,
            clock=self.clock,
            rng=random.Random(1),
        )

    def add_call(self, call_id: str, *, callback: str | None = "/h", at: datetime = T0) -> None:
        url = None if callback is None else f"{self.receiver.url}{callback}"
        with self.db.transaction() as session:
            calls_repo.add_call(session, new_call(call_id, url, at))

    def transition(self, call_id: str, to: CallStatus, at: datetime) -> None:
        with self.db.transaction() as session:
            status = session.get(Call, call_id)
            assert status is not None
            calls_repo.transition(
                session, call_id, from_={CallStatus(status.status)}, to=to, now=at
            )

    def sequences(self) -> list[int]:
        return [json.loads(r.body)["sequence"] for r in self.receiver.received()]


def new_call(call_id: str, callback_url: str | None, at: datetime) -> Call:
    return Call(
        id=call_id,
        status=CallStatus.QUEUED.value,
        account="default",
        phone_number="+14155550123",
        request={"phone_number": "+14155550123"},
        priority=5,
        max_duration_s=3600,
        callback_url=callback_url,
        deadline_at=at + timedelta(hours=1),
        start_attempts=0,
        failures=0,
        capacity_waits=0,
        created_at=at,
        updated_at=at,
    )


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    db = Database(database_url)
    db.upgrade()
    with db.transaction() as session:
        for table in ("webhook_attempts", "webhook_cursors", "attempts", "events", "calls"):
            session.execute(text(f"DELETE FROM {table}"))
    with running_receiver() as receiver:
        yield World(db, Clock(T0), Publisher(), receiver)
    db.dispose()


def test_an_event_older_than_the_retry_window_is_given_up_recorded_and_skipped(
    world: World,
) -> None:
    # given a call queued a day and a minute ago, that then connected a moment ago
    world.add_call("c1", at=T0 - timedelta(seconds=DAY_S + 60))
    world.transition("c1", CallStatus.DIALING, T0 - timedelta(seconds=5))
    # when its events are delivered now
    assert world.service(webhook_retry_window_s=DAY_S).deliver("c1") == "delivered"
    # then the stale event was given up without a POST, and the fresh one was sent
    assert world.sequences() == [2]
    with world.db.sessions() as session:
        attempts = [(a.seq, a.status_code, a.error) for a in repo.attempts_of(session, "c1")]
        cursor = repo.get_cursor(session, "c1")
    assert attempts == [
        (1, None, "gave up: not accepted within 86400s of the event"),
        (2, 200, None),
    ]
    assert cursor is not None
    assert (cursor.delivered_seq, cursor.gave_up_at) == (2, None)


def test_a_second_delivery_while_the_first_holds_the_call_sends_nothing(world: World) -> None:
    # given a delivery holding the call's lease
    world.add_call("c1")
    service = world.service()
    with world.db.transaction() as session:
        session.add(repo.new_cursor("c1", T0))
    with world.db.transaction() as session:
        until = T0 + timedelta(seconds=30)
        assert repo.take_lease(session, "c1", token="other", now=T0, until=until)
    # when another delivery runs, then it does nothing
    assert service.deliver("c1") == "skipped: busy"
    assert world.receiver.received() == []
    # and once the lease has run out (its holder crashed), the next delivery sends
    world.clock.advance(31)
    assert service.deliver("c1") == "delivered"
    assert world.sequences() == [1]


def test_a_long_backoff_waits_in_the_database_and_the_sweeper_publishes_it_when_due(
    world: World,
) -> None:
    # given a receiver failing once, and a backoff of 100-200 s on the first failure
    world.receiver.script = [("status", 503)]
    world.add_call("c1")
    service = world.service(webhook_backoff_base_s=200.0)
    # when the delivery fails
    outcome = service.deliver("c1")
    # then no broker countdown is set for the retry over 60 s ... (invariant 4)
    cursor = service.cursor("c1")
    assert cursor is not None
    assert cursor.next_attempt_at is not None
    wait_s = (cursor.next_attempt_at - T0).total_seconds()
    assert outcome == f"retry in {wait_s:.1f}s"
    assert 100 <= wait_s <= 200
    assert world.publisher.sent == []
    # ... a nudge before it is due sends nothing, and the sweeper leaves it alone
    assert service.deliver("c1") == "skipped: retry not due"
    assert service.sweep() == 0
    # and once due, the sweeper publishes it and the delivery succeeds
    world.clock.now = cursor.next_attempt_at
    assert service.sweep() == 1
    assert world.publisher.sent == [(routing.DELIVER_WEBHOOKS, "c1", 0.0)]
    assert service.deliver("c1") == "delivered"
    assert world.sequences() == [1, 1]
    assert service.cursor("c1").failures == 0  # type: ignore[union-attr]


def test_the_sweeper_finds_only_undelivered_quiet_calls_with_a_callback(world: World) -> None:
    # given: a call never nudged, one without a callback, one just changed, one delivered
    world.add_call("lost", at=T0 - timedelta(seconds=30))
    world.add_call("no-callback", callback=None, at=T0 - timedelta(seconds=30))
    world.add_call("fresh", at=T0 - timedelta(seconds=1))
    world.add_call("done", at=T0 - timedelta(seconds=30))
    service = world.service()
    assert service.deliver("done") == "delivered"
    # when the sweeper runs, then only the call whose nudge was lost is published
    assert service.sweep() == 1
    assert world.publisher.sent == [(routing.DELIVER_WEBHOOKS, "lost", 0.0)]
    # and with a default callback configured, calls without their own are included
    world.publisher.sent.clear()
    default = f"{world.receiver.url}/default"
    assert world.service(default_callback_url=default).sweep() == 2
    assert {c for _, c, _ in world.publisher.sent} == {"lost", "no-callback"}


def test_a_refused_address_stops_the_stream_and_later_events_send_nothing(world: World) -> None:
    # given a service without the allow-list
    world.add_call("c1")
    service = world.service(webhook_allow_networks=[])
    # when the call's events are delivered, then the refusal is recorded once
    assert service.deliver("c1") == "refused"
    world.transition("c1", CallStatus.DIALING, T0)
    assert service.deliver("c1") == "skipped: stopped"
    assert service.sweep() == 0
    with world.db.sessions() as session:
        errors = [a.error for a in repo.attempts_of(session, "c1")]
    assert errors == ["refused: loopback address"]
    assert world.receiver.received() == []


def test_the_nudge_publishes_once_per_committed_change_only_for_calls_with_a_callback(
    world: World,
) -> None:
    # given the nudge registered on this database
    service = world.service()
    register(world.db, world.publisher, service.settings)
    # when two calls are written in one transaction, one with a callback
    with world.db.transaction() as session:
        calls_repo.add_call(session, new_call("with", f"{world.receiver.url}/h", T0))
        calls_repo.add_call(session, new_call("without", None, T0))
    # then one delivery is published, for the call with a callback
    assert world.publisher.sent == [(routing.DELIVER_WEBHOOKS, "with", 0.0)]


def test_without_a_secret_nothing_is_sent_or_nudged(world: World) -> None:
    world.add_call("c1")
    service = world.service(webhook_secret="")
    register(world.db, world.publisher, service.settings)
    world.transition("c1", CallStatus.DIALING, T0)
    assert service.deliver("c1") == "skipped: no webhook_secret"
    assert service.sweep() == 0
    assert world.publisher.sent == []
    assert world.receiver.received() == []
