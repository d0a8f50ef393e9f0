"""Every statement a call's life runs is one SQLAlchemy can cache: compiled once per shape.

A statement without a cache key (a multi-row VALUES, for one) is compiled again on every
execution, which cost a tenth of a worker's CPU on the dial path. On both databases, a real
Redis and the sandbox over HTTP: two calls enqueued, dialed, looked at, stopped, harvested and
swept, every statement executed on the way is read off the engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.engine.interfaces import CacheStats

from dialq.calls.request import CallRequest
from dialq.runtime import Runtime
from dialq.sandbox import RunningSandbox
from tests.fixtures_sandbox import in_process_settings
from tests.schedule_helpers import RecordingPublisher


@pytest.fixture
def uncached() -> Iterator[list[str]]:
    """The SQL of every statement built in SQLAlchemy and executed (on any engine) that had no
    cache key (driver-level SQL and the migrations' DDL are not the calls' statements)."""
    found: list[str] = []

    def note(*args: Any) -> None:
        statement, context = args[2], args[4]
        built = context.compiled is not None and not context.isddl
        if built and context.cache_hit is CacheStats.NO_CACHE_KEY:
            found.append(statement)

    event.listen(Engine, "after_cursor_execute", note)
    yield found
    event.remove(Engine, "after_cursor_execute", note)


def test_a_calls_life_runs_only_statements_compiled_once_per_shape(
    database_url: str, redis_url: str, sandbox: RunningSandbox, uncached: list[str]
) -> None:
    settings = in_process_settings(database_url, redis_url, sandbox)
    runtime = Runtime(settings, RecordingPublisher())
    try:
        service = runtime.service
        ids = [service.enqueue(CallRequest(phone_number=f"+1415555010{n}")).id for n in range(2)]
        for call_id in ids:
            service.dial(call_id)
            service.watch(call_id)
            service.cancel(call_id)
            service.watch(call_id)
            runtime.insights.harvest(call_id)
            runtime.webhooks.deliver(call_id)
        service.watchdog()
        runtime.insights.sweep()
        runtime.webhooks.sweep()
    finally:
        runtime.close()
    assert uncached == []
