"""History growth: what the sweeps and lookups cost at 10k, 100k and 1M finished calls.

Fills a PostgreSQL database of its own per size (created here, dropped at the end) by SQL:
finished calls in realistic proportions (90% completed, 7% failed, 3% canceled), five events and
one HTTP attempt per call, insights for every ended call that had a conversation, webhook
cursors for the calls with a callback, schedule occurrences for a tenth of them, plus a small
active set (queued, waiting, dialing, connected, stopping, unknown, and calls ended within the
insights deadline) and a few rows of each kind that are due. History grows backwards in time at
a constant rate (--calls-per-day), as it does in production: a bigger history is older, not
busier.

It then times (median of --runs) each query the sweeps, the watchdog, the CLI, the metrics
scrape and the dashboard's counts run, through the project's own repo functions, the sizes
taking turns run by run so that a burst of load on the machine falls on all of them alike. It
prints the time at each size, the ratio of the largest to the smallest (target at most 2x: OK /
OVER) and, at the largest size, the node types of each query's EXPLAIN plan (a sequential scan
of calls, events, attempts or insights is flagged). The last line is JSON; it is also written to
bench/results/history.json.

    .venv/bin/python bench/history.py [--sizes 10000,100000,1000000] [--runs 9]
        [--admin-url postgresql://postgres@127.0.0.1:5432/test] [--calls-per-day 2000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
from sqlalchemy import event, func, select

from bench.harness import median
from dialq.calls.states import DIALABLE, CallStatus
from dialq.calls.watchdog import LINE_PAGE
from dialq.store import (
    Database,
    Session,
    calls_repo,
    dashboard_repo,
    insights_repo,
    line_repo,
    repair_repo,
    schedules_repo,
    state_counts,
    webhooks_repo,
)
from dialq.store.tables import Call

RESULTS = Path(__file__).resolve().parent / "results"
SIZES = (10_000, 100_000, 1_000_000)
TARGET_RATIO = 2.0
FLAGGED_TABLES = ("calls", "events", "attempts", "insights")
SCHEDULES = 200
WEBHOOK_WINDOW = timedelta(days=1)  # the default webhook_retry_window_s
INSIGHTS_DEADLINE = timedelta(seconds=900)  # the default insights_deadline_s

# -- the data ----------------------------------------------------------------------------------

# One history call per n (0 is the newest): its id, its times and its fate are functions of n,
# so each table is filled from generate_series without reading the others back. Every call of
# the newest LOST got its pending row with its end but its harvest message was lost (due since),
# those up to PENDING are being harvested (the older half overdue), the rest are harvested.
LOST, PENDING = 20, 40
HELPERS = """
CREATE FUNCTION h_id(n bigint) RETURNS text LANGUAGE sql IMMUTABLE
    AS $$ SELECT md5('h' || n)::uuid::text $$;
CREATE FUNCTION h_created(n bigint, now timestamptz, step float8) RETURNS timestamptz
    LANGUAGE sql STABLE AS $$ SELECT now - interval '1 hour' - n * step * interval '1 second' $$;
CREATE FUNCTION h_fate(n bigint) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN mod(n, 100) < 90 THEN 'completed'
                WHEN mod(n, 100) < 97 THEN 'failed' ELSE 'canceled' END $$;
CREATE FUNCTION h_talked(n bigint) RETURNS boolean LANGUAGE sql IMMUTABLE
    AS $$ SELECT mod(n, 100) < 90 OR (mod(n, 100) >= 97 AND mod(n, 2) = 0) $$;
CREATE FUNCTION h_ended(n bigint, now timestamptz, step float8) RETURNS timestamptz
    LANGUAGE sql STABLE AS $$ SELECT h_created(n, now, step) + CASE WHEN h_talked(n)
        THEN (60 + mod(n, 540)) * interval '1 second' ELSE interval '3 seconds' END $$;
"""
# The arguments every history statement shares.
N = "n, %(now)s::timestamptz, %(step)s::float8"
SERIES = "generate_series(%(first)s::bigint, %(last)s::bigint) AS n"

HISTORY_CALLS = """
INSERT INTO calls (id, status, reason, account, phone_number, request, priority, max_duration_s,
    callback_url, deadline_at, start_attempts, failures, capacity_waits, claimed_by, claimed_at,
    conversation_id, connection_id, created_at, updated_at, connected_at, ended_at)
