"""Fixtures for the fault suite, the long-run flag, and the table printed at the end of the run.

Default: a short run of each scenario (the whole directory in a few minutes on two cores).
`pytest tests/chaos --chaos-long`, or DIALQ_CHAOS_LONG=1 with any pytest command, runs more
calls and more faults per scenario.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text

from dialq.api import close_runtimes
from dialq.ops.local_redis import PrivateRedis, RedisNotFound
from dialq.sandbox import SandboxConfig, start_sandbox
from dialq.store import Database
from tests.chaos.harness import CHAOS_ENV, ChaosStack, Outcome
from tests.servers import missing_server
from tests.stack import APP_ID, APP_SECRET, Stack, stack_env


@dataclass(frozen=True)
class Row:
    scenario: str
    calls: int
    faults: int
    lost: int
    doubled: int
    stuck: int
    unknown: int
    orphans: int
    leaked: int
    died: int
    after_cancel: int
    seconds: float


_ROWS: list[Row] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--chaos-long", action="store_true", help="fault suite: more calls and faults")


@dataclass(frozen=True)
class Scale:
    """How big each scenario is: calls per second, seconds of production, repetitions."""

    long: bool
    rate_per_s: float
    produce_s: float
    repeats: int
    recovery_s: float


@pytest.fixture(scope="session")
def scale(request: pytest.FixtureRequest) -> Scale:
    long = bool(request.config.getoption("--chaos-long", default=False)) or bool(
        os.environ.get("DIALQ_CHAOS_LONG")
    )
    if long:
        return Scale(long=True, rate_per_s=8.0, produce_s=40.0, repeats=4, recovery_s=90.0)
    return Scale(long=False, rate_per_s=5.0, produce_s=8.0, repeats=1, recovery_s=45.0)


def _with_application_name(url: str, name: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}application_name={name}"


def _empty(url: str) -> None:
    db = Database(url)
    db.upgrade()
    with db.transaction() as session:
        for table in ("attempts", "events", "calls"):
            session.execute(text(f"DELETE FROM {table}"))
    db.dispose()


@pytest.fixture
def chaos(pg_url: str, tmp_path: Path) -> Iterator[ChaosStack]:
    """A private AOF Redis, a sandbox, empty PostgreSQL tables; no processes yet.

    dialq's own connections carry an application_name of their own, so a scenario can drop
    exactly them (and not the audit's, nor anyone else's on the shared server).
    """
    _empty(pg_url)
    (tmp_path / "redis").mkdir()
    try:
        server = PrivateRedis(appendonly=True, directory=tmp_path / "redis").start()
    except RedisNotFound:
        missing_server("redis-server")
        raise
    sandbox = start_sandbox(
        SandboxConfig(
            app_id=APP_ID, app_secret=APP_SECRET, max_concurrent=50, call_seconds=(1.0, 3.0)
        ),
        port=0,
    )
    app_name = f"dialq-chaos-{uuid.uuid4().hex[:8]}"
    env = stack_env(server.url, _with_application_name(pg_url, app_name), sandbox.url, tmp_path)
    env.update(CHAOS_ENV)
    running = ChaosStack(Stack(env=env, sandbox=sandbox, workdir=tmp_path), server, pg_url)
    try:
        yield running
    finally:
        running.stop()
        close_runtimes()
        sandbox.stop()
        server.stop()


Record = Callable[[str, Outcome], None]


@pytest.fixture
def record() -> Record:
    """Adds the scenario's figures to the table printed at the end of the session."""

    def add(scenario: str, outcome: Outcome) -> None:
        report = outcome.report
        _ROWS.append(
            Row(
                scenario=scenario,
                calls=report.calls,
                faults=outcome.faults,
                lost=len(report.lost),
                doubled=len(report.doubled),
                stuck=len(report.stuck),
                unknown=len(report.unknown),
                orphans=len(report.orphans),
                leaked=len(report.leaked_permits),
                died=outcome.died,
                after_cancel=outcome.dialed_after_cancel,
                seconds=outcome.seconds,
            )
        )

    return add


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _ROWS:
        return
    headers = ["scenario", "calls", "faults injected", "calls lost", "calls doubled", "stuck"]
    headers += ["unknown", "orphans", "leaked permits", "processes died", "dialed after cancel"]
    headers += ["seconds"]
    rows = [[r.scenario, r.calls, r.faults, r.lost, r.doubled, r.stuck] for r in _ROWS]
    for row, r in zip(rows, _ROWS, strict=True):
        row += [r.unknown, r.orphans, r.leaked, r.died, r.after_cancel, f"{r.seconds:.0f}"]
    table = [headers, *[[str(x) for x in row] for row in rows]]
    widths = [max(len(line[i]) for line in table) for i in range(len(headers))]
    terminalreporter.section("chaos: every enqueued call audited against the sandbox")
    for line in table:
        cells = [line[0].ljust(widths[0])]
        cells += [cell.rjust(widths[i]) for i, cell in enumerate(line) if i]
        terminalreporter.write_line("  ".join(cells))
