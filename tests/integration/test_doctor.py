"""`dialq doctor` against the real stack: all OK with a worker, plain FAILs otherwise."""

from __future__ import annotations

import json
import subprocess
import sys

from dialq.redis_server import free_port
from tests.stack import APP_SECRET, Stack


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


def test_doctor_says_all_ok_with_a_worker_running(stack: Stack) -> None:
    # given the whole stack with a worker
    stack.start_worker(concurrency=2)
    # when the doctor runs
    code, report, _ = _doctor(stack)
    # then every check is OK and the exit code is 0
    checks = _by_name(report)
    assert code == 0, checks
    assert report["ok"] is True
    assert list(checks) == ["broker", "database", "symbl:default", "workers", "queues"]
    assert "1 answering" in checks["workers"]["detail"]
    assert "dialq.dial 0" in checks["queues"]["detail"]


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
