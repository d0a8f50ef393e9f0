"""dialq's PostgreSQL connections dropped, mid-transaction and idle, again and again."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest

from tests.chaos.conftest import Record, Scale
from tests.chaos.harness import ChaosStack, assert_promises_kept, run_scenario
from tests.servers import PG_ADMIN_URL

# dialq's sessions only (by their application_name), never the admin's or other test runs'.
TERMINATE = """
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE application_name = %(name)s AND pid <> pg_backend_pid() AND (%(all)s OR state <> 'idle')
"""


def _drop_connections(application_name: str, seconds: float) -> int:
    """Terminate dialq's busy sessions every 50 ms and all of them every second; count them."""
    dropped = 0
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        ends = time.monotonic() + seconds
        tick = 0
        while time.monotonic() < ends:
            everyone = tick % 20 == 0
            row = admin.execute(TERMINATE, {"name": application_name, "all": everyone}).fetchone()
            dropped += int(row[0]) if row else 0
            tick += 1
            time.sleep(0.05)
    return dropped


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_postgres_connections_dropped_mid_transaction_lose_and_double_no_call(
    chaos: ChaosStack, scale: Scale, record: Record
) -> None:
    # given two workers and beat whose database sessions carry their own application_name
    url = chaos.stack.env["DIALQ_DATABASE_URL"]
    application_name = parse_qs(urlsplit(url).query)["application_name"][0]
    chaos.add_worker(concurrency=4)
    chaos.add_worker(concurrency=4)
    chaos.add_beat()
    # when their connections are terminated over and over while calls arrive
    outcome = run_scenario(
        chaos,
        "pg-drop",
        rate_per_s=scale.rate_per_s,
        produce_s=scale.produce_s,
        recovery_s=scale.recovery_s,
        inject=lambda: _drop_connections(application_name, scale.produce_s - 1),
    )
    record("postgres sessions terminated", outcome)
    # then connections were dropped, and every call is final, none started twice, no leaks
    assert outcome.faults > 0
    assert_promises_kept(outcome, chaos)
