"""The sandbox under hostile clients: a body-size limit, a request log bounded in bytes that keeps
no unauthenticated body, all-or-nothing config changes, an optional control-API token."""

from __future__ import annotations

import http.client
import socket
from collections.abc import Iterator

import pytest
import requests

from dialq.sandbox import RunningSandbox, SandboxConfig, SandboxControl, SandboxControlError
from dialq.sandbox import start_sandbox as serve

MB = 1_000_000
LOG_MAX_BYTES = 2 * 1024 * 1024


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    running = serve(
        SandboxConfig(max_body_bytes=2 * MB, request_log_max_bytes=LOG_MAX_BYTES), port=0
    )
    yield running
    running.stop()


def test_a_body_over_the_limit_is_answered_413_declared_or_streamed(
    sandbox: RunningSandbox,
) -> None:
    url = sandbox.url + "/v1/endpoint:connect"
    # declared by Content-Length: refused before it is read
    assert requests.post(url, data=b"x" * (2 * MB + 1), timeout=10).status_code == 413
    # streamed in chunks with no length: refused once it grows past the limit
    chunks = (b"y" * 65536 for _ in range(40))
    assert requests.post(url, data=chunks, timeout=10).status_code == 413
    # and the control API has the same limit
    control = sandbox.url + "/_sandbox/config"
    assert requests.post(control, data=b"{" * (2 * MB + 1), timeout=10).status_code == 413
    assert requests.get(control, timeout=5).status_code == 200


def test_many_1_mb_unauthenticated_requests_leave_the_log_bounded_in_bytes(
    sandbox: RunningSandbox,
) -> None:
    # given 1,000 POSTs of 1 MB each, without a token, to a real path and an unknown one
    body = b'{"pad": "' + b"z" * (MB - 20) + b'"}'
    host, port = sandbox.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    for index in range(1000):
        path = "/v1/endpoint:connect" if index % 2 else "/no/such/path"
        connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        assert connection.getresponse().read() is not None
    connection.close()
    # then every request is logged, none with its body, and the log holds next to nothing
    log = sandbox.app.sandbox.log
    entries = sandbox.control.requests()
    assert len(entries) == 1000
    assert all(entry["body"] is None and entry["body_size"] == len(body) for entry in entries)
    assert log.bytes_held < 1000 * 4096


def test_the_log_drops_its_oldest_entries_past_its_byte_limit(sandbox: RunningSandbox) -> None:
    # given authenticated requests whose bodies the log keeps
    token = requests.post(
        sandbox.url + "/oauth2/token:generate",
        json={"type": "application", "appId": "sandbox-app", "appSecret": "sandbox-secret"},
        timeout=5,
    ).json()["accessToken"]
    event = {"type": "stop", "pad": "p" * 500_000}
    for _ in range(10):
        requests.post(
            sandbox.url + "/v1/event/nope", json=event, headers={"x-api-key": token}, timeout=10
        )
    # then the log stays under its byte limit, keeping the newest
    log = sandbox.app.sandbox.log
    assert log.bytes_held <= LOG_MAX_BYTES
    seqs = [entry["seq"] for entry in sandbox.control.requests()]
    assert seqs[-1] == 11
    assert len(seqs) < 11


def test_an_invalid_config_changes_nothing_and_reset_keeps_working(
    sandbox: RunningSandbox,
) -> None:
    before = sandbox.control.config()
    for changes in (
        {"request_log_limit": "many"},
        {"max_concurrent": 9, "fault_rates": {"not-a-kind": 0.5}},
        {"seed": 3, "fault_rules": "nope"},
        {"max_body_bytes": 0},
    ):
        with pytest.raises(SandboxControlError, match="400"):
            sandbox.control.configure(**changes)
        assert sandbox.control.config() == before
        sandbox.control.reset()


def test_the_control_api_answers_only_with_its_token_when_one_is_set() -> None:
    running = serve(SandboxConfig(control_token="ctl-token-8Qw"), port=0)
    try:
        # without the token, or with a wrong one, nothing is shown or changed
        assert requests.get(running.url + "/_sandbox/config", timeout=5).status_code == 401
        with pytest.raises(SandboxControlError, match="401"):
            SandboxControl(running.url, token="wrong").reset()
        # with it, everything works, and the token never shows in the config
        assert "ctl-token-8Qw" not in str(running.control.config())
        running.control.reset()
        # and the API itself needs no control token
        answer = requests.post(running.url + "/oauth2/token:generate", json={}, timeout=5)
        assert answer.status_code == 400
    finally:
        running.stop()


def test_a_lying_content_length_cannot_make_the_sandbox_wait_for_more(
    sandbox: RunningSandbox,
) -> None:
    host, port = sandbox.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 413")
