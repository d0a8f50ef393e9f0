"""Workers killed with SIGKILL at each step of a dial, again and again, under a steady stream."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.chaos.conftest import Record, Scale
from tests.chaos.harness import ChaosStack, assert_promises_kept, run_scenario
from tests.chaos.killpoint_worker import STEPS


@pytest.mark.slow
@pytest.mark.timeout(400)
@pytest.mark.parametrize("step", STEPS)
def test_a_worker_killed_at_each_step_of_a_dial_loses_and_doubles_no_call(
    chaos: ChaosStack, scale: Scale, record: Record, step: str
) -> None:
    # given a worker that kills itself at this step of its 5th dial, restarted whenever it
    # dies, a plain worker beside it, and beat ticking the watchdog
    chaos.add_worker(prefix=["-m", "tests.chaos.killpoint_worker", step, "5", "--"])
    chaos.add_worker(concurrency=2)
    chaos.add_beat()
    # when calls arrive at a steady rate while the killed worker keeps dying
    outcome = run_scenario(
        chaos,
        f"kill-{step}",
        rate_per_s=scale.rate_per_s,
        produce_s=scale.produce_s,
        recovery_s=scale.recovery_s,
        inject=lambda: 0,
        supervised=True,  # the worker kills itself: restarting it is the point
    )
    kills = chaos.kills
    record(f"worker SIGKILL {step}", replace(outcome, faults=kills))
    # then it was killed, and every call is final, none started twice, nothing orphaned or leaked
    assert kills >= 1, chaos.logs()
    assert_promises_kept(outcome, chaos)
