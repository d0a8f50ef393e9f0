"""The queries rewritten for a long history answer as the queries they replaced, on SQLite and
PostgreSQL: the short-id lookup, list_calls, the insights sweep and the webhook sweep. On
PostgreSQL the lookups and the insights sweep read an index, and the history indexes are built
concurrently whenever Alembic owns the transaction. Migration 0007 gives the calls ended before
it the insights row that later calls get with their end.

Each rewritten query is checked against the query it replaced, kept here as `*_before`.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import and_, event, func, insert, inspect, or_, select, text, update
from sqlalchemy.orm import Session

from dialq.store import Call, CallStatus, Database, calls_repo, insights_repo, webhooks_repo
from dialq.store.db import MIGRATION_LOCK, alembic_config, make_engine
from dialq.store.insights_tables import Insights, InsightsStatus
from dialq.store.tables import Event
from dialq.store.webhook_tables import WebhookCursor
from tests.call_rows import call_row
from tests.databases import empty_database
from tests.servers import private_pg_schema

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
# (table, index, its columns) as migrations 0006 and 0007 build them.
HISTORY_INDEXES = (
    ("calls", "ix_calls_created", ["created_at", "id"]),
    ("events", "ix_events_at", ["at"]),
    ("calls", "ix_calls_ended", ["ended_at"]),
)
INSIGHTS_DUE = "0007_insights_due"
# The insights deadline the sweep tests read back to.
DEADLINE = timedelta(minutes=15)


@pytest.fixture
def pg_db(pg_url: str) -> Iterator[Database]:
    database = empty_database(pg_url)
    yield database
    with database.transaction() as session:
        session.execute(text("DELETE FROM calls"))  # the next test's fixture expects few rows
    database.dispose()


def history_row(call_id: str, **overrides: Any) -> dict[str, Any]:
    done = {"status": CallStatus.COMPLETED.value, "start_attempts": 1}
    return call_row(call_id, T0, **{**done, **overrides})


def add_calls(db: Database, rows: list[dict[str, Any]]) -> None:
    """Call rows in one INSERT each batch (no events: these tests read calls alone)."""
    with db.transaction() as session:
        for start in range(0, len(rows), 1000):
            session.execute(insert(Call), rows[start : start + 1000])


# -- the short-id lookup -----------------------------------------------------------------------


def find_before(session: Session, given: str) -> str | None:
    """The LIKE lookup find_call used to run: the id found, "ambiguous", or None."""
    call = session.get(Call, given)
    prefix = given.lower()
    if call is not None or not calls_repo._ID_PREFIX.fullmatch(prefix):
        return None if call is None else call.id
    found = session.scalars(select(Call.id).where(Call.id.startswith(prefix)).limit(2)).all()
    return "ambiguous" if len(found) > 1 else (found[0] if found else None)


def find_now(session: Session, given: str) -> str | None:
    try:
        call = calls_repo.find_call(session, given)
    except calls_repo.AmbiguousCallId:
        return "ambiguous"
    return None if call is None else call.id


# Ids at the edges of the range arithmetic: all f, a 9 before a, an f before the next digit,
# and pairs that share a prefix up to and past a hyphen.
EDGE_IDS = (
    "ffffffff-ffff-4fff-bfff-ffffffffffff",
    "fffffffe-0000-4000-8000-000000000000",
    "00000000-0000-4000-8000-000000000000",
    "abc9ffff-0000-4000-8000-000000000001",
    "abca0000-0000-4000-8000-000000000002",
    "abcfffff-0000-4000-8000-000000000003",
    "abd00000-0000-4000-8000-000000000004",
    "12345678-9abc-4def-8000-000000000005",
    "12345678-9abd-4def-8000-000000000006",
    "12345679-0000-4000-8000-000000000007",
)


def test_a_short_id_finds_its_call_says_when_it_is_ambiguous_and_finds_nothing_else(
    db: Database,
) -> None:
    # given calls whose ids share prefixes, one of them all f
    add_calls(db, [history_row(call_id) for call_id in EDGE_IDS])
    with db.sessions() as session:
        # when a unique prefix is given, then its call is found
        assert find_now(session, "abca") == "abca0000-0000-4000-8000-000000000002"
        assert find_now(session, "12345678-9abd") == "12345678-9abd-4def-8000-000000000006"
        # when the prefix of the ffff... id is given, then that call is found
        assert find_now(session, "ffffffff") == "ffffffff-ffff-4fff-bfff-ffffffffffff"
        assert find_now(session, "FFFFFFFF-F") == "ffffffff-ffff-4fff-bfff-ffffffffffff"
        # when a prefix two ids share is given, then it is ambiguous
        assert find_now(session, "1234567") == "ambiguous"
        assert find_now(session, "12345678-9ab") == "ambiguous"
        assert find_now(session, "ffff") == "ambiguous"
        # when nothing starts with it, or it is no id prefix at all, then nothing is found
        assert find_now(session, "abcb") is None
        assert find_now(session, "fffffff0") is None
        assert find_now(session, "zzzz") is None
        assert find_now(session, "abc") is None


def test_every_prefix_finds_what_the_like_lookup_found(db: Database) -> None:
    # given the edge ids and random ones
    rng = random.Random(7)
    ids = [*EDGE_IDS, *(str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(40))]
    add_calls(db, [history_row(call_id) for call_id in ids])
    prefixes = {call_id[:n] for call_id in ids for n in (4, 5, 8, 9, 13, 36)}
    prefixes |= {"ffff", "fffff", "abc9", "abcf", "abcf-", "0000", "9999", "----", "abcd"}
    with db.sessions() as session:
        # when each prefix is looked up both ways, then both answer the same
        differences = {p for p in prefixes if find_now(session, p) != find_before(session, p)}
    assert differences == set()


# -- list_calls --------------------------------------------------------------------------------


def test_list_calls_gives_the_newest_first_ties_by_id_up_to_the_limit(db: Database) -> None:
    # given calls created at a few instants, several at the same one, in two states
    rng = random.Random(3)
    rows = [
        history_row(
            f"{index:08x}-0000-4000-8000-{rng.getrandbits(48):012x}",
            created_at=T0 + timedelta(seconds=rng.randrange(5)),
            status=rng.choice([CallStatus.COMPLETED.value, CallStatus.QUEUED.value]),
        )
        for index in range(30)
    ]
    add_calls(db, rows)
    newest = sorted(rows, key=lambda r: (-r["created_at"].timestamp(), r["id"]))
    with db.sessions() as session:
        # when listed with a limit, with and without a state
        listed = [c.id for c in calls_repo.list_calls(session, limit=12)]
        queued = [c.id for c in calls_repo.list_calls(session, status="queued", limit=5)]
        everything = [c.id for c in calls_repo.list_calls(session, limit=100)]
    # then they come newest first, ties by id, and stop at the limit
    assert listed == [r["id"] for r in newest[:12]]
    assert queued == [r["id"] for r in newest if r["status"] == "queued"][:5]
    assert everything == [r["id"] for r in newest]


# -- the insights sweep ------------------------------------------------------------------------


def ended_without_insights_before(
    session: Session, ended_before: datetime, limit: int
) -> list[str]:
    """The LEFT JOIN the insights sweep used to run."""
    query = (
        select(Call.id)
        .outerjoin(Insights, Insights.call_id == Call.id)
        .where(
            Insights.call_id.is_(None),
            Call.status.in_(insights_repo.ENDED),
            Call.conversation_id.is_not(None),
            or_(
                Call.ended_at < ended_before,
                and_(Call.ended_at.is_(None), Call.updated_at < ended_before),
            ),
        )
        .order_by(Call.updated_at)
        .limit(limit)
    )
    return list(session.scalars(query))


def ended(call_id: str, minutes_ago: float | None, **overrides: Any) -> dict[str, Any]:
    """A completed call with a conversation that ended `minutes_ago` (None: no ended_at)."""
    at = T0 - timedelta(minutes=minutes_ago if minutes_ago is not None else 0)
    fields = {"conversation_id": f"conv-{call_id}", "ended_at": None, "updated_at": at}
    if minutes_ago is not None:
        fields["ended_at"] = at
    return history_row(call_id, **{**fields, **overrides})


def add_insights(db: Database, call_id: str, status: InsightsStatus) -> None:
    with db.transaction() as session:
        session.add(Insights(call_id=call_id, status=status.value, attempts=1, updated_at=T0))


def test_the_insights_sweep_picks_the_calls_ended_within_the_deadline_never_harvested(
    db: Database,
) -> None:
    # given ended calls with and without insights within the deadline, some that ended before
    # it, and calls that are not due for other reasons
    add_calls(
        db,
        [
            ended("due-completed", 10),
            ended("due-canceled", 5, status=CallStatus.CANCELED.value),
            ended("harvested", 12),
            ended("harvesting", 14),
            ended("ended-just-now", 0),
            ended("before-the-deadline", 20),
            ended("no-end-time", None, updated_at=T0 - timedelta(minutes=11)),
            ended("no-conversation", 8, conversation_id=None),
            ended("failed", 8, status=CallStatus.FAILED.value),
            ended("live", 8, status=CallStatus.CONNECTED.value, ended_at=None),
        ],
    )
    add_insights(db, "harvested", InsightsStatus.READY)
    add_insights(db, "harvesting", InsightsStatus.PENDING)
    cutoff = T0 - timedelta(seconds=5)
    with db.sessions() as session:
        # when the sweep looks for calls nobody started a harvest for
        found = insights_repo.ended_without_insights(
            session, ended_after=T0 - DEADLINE, ended_before=cutoff, limit=100
        )
        first = insights_repo.ended_without_insights(
            session, ended_after=T0 - DEADLINE, ended_before=cutoff, limit=1
        )
        before = ended_without_insights_before(session, cutoff, 100)
    # then it finds the due ones, oldest end first: what the old anti-join found, less the calls
    # that ended before the deadline or have no end time (migration 0007 wrote their rows)
    assert found == ["due-completed", "due-canceled"]
    assert first == found[:1]
    assert found == [c for c in before if c not in {"before-the-deadline", "no-end-time"}]


def test_a_pending_row_is_written_once_and_a_second_write_changes_nothing_nor_raises(
    db: Database,
) -> None:
    # given an ended call whose harvest already holds its row
    add_calls(db, [ended("ended", 1)])
    with db.transaction() as session:
        first = insights_repo.add_pending(session, "ended", now=T0)
        session.execute(
            update(Insights).where(Insights.call_id == "ended").values(attempts=1, reason="held")
        )
    # when the row is written again (the sweep, a duplicate harvest), in a transaction that goes on
    with db.transaction() as session:
        second = insights_repo.add_pending(session, "ended", now=T0 + timedelta(minutes=1))
        still_usable = session.scalar(select(func.count()).select_from(Insights))
    # then only the first wrote, and the row is as the harvest left it
    assert (first, second, still_usable) == (True, False, 1)
    with db.sessions() as session:
        row = insights_repo.get(session, "ended")
        assert row is not None
        assert (row.status, row.attempts, row.reason) == ("pending", 1, "held")
        assert row.next_attempt_at == T0


# -- the webhook sweep -------------------------------------------------------------------------


def due_for_delivery_before(
    session: Session,
    *,
    now: datetime,
    quiet_before: datetime,
    window_start: datetime,
    any_call: bool,
    limit: int,
) -> list[str]:
    """The LEFT JOIN the webhook sweep used to run."""
    latest = (
        select(
            Event.call_id.label("call_id"),
            func.max(Event.seq).label("last_seq"),
            func.max(Event.at).label("last_at"),
        )
        .where(Event.at >= window_start)
        .group_by(Event.call_id)
        .subquery()
    )
    cursor = WebhookCursor
    query = (
        select(latest.c.call_id)
        .join(Call, Call.id == latest.c.call_id)
        .outerjoin(cursor, cursor.call_id == latest.c.call_id)
        .where(
            latest.c.last_seq > func.coalesce(cursor.delivered_seq, 0),
            cursor.gave_up_at.is_(None),
            or_(cursor.lease_until.is_(None), cursor.lease_until < now),
            or_(
                cursor.next_attempt_at <= now,
                and_(cursor.next_attempt_at.is_(None), latest.c.last_at < quiet_before),
            ),
        )
        .order_by(latest.c.last_at)
        .limit(limit)
    )
    if not any_call:
        query = query.where(Call.callback_url.is_not(None))
    return list(session.scalars(query))


def hours_ago(hours: float) -> datetime:
    return T0 - timedelta(hours=hours)


# name: (has a callback, event times oldest first, cursor fields or None)
DELIVERY_CASES: dict[str, tuple[bool, list[datetime], dict[str, Any] | None]] = {
    "lost-nudge": (True, [hours_ago(3)], None),
    "retry-due": (True, [hours_ago(4), hours_ago(2)], {"next_attempt_at": hours_ago(0.01)}),
    "lease-expired": (True, [hours_ago(1)], {"lease_until": hours_ago(0.01)}),
    "new-after-the-window": (True, [hours_ago(50), hours_ago(49), hours_ago(0.5)], {}),
    "no-callback": (False, [hours_ago(1.5)], None),
    "nudge-in-flight": (True, [T0 - timedelta(seconds=2)], None),
    "delivered": (True, [hours_ago(5), hours_ago(4)], {"delivered_seq": 2}),
    "retry-later": (True, [hours_ago(2)], {"next_attempt_at": T0 + timedelta(minutes=1)}),
    "given-up": (True, [hours_ago(2)], {"gave_up_at": hours_ago(1)}),
    "held": (True, [hours_ago(2)], {"lease_until": T0 + timedelta(seconds=30)}),
    "past-the-window": (True, [hours_ago(30)], None),
    "cursor-nudge-in-flight": (True, [T0 - timedelta(seconds=1)], {}),
}


def add_delivery_case(
    session: Session, call_id: str, case: tuple[bool, list[datetime], dict[str, Any] | None]
) -> None:
    callback, times, cursor = case
    url = "https://hooks.example.com/h" if callback else None
    session.add(Call(**history_row(call_id, callback_url=url, created_at=times[0])))
    session.flush()
    for seq, at in enumerate(times, start=1):
        session.add(Event(call_id=call_id, seq=seq, at=at, to_status="queued"))
    if cursor is not None:
        # Delivered all but the newest event unless the case says otherwise.
        fields = {"delivered_seq": len(times) - 1, "failures": 0, "updated_at": T0, **cursor}
        session.add(WebhookCursor(call_id=call_id, **fields))


def sweep(
    query: Callable[..., list[str]], session: Session, any_call: bool, limit: int
) -> list[str]:
    return query(
        session,
        now=T0,
        quiet_before=T0 - timedelta(seconds=5),
        window_start=T0 - timedelta(days=1),
        any_call=any_call,
        limit=limit,
    )


def test_the_webhook_sweep_finds_the_calls_whose_delivery_is_due_as_the_join_did(
    db: Database,
) -> None:
    # given calls with events and cursors in every state the sweep tells apart
    with db.transaction() as session:
        for call_id, case in DELIVERY_CASES.items():
            add_delivery_case(session, call_id, case)
    found: dict[tuple[bool, int], list[str]] = {}
    before: dict[tuple[bool, int], list[str]] = {}
    with db.sessions() as session:
        # when the sweep runs, with and without a default callback, and with a small batch
        for any_call, limit in ((False, 100), (True, 100), (False, 2)):
            found[any_call, limit] = sweep(webhooks_repo.due_for_delivery, session, any_call, limit)
            before[any_call, limit] = sweep(due_for_delivery_before, session, any_call, limit)
    # then exactly the due calls come, oldest newest event first, as the old query gave them
    due = ["lost-nudge", "retry-due", "lease-expired", "new-after-the-window"]
    assert found[False, 100] == due
    assert found[True, 100] == [*due[:2], "no-callback", *due[2:]]
    assert found[False, 2] == due[:2]
    assert found == before


# -- plans and the migration (PostgreSQL) ------------------------------------------------------


def statements_of(db: Database, run: Callable[[Session], object]) -> list[tuple[str, Any]]:
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        with db.sessions() as session:
            run(session)
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    return seen


def plan_text(db: Database, run: Callable[[Session], object]) -> str:
    lines: list[str] = []
    with db.engine.connect() as conn:
        for statement, parameters in statements_of(db, run):
            plan = conn.exec_driver_sql("EXPLAIN " + statement, parameters)
            lines += [str(row[0]) for row in plan]
    return "\n".join(lines)


def test_on_postgresql_the_short_id_lookup_and_list_calls_read_an_index(pg_db: Database) -> None:
    # given 5,000 calls, and statistics that say so (autovacuum's job on a live database)
    rng = random.Random(11)
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(5000)]
    rows = [history_row(c, created_at=T0 - timedelta(seconds=i)) for i, c in enumerate(ids)]
    add_calls(pg_db, rows)
    with pg_db.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE calls")
    # when the lookup of a short id and the newest 20 are planned
    lookup = plan_text(pg_db, lambda s: calls_repo.find_call(s, ids[1234][:8]))
    newest = plan_text(pg_db, lambda s: calls_repo.list_calls(s, limit=20))
    # then each reads an index of calls and none scans the table
    assert "Seq Scan on calls" not in lookup, lookup
    assert "Index Scan using calls_pkey" in lookup, lookup
    assert "Seq Scan on calls" not in newest, newest
    assert "Index Scan using ix_calls_created" in newest, newest


def test_on_postgresql_the_insights_sweep_reads_its_indexes_and_scans_no_table(
    pg_db: Database,
) -> None:
    # given 5,000 calls ended one every 15 minutes, each harvested but the newest three, and
    # statistics that say so
    rows = [ended(f"call-{i:05d}", 15.0 * i + 1) for i in range(5000)]
    add_calls(pg_db, rows)
    harvested = [
        {"call_id": row["id"], "status": "ready", "attempts": 1, "updated_at": T0}
        for row in rows[3:]
    ]
    with pg_db.transaction() as session:
        session.execute(insert(Insights), harvested)
    with pg_db.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE calls")
        conn.exec_driver_sql("ANALYZE insights")
    cutoff = T0 - timedelta(seconds=5)

    def sweep_reads(session: Session) -> object:
        never = insights_repo.ended_without_insights(
            session, ended_after=T0 - DEADLINE, ended_before=cutoff, limit=100
        )
        return never, insights_repo.overdue(session, due_before=cutoff, limit=100)

    # when the sweep's two reads are planned
    plan = plan_text(pg_db, sweep_reads)
    # then the ended calls come from ix_calls_ended, the due rows from ix_insights_due
    assert "Seq Scan on calls" not in plan, plan
    assert "Seq Scan on insights" not in plan, plan
    assert "ix_calls_ended" in plan, plan
    assert "ix_insights_due" in plan, plan


def test_the_history_indexes_in_the_database_are_those_the_tables_declare(db: Database) -> None:
    # given a database upgraded by the migrations
    found = inspect(db.engine)
    for table, name, columns in HISTORY_INDEXES:
        # when its indexes are read back, then the migration built what the metadata declares
        built = {index["name"]: index for index in found.get_indexes(table)}
        declared = {index.name: index for index in Call.metadata.tables[table].indexes}
        assert built[name]["column_names"] == columns
        assert name in declared


def test_on_postgresql_the_migration_builds_concurrently_when_alembic_owns_the_transaction() -> (
    None
):
    with private_pg_schema() as url:
        engine = make_engine(url)
        sent: list[str] = []
        event.listen(engine, "before_cursor_execute", lambda *a: sent.append(str(a[2])))
        try:
            # given a connection outside any transaction, handed to Alembic
            with engine.connect() as conn:
                config = alembic_config(url)
                config.attributes["connection"] = conn
                # when every migration runs
                command.upgrade(config, "heads")
            # then the history indexes were built concurrently, and are valid
            concurrent = [s for s in sent if "CREATE INDEX CONCURRENTLY" in s]
            assert len(concurrent) == len(HISTORY_INDEXES), sent
            with engine.connect() as conn:
                valid = conn.exec_driver_sql(
                    "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                    " WHERE c.relnamespace = current_schema()::regnamespace AND i.indisvalid"
                ).scalars()
                assert {name for _, name, _ in HISTORY_INDEXES} <= set(valid)
        finally:
            engine.dispose()


def test_on_postgresql_database_upgrade_builds_concurrently_and_serialises_upgraders() -> None:
    with private_pg_schema() as url:
        databases = [Database(url) for _ in range(3)]
        sent: list[str] = []
        for database in databases:
            event.listen(
                database.engine, "before_cursor_execute", lambda *a: sent.append(str(a[2]))
            )
        errors: list[BaseException] = []

        def upgrade(database: Database) -> None:
            try:
                database.upgrade()
            except BaseException as error:  # reported below, with the statements sent
                errors.append(error)

        try:
            # given three processes' upgraders starting at once on an empty database
            threads = [threading.Thread(target=upgrade, args=(d,)) for d in databases]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=120)
            # then all succeed, one after the other, and the indexes were built once, concurrently
            assert errors == []
            concurrent = [s for s in sent if "CREATE INDEX CONCURRENTLY" in s]
            assert len(concurrent) == len(HISTORY_INDEXES), sent
            # and no session keeps the migration lock
            with databases[0].engine.connect() as conn:
                held = conn.exec_driver_sql(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                    f" AND objid = {MIGRATION_LOCK}"
                ).scalar_one()
            assert held == 0
        finally:
            for database in databases:
                database.dispose()


# -- migration 0007: the rows of the calls ended before it ------------------------------------


def upgrade_to_all_heads_but(url: str, left_out: str) -> None:
    config = alembic_config(url)
    heads = ScriptDirectory.from_config(config).get_heads()
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection  # as Database.upgrade hands it over
            for head in sorted(set(heads) - {left_out}):
                command.upgrade(config, head)
    finally:
        engine.dispose()


@pytest.fixture
def url_before_insights_due(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A fresh database of the test's kind, at every migration but 0007."""
    if database_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'before.db'}"
        upgrade_to_all_heads_but(url, INSIGHTS_DUE)
        yield url
        return
    with private_pg_schema() as url:
        upgrade_to_all_heads_but(url, INSIGHTS_DUE)
        yield url