SELECT h_id(n), h_fate(n),
    CASE h_fate(n) WHEN 'failed' THEN 'rejected: invalid phone number'
                   WHEN 'canceled' THEN 'canceled by a person' END,
    'default', '+1415555' || lpad(mod(n, 10000)::text, 4, '0'),
    json_build_object('phone_number', '+1415555' || lpad(mod(n, 10000)::text, 4, '0')),
    5, 3600, CASE WHEN mod(n, 10) < 3 THEN 'https://hooks.example.com/dialq' END,
    h_created(N) + interval '1 hour', 1, 0, 0, 'worker-' || mod(n, 8),
    h_created(N) + interval '1 second',
    CASE WHEN h_talked(n) THEN md5('conv' || n) END,
    CASE WHEN h_talked(n) THEN md5('conn' || n) END,
    h_created(N), h_ended(N),
    CASE WHEN h_talked(n) THEN h_created(N) + interval '2 seconds' END, h_ended(N)
FROM SERIES
"""

# queued, dialing, connected, the end, and the insights event after it.
HISTORY_EVENTS = """
INSERT INTO events (call_id, seq, at, from_status, to_status, detail)
SELECT h_id(n), seq,
    CASE WHEN seq < 4 THEN h_created(N) + seq * interval '1 second'
         ELSE h_ended(N) + (seq - 4) * interval '40 seconds' END,
    (ARRAY[NULL, 'queued', 'dialing', 'connected', h_fate(n)])[seq],
    (ARRAY['queued', 'dialing', 'connected', h_fate(n), h_fate(n)])[seq],
    CASE WHEN seq = 5 THEN 'insights ready' END
FROM SERIES, generate_series(1, 5) AS seq
"""

HISTORY_ATTEMPTS = """
INSERT INTO attempts (call_id, operation, started_at, status_code, latency_ms, error)
SELECT h_id(n), 'start', h_created(N) + interval '1 second',
    CASE WHEN h_fate(n) = 'failed' THEN 400 ELSE 201 END, 80 + mod(n, 50), NULL
FROM SERIES
"""

HISTORY_INSIGHTS = """
INSERT INTO insights (call_id, status, reason, messages, topics, questions, action_items,
    follow_ups, members, summary, attempts, first_tried_at, next_attempt_at, harvested_at,
    updated_at)
SELECT h_id(n),
    CASE WHEN n < %(pending)s THEN 'pending'
         WHEN mod(n, 20) = 0 THEN 'unavailable' ELSE 'ready' END,
    CASE WHEN n >= %(pending)s AND mod(n, 20) = 0 THEN 'transcript empty' END,
    '[{"text": "hello"}, {"text": "goodbye"}]'::json, '[]'::json, '[]'::json,
    '[{"text": "send the quote"}]'::json, '[]'::json, '[]'::json,
    '[{"text": "a short call"}]'::json, CASE WHEN n < %(lost)s THEN 0 ELSE 1 END,
    CASE WHEN n >= %(lost)s THEN h_ended(N) + interval '5 seconds' END,
    CASE WHEN n < %(lost)s THEN h_ended(N)
         WHEN n < %(pending)s
        THEN %(now)s::timestamptz + (n - (%(lost)s + %(pending)s) / 2) * interval '10 seconds'
    END,
    CASE WHEN n >= %(pending)s THEN h_ended(N) + interval '40 seconds' END,
    h_ended(N) + interval '40 seconds'
FROM SERIES
WHERE h_talked(n)
"""

# Every event delivered, but for some of the newest calls whose nudge was lost.
HISTORY_CURSORS = """
INSERT INTO webhook_cursors (call_id, delivered_seq, failures, updated_at)
SELECT h_id(n), CASE WHEN mod(n, 50) = 1 AND n < %(window_n)s THEN 3 ELSE 5 END, 0,
    h_ended(N) + interval '41 seconds'
