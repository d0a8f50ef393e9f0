"""Schedule inputs under hostile values: a stored schedule or an error naming the field, never a
crash, and a rejected upsert leaves the schedules table exactly as it was."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy import select

from dialq.calls.request import parse_call_request
from dialq.schedules.api import ScheduleService
from dialq.schedules.spec import InvalidSchedule, ScheduleDefinition, parse_schedule
from dialq.store import Database
from dialq.store.schedule_tables import Schedule
from tests.property.checks import assert_names_fields_and_rules, field_root
from tests.property.profiles import IO, PURE
from tests.property.strategies import CALL_FIELDS, SCHEDULE_FIELDS, schedule_specs
from tests.property.world import settings_for

CALL_ONLY = {"name": "standup", "call": {"phone_number": "+14155550123"}}
EVERY_HOUR = {**CALL_ONLY, "every": "1h"}
# Fixed, so that "leaves no occurrence in the future" does not depend on the day the test runs.
NOW = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)


def parse(spec: Any) -> ScheduleDefinition | InvalidSchedule:
    try:
        return parse_schedule(spec)
    except InvalidSchedule as error:
        return error


def assert_names_schedule_fields(error: InvalidSchedule) -> None:
    assert_names_fields_and_rules(error, {*SCHEDULE_FIELDS, "after"})
    for found in error.errors:
        if found.field.startswith("call.") and not found.rule.startswith("unknown field"):
            # a field of the template; a key that is not even a string shows as [key]
            inner = found.field.removeprefix("call.")
            assert field_root(inner) in {*CALL_FIELDS, "request"} or "[key]" in inner, found


@PURE
@given(spec=schedule_specs())
def test_any_schedule_spec_is_a_definition_or_an_error_naming_its_fields(
    spec: dict[Any, Any],
) -> None:
    # given any schedule spec, its call template included
    # when it is parsed
    outcome = parse(spec)
    # then it is a definition with one timing and a valid template, or names fields and rules
    if isinstance(outcome, InvalidSchedule):
        assert_names_schedule_fields(outcome)
        return
    assert outcome.kind in {"cron", "every", "at"}
    assert parse_call_request(outcome.template) is not None
    for instant in (outcome.at, outcome.start_at, outcome.end_at):
        assert instant is None or instant.utcoffset() is not None


@pytest.fixture
def schedules(redis_url: str, emptied_afterwards: str, tmp_path: Path) -> Iterator[ScheduleService]:
    settings = settings_for(redis_url, emptied_afterwards, tmp_path)
    db = Database(settings.database_url_resolved)
    db.upgrade()
    try:
        yield ScheduleService(settings, db, clock=lambda: NOW)
    finally:
        db.dispose()


SCHEDULE_COLUMNS = (
    *("name", "kind", "cron", "every_s", "at", "start_at", "end_at", "count", "template"),
    *("misfire_grace_s", "overlap", "enabled", "next_due_at", "timing_fingerprint"),
)


def stored(service: ScheduleService) -> list[tuple[Any, ...]]:
    with service.db.sessions() as session:
        rows = session.execute(select(Schedule).order_by(Schedule.name)).scalars().all()
        return [tuple(getattr(r, column) for column in SCHEDULE_COLUMNS) for r in rows]


@IO
@given(spec=schedule_specs(), again=st.booleans())
# Found by these properties: OverflowError near the calendar's ends, and a grace period that
# overflowed PostgreSQL's integer column. Each is now an error on its field.
@example(spec={**EVERY_HOUR, "misfire_grace": "999999999h"}, again=False)
@example(spec={**EVERY_HOUR, "end": "9999-12-31"}, again=True)
@example(spec={**EVERY_HOUR, "start": "0001-01-01", "timezone": "Asia/Tokyo"}, again=False)
@example(spec={**CALL_ONLY, "at": "9999-12-31T23:59:59-23:59"}, again=False)
def test_an_upsert_stores_one_schedule_or_names_the_field_and_leaves_the_table_as_it_was(
    schedules: ScheduleService, spec: dict[Any, Any], again: bool
) -> None:
    # given the schedules table as it is (sometimes with the same name stored already)
    if again and isinstance(spec.get("name"), str):
        previous = {"name": spec["name"], "every": "1h", "call": {"phone_number": "+14155550123"}}
        with contextlib.suppress(InvalidSchedule):  # a name the rules refuse
            schedules.upsert(previous)
    before = stored(schedules)
    # when the spec is upserted
    try:
        saved = schedules.upsert(spec)
    except InvalidSchedule as error:
        # then a rejection names the field and leaves every stored row exactly as it was
        assert_names_schedule_fields(error)
        assert stored(schedules) == before
        return
    # or exactly one schedule of that name holds the spec, its next occurrence in the future
    after = stored(schedules)
    mine = [row for row in after if row[0] == saved.name]
    assert len(mine) == 1
    assert len(after) == len(before) + (1 if saved.created else 0)
    assert saved.next_due_at is None or saved.next_due_at > NOW
