"""Running the sandbox: the command line, and stopping cleanly while a reply is held."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from dialq.ops.local_redis import free_port
from dialq.sandbox import RunningSandbox, SandboxControl, SandboxControlError
from tests.fixtures_sandbox import TEST_APP_ID, TEST_APP_SECRET, SandboxClient

ROOT = Path(__file__).resolve().parents[2]
COMMAND = [sys.executable, "-m", "dialq.sandbox"]


@contextmanager
def sandbox_process(*flags: str) -> Iterator[str]:
    """``python -m dialq.sandbox`` on a free port; yields its URL once it answers."""
    port = free_port()
    args = [*COMMAND, "--port", str(port), *flags]
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                SandboxControl(url).config()
                break
            except requests.ConnectionError:
                assert process.poll() is None, "the sandbox exited"
                assert time.monotonic() < deadline, "the sandbox did not start in time"
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells of it.
        assert process.wait(timeout=10) in (0, -15)


def test_python_m_dialq_sandbox_serves_with_the_given_flags() -> None:
    # given the sandbox started from the command line with a limit of 1 and its own credentials
    flags = [
        "--max-concurrent", "1", "--app-id", "cli-app", "--app-secret", "cli-secret",
        "--call-seconds", "5-9", "--fault-rate", "503=0", "--retry-after", "date:5",
    ]  # fmt: skip
    with sandbox_process(*flags) as url:
        # when its configuration is read
        config = SandboxControl(url).config()
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


def test_fault_script_flag_answers_the_scripted_reply_and_rearms_it_after_a_reset(
    tmp_path: Path,
) -> None:
    # given a script in the POST /_sandbox/faults format: the first start answers 503
    script = tmp_path / "faults.json"
    first_start_fails = {
        "match": {"path": "/v1/endpoint:connect", "operation": "start"},
        "nth": [1],
        "action": {"type": "status", "status": 503, "retry_after": 7, "body": {"message": "down"}},
    }
    script.write_text(json.dumps({"rules": [first_start_fails]}))
    credentials = ["--app-id", TEST_APP_ID, "--app-secret", TEST_APP_SECRET]
    with sandbox_process("--fault-script", str(script), *credentials) as url:
        client = SandboxClient(url)
        try:
            # when two calls are started over HTTP
            refused, started = client.start(), client.start()
            # then the first gets the scripted reply and the second is served as usual
            assert (refused.status_code, refused.headers.get("retry-after")) == (503, "7")
            assert refused.json() == {"message": "down"}
            assert started.status_code == 201
            assert client.stop(started.json()["connectionId"]).status_code == 200
            # when the sandbox is reset, as benchmarks do between runs
            control = SandboxControl(url)
            control.reset()
            # then the script is armed again with its count restarted
            assert [r["seen"] for r in control.faults()["rules"]] == [0]
            assert client.start().status_code == 503
            assert client.start().status_code == 201
        finally:
            client.close()


def test_fault_rules_changed_at_runtime_replace_the_configured_ones_and_keep_scripted_ones(
    make_sandbox: Callable[..., RunningSandbox],
    make_sandbox_client: Callable[[RunningSandbox], SandboxClient],
) -> None:
    # given a sandbox configured with one rule, and one more scripted over the control API
    old = {"match": {"path": "/v1/conversations/*"}, "action": {"type": "status"}}
    running = make_sandbox(fault_rules=[old])
    scripted = {"match": {"path": "/v1/endpoint:connect"}, "action": {"type": "status"}}
    running.control.script([scripted])
    # when the configured rules are changed at runtime, once wrongly
    new = {"match": {"path": "/oauth2/*"}, "action": {"type": "status", "status": 503}}
    with pytest.raises(SandboxControlError, match=r'fault_rules\[0\]: \\"action\.type\\"'):
        running.control.configure(fault_rules=[{"action": {"type": "explode"}}])
    running.control.configure(fault_rules=[new])
    # then the new rule takes the old one's place, first, and answers at once
    paths = [rule["match"]["path"] for rule in running.control.faults()["rules"]]
    assert paths == ["/oauth2/*", "/v1/endpoint:connect"]
    body = {"type": "application", "appId": TEST_APP_ID, "appSecret": TEST_APP_SECRET}
    client = make_sandbox_client(running)
    assert client.post("/oauth2/token:generate", body, auth=False).status_code == 503


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        (
            [{"action": {"type": "drop"}}, {"nth": [1], "action": {"type": "slow"}}],
            'rules[1]: "action.seconds" is required for slow',
        ),
        ([{"action": {"type": "explode"}}], 'rules[0]: "action.type" must be one of'),
        ({"rule": []}, '"rules" must be a list'),
        ("{not json", "not JSON"),
    ],
    ids=["rule without a field", "unknown fault type", "no rules list", "not JSON"],
)
def test_a_bad_fault_script_exits_2_naming_the_rule_and_field(
    tmp_path: Path, content: object, complaint: str
) -> None:
    # given a fault script that breaks the rule format
    script = tmp_path / "faults.json"
    script.write_text(content if isinstance(content, str) else json.dumps(content))
    # when the sandbox is started with it
    finished = subprocess.run(
        [*COMMAND, "--port", str(free_port()), "--fault-script", str(script)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    # then it refuses to start, as a usage error naming the flag, the rule and the field
    assert finished.returncode == 2
    said = " ".join(finished.stderr.replace("│", " ").split())  # undo rich's box and wrapping
    assert "--fault-script" in said
    assert f"{script}: {complaint}" in said


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
