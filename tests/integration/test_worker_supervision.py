"""`dialq worker` runs one Celery worker per kind of work and keeps each running; SIGTERM
stops them all, after the tasks in hand."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import dialq
from dialq.ops.supervisor import BACKGROUND_NICE
from tests.stack import Stack

NUMBER = "+14155550110"


def _wait_for(log: Path, pattern: str, count: int, timeout_s: float = 60.0) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = re.findall(pattern, log.read_text(errors="replace"))
        if len(found) >= count:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{pattern!r} x{count} not in log:\n{log.read_text()[-4000:]}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass
class Supervisor:
    process: subprocess.Popen[bytes]
    log: Path

    def pids(self) -> dict[str, int]:
        """The newest pid of each pool, from the supervisor's "started" lines."""
        started = re.findall(r"(\w+) started \(pid (\d+)\)", self.log.read_text())
        return {name: int(pid) for name, pid in started}


@pytest.fixture
def supervisor(stack: Stack, tmp_path: Path) -> Iterator[Supervisor]:
    """`dialq worker` with the stack's settings, its four pools ready."""
    log = tmp_path / "supervisor.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "dialq.cli", "worker"],
            env=stack.process_env(),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for(log, r"(dial|lifecycle|webhooks|insights)@\S+ ready\.", 4)
        yield Supervisor(process, log)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_dialq_worker_runs_a_pool_per_kind_restarts_a_dead_one_and_stops_on_sigterm(
    stack: Stack, supervisor: Supervisor
) -> None:
    # given `dialq worker` running with the stack's settings
    pids = supervisor.pids()
    # then there is one Celery worker per kind of work, each on its own queues
    assert set(pids) == {"dial", "lifecycle", "webhooks", "insights"}
    # and only the harvest of insights, deferrable, yields the CPU to the others
    base = os.getpriority(os.PRIO_PROCESS, supervisor.process.pid)
    niceness = {name: os.getpriority(os.PRIO_PROCESS, pid) for name, pid in pids.items()}
    assert niceness == {
        "dial": base,
        "lifecycle": base,
        "webhooks": base,
        "insights": min(19, base + BACKGROUND_NICE),
    }
    # when the webhooks worker is killed
    os.kill(pids["webhooks"], signal.SIGKILL)
    # then it is started again, and calls are still placed and finished
    _wait_for(supervisor.log, r"webhooks started \(pid \d+\)", 2)
    _wait_for(supervisor.log, r"webhooks@\S+ ready\.", 2)
    request = {"phone_number": NUMBER, "max_duration_s": 10}
    handle = dialq.enqueue_call(request, settings=stack.settings)
    assert stack.wait_for(handle.id, {"completed"}, timeout_s=40)["status"] == "completed"
    restarted = supervisor.pids()
    # when the supervisor gets SIGTERM
    supervisor.process.send_signal(signal.SIGTERM)
    # then it exits cleanly, and takes every worker with it
    assert supervisor.process.wait(timeout=60) == 0
    assert not [name for name, pid in restarted.items() if _alive(pid)]


def test_workers_stop_when_their_supervisor_is_killed(supervisor: Supervisor) -> None:
    # given `dialq worker` running its four pools
    pids = list(supervisor.pids().values())
    # when the supervisor is killed outright (nothing can run in it: SIGKILL)
    supervisor.process.kill()
    supervisor.process.wait(timeout=10)
    # then no worker is left behind without it: each gets SIGTERM and shuts down
    deadline = time.monotonic() + 60
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in pids if _alive(pid)]
