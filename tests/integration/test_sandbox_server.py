"""Running the sandbox: the command line, and stopping cleanly while a reply is held."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from dialq.redis_server import free_port
from dialq.sandbox import RunningSandbox, SandboxControl
from tests.fixtures_sandbox import SandboxClient

ROOT = Path(__file__).resolve().parents[2]


def test_python_m_dialq_sandbox_serves_with_the_given_flags() -> None:
    # given the sandbox started from the command line with a limit of 1 and its own credentials
    port = free_port()
    args = [
        sys.executable, "-m", "dialq.sandbox", "--port", str(port), "--max-concurrent", "1",
        "--app-id", "cli-app", "--app-secret", "cli-secret", "--call-seconds", "5-9",
        "--fault-rate", "503=0", "--retry-after", "date:5",
    ]  # fmt: skip
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                config = SandboxControl(url).config()
                break
            except requests.ConnectionError:
                assert process.poll() is None, "the sandbox exited"
                assert time.monotonic() < deadline, "the sandbox did not start in time"
                time.sleep(0.1)
        # then the control API reports that configuration, secret masked
        assert (config["max_concurrent"], config["app_id"], config["app_secret"]) == (
            1,
            "cli-app",
            "***",
        )
        assert (config["call_seconds"], config["retry_after_format"]) == ([5.0, 9.0], "date")
        body = {"type": "application", "appId": "cli-app", "appSecret": "cli-secret"}
        assert (
            requests.post(url + "/oauth2/token:generate", json=body, timeout=5).status_code == 200
        )
    finally:
        process.terminate()
        # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells of it.
        assert process.wait(timeout=10) in (0, -15)


def test_stopping_the_sandbox_releases_a_held_reply_and_returns_promptly(
    make_sandbox: object,
) -> None:
    # given a request held by a hang with no end
    running: RunningSandbox = make_sandbox()  # type: ignore[operator]
    client = SandboxClient(running.url, timeout_s=30)
    client.token()
    running.control.script([{"times": 1, "action": {"type": "hang"}}])
    outcome: list[int] = []
    waiter = threading.Thread(target=lambda: outcome.append(client.start().status_code))
    waiter.start()
    while not running.control.requests()[1:]:
        time.sleep(0.01)
    # when the sandbox stops
    began = time.monotonic()
    running.stop()
    waiter.join(10)
    client.close()
    # then the held reply was sent and the server stopped within a couple of seconds
    assert time.monotonic() - began < 3
    assert outcome == [201]