def test_migration_0007_gives_each_ended_call_whose_harvest_never_started_a_due_row(
    url_before_insights_due: str,
) -> None:
    # given ended calls whose harvest never started, one a year ago and one with no end time,
    # a harvested one, and calls with nothing to harvest
    db = Database(url_before_insights_due)
    try:
        add_calls(
            db,
            [
                ended("never-harvested", 10),
                ended("a-year-ago", 60 * 24 * 365),
                ended("no-end-time", None),
                ended("harvested", 30),
                ended("no-conversation", 5, conversation_id=None),
                ended("failed", 5, status=CallStatus.FAILED.value),
                ended("live", 5, status=CallStatus.CONNECTED.value, ended_at=None),
            ],
        )
        add_insights(db, "harvested", InsightsStatus.READY)
        # when migration 0007 runs
        db.upgrade()
        with db.sessions() as session:
            rows = {row.call_id: row for row in session.scalars(select(Insights))}
    finally:
        db.dispose()
    # then each call the old sweep would have harvested has a pending row, due, untried (so
    # whatever its age it gets the one harvest it would have had), and the harvested one is kept
    assert set(rows) == {"never-harvested", "a-year-ago", "no-end-time", "harvested"}
    for call_id in ("never-harvested", "a-year-ago", "no-end-time"):
        row = rows[call_id]
        assert (row.status, row.attempts, row.first_tried_at) == ("pending", 0, None)
        assert row.next_attempt_at is not None
    assert rows["harvested"].status == InsightsStatus.READY
