"""A real Flower against the test Redis and a real worker: dialq tasks appear with their names
and states, and no phone number, app secret or access token appears anywhere it serves."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from dialq import routing
from dialq.api import enqueue_call, producer_runtime
from dialq.ops.local_redis import free_port
from tests.stack import APP_SECRET, WEBHOOK_SECRET, Stack

NUMBERS = ("+14155550171", "+14155550172")
BY_NAME_NUMBER = "+14155550173"
USER, PASSWORD = "ops", "flower-pass"


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """Flower never reads the database: one database is enough here."""
    return sqlite_url


class Flower:
    def __init__(self, url: str) -> None:
        self.url = url
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}"}

    def get(self, path: str, *, method: str = "GET") -> tuple[int, str]:
        url = self.url + path  # always http://127.0.0.1:<port>
        request = urllib.request.Request(url, headers=self.headers, method=method)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def tasks(self) -> dict[str, dict[str, Any]]:
        status, body = self.get("/api/tasks")
        assert status == 200, body
        tasks: dict[str, dict[str, Any]] = json.loads(body)
        return tasks


@pytest.fixture
def flower(stack: Stack, tmp_path: Path) -> Iterator[Flower]:
    """`celery flower` as docker-compose runs it: basic auth, read-only."""
    port = free_port()
    log = (tmp_path / "flower.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "dialq.worker", "flower",
            f"--port={port}", "--address=127.0.0.1",
            f"--broker={stack.env['DIALQ_BROKER_URL']}", "--read_only", "--persistent=False",
            f"--db={tmp_path / 'flower.db'}",
        ],
        env={**stack.process_env(), "FLOWER_BASIC_AUTH": f"{USER}:{PASSWORD}"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    log.close()
    running = Flower(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (tmp_path / "flower.log").read_text()[-3000:]
            try:
                if running.get("/healthcheck")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "flower did not answer in 30s"
            time.sleep(0.2)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for_tasks(
    flower: Flower, wanted: dict[str, int], timeout_s: float = 20.0
) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        tasks = flower.tasks()
        done: dict[str, int] = {}
        for task in tasks.values():
            if task.get("state") == "SUCCESS":
                done[task["name"]] = done.get(task["name"], 0) + 1
        if all(done.get(name, 0) >= count for name, count in wanted.items()):
            return tasks
        assert time.monotonic() < deadline, f"flower shows {done}, wanted {wanted}"
        time.sleep(0.3)


def _dial_states(
    flower: Flower, call_id: str, state: str, timeout_s: float = 20.0
) -> list[dict[str, Any]]:
    """The call's dial tasks Flower shows in `state`, once there is at least one."""
    deadline = time.monotonic() + timeout_s
    while True:
        tasks = [
            task
            for task in flower.tasks().values()
            if task["name"] == routing.DIAL and call_id in (task["args"] or "")
        ]
        found = [task for task in tasks if task["state"] == state]
        if found:
            return found
        seen = [(task["state"], task["result"]) for task in tasks]
        assert time.monotonic() < deadline, f"flower shows {seen} for {call_id}, wanted {state}"
        time.sleep(0.2)


def _assert_nothing_leaks(flower: Flower, stack: Stack, task_ids: list[str]) -> None:
    forbidden = _forbidden(stack)
    for path in ["/api/tasks", *(f"/task/{task_id}" for task_id in task_ids)]:
        status, body = flower.get(path)
        assert status == 200, (path, body[:500])
        leaked = [secret for secret in forbidden if secret in body]
        assert not leaked, f"{path} shows {leaked}"


def _forbidden(stack: Stack) -> list[str]:
    client = redis.Redis.from_url(stack.env["DIALQ_BROKER_URL"])
    token = client.hget(f"{routing.REDIS_PREFIX}token:default", "value")
    client.close()
    assert token, "the worker fetched no token"
    assert isinstance(token, bytes)  # the client was made without decode_responses
    numbers = (*NUMBERS, BY_NAME_NUMBER)
    return [
        APP_SECRET,
        WEBHOOK_SECRET,
        token.decode(),
        *numbers,
        *(n.removeprefix("+") for n in numbers),
        *(n.removeprefix("+1") for n in numbers),
    ]


