"""`dialq worker` runs one Celery worker per kind of work and keeps each running; SIGTERM
stops them all, after the tasks in hand."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import dialq
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


def test_dialq_worker_runs_a_pool_per_kind_restarts_a_dead_one_and_stops_on_sigterm(
    stack: Stack, tmp_path: Path
) -> None:
    # given `dialq worker` running with the stack's settings
    log = tmp_path / "supervisor.log"
    with log.open("wb") as sink:
        supervisor = subprocess.Popen(
            [sys.executable, "-m", "dialq.cli", "worker"],
            env=stack.process_env(),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for(log, r"(dial|lifecycle|webhooks)@\S+ ready\.", 3)
        pids = dict(re.findall(r"(\w+) started \(pid (\d+)\)", log.read_text()))
        # then there is one Celery worker per kind of work, each on its own queues
        assert set(pids) == {"dial", "lifecycle", "webhooks"}
        # when the webhooks worker is killed
        os.kill(int(pids["webhooks"]), signal.SIGKILL)
        # then it is started again, and calls are still placed and finished
        _wait_for(log, r"webhooks started \(pid \d+\)", 2)
        _wait_for(log, r"webhooks@\S+ ready\.", 2)
        request = {"phone_number": NUMBER, "max_duration_s": 10}
        handle = dialq.enqueue_call(request, settings=stack.settings)
        assert stack.wait_for(handle.id, {"completed"}, timeout_s=40)["status"] == "completed"
        restarted = dict(re.findall(r"(\w+) started \(pid (\d+)\)", log.read_text()))
        # when the supervisor gets SIGTERM
        supervisor.send_signal(signal.SIGTERM)
        # then it exits cleanly, and takes every worker with it
        assert supervisor.wait(timeout=60) == 0
        assert not [name for name, pid in restarted.items() if _alive(int(pid))]
    finally:
        if supervisor.poll() is None:
            supervisor.kill()


def test_workers_stop_when_their_supervisor_is_killed(stack: Stack, tmp_path: Path) -> None:
    # given `dialq worker` running its three pools
    log = tmp_path / "supervisor.log"
    with log.open("wb") as sink:
        supervisor = subprocess.Popen(
            [sys.executable, "-m", "dialq.cli", "worker"],
            env=stack.process_env(),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for(log, r"(dial|lifecycle|webhooks)@\S+ ready\.", 3)
        pids = [int(pid) for _, pid in re.findall(r"(\w+) started \(pid (\d+)\)", log.read_text())]
        # when the supervisor is killed outright (nothing can run in it: SIGKILL)
        supervisor.kill()
        supervisor.wait(timeout=10)
        # then no worker is left behind without it: each gets SIGTERM and shuts down
        deadline = time.monotonic() + 60
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in pids if _alive(pid)]
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