FROM SERIES
WHERE mod(n, 10) < 3
"""

HISTORY_OCCURRENCES = """
INSERT INTO schedule_occurrences (schedule_id, occurrence_at, outcome, call_id, recorded_at)
SELECT md5('s' || mod(n / 10, %(schedules)s))::uuid::text, h_created(N), 'placed', h_id(n),
    h_created(N)
FROM SERIES
WHERE mod(n, 10) = 0
"""

HISTORY = tuple(
    sql.replace("h_created(N)", f"h_created({N})")
    .replace("h_ended(N)", f"h_ended({N})")
    .replace("FROM SERIES", f"FROM {SERIES}")
    for sql in (
        HISTORY_CALLS,
        HISTORY_EVENTS,
        HISTORY_ATTEMPTS,
        HISTORY_INSIGHTS,
        HISTORY_CURSORS,
        HISTORY_OCCURRENCES,
    )
)

# The calls in flight: (status, how many, seconds from now of the column that makes some due).
ACTIVE: tuple[tuple[str, int, str | None], ...] = (
    ("queued", 100, "dispatch_due_at"),  # a quarter of them have a stale message
    ("queued", 50, "not_before"),  # planned for tomorrow
    ("waiting", 100, "deadline_at"),  # a few past their deadline
    ("dialing", 10, "claimed_at"),  # a few stale claims
    ("connected", 100, "watch_due_at"),  # a few overdue looks
    ("stopping", 10, "watch_due_at"),
    ("unknown", 5, None),
    ("completed", 100, "ended_at"),  # ended within the insights deadline
)
# Of the calls ended within the deadline, those with an insights row: all but every tenth,
# ended by a worker older than migration 0007 (the insights sweep's backfill finds them).
ACTIVE_INSIGHTS = """
INSERT INTO insights (call_id, status, attempts, first_tried_at, harvested_at, updated_at)
VALUES (%(id)s, 'ready', 1, %(ended_at)s, %(ended_at)s, %(ended_at)s)
"""
ACTIVE_CALLS = """
INSERT INTO calls (id, status, account, phone_number, request, priority, max_duration_s,
    callback_url, deadline_at, start_attempts, failures, capacity_waits, claimed_at,
    conversation_id, created_at, updated_at, connected_at, not_before, dispatch_due_at,
    watch_due_at, ended_at)
VALUES (%(id)s, %(status)s, 'default', '+14155550123', '{"phone_number": "+14155550123"}',
    %(priority)s, 3600, %(callback_url)s, %(deadline_at)s, 1, 0, 0, %(claimed_at)s,
    %(conversation_id)s, %(created_at)s, %(updated_at)s, %(connected_at)s, %(not_before)s,
    %(dispatch_due_at)s, %(watch_due_at)s, %(ended_at)s)
"""
RECENT = "created_at > %(now)s::timestamptz - interval '1 hour'"
# queued, then (but for queued calls) the state they are in now.
ACTIVE_EVENTS = """
INSERT INTO events (call_id, seq, at, from_status, to_status)
SELECT id, 1, created_at, NULL, 'queued' FROM calls WHERE RECENT
UNION ALL
SELECT id, 2, updated_at, 'queued', status FROM calls WHERE RECENT AND status <> 'queued'
""".replace("RECENT", RECENT)
# Delivered up to date, but for ten connected calls whose retry is due.
ACTIVE_CURSORS = """
INSERT INTO webhook_cursors (call_id, delivered_seq, failures, next_attempt_at, updated_at)
SELECT id, CASE WHEN status = 'queued' OR retry THEN 1 ELSE 2 END, 0,
    CASE WHEN retry THEN %(now)s::timestamptz - interval '1 second' END, %(now)s::timestamptz
FROM (SELECT id, status, status = 'connected' AND row_number() OVER (
        PARTITION BY status ORDER BY id) <= 10 AS retry
      FROM calls WHERE RECENT AND callback_url IS NOT NULL) AS recent
""".replace("RECENT", RECENT)
# Paused, due now, and due later.
SCHEDULE_ROWS = """
INSERT INTO schedules (id, name, source, template, kind, every_s, timezone, timing_fingerprint,
    overlap, enabled, next_due_at, created_at, updated_at)
