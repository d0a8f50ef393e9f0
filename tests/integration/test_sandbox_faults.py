"""Every fault kind over a real socket, as an HTTP client experiences it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from dialq.sandbox import RunningSandbox, start_sandbox
from tests.fixtures_sandbox import SDK_START_BODY, SandboxClient, test_config

START = {"path": "/v1/endpoint:connect", "operation": "start"}


def script_start(running: RunningSandbox, action: dict[str, Any], **counting: Any) -> None:
    running.control.script([{"match": START, **(counting or {"times": 1}), "action": action}])


def test_a_status_fault_answers_instead_of_the_api_and_creates_no_call(
    sandbox: RunningSandbox, sandbox_client: SandboxClient
) -> None:
    # given a scripted 503 with a Retry-After
    script_start(sandbox, {"type": "status", "status": 503, "retry_after": 2})
    # when a start is sent
    response = sandbox_client.start()
    # then the client gets the 503, and no call exists
    assert (response.status_code, response.headers["retry-after"]) == (503, "2")
    assert response.json() == {"message": "Service Unavailable"}
    assert sandbox.control.calls() == []
    assert sandbox.control.requests()[-1]["fault"] == "status"


def test_a_status_fault_can_carry_a_scripted_body(
    sandbox: RunningSandbox, sandbox_client: SandboxClient
) -> None:
    script_start(
        sandbox, {"type": "status", "status": 400, "body": {"message": "number not reachable"}}
    )
    response = sandbox_client.start()
    assert (response.status_code, response.json()) == (400, {"message": "number not reachable"})


@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_a_drop_closes_the_connection_without_a_response_and_creates_no_call(http: str) -> None:
    running = start_sandbox(test_config(), port=0, http=http)  # type: ignore[arg-type]
    try:
        client = SandboxClient(running.url)
        script_start(running, {"type": "drop"})
        with pytest.raises(requests.ConnectionError):
            client.start()
        assert running.control.calls() == []
        assert client.start().status_code == 201  # the next request is served normally
        client.close()
    finally:
        running.stop()


def test_drop_after_creates_the_call_then_drops_the_connection(
    sandbox: RunningSandbox, sandbox_client: SandboxClient
) -> None:
    script_start(sandbox, {"type": "drop_after"})
    with pytest.raises(requests.ConnectionError):
        sandbox_client.start(headers={"X-Dialq-Call-Id": "call-7"})
    calls = sandbox.control.calls()
    assert len(calls) == 1
    assert calls[0]["live"]
    assert calls[0]["call_id"] == "call-7"
    entry = sandbox.control.requests()[-1]
    assert (entry["status"], entry["fault"], entry["delivered"]) == (201, "drop_after", False)


def test_a_hang_beyond_the_read_timeout_is_a_read_timeout_with_the_call_created(
    sandbox: RunningSandbox, sandbox_client: SandboxClient
) -> None:
    # given the API reads the start and then waits forever
    script_start(sandbox, {"type": "hang"})
    sandbox_client.token()
    # when the client's read timeout is half a second
    sandbox_client.timeout_s = 0.5
    began = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        sandbox_client.start()
    # then it timed out on time, and the call exists although the client never learned of it
    assert time.monotonic() - began < 2.0
    assert sandbox.control.live_count() == 1


def test_a_hang_with_seconds_answers_normally_after_the_wait(
    sandbox: RunningSandbox, sandbox_client: SandboxClient
) -> None:
    script_start(sandbox, {"type": "hang", "seconds": 0.3})
    began = time.monotonic()
    response = sandbox_client.start()
    assert response.status_code == 201
    assert time.monotonic() - began >= 0.3


def test_slow_delays_the_normal_reply(
    sandbox: RunningSandbox, sandbox_client: SandboxClient
) -> None:
    sandbox_client.token()
    sandbox.control.script(
        [{"match": {"path": "/v1/endpoint:connect"}, "action": {"type": "slow", "seconds": 0.2}}]
    )
    began = time.monotonic()
    created = sandbox_client.start()
    stopped = sandbox_client.stop(created.json()["connectionId"])
    assert (created.status_code, stopped.status_code) == (201, 200)
    assert time.monotonic() - began >= 0.4


def test_malformed_answers_a_non_json_body_instead(
    sandbox: RunningSandbox, sandbox_client: SandboxClient
) -> None:
    script_start(sandbox, {"type": "malformed"})
    response = sandbox_client.start()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    with pytest.raises(ValueError):  # noqa: PT011  (requests raises its own JSONDecodeError)
        response.json()
    assert sandbox.control.calls() == []
    script_start(sandbox, {"type": "malformed", "status": 201, "body": {"connection": "?"}})
    assert sandbox_client.start().json() == {"connection": "?"}


def test_nth_and_times_count_matching_requests_since_the_rule_was_added(
    sandbox: RunningSandbox, sandbox_client: SandboxClient
) -> None:
    # given 429 on starts 1 and 2, 503 on start 3 (the scenario dialq's retry tests use)
    sandbox.control.script(
        [
            {"match": START, "nth": [1, 2], "action": {"type": "status", "status": 429}},
            {"match": START, "nth": [3], "action": {"type": "status", "status": 503}},
        ]
    )
    # when four starts are sent, with a stop request in between
    statuses = [sandbox_client.start().status_code for _ in range(2)]
    sandbox_client.stop("not-a-call")
    statuses += [sandbox_client.start().status_code for _ in range(2)]
    # then the stop was not counted
    assert statuses == [429, 429, 503, 201]
    assert [r["fired"] for r in sandbox.control.faults()["rules"]] == [2, 1]


def test_random_faults_repeat_for_the_same_seed(
    make_sandbox: Callable[..., RunningSandbox], make_sandbox_client: Callable[..., SandboxClient]
) -> None:
    def run() -> list[int]:
        running = make_sandbox(max_concurrent=1000)
        client = make_sandbox_client(running)
        client.token()
        running.control.random_faults(seed=11, rates={"500": 0.3, "429": 0.2}, match=START)
        return [client.start().status_code for _ in range(60)]

    first, second = run(), run()
    assert first == second
    assert {500, 429, 201} <= set(first)


def test_fault_rates_in_the_config_survive_a_reset(
    make_sandbox: Callable[..., RunningSandbox], make_sandbox_client: Callable[..., SandboxClient]
) -> None:
    running = make_sandbox(max_concurrent=1000, fault_rates={"502": 1.0}, seed=1)
    client = make_sandbox_client(running)
    assert client.post("/oauth2/token:generate", {}, auth=False).status_code == 502
    running.control.reset()
    assert client.post("/oauth2/token:generate", {}, auth=False).status_code == 502
    running.control.clear_faults()
    assert client.post("/oauth2/token:generate", {}, auth=False).status_code == 400


def test_the_request_log_masks_secrets_and_records_the_dialq_call_id(
    sandbox: RunningSandbox, sandbox_client: SandboxClient
) -> None:
    # given a token request and a start sent with a dialq call id
    created = sandbox_client.start(headers={"X-Dialq-Call-Id": "c-42"}).json()
    # when the log is read
    token_entry, start_entry = sandbox.control.requests()
    # then no secret appears, and the start is tied to the dialq call and the ids it created
    assert token_entry["body"]["appSecret"] == "***"
    assert start_entry["headers"]["x-api-key"] == "***"
    assert sandbox_client.token() not in str(sandbox.control.requests())
    assert (start_entry["call_id"], start_entry["operation"], start_entry["status"]) == (
        "c-42",
        "start",
        201,
    )
    assert start_entry["connectionId"] == created["connectionId"]
    assert start_entry["conversationId"] == created["conversationId"]
    assert start_entry["body"] == SDK_START_BODY
    assert token_entry["call_id"] is None
    assert [e["seq"] for e in (token_entry, start_entry)] == [1, 2]


def test_a_bad_rule_is_refused_by_the_control_api(sandbox: RunningSandbox) -> None:
    from dialq.sandbox import SandboxControlError

    with pytest.raises(SandboxControlError, match=r"action\.type"):
        sandbox.control.script([{"action": {"type": "explode"}}])
