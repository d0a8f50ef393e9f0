"""The compose service `api` run natively: its command, environment and healthcheck as
`docker-compose config` resolves them, with the container's port and interface stood in for."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from dialq.ops.local_redis import free_port
from dialq.validation.durations import parse_duration
from tests.integration.test_compose import (  # the compose file as resolved, and its helpers
    DIALQ,
    StandIns,
    _healthcheck_argv,
    _native_env,
    _run,
    _swap,
    compose,
)

__all__ = ["compose"]  # the fixture, used by name below


def test_the_api_service_runs_natively_passes_its_healthcheck_and_stops_on_sigterm(
    compose: dict[str, Any], redis_url: str, sqlite_url: str, tmp_path: Path
) -> None:
    # given the api service as compose resolves it, on a free port of loopback, migrated first
    # as compose waits for `migrate` to finish
    service = compose["services"]["api"]
    assert service["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    port = free_port()
    stand_ins = StandIns(text={"0.0.0.0": "127.0.0.1", "8000": str(port)})
    env = _native_env(service, stand_ins, DIALQ_BROKER_URL=redis_url, DIALQ_DATABASE_URL=sqlite_url)
    env["DIALQ_DATA_DIR"] = str(tmp_path / "data")
    migrate = [str(arg) for arg in compose["services"]["migrate"]["command"]]
    assert _run([str(DIALQ), *migrate], env=env, timeout_s=60).returncode == 0
    command = [_swap(str(arg), stand_ins.text) for arg in service["command"]]
    check = _healthcheck_argv(
        [_swap(str(arg), stand_ins.text) for arg in service["healthcheck"]["test"]]
    )
    check_timeout_s = parse_duration(service["healthcheck"]["timeout"])
    # and its healthcheck failing while nothing runs
    assert _run(check, env=env, timeout_s=check_timeout_s).returncode != 0
    # when the console script starts it
    log = tmp_path / "api.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(DIALQ), *command], env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        # then its healthcheck passes once it is up
        deadline = time.monotonic() + 30
        while _run(check, env=env, timeout_s=check_timeout_s).returncode != 0:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        # and SIGTERM ends it within the default grace period (uvicorn re-raises the signal)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) in {0, -signal.SIGTERM}, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
