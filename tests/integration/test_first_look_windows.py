"""Calls connected together share their first look's message: one per page of a window.

On a real Redis with a fixed clock and the broker recorded: which calls publish the message of
the window their first look falls in, when that message is due, and what happens when Redis
cannot count a call in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from dialq import routing
from dialq.calls import dispatch
from dialq.calls.context import CallContext
from dialq.calls.service import CallService
from dialq.capacity import Capacity
from dialq.config import Settings
from dialq.lookwindows import LookWindows
from dialq.store import Database
from tests.schedule_helpers import RecordingPublisher, no_dialing

INTERVAL_S = 4.0  # windows of a quarter interval: 1 s
PAGE = 4
NOW = datetime(2026, 12, 7, 12, 0, 0, 100_000, tzinfo=UTC)


@pytest.fixture
def recorded(sqlite_url: str, redis_url: str) -> Iterator[tuple[CallContext, RecordingPublisher]]:
    db = Database(sqlite_url)
    client = redis.Redis.from_url(redis_url)
    publisher = RecordingPublisher()
    settings = Settings(database_url=sqlite_url, watch_interval_s=INTERVAL_S, watch_page=PAGE)
    service = CallService(
        settings, db, no_dialing, publisher,
        capacity=Capacity(client, {"default": 50}), clock=lambda: NOW,
    )  # fmt: skip
    yield service.ctx, publisher
    client.close()


def watches(publisher: RecordingPublisher) -> list[tuple[str, float]]:
    """The watch messages published: call id, countdown (to the millisecond)."""
    return [
        (call_id, round(delay_s, 3))
        for task, call_id, delay_s in publisher.tasks
        if task == routing.WATCH_CALL
    ]


def test_calls_whose_first_looks_share_a_window_publish_one_message_per_page(
    recorded: tuple[CallContext, RecordingPublisher],
) -> None:
    ctx, publisher = recorded
    # given ten calls whose first looks fall due within one window (12:00:04.1 to 12:00:04.9)
    due = [NOW + timedelta(seconds=INTERVAL_S + 0.08 * i) for i in range(10)]
    # when each joins its first look's window, in the order they connected
    for i, due_at in enumerate(due):
        dispatch.first_look(ctx, f"c{i}", due_at)
    # then the first call of every page of four published a message, due at its own first look
    # (its page takes the others' looks, due within the half interval it takes ahead); the
    # others published nothing
    assert watches(publisher) == [("c0", 4.0), ("c4", 4.32), ("c8", 4.64)]


def test_a_call_whose_first_look_falls_in_the_next_window_starts_a_message_of_its_own(
    recorded: tuple[CallContext, RecordingPublisher],
) -> None:
    ctx, publisher = recorded
    # given a call whose first look falls in one window
    dispatch.first_look(ctx, "early", NOW + timedelta(seconds=INTERVAL_S))
    # when the next call's falls in the next window (a first look comes at most a window late)
    dispatch.first_look(ctx, "late", NOW + timedelta(seconds=INTERVAL_S + 1.0))
    # then each window has its message, each due at its call's own first look
    assert watches(publisher) == [("early", 4.0), ("late", 5.0)]


def test_a_call_redis_cannot_count_in_gets_a_message_of_its_own(
    recorded: tuple[CallContext, RecordingPublisher],
) -> None:
    ctx, publisher = recorded
    # given Redis unreachable for the windows (a port nothing listens on; no retries, to be quick)
    unreachable = redis.Redis(port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    cut_off = dataclasses.replace(ctx, looks=LookWindows(unreachable))
    # when three calls connect within one window
    for i in range(3):
        dispatch.first_look(cut_off, f"c{i}", NOW + timedelta(seconds=INTERVAL_S + 0.1 * i))
    # then none is left without a message: each publishes its own, due at its first look
    assert watches(publisher) == [("c0", 4.0), ("c1", 4.1), ("c2", 4.2)]


def test_the_window_count_expires_after_the_window(
    recorded: tuple[CallContext, RecordingPublisher], redis_url: str
) -> None:
    ctx, _ = recorded
    # when a call joins a window
    dispatch.first_look(ctx, "c0", NOW + timedelta(seconds=INTERVAL_S))
    # then its count is kept a little over two intervals, not forever
    client = redis.Redis.from_url(redis_url)
    keys = client.keys(f"{routing.REDIS_PREFIX}looks:*")
    assert len(keys) == 1
    assert 8_000 < client.pttl(keys[0]) <= 9_000
    client.close()


def test_with_pages_of_one_every_call_publishes_its_own_first_look_and_nothing_is_counted(
    recorded: tuple[CallContext, RecordingPublisher], redis_url: str
) -> None:
    ctx, publisher = recorded
    # given pages of one look (DIALQ_WATCH_PAGE=1: a message per look)
    single = dataclasses.replace(ctx, settings=ctx.settings.model_copy(update={"watch_page": 1}))
    # when two calls connect within one window
    dispatch.first_look(single, "c0", NOW + timedelta(seconds=INTERVAL_S))
    dispatch.first_look(single, "c1", NOW + timedelta(seconds=INTERVAL_S + 0.1))
    # then each publishes its own message, and no window was counted (no Redis round trip)
    assert watches(publisher) == [("c0", 4.0), ("c1", 4.1)]
    client = redis.Redis.from_url(redis_url)
    assert client.keys(f"{routing.REDIS_PREFIX}looks:*") == []
    client.close()
