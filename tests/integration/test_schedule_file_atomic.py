"""A schedules file is written in one transaction: a database failure part way leaves every
schedule as it was, and a briefly unavailable database is tried again until the file is in.

The failures are the database's own: a trigger refuses one schedule's insert (a constraint
error, as a concurrent writer would cause) or fails the first writes with PostgreSQL's
"terminating connection due to administrator command" (57P01, what a restart or a killed
session gives).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from dialq.config import Settings
from dialq.schedules.api import ScheduleService
from dialq.schedules.file import sync_file
from dialq.store import Database, StoreError
from dialq.store import schedules_repo as repo
from tests.schedule_helpers import empty_tables

CALL = 'call = { phone_number = "+14155550123" }\n'
BEFORE = f'[schedules.a]\ncron = "0 9 * * *"\n{CALL}[schedules.c]\nevery = "1h"\n{CALL}'
# a re-timed, b new, c dropped: three writes, the second of which the database refuses.
AFTER = f'[schedules.a]\ncron = "30 7 * * *"\n{CALL}[schedules.b]\nevery = "2h"\n{CALL}'

SQLITE_REFUSE_B = """
CREATE TRIGGER dialq_test_refuse BEFORE INSERT ON schedules WHEN NEW.name = 'b'
BEGIN SELECT RAISE(ABORT, 'refused by the test'); END
"""
PG_REFUSE_B = """
CREATE FUNCTION dialq_test_refuse() RETURNS trigger AS $$
BEGIN
  IF NEW.name = 'b' THEN RAISE EXCEPTION 'refused by the test' USING ERRCODE = '23514'; END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql
"""
# nextval is not rolled back with the failing transaction: the first 2 writes fail, then none.
PG_DOWN_TWICE = """
CREATE FUNCTION dialq_test_refuse() RETURNS trigger AS $$
BEGIN
  IF nextval('dialq_test_down') <= 2 THEN
    RAISE EXCEPTION 'going down' USING ERRCODE = '57P01';
  END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql
"""
PG_TRIGGER = """
CREATE TRIGGER dialq_test_refuse BEFORE INSERT ON schedules
FOR EACH ROW EXECUTE FUNCTION dialq_test_refuse()
"""


@pytest.fixture
def service(database_url: str) -> Iterator[ScheduleService]:
    db = Database(database_url)
    db.upgrade()
    empty_tables(db)
    yield ScheduleService(Settings(database_url=database_url), db)
    _drop_test_objects(db)
    db.dispose()


def _drop_test_objects(db: Database) -> None:
    """The PostgreSQL schema is shared by the run's tests: leave no trigger behind."""
    with db.transaction() as session:
        if session.bind is not None and session.bind.dialect.name == "postgresql":
            session.execute(text("DROP TRIGGER IF EXISTS dialq_test_refuse ON schedules"))
            session.execute(text("DROP FUNCTION IF EXISTS dialq_test_refuse()"))
            session.execute(text("DROP SEQUENCE IF EXISTS dialq_test_down"))
        else:
            session.execute(text("DROP TRIGGER IF EXISTS dialq_test_refuse"))


def _execute(db: Database, *statements: str) -> None:
    with db.transaction() as session:
        for statement in statements:
            session.execute(text(statement))


def _stored(service: ScheduleService) -> dict[str, tuple[str | None, float | None]]:
    with service.db.sessions() as session:
        return {s.name: (s.cron, s.every_s) for s in repo.list_schedules(session)}


def test_a_schedules_file_the_database_refuses_part_way_changes_nothing(
    service: ScheduleService, tmp_path: Path
) -> None:
    # given schedules a and c from a file
    path = tmp_path / "schedules.toml"
    path.write_text(BEFORE)
    sync_file(path, service)
    before = _stored(service)
    assert set(before) == {"a", "c"}
    # and a database that refuses to insert a schedule named b
    postgres = service.db.engine.dialect.name == "postgresql"
    _execute(service.db, *([PG_REFUSE_B, PG_TRIGGER] if postgres else [SQLITE_REFUSE_B]))
    # when a file re-timing a, adding b and dropping c is applied
    path.write_text(AFTER)
    with pytest.raises(StoreError):
        sync_file(path, service)
    # then nothing of it is written: a keeps its timing, c is still there, b is not
    assert _stored(service) == before
    # and once the database accepts it, the whole file is applied
    _drop_test_objects(service.db)
    sync_file(path, service)
    assert _stored(service) == {"a": ("30 7 * * *", None), "b": (None, 7200.0)}


def test_a_schedules_file_is_written_once_the_database_is_back(pg_url: str, tmp_path: Path) -> None:
    db = Database(pg_url)
    db.upgrade()
    empty_tables(db)
    service = ScheduleService(Settings(database_url=pg_url), db)
    try:
        # given a database whose first two writes fail as a restarting server's do
        _execute(db, "CREATE SEQUENCE dialq_test_down", PG_DOWN_TWICE, PG_TRIGGER)
        path = tmp_path / "schedules.toml"
        path.write_text(AFTER)
        # when the file is applied
        names = sync_file(path, service)
        # then it was tried again, and is written whole
        assert names == ["a", "b"]
        assert _stored(service) == {"a": ("30 7 * * *", None), "b": (None, 7200.0)}
        with db.sessions() as session:
            tries = session.execute(text("SELECT last_value FROM dialq_test_down")).scalar()
        assert tries == 4  # two failed tries, then one inserting a and b
    finally:
        _drop_test_objects(db)
        db.dispose()