SELECT md5('s' || k)::uuid::text, 'schedule-' || k, 'cli',
    '{"phone_number": "+14155550123"}'::json, 'every', 3600, 'UTC', 'bench', 'skip', k >= 45,
    CASE WHEN k < 45 THEN NULL
         WHEN k < 50 THEN %(now)s::timestamptz - interval '1 second'
         ELSE %(now)s::timestamptz + k * interval '1 minute' END,
    %(now)s::timestamptz - interval '400 days', %(now)s::timestamptz
FROM generate_series(0, %(schedules)s - 1) AS k
"""


@dataclass(frozen=True)
class Clock:
    """The instant the data is built around, and the spacing of history."""

    now: datetime
    step_s: float

    def window_n(self) -> int:
        """History calls with a smaller n are inside the webhook retry window."""
        return int((WEBHOOK_WINDOW - timedelta(hours=1)).total_seconds() / self.step_s)

    def at(self, seconds: float) -> datetime:
        return self.now + timedelta(seconds=seconds)


def plain(url: str) -> str:
    """The libpq form of a SQLAlchemy URL."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def run_sql(conn: psycopg.Connection[Any], sql: str, params: dict[str, Any]) -> None:
    conn.execute(sql.encode(), params)


def load_history(conn: psycopg.Connection[Any], clock: Clock, first: int, last: int) -> None:
    """History calls first..last (inclusive) and everything that hangs off them."""
    params = {
        "now": clock.now,
        "step": clock.step_s,
        "first": first,
        "last": last,
        "lost": LOST,
        "pending": PENDING,
        "window_n": clock.window_n(),
        "schedules": SCHEDULES,
    }
    for sql in HISTORY:
        run_sql(conn, sql, params)


def active_row(clock: Clock, status: str, i: int, due_column: str | None) -> dict[str, Any]:
    """One call in flight; i = 1..count, the first few of each batch are the due ones."""
    row: dict[str, Any] = {
        "id": md5_id(f"a{status}{due_column}{i}"),
        "status": status,
        "priority": 1 + i % 9,
        "callback_url": "https://hooks.example.com/dialq" if i % 3 == 0 else None,
        "deadline_at": clock.at(3600),
        "claimed_at": clock.at(-10 * i) if status != "queued" else None,
        "conversation_id": md5_id(f"aconv{status}{i}") if status != "queued" else None,
        "created_at": clock.at(-10 * i),
        "updated_at": clock.at(-5 * i),
        "connected_at": clock.at(-4 * i) if status in {"connected", "stopping"} else None,
        "not_before": None,
        "dispatch_due_at": None,
        "watch_due_at": None,
        "ended_at": None,
    }
    offsets = {
        "dispatch_due_at": -60.0 * (i % 4),
        "not_before": 86400.0,
        "deadline_at": 60.0 * (i - 5),
        "claimed_at": -30.0 * i,
        "watch_due_at": 5.0 * (5 - i),
        "ended_at": -8.0 * i,
    }
    if due_column is not None:
        row[due_column] = clock.at(offsets[due_column])
    return row


def load_active(conn: psycopg.Connection[Any], clock: Clock) -> None:
    """The calls in flight with their events and cursors, and the schedules."""
    rows = [
        active_row(clock, status, i, due_column)
        for status, count, due_column in ACTIVE
        for i in range(1, count + 1)
    ]
    ended = [row for row in rows if row["ended_at"] is not None]
    with_row = [row for k, row in enumerate(ended, start=1) if k % 10]
    with conn.cursor() as cursor:
        cursor.executemany(ACTIVE_CALLS.encode(), rows)
        cursor.executemany(ACTIVE_INSIGHTS.encode(), with_row)
    conn.execute(HELPERS.encode())  # several statements: no parameters, simple protocol
    params = {"now": clock.now, "schedules": SCHEDULES}
    for sql in (ACTIVE_EVENTS, ACTIVE_CURSORS, SCHEDULE_ROWS):
        run_sql(conn, sql, params)


def vacuum_analyze(conn: psycopg.Connection[Any]) -> None:
    """What autovacuum does on a live database: the visibility map and planner statistics."""
    for table in (
        "calls",
        "events",
        "attempts",
        "insights",
        "webhook_cursors",
        "schedules",
        "schedule_occurrences",
    ):
        conn.execute(f"VACUUM (ANALYZE) {table}".encode())


