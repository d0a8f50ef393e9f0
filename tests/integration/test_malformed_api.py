"""The Symbl API answering with malformed or unexpected bodies: real workers, Redis, the sandbox.

A start request answered 2xx with a body that is not the documented shape may still have
started the call: the call ends `unknown` with the problem named, and no second start request is
ever sent. An error status certainly started nothing: `failed`. A bad token answer never lets a
start request out. A bad Conversation API answer leaves a live call watched until it ends.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from dialq import routing
from dialq.api import enqueue_call, producer_runtime
from dialq.ops.local_redis import PrivateRedis, RedisNotFound
from dialq.sandbox import SandboxConfig, start_sandbox
from tests.servers import missing_server
from tests.stack import APP_ID, APP_SECRET, Stack, running_stack, stack_env

START = {"path": "/v1/endpoint:connect", "operation": "start"}
TOKEN = {"path": "/oauth2/token:generate", "method": "POST"}
NUMBER = "+1 415 555 0140"
URLS = {"eventUrl": "http://x/v1/event/c-1", "resultWebSocketUrl": "wss://x/events/c-1"}


@dataclass(frozen=True)
class Case:
    """A spoiled answer to the start request, where the call must end, and why it must say."""

    action: dict[str, Any]
    status: str
    reason_says: str


START_CASES = {
    "html-200": Case({"type": "malformed"}, "unknown", "body is not JSON"),
    "html-201-after-starting": Case(
        {"type": "malformed", "status": 201, "process": True}, "unknown", "body is not JSON"
    ),
    "truncated-json": Case(
        {
            "type": "malformed",
            "status": 201,
            "body": '{"connectionId": "c-1", "conversationId": "',
            "content_type": "application/json",
        },
        "unknown",
        "body is not JSON",
    ),
    "missing-connection-id": Case(
        {"type": "malformed", "status": 201, "body": {"conversationId": "v-1", **URLS}},
        "unknown",
        "connectionId is missing or null",
    ),
    "conversation-id-a-number": Case(
        {
            "type": "malformed",
            "status": 201,
            "body": {"connectionId": "c-1", "conversationId": 6125, **URLS},
        },
        "unknown",
        "conversationId is a int, not a non-empty string",
    ),
    "list-body": Case(
        {"type": "malformed", "status": 201, "body": [{"connectionId": "c-1"}]},
        "unknown",
        "body is JSON list, not an object",
    ),
    "empty-body": Case(
        {"type": "malformed", "status": 201, "body": ""}, "unknown", "body is not JSON (0 char"
    ),
    "201-text-plain": Case(
        {"type": "malformed", "status": 201, "body": "Created", "content_type": "text/plain"},
        "unknown",
        "body is not JSON",
    ),
    # An error status started nothing; the reason quotes an excerpt of the body (no JSON message).
    "html-400": Case({"type": "malformed", "status": 400}, "failed", "Bad Gateway</h1>"),
}


@pytest.fixture(scope="module")
def shared_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One worker, SQLite, a Redis of its own and the sandbox for the module: each case places
    its own call and scripts its own fault, so a worker start is paid once, not per case."""
    workdir = tmp_path_factory.mktemp("malformed")
    try:
        server = PrivateRedis().start()
    except RedisNotFound:
        missing_server("redis-server")
        raise
    sandbox = start_sandbox(
        SandboxConfig(app_id=APP_ID, app_secret=APP_SECRET, max_concurrent=50),
        host="127.0.0.1",
        port=0,
    )
    env = stack_env(server.url, f"sqlite:///{workdir / 'dialq.db'}", sandbox.url, workdir)
    # One failure retry: a token endpoint that never answers properly fails a call quickly.
    env["DIALQ_FAILURE_RETRY_BUDGET"] = "1"
    # Each case is one call's answer, not an outage: the account's circuit stays out of it.
    env["DIALQ_API_CIRCUIT_THRESHOLD"] = "100"
    try:
        with running_stack(env, sandbox, workdir) as stack:
            stack.start_worker(concurrency=4)
            yield stack
    finally:
        sandbox.stop()
        server.stop()


@pytest.fixture
def api(shared_stack: Stack) -> Iterator[Stack]:
    """The shared stack with no fault scripted and no cached token, before and after."""
    shared_stack.sandbox.control.clear_faults()
    client = redis.Redis.from_url(shared_stack.env["DIALQ_BROKER_URL"])
    client.delete(f"{routing.REDIS_PREFIX}token:default")
    yield shared_stack
    shared_stack.sandbox.control.clear_faults()
    client.close()


def reason_of(call: dict[str, Any]) -> str:
    return str(call["reason"] or "")


def assert_ends_clearly_after_one_start(stack: Stack, case: Case) -> None:
    # given the API answers the next start request with a spoiled body
    stack.sandbox.control.script([{"match": START, "times": 1, "action": case.action}])
    logged_before = len(stack.worker_logs())
    # when a call is placed
    handle = enqueue_call({"phone_number": NUMBER}, settings=stack.settings)
    # then it ends in the expected state, its reason and its attempt naming what was wrong
    call = stack.wait_for(handle.id, {case.status})
    assert case.reason_says in reason_of(call), reason_of(call)
    starts = [a for a in call["attempts"] if a["operation"] == "start"]
    assert len(starts) == 1
    assert starts[0]["status_code"] == case.action.get("status", 200)
    # and a watchdog tick later, still exactly one start request ever reached the API
    producer_runtime(stack.settings).service.watchdog()
    time.sleep(1.0)
    assert len(stack.starts_for(handle.id)) == 1
    assert stack.call(handle.id)["status"] == case.status
    assert "Traceback" not in stack.worker_logs()[logged_before:]


