"""The concurrent-call limit under real concurrency, and calls ending by themselves."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

import requests

from dialq.sandbox import RunningSandbox
from tests.fixtures_sandbox import SDK_START_BODY, SandboxClient

TOO_MANY = "Maximum number of concurrent jobs reached. Please wait for some requests to complete."


def simultaneous_starts(url: str, token: str, count: int) -> list[int]:
    """``count`` threads, each on its own connection, released together by a barrier."""
    barrier = threading.Barrier(count)
    statuses: list[int] = []
    lock = threading.Lock()

    def start() -> None:
        with requests.Session() as session:
            barrier.wait()
            response = session.post(
                url + "/v1/endpoint:connect",
                json=SDK_START_BODY,
                headers={"x-api-key": token},
                timeout=30,
            )
        with lock:
            statuses.append(response.status_code)

    threads = [threading.Thread(target=start) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def test_200_simultaneous_starts_with_a_limit_of_50_give_exactly_50_calls(
    make_sandbox: Callable[..., RunningSandbox], make_sandbox_client: Callable[..., SandboxClient]
) -> None:
    # given a limit of 50 live calls
    running = make_sandbox(max_concurrent=50)
    token = make_sandbox_client(running).token()
    # when 200 starts arrive at once
    statuses = simultaneous_starts(running.url, token, 200)
    # then exactly 50 calls were created and 150 refused
    assert Counter(statuses) == {201: 50, 429: 150}
    assert running.control.live_count() == 50
    assert len(running.control.calls()) == 50


def test_a_capacity_429_has_the_documented_body_and_no_retry_after(
    make_sandbox: Callable[..., RunningSandbox], make_sandbox_client: Callable[..., SandboxClient]
) -> None:
    client = make_sandbox_client(make_sandbox(max_concurrent=1))
    assert client.start().status_code == 201
    refused = client.start()
    assert (refused.status_code, refused.json()) == (429, {"message": TOO_MANY})
    assert "retry-after" not in refused.headers


def test_retry_after_is_sent_on_capacity_429s_only_when_configured(
    make_sandbox: Callable[..., RunningSandbox], make_sandbox_client: Callable[..., SandboxClient]
) -> None:
    client = make_sandbox_client(make_sandbox(max_concurrent=0, retry_after_s=3))
    assert client.start().headers["retry-after"] == "3"
    dated = make_sandbox_client(
        make_sandbox(max_concurrent=0, retry_after_s=30, retry_after_format="date")
    ).start()
    assert dated.headers["retry-after"].endswith(" GMT")


def test_a_bad_request_is_400_even_when_the_account_is_full(
    make_sandbox: Callable[..., RunningSandbox], make_sandbox_client: Callable[..., SandboxClient]
) -> None:
    client = make_sandbox_client(make_sandbox(max_concurrent=0))
    bad = {**SDK_START_BODY, "endpoint": {"type": "pstn", "phoneNumber": "(408) 292-4837"}}
    assert client.start(bad).status_code == 400


def test_stopping_a_call_gives_its_slot_back(sandbox_client: SandboxClient) -> None:
    # given a full account (5 live calls)
    ids = [sandbox_client.start().json()["connectionId"] for _ in range(5)]
    assert sandbox_client.start().status_code == 429
    # when one call is stopped
    assert sandbox_client.stop(ids[0]).status_code == 200
    # then a new call fits again
    assert sandbox_client.start().status_code == 201


def test_a_call_that_ends_by_itself_frees_its_slot_within_50_ms(
    make_sandbox: Callable[..., RunningSandbox], make_sandbox_client: Callable[..., SandboxClient]
) -> None:
    # given one slot, taken by a call that lasts 1 second
    running = make_sandbox(max_concurrent=1, call_seconds=1.0)
    client = make_sandbox_client(running)
    created = client.start().json()
    call = running.control.calls()[0]
    # when the call's end comes, the slot is refused just before and free just after
    time.sleep(max(0.0, call["deadline"] - time.time() - 0.1))
    assert client.start().status_code == 429
    time.sleep(max(0.0, call["deadline"] - time.time() + 0.05))
    assert client.start().status_code == 201
    # then the call is recorded as ended by its duration, at its deadline
    ended = next(c for c in running.control.calls() if c["connectionId"] == created["connectionId"])
    assert ended["ended_by"] == "duration"
    assert ended["ended_at"] == ended["deadline"]
    assert client.stop(created["connectionId"]).status_code == 404


def test_the_far_end_hanging_up_frees_the_slot_and_stop_then_404s(
    make_sandbox: Callable[..., RunningSandbox], make_sandbox_client: Callable[..., SandboxClient]
) -> None:
    running = make_sandbox(max_concurrent=1)
    client = make_sandbox_client(running)
    created = client.start().json()
    running.control.end_call(created["connectionId"])
    assert running.control.live_count() == 0
    assert running.control.calls()[0]["ended_by"] == "hangup"
    assert client.stop(created["connectionId"]).status_code == 404
    assert client.start().status_code == 201


def test_raising_the_limit_at_runtime_admits_more_calls(
    sandbox: RunningSandbox, sandbox_client: SandboxClient
) -> None:
    for _ in range(5):
        sandbox_client.start()
    assert sandbox_client.start().status_code == 429
    sandbox.control.configure(max_concurrent=6)
    assert sandbox_client.start().status_code == 201


def test_reset_forgets_calls_and_the_log_but_keeps_tokens(
    sandbox: RunningSandbox, sandbox_client: SandboxClient
) -> None:
    for _ in range(5):
        sandbox_client.start()
    sandbox.control.reset()
    assert sandbox.control.live_count() == 0
    assert sandbox.control.requests() == []
    assert sandbox_client.start().status_code == 201  # the same token still works