def grow(url: str, clock: Clock, have: int, size: int) -> None:
    """Add history calls have..size-1, each older than those already there."""
    started = time.perf_counter()
    with psycopg.connect(plain(url)) as conn:
        for first in range(have, size, 100_000):
            load_history(conn, clock, first, min(size, first + 100_000) - 1)
            conn.commit()
    with psycopg.connect(plain(url), autocommit=True) as conn:
        vacuum_analyze(conn)
    print(f"{size:>11,} calls of history: loaded in {time.perf_counter() - started:.0f} s")


@contextmanager
def bench_database(admin_url: str) -> Iterator[str]:
    """A PostgreSQL database of our own, dropped after; yields its SQLAlchemy URL."""
    name = f"dialq_history_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as admin:
        admin.execute(f'CREATE DATABASE "{name}"'.encode())
        try:
            yield f"{admin_url.rsplit('/', 1)[0]}/{name}".replace(
                "postgresql://", "postgresql+psycopg://", 1
            )
        finally:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)'.encode())


# -- the queries -------------------------------------------------------------------------------

Query = Callable[[Session], object]


def md5_id(text: str) -> str:
    """The id the SQL above gives a call: md5(text)::uuid::text."""
    return str(uuid.UUID(hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()))


def queries(now: datetime, probe: str) -> dict[str, Query]:
    """Each query as its caller runs it, with the callers' default settings."""
    stale = now - timedelta(seconds=5)
    queued = [md5_id(f"aqueueddispatch_due_at{i}") for i in range(1, 51)]
    finished = [md5_id(f"h{n}") for n in range(50)]
    return {
        "watchdog stale_dialing": lambda s: repair_repo.stale_dialing(
            s, now - timedelta(seconds=120)
        ),
        "watchdog unknown_since": lambda s: repair_repo.unknown_since(
            s, now - timedelta(seconds=300)
        ),
        "watchdog count_in(unknown)": lambda s: repair_repo.count_in(s, CallStatus.UNKNOWN),
        "watchdog overdue_watches": lambda s: repair_repo.overdue_watches(
            s, now - timedelta(seconds=20)
        ),
        "watchdog expired_waiters": lambda s: repair_repo.expired_waiters(s, ["default"], now),
        "watchdog accounts_waiting": line_repo.accounts_waiting,
        "watchdog head_of_line": lambda s: line_repo.head_of_line(s, "default", LINE_PAGE),
        "watchdog waiters_after": lambda s: line_repo.waiters_after(s, "default", "8", LINE_PAGE),
        "watchdog in_states": lambda s: repair_repo.in_states(s, queued, DIALABLE),
        "watchdog over": lambda s: repair_repo.over(s, finished),
        "dispatch due_for_dispatch": lambda s: calls_repo.due_for_dispatch(
            s, now=now - timedelta(seconds=60), horizon=now + timedelta(seconds=10)
        ),
        # What InsightsService.sweep reads: calls ended within the deadline with no row (ended
        # by a worker older than migration 0007), then the due rows.
        "insights sweep": lambda s: [
            *insights_repo.ended_without_insights(
                s, ended_after=now - INSIGHTS_DEADLINE, ended_before=stale, limit=100
            ),
            *(row.call_id for row in insights_repo.overdue(s, due_before=stale, limit=100)),
        ],
        "insights overdue": lambda s: insights_repo.overdue(s, due_before=stale, limit=100),
        "webhooks due_for_delivery": lambda s: webhooks_repo.due_for_delivery(
            s,
            now=now,
            quiet_before=stale,
            window_start=now - WEBHOOK_WINDOW,
            any_call=False,
            limit=500,
        ),
        "schedules due": lambda s: schedules_repo.due(s, now + timedelta(seconds=3), limit=500),
        "cli list_calls(limit=20)": lambda s: calls_repo.list_calls(s, limit=20),
        "cli find_call(8-char prefix)": lambda s: calls_repo.find_call(s, probe),
        "metrics scrape: fold + kept counts": scrape_counts,
        "metrics GROUP BY status (before)": count_every_call,
        "dashboard status_counts (kept)": lambda s: dashboard_repo.status_counts(s, {"default"}),
        "dashboard GROUP BY status (before)": count_accounts_calls,
    }