@pytest.mark.parametrize("case_name", sorted(START_CASES))
def test_a_malformed_start_answer_ends_the_call_clearly_with_the_problem_named_and_one_start(
    api: Stack, case_name: str
) -> None:
    assert_ends_clearly_after_one_start(api, START_CASES[case_name])


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_malformed_start_answer_on_postgresql_ends_unknown_with_one_start(stack: Stack) -> None:
    # the same, on PostgreSQL and a worker of its own (the case above runs on SQLite)
    stack.start_worker(concurrency=2)
    assert_ends_clearly_after_one_start(stack, START_CASES["html-200"])


def test_a_malformed_token_answer_is_fetched_again_before_any_start_request(api: Stack) -> None:
    stack = api
    # given the token endpoint answers its first request with an HTML page
    stack.sandbox.control.script([{"match": TOKEN, "times": 1, "action": {"type": "malformed"}}])
    # when a call is placed
    handle = enqueue_call({"phone_number": NUMBER}, settings=stack.settings)
    # then the token is fetched again (the start was never sent) and the call connects once
    call = stack.wait_for(handle.id, {"connected"})
    tokens = [a for a in call["attempts"] if a["operation"] == "token"]
    assert [a["status_code"] for a in tokens] == [200, 200]
    assert "body is not JSON" in (tokens[0]["error"] or "")
    assert [s["status"] for s in stack.starts_for(handle.id)] == [201]


def test_a_token_endpoint_that_never_answers_properly_fails_the_call_without_a_start_request(
    api: Stack,
) -> None:
    stack = api
    # given a token endpoint that answers every request with JSON lacking accessToken
    stack.sandbox.control.script(
        [
            {
                "match": TOKEN,
                "action": {"type": "malformed", "body": {"token": "t", "expiresIn": 60}},
            }
        ]
    )
    # when a call is placed
    handle = enqueue_call({"phone_number": NUMBER}, settings=stack.settings)
    # then it fails once its retries are spent, naming the token's problem; nothing was started
    call = stack.wait_for(handle.id, {"failed"}, timeout_s=30)
    assert "retries exhausted" in reason_of(call), reason_of(call)
    assert "accessToken is missing or null" in reason_of(call), reason_of(call)
    assert stack.starts_for(handle.id) == []


# A spoiled answer to the watcher's conversation look, and what the call must do meanwhile.
CONVERSATION_ANSWERS: dict[str, tuple[dict[str, Any], str]] = {
    "html-200": ({"type": "malformed"}, "watched"),
    "html-503": ({"type": "malformed", "status": 503}, "watched"),
    "list-body": (
        {"type": "malformed", "body": [{"endTime": "2030-01-01T00:00:00Z"}]},
        "watched",
    ),
    "end-time-a-number": ({"type": "malformed", "body": {"endTime": 1893456000}}, "watched"),
    "end-time-off-the-calendar": (
        {"type": "malformed", "body": {"endTime": "9999-12-31T23:59:59-23:59"}},
        "watched",
    ),
    # Symbl's times are UTC: an endTime without an offset still says the call ended.
    "end-time-without-offset": (
        {"type": "malformed", "body": {"endTime": "2030-01-01T00:00:00"}},
        "completed",
    ),
}


@pytest.mark.parametrize("answer", sorted(CONVERSATION_ANSWERS))
def test_a_malformed_conversation_answer_keeps_the_call_watched_or_ends_it_without_a_crash(
    api: Stack, answer: str
) -> None:
    stack = api
    action, outcome = CONVERSATION_ANSWERS[answer]
    # given a live call
    handle = enqueue_call({"phone_number": NUMBER}, settings=stack.settings)
    call = stack.wait_for(handle.id, {"connected"})
    logged_before = len(stack.worker_logs())
    path = f"/v1/conversations/{call['conversation_id']}"
    # when the Conversation API answers the watcher's next looks with a spoiled body
    rule = {"match": {"path": path, "method": "GET"}, "times": 4, "action": action}
    stack.sandbox.control.script([rule])
    since = max((r["seq"] for r in stack.sandbox.control.requests()), default=0)
    if outcome == "completed":
        # then the answer is read as the end of the call
        ended = stack.wait_for(handle.id, {"completed"}, timeout_s=15)
    else:
        time.sleep(2.5)
        # then the call is still live and looked at on the usual pace, with no error loop
        assert stack.call(handle.id)["status"] == "connected"
        looks = [r for r in stack.sandbox.control.requests(since=since) if r["path"] == path]
        assert 3 <= len(looks) <= 10, len(looks)
        # and once the far end hangs up, the call is seen completed
        stack.sandbox.control.end_call(call["connection_id"])
        ended = stack.wait_for(handle.id, {"completed"}, timeout_s=15)
    assert ended["reason"] == "ended"
    logs = stack.worker_logs()[logged_before:]
    assert "Traceback" not in logs
    assert "raised unexpected" not in logs
    assert len(stack.starts_for(handle.id)) == 1
