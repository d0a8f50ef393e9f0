"""Fixtures for tests that run the whole stack: Redis, a database, the sandbox, real workers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dialq.sandbox import SandboxConfig, start_sandbox
from dialq.store import Database
from tests.databases import empty_database
from tests.stack import APP_ID, APP_SECRET, Stack, running_stack, stack_env


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """The store alone, on empty tables (SQLite, then PostgreSQL)."""
    database = empty_database(database_url)
    yield database
    database.dispose()


@pytest.fixture
def stack(redis_url: str, database_url: str, tmp_path: Path) -> Iterator[Stack]:
    """Everything but the workers, which each test starts when its stage is set."""
    empty_database(database_url).dispose()
    sandbox = start_sandbox(
        SandboxConfig(app_id=APP_ID, app_secret=APP_SECRET, max_concurrent=50),
        host="127.0.0.1",
        port=0,
    )
    try:
        env = stack_env(redis_url, database_url, sandbox.url, tmp_path)
        with running_stack(env, sandbox, tmp_path) as running:
            yield running
    finally:
        sandbox.stop()