def scrape_counts(session: Session) -> dict[str, int]:
    """What a scrape reads: the changes since the last fold folded, then the kept counts (the
    fold is rolled back with the session, so every run folds the same changes)."""
    state_counts.fold(session)
    return calls_repo.count_by_status(session)


def count_every_call(session: Session) -> dict[str, int]:
    """The exact count the kept counts replaced: one index entry per call of history."""
    rows = session.execute(select(Call.status, func.count()).group_by(Call.status)).all()
    return {status: int(n) for status, n in rows}


def count_accounts_calls(session: Session) -> dict[str, int]:
    """The dashboard's count before it read the kept counts: every call of the viewer's accounts
    (here the one account history is written under)."""
    query = select(Call.status, func.count()).where(Call.account == "default")
    rows = session.execute(query.group_by(Call.status)).all()
    return {status: int(n) for status, n in rows}


def expected_found(db: Database, now: datetime, probe: str) -> dict[str, int]:
    """How many rows each sweep returns: the data must give every query something to find."""
    found: dict[str, int] = {}
    with db.sessions() as session:
        for name, query in queries(now, probe).items():
            result = query(session)
            found[name] = len(result) if isinstance(result, list | dict) else int(bool(result))
    return found


def oldest_prefix(db: Database) -> str:
    """An 8-character prefix of the oldest call's id: the far end of history."""
    with db.engine.connect() as conn:
        found = conn.exec_driver_sql("SELECT id FROM calls ORDER BY created_at LIMIT 1").scalar()
    return str(found)[:8]


def time_interleaved(runs: int, targets: dict[int, tuple[Database, Query]]) -> dict[int, float]:
    """Median milliseconds per size of `runs` calls, each in a fresh session (nothing cached),
    the sizes taking turns run by run: a burst of load on this shared machine slows every
    size alike instead of one size's whole series."""
    for db, query in targets.values():
        with db.sessions() as session:
            query(session)  # warms the connection and the statement cache
    times: dict[int, list[float]] = {size: [] for size in targets}
    for _ in range(runs):
        for size, (db, query) in targets.items():
            with db.sessions() as session:
                started = time.perf_counter()
                query(session)
                times[size].append(1000 * (time.perf_counter() - started))
    return {size: median(series) for size, series in times.items()}


# -- plans -------------------------------------------------------------------------------------


def statements_of(db: Database, query: Query) -> list[tuple[str, Any]]:
    """The SQL, with its parameters, that one run of `query` sends."""
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        with db.sessions() as session:
            query(session)
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    return seen


def plan_nodes(node: dict[str, Any]) -> list[str]:
    """Node types of a JSON plan, depth first; a scan names its index or table."""
    label = str(node["Node Type"])
    if node.get("Join Type", "Inner") != "Inner":
        label += f"({node['Join Type']})"
    if "Index Name" in node:
        label += f"({node['Index Name']})"
    elif "Relation Name" in node:
        label += f"({node['Relation Name']})"
    found = [label]
    for child in node.get("Plans", []):
        found += plan_nodes(child)
    return found


def explain(db: Database, query: Query) -> list[str]:
    nodes: list[str] = []
    with db.engine.connect() as conn:
        for statement, parameters in statements_of(db, query):
            if isinstance(parameters, list):
                parameters = parameters[0]  # an executemany: every row has the same plan
            plan = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters)
            nodes += plan_nodes(plan.scalar_one()[0]["Plan"])
            nodes.append("|")  # the next statement of the same call
    return nodes[:-1]


def flagged(nodes: list[str]) -> list[str]:
    return [n for n in nodes if n in {f"Seq Scan({table})" for table in FLAGGED_TABLES}]


# -- the run -----------------------------------------------------------------------------------


@dataclass
class Measured:
    ms: dict[str, dict[int, float]] = field(default_factory=dict)
    found: dict[str, dict[int, int]] = field(default_factory=dict)
    plans: dict[str, list[str]] = field(default_factory=dict)


