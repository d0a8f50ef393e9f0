"""Fixtures for the dashboard in a real browser: Debian's Chromium driven by Playwright, against
a real stack (Redis, PostgreSQL, the sandbox, workers, beat, `dialq api`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dialq.sandbox import SandboxConfig, start_sandbox
from tests.databases import API_TABLES, empty_database
from tests.servers import missing_server
from tests.stack import APP_ID, APP_SECRET, Stack, running_stack, stack_env

CHROMIUM = os.environ.get("DIALQ_TEST_CHROMIUM", "/usr/bin/chromium")
# Never a downloaded browser: the system's, with nothing phoning home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).parent / "screenshots"


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        missing_server(f"Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def stack(redis_url: str, pg_url: str, tmp_path: Path) -> Iterator[Stack]:
    """Redis, PostgreSQL (empty tables) and the sandbox; each test starts its own processes."""
    empty_database(pg_url, API_TABLES).dispose()
    sandbox = start_sandbox(
        SandboxConfig(app_id=APP_ID, app_secret=APP_SECRET, max_concurrent=50),
        host="127.0.0.1",
        port=0,
    )
    try:
        env = stack_env(redis_url, pg_url, sandbox.url, tmp_path)
        env["DIALQ_INSIGHTS_BACKOFF_BASE_S"] = "0.3"
        env["DIALQ_INSIGHTS_BACKOFF_MAX_S"] = "1"
        with running_stack(env, sandbox, tmp_path) as running:
            yield running
    finally:
        sandbox.stop()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    return SCREENSHOTS