def test_flower_shows_dialq_tasks_with_states_and_never_a_number_or_secret(
    stack: Stack, flower: Flower
) -> None:
    # given a worker, calls enqueued from Python and one sent by name from a plain Celery client
    stack.start_worker(concurrency=4)
    handles = [enqueue_call({"phone_number": n}, settings=stack.settings) for n in NUMBERS]
    plain = Celery(broker=stack.env["DIALQ_BROKER_URL"])
    plain.send_task(
        routing.PLACE_CALL,
        kwargs={"request": {"phone_number": BY_NAME_NUMBER}},
        queue=routing.QUEUE_DIAL,
    )
    plain.close()
    for handle in handles:
        stack.wait_for(handle.id, {"connected"})
    # when Flower has seen the tasks run
    tasks = _wait_for_tasks(flower, {routing.DIAL: 3, routing.PLACE_CALL: 1})
    # then each dialq task appears with its name, state and call-id-only arguments
    dials = [t for t in tasks.values() if t["name"] == routing.DIAL and t["state"] == "SUCCESS"]
    assert {handle.id for handle in handles} <= {t["args"].strip("[]()'\",") for t in dials}
    # and the looks at the live calls, several by now (one every 0.5 s each), are not listed
    time.sleep(4 * float(stack.env["DIALQ_WATCH_INTERVAL_S"]))
    assert "dialq.watch_call" in stack.worker_logs()
    assert not [t for t in flower.tasks().values() if t["name"] == routing.WATCH_CALL]
    intake = next(t for t in tasks.values() if t["name"] == routing.PLACE_CALL)
    assert intake["kwargs"] == "{'request': '<redacted>'}"
    assert intake["started"] is not None  # task_track_started / started events are on
    # and no page or API answer holds a phone number, the app secret or an access token
    task_pages = [f"/task/{task_id}" for task_id in tasks]
    datatable = (  # what the /tasks page loads into its table
        "/tasks/datatable?draw=1&start=0&length=100&search%5Bvalue%5D="
        "&order%5B0%5D%5Bcolumn%5D=0&order%5B0%5D%5Bdir%5D=asc&columns%5B0%5D%5Bdata%5D=name"
    )
    pages = ["/", "/workers", "/tasks", datatable, "/api/tasks", "/api/workers", "/broker"]
    forbidden = _forbidden(stack)
    for path in pages + task_pages:
        status, body = flower.get(path)
        assert status == 200, (path, body[:500])
        leaked = [secret for secret in forbidden if secret in body]
        assert not leaked, f"{path} shows {leaked}"
    assert routing.DIAL in flower.get("/tasks")[1] or routing.DIAL in flower.get(datatable)[1]


def test_flower_as_deployed_asks_for_credentials_and_refuses_control(
    stack: Stack, flower: Flower
) -> None:
    # given Flower with basic auth and read-only mode
    anonymous = Flower(flower.url)
    anonymous.headers = {}
    # when someone without credentials asks, or an operator tries to control a worker
    status_anonymous, _ = anonymous.get("/api/tasks")
    status_control, body = flower.get("/api/worker/shutdown/w0@nowhere", method="POST")
    status_send, _ = flower.get(f"/api/task/send-task/{routing.DIAL}", method="POST")
    # then the first is refused for want of credentials and the others for read-only mode
    assert status_anonymous == 401
    assert status_control == 403, body
    assert status_send == 403


def test_a_call_waiting_for_capacity_shows_waiting_with_its_reason(
    stack: Stack, flower: Flower
) -> None:
    # given an account limit of one and a first call that stays live
    stack.env["DIALQ_MAX_CONCURRENT_CALLS"] = "1"
    stack.sandbox.control.configure(call_seconds=30.0)
    stack.start_worker(concurrency=4)
    first = enqueue_call({"phone_number": NUMBERS[0]}, settings=stack.settings)
    stack.wait_for(first.id, {"connected"})
    # and a second call waiting in line (no dial task runs for it until a permit is handed
    # to it: the line lives in Redis and the database, `dialq capacity` shows it)
    second = enqueue_call({"phone_number": NUMBERS[1]}, settings=stack.settings)
    stack.wait_for(second.id, {"waiting"})
    # when a dial message for it is delivered anyway (the sweeper republished a stale one)
    producer_runtime(stack.settings).publisher.publish(routing.DIAL, second.id)
    # then that dial task stays in the custom state WAITING, with the reason as its result
    waiting = _dial_states(flower, second.id, "WAITING")
    assert waiting[0]["result"] == "waiting for capacity: no free permit"
    assert waiting[0]["succeeded"] is None  # no task-succeeded event replaced the state
    assert waiting[0]["retries"] == 0  # no start request was sent for it yet
    # and neither the custom event nor any page shows a number, the secret or a token
    _assert_nothing_leaks(flower, stack, [task["uuid"] for task in waiting])


def test_a_start_answered_429_then_503_shows_redial_with_each_reason(
    stack: Stack, flower: Flower
) -> None:
    # given the API answers the first start request 429 and the second 503
    start = {"path": "/v1/endpoint:connect", "operation": "start"}
    stack.sandbox.control.script(
        [
            {"match": start, "nth": [1], "action": {"type": "status", "status": 429}},
            {"match": start, "nth": [2], "action": {"type": "status", "status": 503}},
        ]
    )
    stack.start_worker(concurrency=4)
    # when a call is placed, and connects on its third start request
    handle = enqueue_call({"phone_number": NUMBERS[0]}, settings=stack.settings)
    stack.wait_for(handle.id, {"connected"})
    # then each dial that scheduled a redial shows REDIAL with its delay and reason
    deadline = time.monotonic() + 20
    while len(redials := _dial_states(flower, handle.id, "REDIAL")) < 2:
        assert time.monotonic() < deadline, f"flower shows {redials}"
        time.sleep(0.2)
    results = sorted(task["result"] for task in redials)
    assert all(re.fullmatch(r"redial in \d+\.\ds: .+", result) for result in results), results
    assert any(result.endswith(": no capacity (429)") for result in results), results
    assert any("HTTP 503" in result for result in results), results
    # and Flower's retries column counts the call's start attempts retried so far
    assert sorted(task["retries"] for task in redials) == [1, 2]
    # and the dial that connected is a plain SUCCESS
    assert _dial_states(flower, handle.id, "SUCCESS")[0]["result"] == "'connected'"
    _assert_nothing_leaks(flower, stack, [task["uuid"] for task in redials])
