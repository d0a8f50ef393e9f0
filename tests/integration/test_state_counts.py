"""The counts by state the metrics and the dashboard read (migration 0010,
dialq.store.state_counts) are exact on SQLite and PostgreSQL, in total and per account: after
inserts, moves, deletes and bulk statements, while folds run beside concurrent moves, and for the
calls a database held before the migration."""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Collection, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import delete, func, insert, select, text, update

from dialq.calls.states import ALLOWED, CallStatus
from dialq.store import Call, Database, calls_repo, dashboard_repo, state_counts
from dialq.store.db import alembic_config
from dialq.store.tables import CallStateCount
from tests.call_rows import call_row
from tests.servers import private_pg_schema

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
COUNTS = "0010_call_state_counts"


def counted_row(status: CallStatus, account: str = "default") -> dict[str, Any]:
    return call_row(str(uuid.uuid4()), T0, status=status.value, account=account)


def actual(db: Database, accounts: Collection[str] | None = None) -> dict[str, int]:
    """The count the kept counts replace: one index entry per call (of `accounts`, if given)."""
    query = select(Call.status, func.count()).group_by(Call.status)
    if accounts is not None:
        query = query.where(Call.account.in_(sorted(accounts)))
    with db.sessions() as session:
        rows = session.execute(query).all()
    return {status: int(n) for status, n in rows}


def kept(db: Database, accounts: Collection[str] | None = None) -> dict[str, int]:
    with db.sessions() as session:
        if accounts is None:
            return calls_repo.count_by_status(session)
        return state_counts.count_by_status(session, accounts)


def shown(db: Database, accounts: Collection[str]) -> dict[str, int]:
    """What the dashboard's calls page shows a viewer of `accounts`."""
    with db.sessions() as session:
        return dashboard_repo.status_counts(session, accounts)


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
        session.execute(insert(Call), [counted_row(CallStatus.QUEUED) for _ in range(40)])
        session.execute(insert(Call).values(counted_row(CallStatus.WAITING)))
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


def queued_ids(db: Database, account: str) -> list[str]:
    query = select(Call.id).where(Call.account == account, Call.status == "queued")
    with db.sessions() as session:
        return list(session.scalars(query.order_by(Call.id)))


VIEWS: tuple[frozenset[str], ...] = (
    frozenset({"acme"}),
    frozenset({"globex"}),
    frozenset({"acme", "globex"}),
    frozenset({"initech"}),
    frozenset(),
)


def test_counts_per_account_follow_inserts_moves_and_deletes_in_two_accounts(
    db: Database,
) -> None:
    # given queued calls of two accounts in one bulk INSERT, and a waiting one each, one by one
    rows = [counted_row(CallStatus.QUEUED, "acme") for _ in range(30)]
    rows += [counted_row(CallStatus.QUEUED, "globex") for _ in range(20)]
    with db.transaction() as session:
        session.execute(insert(Call), rows)
        for account in ("acme", "globex"):
            session.execute(insert(Call).values(counted_row(CallStatus.WAITING, account)))
    acme, globex = queued_ids(db, "acme"), queued_ids(db, "globex")
    # when acme's calls move one by one, globex's in one bulk UPDATE, and one DELETE takes both's
    for call_id in acme[:10]:
        with db.transaction() as session:
            calls_repo.transition(
                session, call_id, from_={CallStatus.QUEUED}, to=CallStatus.DIALING, now=T0,
                detail=None,
            )  # fmt: skip
    with db.transaction() as session:
        session.execute(update(Call).where(Call.id.in_(globex[:5])).values(status="completed"))
        session.execute(delete(Call).where(Call.id.in_(acme[25:] + globex[15:])))
    # then each account's kept counts, and the dashboard's, are its calls' actual ones
    assert kept(db, {"acme"}) == {"queued": 15, "dialing": 10, "waiting": 1}
    assert kept(db, {"globex"}) == {"queued": 10, "completed": 5, "waiting": 1}
    for view in VIEWS:
        assert kept(db, view) == actual(db, view) == shown(db, view), view
    assert kept(db) == actual(db)
    # when folded, then they still are, in at most one row per account and state
    fold_all(db)
    for view in VIEWS:
        assert kept(db, view) == actual(db, view) == shown(db, view), view
    assert count_rows(db) <= 2 * len(CallStatus)


def test_a_call_given_to_another_account_is_counted_there(db: Database) -> None:
    # given a connected call of acme
    row = counted_row(CallStatus.CONNECTED, "acme")
    with db.transaction() as session:
        session.execute(insert(Call).values(row))
    # when its account is changed (no code path does; SQL by hand could)
    with db.transaction() as session:
        session.execute(update(Call).where(Call.id == row["id"]).values(account="globex"))
    # then acme has none left and globex has it
    assert kept(db, {"acme"}) == {} == actual(db, {"acme"})
    assert kept(db, {"globex"}) == {"connected": 1} == shown(db, {"globex"})


def test_folds_beside_concurrent_moves_never_lose_or_double_a_change(db: Database) -> None:
    # given 60 queued calls, half of each of two accounts
    rows = [counted_row(CallStatus.QUEUED, ("acme", "globex")[k % 2]) for k in range(60)]
    with db.transaction() as session:
        session.execute(insert(Call), rows)
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
    # then every change is counted once, under its call's account
    assert not errors
    assert actual(db) == {"completed": 60}
    assert kept(db) == {"completed": 60}
    for account in ("acme", "globex"):
        assert kept(db, {account}) == {"completed": 30} == shown(db, {account})
    fold_all(db)
    assert kept(db) == {"completed": 60}
    assert kept(db, {"acme"}) == kept(db, {"globex"}) == {"completed": 30}
    assert count_rows(db) == 2


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
        rows = [counted_row(status, "acme") for status in CallStatus for _ in range(2)]
        rows += [counted_row(status, "globex") for status in CallStatus]
        with database.transaction() as session:
            session.execute(text("DELETE FROM insights"))
            session.execute(text("DELETE FROM attempts"))
            session.execute(text("DELETE FROM events"))
            session.execute(text("DELETE FROM calls"))
            session.execute(insert(Call), rows)
        # when the counts' migration runs
        database.upgrade()
        # then they count those calls, per account, and the new ones after them
        assert kept(database) == {status.value: 3 for status in CallStatus}
        assert kept(database, {"acme"}) == {status.value: 2 for status in CallStatus}
        assert kept(database, {"globex"}) == {status.value: 1 for status in CallStatus}
        with database.transaction() as session:
            session.execute(insert(Call).values(counted_row(CallStatus.QUEUED)))
        assert kept(database)[CallStatus.QUEUED.value] == 4
        assert kept(database) == actual(database)
    finally:
        database.dispose()
