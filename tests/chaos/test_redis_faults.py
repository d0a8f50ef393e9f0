"""Redis, the broker and the permits' home, killed and restarted, or unreachable for a while."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.chaos.conftest import Record, Scale
from tests.chaos.harness import ChaosStack, assert_promises_kept, run_scenario


def _kill_and_restart(chaos: ChaosStack, times: int, down_s: float) -> int:
    for _ in range(times):
        time.sleep(2.0)
        chaos.redis_server.kill()  # SIGKILL: whatever the AOF had not synced is gone
        time.sleep(down_s)
        chaos.redis_server.start()  # same port, same directory: the AOF is replayed
    return times


def _freeze(chaos: ChaosStack, times: int, frozen_s: float) -> int:
    process = chaos.redis_server.process
    assert process is not None
    for _ in range(times):
        time.sleep(2.0)
        os.kill(process.pid, signal.SIGSTOP)  # connections hang: nothing answers, nothing fails
        time.sleep(frozen_s)
        os.kill(process.pid, signal.SIGCONT)
    return times


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_redis_killed_and_restarted_with_aof_loses_and_doubles_no_call_and_kills_no_process(
    chaos: ChaosStack, scale: Scale, record: Record
) -> None:
    # given two workers and beat on a Redis with AOF on, none of them supervised
    chaos.add_worker(concurrency=4)
    chaos.add_worker(concurrency=4)
    chaos.add_beat()
    # when Redis is killed with SIGKILL and restarted on its port while calls arrive
    outcome = run_scenario(
        chaos,
        "redis-kill",
        rate_per_s=scale.rate_per_s,
        produce_s=scale.produce_s,
        recovery_s=scale.recovery_s,
        inject=lambda: _kill_and_restart(chaos, scale.repeats + 1, down_s=1.5),
    )
    record("redis SIGKILL + restart (AOF)", outcome)
    # then every call is final, none started twice, nothing orphaned or leaked, and every
    # worker and beat is still the process it was
    assert_promises_kept(outcome, chaos)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_redis_frozen_for_a_minute_loses_and_doubles_no_call_and_kills_no_process(
    chaos: ChaosStack, scale: Scale, record: Record
) -> None:
    # given two workers and beat, none of them supervised
    chaos.add_worker(concurrency=4)
    chaos.add_worker(concurrency=4)
    chaos.add_beat()
    # when the Redis process is frozen (SIGSTOP) for a minute, then thawed, while calls arrive
    outcome = run_scenario(
        chaos,
        "redis-freeze",
        rate_per_s=scale.rate_per_s,
        produce_s=scale.produce_s,
        recovery_s=scale.recovery_s,
        inject=lambda: _freeze(chaos, 1, frozen_s=60.0),
    )
    record("redis frozen (SIGSTOP 60 s)", outcome)
    # then every call is final, none started twice, nothing orphaned or leaked, and every
    # worker and beat is still the process it was
    assert_promises_kept(outcome, chaos)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_redis_killed_and_restarted_without_aof_loses_and_doubles_no_call(
    chaos: ChaosStack, scale: Scale, record: Record
) -> None:
    # given a Redis that keeps nothing across a restart (no AOF): every queued message, permit
    # and waiting line is gone when it comes back; two unsupervised workers and beat
    chaos.redis_server.kill()
    chaos.redis_server.appendonly = False
    chaos.redis_server.start()
    chaos.add_worker(concurrency=4)
    chaos.add_worker(concurrency=4)
    chaos.add_beat()
    # when Redis is killed and restarted empty while calls arrive
    outcome = run_scenario(
        chaos,
        "redis-empty",
        rate_per_s=scale.rate_per_s,
        produce_s=scale.produce_s,
        recovery_s=scale.recovery_s,
        inject=lambda: _kill_and_restart(chaos, scale.repeats + 1, down_s=1.5),
    )
    record("redis SIGKILL + restart (no AOF)", outcome)
    # then the database's record puts everything back: every call final, none started twice,
    # nothing orphaned or leaked, every process still the one it was
    assert_promises_kept(outcome, chaos)
