"""Refused credentials are the account's condition, not a call failure: while Symbl's token
endpoint refuses the app id or secret, the account's calls wait (no failure budget spent),
`dialq doctor` says which account and why, and the calls go on once the credentials work again
(the sandbox accepting again, or settings fixed and workers restarted); they fail only at their
own deadline."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import dialq
from dialq.calls.policy import credentials_refused
from tests.stack import APP_SECRET, Stack

TOKEN = {"path": "/oauth2/token:generate", "method": "POST"}
REFUSED = {"type": "status", "status": 401, "body": {"message": f"bad secret {APP_SECRET}"}}
CALLS = 4
FAST_HOLD = {
    "DIALQ_FAILURE_RETRY_BUDGET": "1",
    "DIALQ_API_CIRCUIT_COOLDOWN_S": "0.5",
    "DIALQ_API_CIRCUIT_MAX_COOLDOWN_S": "2",
}


def _enqueue(stack: Stack, count: int = CALLS) -> list[str]:
    return [
        dialq.enqueue_call(
            {"phone_number": f"+1415555{index:04d}", "max_duration_s": 10},
            settings=stack.settings,
        ).id
        for index in range(count)
    ]


def _all_waiting_on_credentials(stack: Stack, ids: list[str], timeout_s: float) -> list[Any]:
    reason = credentials_refused("default")
    deadline = time.monotonic() + timeout_s
    while True:
        calls = [stack.call(call_id) for call_id in ids]
        if all(c["status"] == "waiting" and c["reason"] == reason for c in calls):
            return calls
        assert time.monotonic() < deadline, [(c["status"], c["reason"]) for c in calls]
        time.sleep(0.2)


def _doctor(stack: Stack) -> tuple[dict[str, dict[str, str]], str]:
    done = subprocess.run(
        [sys.executable, "-m", "dialq.cli", "doctor", "--json", "--timeout", "2"],
        env=stack.process_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    return checks, done.stdout + done.stderr


def test_calls_wait_while_the_token_endpoint_refuses_and_go_on_when_it_accepts(
    stack: Stack,
) -> None:
    # given a failure budget of 1 and a token endpoint that refuses the account's credentials
    # (echoing the secret it refused)
    stack.env.update(FAST_HOLD)
    stack.sandbox.control.script([{"match": TOKEN, "times": 100_000, "action": REFUSED}])
    stack.start_worker(concurrency=4)
    # when calls are placed, and several probes (each a token request) are refused
    ids = _enqueue(stack)
    calls = _all_waiting_on_credentials(stack, ids, timeout_s=20)
    time.sleep(4.0)
    still = [stack.call(call_id) for call_id in ids]
    # then none failed or spent its failure budget: they wait, naming the account's problem
    assert [(c["status"], c["failures"]) for c in still] == [("waiting", 0)] * CALLS, still
    token_requests = [r for r in stack.sandbox.control.requests() if r["path"] == TOKEN["path"]]
    assert len(token_requests) >= 2  # the hold was probed, not given up
    assert stack.sandbox.control.live_count() == 0
    # and the doctor says which account and why, without the secret
    checks, output = _doctor(stack)
    workers_view = checks["symbl:default:workers"]
    assert workers_view["status"] == "FAIL"
    assert "account default" in workers_view["detail"]
    assert "HTTP 401" in workers_view["detail"], workers_view
    assert APP_SECRET not in output
    assert all(APP_SECRET not in json.dumps(c) for c in calls)
    # when the token endpoint accepts again
    stack.sandbox.control.clear_faults()
    # then every call connects, none failed
    for call_id in ids:
        stack.wait_for(call_id, {"connected", "completed"}, timeout_s=30)
    assert all(stack.call(call_id)["failures"] == 0 for call_id in ids)
    # and the doctor no longer reports the workers' refusal
    checks, _ = _doctor(stack)
    assert "symbl:default:workers" not in checks
    assert checks["symbl:default"]["status"] == "OK"


def test_calls_go_on_once_the_secret_is_fixed_and_the_workers_restarted(stack: Stack) -> None:
    # given workers started with a wrong app secret
    right = stack.env["DIALQ_SYMBL_APP_SECRET"]
    stack.env.update({**FAST_HOLD, "DIALQ_SYMBL_APP_SECRET": "wrong-secret-never-shown"})
    stack.start_worker(concurrency=4)
    ids = _enqueue(stack)
    # when their calls met the refusal
    _all_waiting_on_credentials(stack, ids, timeout_s=20)
    # and the settings are fixed and the workers restarted
    stack.stop_workers()
    stack.env["DIALQ_SYMBL_APP_SECRET"] = right
    stack.start_worker(concurrency=4)
    # then every call connects, with no failure counted
    for call_id in ids:
        stack.wait_for(call_id, {"connected", "completed"}, timeout_s=30)
    assert all(stack.call(call_id)["failures"] == 0 for call_id in ids)
    assert "wrong-secret-never-shown" not in stack.worker_logs()


def test_calls_held_by_refused_credentials_fail_only_at_their_own_deadline(
    stack: Stack,
) -> None:
    # given calls that must start within 6 s, and credentials refused all along
    stack.env.update({**FAST_HOLD, "DIALQ_DIAL_DEADLINE_S": "6"})
    stack.sandbox.control.script([{"match": TOKEN, "times": 100_000, "action": REFUSED}])
    stack.start_worker(concurrency=4)
    started = time.monotonic()
    ids = _enqueue(stack, 2)
    # when they wait for the credentials
    _all_waiting_on_credentials(stack, ids, timeout_s=5)
    # then they fail at their deadline, saying so: when no probe could come before it (a
    # probe is at most the 2 s cooldown and 1 s of spread away), not sooner
    for call_id in ids:
        failed = stack.wait_for(call_id, {"failed"}, timeout_s=30)
        assert failed["reason"].startswith("deadline"), failed["reason"]
        assert failed["failures"] == 0
    assert time.monotonic() - started >= 3.0
