"""`dialq doctor` against the real stack: all OK with a worker, plain FAILs otherwise."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from alembic import command
from alembic.script import ScriptDirectory

from dialq import routing
from dialq.ops.beat import LAST_TICK_KEY, STALE_AFTER_S
from dialq.ops.doctor import DEFAULT_MAX_QUEUE_DEPTH, check_beat
from dialq.ops.local_redis import free_port
from dialq.store.db import alembic_config, make_engine
from tests.servers import private_pg_schema
from tests.stack import APP_SECRET, Stack

# kombu's Redis transport keeps a message sent with priority 9 in this sibling of the queue.
PRIORITY_9 = "\x06\x169"


def _doctor(stack: Stack, **overrides: str) -> tuple[int, dict[str, object], str]:
    env = {**stack.process_env(), **overrides}
    done = subprocess.run(
        [sys.executable, "-m", "dialq.cli", "doctor", "--json", "--timeout", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, json.loads(done.stdout), done.stdout + done.stderr


def _by_name(report: dict[str, object]) -> dict[str, dict[str, str]]:
    checks = report["checks"]
    assert isinstance(checks, list)
    return {check["name"]: check for check in checks}


def test_doctor_says_all_ok_with_a_worker_and_beat_running(stack: Stack) -> None:
    # given the whole stack with a worker and beat
    stack.start_worker(concurrency=2)
    stack.start_beat()
    # when the doctor runs
    code, report, _ = _doctor(stack)
    # then every check is OK and the exit code is 0
    checks = _by_name(report)
    assert code == 0, checks
    assert report["ok"] is True
    assert list(checks) == ["broker", "database", "symbl:default", "workers", "beat", "queues"]
    assert "1 answering" in checks["workers"]["detail"]
    assert checks["beat"]["detail"].startswith("last tick")
    assert "dialq.dial 0" in checks["queues"]["detail"]


def test_the_beat_check_fails_once_beat_missed_three_sweeps(redis_url: str) -> None:
    # given beat's last tick recorded in Redis
    client = redis.Redis.from_url(redis_url)
    client.set(LAST_TICK_KEY, "1000.0")
    # when the doctor looks within the staleness bound, and after it (the clock is faked)
    fresh = check_beat(client, now=1000.0 + STALE_AFTER_S - 1)
    stale = check_beat(client, now=1000.0 + STALE_AFTER_S + 5)
    # then it passes, then fails saying when beat last ticked and what to check
    assert fresh.ok
    assert (stale.status, stale.detail) == (
        "FAIL",
        f"last tick {STALE_AFTER_S + 5:.0f}s ago: is `dialq beat` running?",
    )
    client.close()


def test_doctor_fails_when_beat_never_ran(stack: Stack) -> None:
    # given a worker but no beat ever
    stack.start_worker(concurrency=2)
    # when the doctor runs
    code, report, _ = _doctor(stack)
    # then it fails on beat, saying to start it
    checks = _by_name(report)
    assert code == 1
    assert checks["beat"] == {
        "name": "beat",
        "status": "FAIL",
        "detail": "beat has never ticked here: start `dialq beat`",
    }


def test_doctor_fails_plainly_for_a_wrong_app_secret_and_never_prints_it(stack: Stack) -> None:
    # given a wrong secret (and no worker)
    wrong = "wrong-secret-not-printed"
    # when the doctor runs
    code, report, output = _doctor(stack, DIALQ_SYMBL_APP_SECRET=wrong)
    # then the Symbl check fails in plain words, the exit code is 1, no secret is shown
    checks = _by_name(report)
    assert code == 1
    assert checks["symbl:default"]["status"] == "FAIL"
    assert "wrong id or secret" in checks["symbl:default"]["detail"]
    assert checks["broker"]["status"] == "OK"
    assert checks["database"]["status"] == "OK"
    assert checks["workers"]["status"] == "FAIL"
    assert wrong not in output
    assert APP_SECRET not in output


def test_doctor_fails_plainly_for_an_unreachable_broker(stack: Stack) -> None:
    # given a broker URL where nothing listens
    url = f"redis://127.0.0.1:{free_port()}/0"
    # when the doctor runs
    code, report, _ = _doctor(stack, DIALQ_BROKER_URL=url)
    # then the broker check says it cannot reach Redis, and the checks needing it are skipped
    checks = _by_name(report)
    assert code == 1
    assert checks["broker"]["status"] == "FAIL"
    assert "cannot reach Redis" in checks["broker"]["detail"]
    assert checks["workers"]["detail"] == "skipped: the broker is unreachable"
    assert checks["database"]["status"] == "OK"
    assert checks["symbl:default"]["status"] == "OK"


@pytest.fixture
def evicting_broker(redis_url: str) -> Iterator[str]:
    """The test's private Redis set to evict keys under memory pressure, put back afterwards."""
    assert not redis_url.startswith("redis://127.0.0.1:6379/")  # never the machine's own Redis
    client = redis.Redis.from_url(redis_url)
    client.config_set("maxmemory-policy", "allkeys-lru")
    try:
        yield redis_url
    finally:
        client.config_set("maxmemory-policy", "noeviction")
        client.close()


