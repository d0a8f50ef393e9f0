"""Fixtures for properties that need real servers: a stack with the sandbox, for worker tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dialq.api import close_runtimes
from dialq.config import Settings
from dialq.sandbox import SandboxConfig, start_sandbox
from tests.property.cli_runner import environment
from tests.property.world import empty_every_table, observed, settings_for
from tests.stack import APP_ID, APP_SECRET, Stack, running_stack, stack_env


@pytest.fixture
def worker_stack(redis_url: str, sqlite_url: str, tmp_path: Path) -> Iterator[Stack]:
    """Redis, SQLite and the sandbox; the test starts its workers (stopped at teardown)."""
    sandbox = start_sandbox(
        SandboxConfig(app_id=APP_ID, app_secret=APP_SECRET, max_concurrent=50),
        host="127.0.0.1",
        port=0,
    )
    try:
        env = stack_env(redis_url, sqlite_url, sandbox.url, tmp_path)
        with running_stack(env, sandbox, tmp_path) as stack:
            yield stack
    finally:
        sandbox.stop()


@pytest.fixture
def emptied_afterwards(redis_url: str, database_url: str, tmp_path: Path) -> Iterator[str]:
    """The database URL, every table emptied after the test (PostgreSQL is shared by the run)."""
    yield database_url
    with observed(settings_for(redis_url, database_url, tmp_path)) as (db, _):
        empty_every_table(db)


@pytest.fixture
def cli_settings(redis_url: str, sqlite_url: str, tmp_path: Path) -> Iterator[Settings]:
    """DIALQ_* exported for the CLI (SQLite, the private Redis); runtimes closed afterwards."""
    settings = settings_for(redis_url, sqlite_url, tmp_path)
    with environment(settings):
        yield settings
    close_runtimes()
