"""Clients that are not Python: examples/http_call.sh (curl and jq) and examples/http_call.mjs
(Node's fetch) each place a call over HTTP, follow its Server-Sent Events to `connected`,
cancel it and fetch its transcript, against a running `dialq api`, a real worker and the
sandbox. The examples are the tests' clients, so the documented ones keep working."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.test_http_api import Api, running_api
from tests.servers import missing_server
from tests.stack import Stack

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NUMBER = "+14155550123"
FAST_INSIGHTS = {"DIALQ_INSIGHTS_BACKOFF_BASE_S": "0.3", "DIALQ_INSIGHTS_BACKOFF_MAX_S": "1"}
CLIENTS = {
    "curl": (("curl", "jq", "bash"), ["bash", str(EXAMPLES / "http_call.sh"), NUMBER]),
    "node": (("node",), ["node", str(EXAMPLES / "http_call.mjs"), NUMBER]),
}


def run_client(name: str, api: Api, key: str) -> subprocess.CompletedProcess[str]:
    tools, command = CLIENTS[name]
    for tool in tools:
        if shutil.which(tool) is None:
            missing_server(tool)
    env = {"PATH": api.env["PATH"], "DIALQ_API_URL": api.url, "DIALQ_API_KEY": key}
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.timeout(300)
@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_a_client_places_a_call_follows_it_to_connected_cancels_it_and_reads_its_transcript(
    stack: Stack, client: str
) -> None:
    # given a worker dialing through the sandbox, `dialq api` and a key for the default account
    stack.env.update(FAST_INSIGHTS)
    stack.start_worker()
    with running_api(stack.env, stack.workdir) as api:
        key = api.make_key("default")
        # when the example client runs
        ran = run_client(client, api, key)
        # then it placed a call, saw it connect live, canceled it and printed its transcript
        assert ran.returncode == 0, ran.stdout + ran.stderr
        lines = ran.stdout.splitlines()
        call_id = lines[0].removeprefix("placed ")
        assert "event connected" in lines, ran.stdout
        assert any(line.startswith("cancel: ") for line in lines), ran.stdout
        transcript = lines[lines.index("transcript:") + 1 :]
        assert any(line.strip() for line in transcript), ran.stdout
        # and the call was dialed once and stopped, and the key appears in no log
        assert len(stack.starts_for(call_id)) == 1
        assert stack.wait_for(call_id, {"canceled", "completed"})["status"]
        assert key not in api.log.read_text()
        assert key not in stack.worker_logs()
