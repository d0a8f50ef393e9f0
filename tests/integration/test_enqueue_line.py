"""A new call joins its account's line before its row is written, and the row says what the
line said: these are the races and failures around that order."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
from sqlalchemy import select

from dialq.calls import enqueue
from dialq.calls.dial import NO_ROW
from dialq.calls.request import parse_call_request
from dialq.calls.service import CallService
from dialq.capacity import Capacity
from dialq.config import Settings
from dialq.store import Call, Database, Session
from dialq.store.tables import Event
from tests.schedule_helpers import RecordingPublisher, empty_tables, no_dialing

NUMBER = "+14155550123"


@dataclass(frozen=True)
class World:
    service: CallService
    capacity: Capacity
    publisher: RecordingPublisher

    def sent(self) -> list[str]:
        """The dial messages the service published."""
        return [call_id for call_id, _ in self.publisher.sent]


@pytest.fixture
def world(database_url: str, redis_url: str) -> Iterator[World]:
    """A call service on a real database and a real Redis line, limit 1, recording its
    messages instead of publishing them."""
    db = Database(database_url)
    db.upgrade()
    empty_tables(db)
    capacity = Capacity(redis.Redis.from_url(redis_url), {"default": 1})
    publisher = RecordingPublisher()
    service = CallService(
        Settings(database_url=database_url), db, no_dialing, publisher, capacity=capacity
    )
    yield World(service, capacity, publisher)
    db.engine.dispose()


def history(service: CallService, call_id: str) -> list[tuple[str | None, str]]:
    with service.db.sessions() as session:
        rows = session.execute(
            select(Event.from_status, Event.to_status).where(Event.call_id == call_id)
            .order_by(Event.seq)
        )  # fmt: skip
        return [(row.from_status, row.to_status) for row in rows]


def status(service: CallService, call_id: str) -> str:
    with service.db.sessions() as session:
        call = session.get(Call, call_id)
        assert call is not None
        return call.status


def test_a_call_with_no_free_permit_is_written_waiting_at_once_and_sends_no_message(
    world: World,
) -> None:
    # given the account's one permit held by a live call
    service, capacity = world.service, world.capacity
    capacity.acquire("default", "live", score=1, lease_s=600)
    # when a call is placed
    placed = service.place(parse_call_request({"phone_number": NUMBER}))
    # then its row is waiting, its history reads queued then waiting, it is next in line,
    # and no dial message went out (a released permit sends it)
    assert placed.handle.status == placed.call.status == "waiting"
    assert status(service, placed.handle.id) == "waiting"
    assert history(service, placed.handle.id) == [(None, "queued"), ("queued", "waiting")]
    assert capacity.head_of_line("default") == placed.handle.id
    assert world.sent() == []


def test_a_dial_that_runs_before_its_calls_row_is_committed_finds_no_row_and_changes_nothing(
    world: World,
) -> None:
    # given the account's one permit held by a live call
    service, capacity = world.service, world.capacity
    capacity.acquire("default", "live", score=1, lease_s=600)
    handed: list[str] = []
    dialed: list[str] = []

    def live_call_ends_and_its_dial_runs(session: Session, call: Call) -> None:
        # the live call ends while the new call's row is not yet committed: its permit goes
        # to the new call, and that call's dial runs before the commit
        handed.extend(capacity.release("default", "live"))
        dialed.append(service.dial(call.id))

    # when a call is placed across that moment
    request = parse_call_request({"phone_number": NUMBER})
    placed = enqueue.place(service.ctx, request, also=live_call_ends_and_its_dial_runs)
    # then the dial found no row (its task looks again: test_dial_before_commit), the call
    # keeps the permit handed to it, is written waiting, and the producer sent no message
    assert handed == [placed.handle.id]
    assert dialed == [NO_ROW]
    assert capacity.holds("default", placed.handle.id)
    assert status(service, placed.handle.id) == "waiting"
    assert world.sent() == []


@pytest.mark.parametrize("permit_free", [True, False], ids=["with-a-permit", "in-line"])
def test_a_call_whose_row_was_not_written_gives_its_permit_or_place_in_line_back(
    world: World, permit_free: bool
) -> None:
    # given an account with its one permit free, or held by a live call
    service, capacity = world.service, world.capacity
    if not permit_free:
        capacity.acquire("default", "live", score=1, lease_s=600)

    def database_fails(session: Session, call: Call) -> None:
        raise RuntimeError("the transaction fails")

    # when a call is placed and its row cannot be written
    request = parse_call_request({"phone_number": NUMBER})
    with pytest.raises(RuntimeError):
        enqueue.place(service.ctx, request, also=database_fails)
    # then nothing is left of it: no row, no permit, no place in line, no message
    with service.db.sessions() as session:
        assert session.scalars(select(Call.id)).all() == []
    assert capacity.holders("default") == ([] if permit_free else ["live"])
    assert capacity.head_of_line("default") is None
    assert world.sent() == []