def measure(args: argparse.Namespace, clock: Clock) -> Measured:
    """One database per size, all filled before any timing, so every query's sizes are timed
    side by side (see time_interleaved)."""
    measured = Measured()
    with ExitStack() as stack:
        dbs: dict[int, Database] = {}
        probes: dict[int, str] = {}
        for size in args.sizes:
            url = stack.enter_context(bench_database(args.admin_url))
            db = Database(url)
            stack.callback(db.dispose)
            db.upgrade()
            with psycopg.connect(plain(url)) as conn:
                load_active(conn, clock)
            grow(url, clock, 0, size)
            with db.transaction() as session:
                state_counts.fold(session)  # as the watchdog's tick does
            dbs[size], probes[size] = db, oldest_prefix(db)
            for name, count in expected_found(db, clock.now, probes[size]).items():
                measured.found.setdefault(name, {})[size] = count
        for name in queries(clock.now, ""):
            targets = {
                size: (db, queries(clock.now, probes[size])[name]) for size, db in dbs.items()
            }
            measured.ms[name] = time_interleaved(args.runs, targets)
        largest = max(dbs)
        measured.plans = {
            n: explain(dbs[largest], q) for n, q in queries(clock.now, probes[largest]).items()
        }
    return measured


def ratio(times: dict[int, float]) -> float:
    smallest, largest = min(times), max(times)
    return times[largest] / times[smallest] if times[smallest] else float("nan")


# Queries that cannot be size-independent as they are defined, and why.
WHY_LINEAR = {
    "metrics GROUP BY status (before)": (
        "it counts every state exactly, and completed/failed/canceled are all of history; "
        "the scrape now reads the counts the triggers keep (migration 0010)"
    ),
    "dashboard GROUP BY status (before)": (
        "it reads every call of the viewer's accounts; the calls page now reads the counts the "
        "triggers keep per account (migration 0010)"
    ),
}


def print_table(args: argparse.Namespace, measured: Measured) -> dict[str, Any]:
    sizes: list[int] = args.sizes
    head = "".join(f"{f'{n:,}':>11}" for n in sizes)
    print(f"\n{'ms, median of ' + str(args.runs):34}{head}{'ratio':>8}  <= 2x  rows found")
    summary: dict[str, Any] = {}
    for name, times in measured.ms.items():
        r = ratio(times)
        verdict = "OK" if r <= TARGET_RATIO else "OVER"
        cells = "".join(f"{times[n]:11.2f}" for n in sizes)
        found = "/".join(str(measured.found[name][n]) for n in sizes)
        print(f"{name:34}{cells}{r:8.2f}  {verdict:5}  {found}")
        summary[name] = {
            "ms": {str(n): round(times[n], 3) for n in sizes},
            "ratio": round(r, 2),
            "ok": verdict == "OK",
            "found": {str(n): measured.found[name][n] for n in sizes},
            "plan": measured.plans.get(name, []),
            "seq_scans": flagged(measured.plans.get(name, [])),
        }
    return summary


def print_plans(sizes: list[int], measured: Measured, summary: dict[str, Any]) -> None:
    print(f"\nplans at {sizes[-1]:,} calls (node types, depth first; | separates statements)")
    for name, nodes in measured.plans.items():
        warn = flagged(nodes)
        mark = f"   <-- {', '.join(warn)}" if warn else ""
        print(f"  {name}: {' > '.join(nodes)}{mark}")
    for name, why in WHY_LINEAR.items():
        if name in summary and not summary[name]["ok"]:
            print(f"\n{name} stays linear: {why}")


def parse_sizes(text: str) -> list[int]:
    sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    if len(sizes) < 2:
        raise argparse.ArgumentTypeError("give at least two sizes")
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=parse_sizes, default=list(SIZES))
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--calls-per-day", type=float, default=2000.0)
    args = parser.parse_args()
    clock = Clock(now=datetime.now(UTC), step_s=86400.0 / args.calls_per_day)
    started = time.perf_counter()
    measured = measure(args, clock)
    summary = print_table(args, measured)
    print_plans(args.sizes, measured, summary)
    elapsed = time.perf_counter() - started
    print(f"\ntotal {elapsed:.0f} s")
    result = {"sizes": args.sizes, "runs": args.runs, "elapsed_s": round(elapsed), **summary}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "history.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