def test_doctor_fails_plainly_for_a_broker_that_evicts_keys(
    stack: Stack, evicting_broker: str
) -> None:
    # given the broker evicts keys when full (a queued call could silently vanish)
    assert stack.env["DIALQ_BROKER_URL"] == evicting_broker
    # when the doctor runs
    code, report, _ = _doctor(stack)
    # then the broker check fails, naming the policy and the fix; the broker is still used
    checks = _by_name(report)
    assert code == 1
    assert checks["broker"]["status"] == "FAIL"
    assert checks["broker"]["detail"].endswith(
        "evicts keys under memory pressure (allkeys-lru): set noeviction"
    )
    assert checks["queues"]["status"] == "OK"
    assert checks["database"]["status"] == "OK"


def test_doctor_fails_plainly_for_a_queue_backlog_counting_its_priority_messages(
    stack: Stack,
) -> None:
    # given one message over the limit waiting on the dial queue, the last one with priority 9
    client = redis.Redis.from_url(stack.env["DIALQ_BROKER_URL"])
    client.rpush(routing.QUEUE_DIAL, *[b"{}"] * DEFAULT_MAX_QUEUE_DEPTH)
    client.rpush(routing.QUEUE_DIAL + PRIORITY_9, b"{}")
    client.close()
    # when the doctor runs
    code, report, _ = _doctor(stack)
    # then the queues check fails with every queue's depth and what to do
    checks = _by_name(report)
    assert code == 1
    assert checks["queues"]["status"] == "FAIL"
    detail = checks["queues"]["detail"]
    assert detail.startswith(f"backlog over {DEFAULT_MAX_QUEUE_DEPTH} (")
    assert f"{routing.QUEUE_DIAL} {DEFAULT_MAX_QUEUE_DEPTH + 1}" in detail
    assert f"{routing.QUEUE_WEBHOOKS} 0" in detail
    assert detail.endswith("add workers")
    assert checks["broker"]["status"] == "OK"


def _upgrade_all_heads_but_one(url: str) -> str:
    """Migrates ``url`` to every head but the last; returns the revision left out."""
    config = alembic_config(url)
    *applied, left_out = sorted(ScriptDirectory.from_config(config).get_heads())
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection  # as Database.upgrade hands it over
            for revision in applied:
                command.upgrade(config, revision)
    finally:
        engine.dispose()
    return left_out


@pytest.fixture
def database_behind(database_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A fresh database of the stack's kind one migration behind: (its URL, the missing one)."""
    if database_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'behind.db'}"
        yield url, _upgrade_all_heads_but_one(url)
        return
    with private_pg_schema() as url:
        yield url, _upgrade_all_heads_but_one(url)


def test_doctor_fails_plainly_for_a_schema_behind_the_newest_migration(
    stack: Stack, database_behind: tuple[str, str]
) -> None:
    # given a database migrated up to all but the newest migration
    url, missing = database_behind
    # when the doctor runs against it
    code, report, _ = _doctor(stack, DIALQ_DATABASE_URL=url)
    # then the database check names the missing revision and the command that adds it
    checks = _by_name(report)
    assert code == 1
    assert checks["database"] == {
        "name": "database",
        "status": "FAIL",
        "detail": f"schema not up to date (missing {missing}): run `dialq db upgrade`",
    }
    assert checks["broker"]["status"] == "OK"
