"""The Symbl API misbehaving: 5xx and 429 storms, hangs, dropped connections, slow answers."""

from __future__ import annotations

import time
from typing import Any

import pytest

from dialq.sandbox import SandboxControl
from tests.chaos.conftest import Record, Scale
from tests.chaos.harness import ChaosStack, assert_promises_kept, run_scenario

START = {"path": "/v1/endpoint:connect", "operation": "start"}


def _faults_fired(control: SandboxControl) -> int:
    return sum(1 for entry in control.requests() if entry.get("fault"))


def _storms(control: SandboxControl, storms: list[dict[str, Any]], each_s: float) -> int:
    """Every start request answers each status in turn, for `each_s` seconds at a time."""
    time.sleep(1.0)
    for action in storms:
        control.script([{"match": START, "action": action}])
        time.sleep(each_s)
        control.clear_faults()
        time.sleep(1.0)
    return _faults_fired(control)


def _random(control: SandboxControl, rates: dict[str, float], seconds: float) -> int:
    """Seeded random faults on every connect request (starts and stops) for a while."""
    control.random_faults(
        seed=8, rates=rates, match={"path": "/v1/endpoint:connect"}, slow_seconds=1.0
    )
    time.sleep(seconds)
    control.clear_faults()
    return _faults_fired(control)


def _stack(chaos: ChaosStack) -> None:
    chaos.add_worker(concurrency=8)
    chaos.add_beat()


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_5xx_and_429_storms_lose_and_double_no_call(
    chaos: ChaosStack, scale: Scale, record: Record
) -> None:
    # given a worker and beat
    _stack(chaos)
    storms = [{"type": "status", "status": 503}, {"type": "status", "status": 429}]
    storms = storms * scale.repeats
    # when every start answers 503 for a while, then 429 ("Maximum number of concurrent jobs
    # reached", no Retry-After), while calls arrive
    outcome = run_scenario(
        chaos,
        "storms",
        rate_per_s=scale.rate_per_s,
        produce_s=scale.produce_s,
        recovery_s=scale.recovery_s,
        inject=lambda: _storms(chaos.sandbox.control, storms, each_s=2.0),
    )
    record("sandbox 5xx + 429 storms", outcome)
    # then every call is final, none started twice, nothing orphaned or leaked
    assert outcome.faults > 0
    assert_promises_kept(outcome, chaos)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_hanging_dropping_and_slow_answers_lose_and_double_no_call(
    chaos: ChaosStack, scale: Scale, record: Record
) -> None:
    # given a worker and beat
    _stack(chaos)
    rates = {"hang": 0.08, "drop": 0.08, "drop_after": 0.08, "slow": 0.1, "500": 0.06}
    # when connect requests (starts and stops) hang past the read timeout, lose their
    # connection before or after being processed, or answer late, while calls arrive
    outcome = run_scenario(
        chaos,
        "random",
        rate_per_s=scale.rate_per_s,
        produce_s=scale.produce_s,
        recovery_s=scale.recovery_s,
        inject=lambda: _random(chaos.sandbox.control, rates, scale.produce_s),
    )
    record("sandbox hang/drop/drop_after/slow", outcome)
    # then every call is final (many `unknown`: their start may have gone through), none
    # started twice, nothing orphaned or leaked
    assert outcome.faults > 0
    assert_promises_kept(outcome, chaos)
