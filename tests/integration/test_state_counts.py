"""The counts by state the metrics read (migration 0010, dialq.store.state_counts) are exact on
SQLite and PostgreSQL: after inserts, moves, deletes and bulk statements, while folds run
beside concurrent moves, and for the calls a database held before the migration."""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import delete, func, insert, select, text, update

from dialq.calls.states import ALLOWED, CallStatus
from dialq.store import Call, Database, calls_repo, state_counts
from dialq.store.db import alembic_config
from dialq.store.tables import CallStateCount
from tests.servers import private_pg_schema

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
COUNTS = "0010_call_state_counts"


def call_row(status: CallStatus) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "status": status.value,
        "account": "default",
        "phone_number": "+14155550123",
        "request": {"phone_number": "+14155550123"},
        "priority": 5,
        "max_duration_s": 3600,
        "deadline_at": T0 + timedelta(hours=1),
        "start_attempts": 0,
        "failures": 0,
        "capacity_waits": 0,
        "created_at": T0,
        "updated_at": T0,
    }


def actual(db: Database) -> dict[str, int]:
    """The count the kept counts replace: one index entry per call."""
    with db.sessions() as session:
        rows = session.execute(select(Call.status, func.count()).group_by(Call.status)).all()
    return {status: int(n) for status, n in rows}


def kept(db: Database) -> dict[str, int]:
    with db.sessions() as session:
        return calls_repo.count_by_status(session)


def fold_all(db: Database) -> None:
    with db.transaction() as session:
        state_counts.fold(session, batch=1_000_000)


def count_rows(db: Database) -> int:
    with db.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(CallStateCount)) or 0)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    database.upgrade()
    with database.transaction() as session:
        for table in ("insights", "attempts", "events", "calls"):
            session.execute(text(f"DELETE FROM {table}"))
    yield database
    database.dispose()


def test_counts_follow_inserts_moves_and_deletes_and_a_fold_keeps_them_with_one_row_a_state(
    db: Database,
) -> None:
    # given calls inserted one by one and in one bulk statement
    rng = random.Random(15)
    with db.transaction() as session:
        session.execute(insert(Call), [call_row(CallStatus.QUEUED) for _ in range(40)])
        session.execute(insert(Call).values(call_row(CallStatus.WAITING)))
    # when some are moved one by one along allowed edges, some in one bulk UPDATE, some deleted
    with db.sessions() as session:
        ids = list(session.scalars(select(Call.id).where(Call.status == "queued")))
    for call_id in ids[:20]:
        with db.transaction() as session:
            target = rng.choice([to for src, to in ALLOWED if src == CallStatus.QUEUED])
            calls_repo.transition(
                session, call_id, from_={CallStatus.QUEUED}, to=target, now=T0, detail=None
            )
    with db.transaction() as session:
        session.execute(update(Call).where(Call.id.in_(ids[20:30])).values(status="completed"))
        session.execute(update(Call).where(Call.id.in_(ids[30:32])).values(reason="no move"))
        session.execute(delete(Call).where(Call.id.in_(ids[35:])))
    # then the kept counts are the actual ones, states with none absent
    assert kept(db) == actual(db)
    assert sum(actual(db).values()) == 36
    # when folded, then they still are, in at most one row per state
    fold_all(db)
    assert kept(db) == actual(db)
    assert count_rows(db) <= len(CallStatus)


def test_folds_beside_concurrent_moves_never_lose_or_double_a_change(db: Database) -> None:
    # given 60 queued calls
    with db.transaction() as session:
        session.execute(insert(Call), [call_row(CallStatus.QUEUED) for _ in range(60)])
    with db.sessions() as session:
        ids = list(session.scalars(select(Call.id)))
    errors: list[BaseException] = []
    done = threading.Event()

    def move(chunk: list[str]) -> None:
        try:
            for call_id in chunk:
                for src, to in ((CallStatus.QUEUED, CallStatus.DIALING),
                                (CallStatus.DIALING, CallStatus.CONNECTED),
                                (CallStatus.CONNECTED, CallStatus.COMPLETED)):  # fmt: skip
                    with db.transaction() as session:
                        calls_repo.transition(
                            session, call_id, from_={src}, to=to, now=T0, detail=None
                        )
        except BaseException as error:
            errors.append(error)

    def fold() -> None:
        try:
            while not done.is_set():
                with db.transaction() as session:
                    state_counts.fold(session, batch=7)
        except BaseException as error:
            errors.append(error)

    # when three threads move them to completed while two others fold in small batches
    movers = [threading.Thread(target=move, args=(ids[k::3],)) for k in range(3)]
    folders = [threading.Thread(target=fold) for _ in range(2)]
    for thread in movers + folders:
        thread.start()
    for thread in movers:
        thread.join(timeout=120)
    done.set()
    for thread in folders:
        thread.join(timeout=60)
    # then every change is counted once
    assert not errors
    assert actual(db) == {"completed": 60}
    assert kept(db) == {"completed": 60}
    fold_all(db)
    assert kept(db) == {"completed": 60}


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A database no migration ran on yet (the run's shared PostgreSQL schema has them all)."""
    if request.param == "sqlite":
        yield str(request.getfixturevalue("sqlite_url"))
        return
    with private_pg_schema() as url:
        yield url


def test_the_migration_counts_the_calls_the_database_already_held(fresh_url: str) -> None:
    # given a database at every migration but the counts', holding calls in several states
    config = alembic_config(fresh_url)
    script = ScriptDirectory.from_config(config)
    database = Database(fresh_url)
    try:
        with database.engine.begin() as connection:
            config.attributes["connection"] = connection
            for head in script.get_heads():
                if head != COUNTS:
                    command.upgrade(config, head)
        rows = [call_row(status) for status in CallStatus for _ in range(3)]
        with database.transaction() as session:
            session.execute(text("DELETE FROM insights"))
            session.execute(text("DELETE FROM attempts"))
            session.execute(text("DELETE FROM events"))
            session.execute(text("DELETE FROM calls"))
            session.execute(insert(Call), rows)
        # when the counts' migration runs
        database.upgrade()
        # then they count those calls, and the new ones after them
        assert kept(database) == {status.value: 3 for status in CallStatus}
        with database.transaction() as session:
            session.execute(insert(Call).values(call_row(CallStatus.QUEUED)))
        assert kept(database)[CallStatus.QUEUED.value] == 4
        assert kept(database) == actual(database)
    finally:
        database.dispose()
