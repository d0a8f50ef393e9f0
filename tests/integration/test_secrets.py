"""No secret anywhere, and the full phone number only in the calls table.

The demo flow with known secrets and a known number: a worker, beat and Flower (basic auth) as
processes, calls placed from Python and by name, each connected, ended by the far end, its
insights harvested and its webhooks delivered to a local receiver. Then every log line, every
database table, every Redis key and value (broker messages included) and Flower's answers are
searched.
"""

from __future__ import annotations

import base64
import json
import logging
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
from sqlalchemy import MetaData, select

from dialq import routing
from dialq.api import enqueue_call
from dialq.ops.local_redis import free_port
from dialq.sandbox import SandboxConfig, start_sandbox
from dialq.store import Database, insights_repo
from dialq.store import calls_repo as repo
from dialq.symbl.auth import RedisTokenStore
from tests.stack import APP_ID, Stack, running_stack, stack_env
from tests.webhook_receiver import Receiver, running_receiver

APP_SECRET = "app-secret-7Hq2Vx9Lm4Zr"
WEBHOOK_SECRET = "whsec-Kp3Nd8Wt6Yc1"
FLOWER_USER, FLOWER_PASSWORD = "ops", "flower-pw-Rj5Gs2Qb"
NUMBER = "+1 (415) 555-0163"
E164 = "+14155550163"
MASKED = "+1******0163"
CALLS = 3  # from Python; one more arrives by name


def number_in(text: str) -> bool:
    """The number in any spelling: E.164, without "+", national, with separators."""
    squeezed = re.sub(r"[\s().\-]", "", text)
    return "4155550163" in squeezed


def secrets_in(text: str, token: str) -> list[str]:
    known = {
        "app secret": APP_SECRET,
        "webhook secret": WEBHOOK_SECRET,
        "flower password": FLOWER_PASSWORD,
        "access token": token,
    }
    return [name for name, value in known.items() if value and value in text]


@pytest.fixture
def demo(redis_url: str, sqlite_url: str, tmp_path: Path) -> Iterator[Stack]:
    """The stack with known secrets; calls end by themselves after 1.5 s."""
    sandbox = start_sandbox(
        SandboxConfig(app_id=APP_ID, app_secret=APP_SECRET, max_concurrent=50, call_seconds=1.5),
        host="127.0.0.1",
        port=0,
    )
    env = stack_env(redis_url, sqlite_url, sandbox.url, tmp_path)
    env |= {"DIALQ_SYMBL_APP_SECRET": APP_SECRET, "DIALQ_WEBHOOK_SECRET": WEBHOOK_SECRET}
    try:
        with running_stack(env, sandbox, tmp_path) as stack:
            yield stack
    finally:
        sandbox.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


class Process:
    """A `celery` subprocess (beat, flower) with its log in the test's directory."""

    def __init__(self, stack: Stack, name: str, args: list[str], env: dict[str, str]) -> None:
        self.log = stack.workdir / f"{name}.log"
        with self.log.open("wb") as sink:
            command = [sys.executable, "-m", "celery", "-A", "dialq.worker", *args]
            self.process = subprocess.Popen(
                command, env={**stack.process_env(), **env}, stdout=sink, stderr=subprocess.STDOUT
            )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def processes(demo: Stack) -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        process.stop()


class Flower:
    def __init__(self, url: str) -> None:
        self.url = url
        token = base64.b64encode(f"{FLOWER_USER}:{FLOWER_PASSWORD}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}"}

    def get(self, path: str) -> tuple[int, str]:
        request = urllib.request.Request(self.url + path, headers=self.headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()
        except OSError:
            return 0, ""

    def tasks(self) -> dict[str, dict[str, Any]]:
        status, body = self.get("/api/tasks")
        assert status == 200, body
        found: dict[str, dict[str, Any]] = json.loads(body)
        return found


def start_flower(stack: Stack, processes: list[Process]) -> Flower:
    port = free_port()
    args = ["flower", f"--port={port}", "--address=127.0.0.1", "--persistent=False"]
    auth = {"FLOWER_BASIC_AUTH": f"{FLOWER_USER}:{FLOWER_PASSWORD}"}
    processes.append(Process(stack, "flower", args, auth))
    flower = Flower(f"http://127.0.0.1:{port}")
    until(lambda: flower.get("/healthcheck")[0] == 200, "flower answers", timeout_s=30)
    return flower


def until(done: Any, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, f"not within {timeout_s}s: {what}"
        time.sleep(0.2)


def redis_dump(url: str) -> dict[str, str]:
    """Every key with its whole value as text, whatever its type."""
    client = redis.Redis.from_url(url, decode_responses=True, encoding_errors="replace")
    dump: dict[str, str] = {}
    try:
        for key in client.scan_iter(count=1000):
            dump[str(key)] = " ".join(str(value) for value in _values(client, str(key)))
    finally:
        client.close()
    return dump


def _values(client: redis.Redis, key: str) -> list[Any]:
    kind = client.type(key)
    if kind == "string":
        return [client.get(key)]
    if kind == "list":
        return list(client.lrange(key, 0, -1))
    if kind == "hash":
        return [part for pair in client.hgetall(key).items() for part in pair]
    if kind == "set":
        return list(client.smembers(key))
    if kind == "zset":
        return list(client.zrange(key, 0, -1))
    raise AssertionError(f"{key} is a {kind!r}: not searched")


def database_dump(url: str) -> dict[str, str]:
    """Every table, every row and column, as text."""
    db = Database(url)
    try:
        metadata = MetaData()
        with db.sessions() as session:
            metadata.reflect(bind=session.get_bind())
            return {
                table.name: "\n".join(repr(tuple(row)) for row in session.execute(select(table)))
                for table in metadata.sorted_tables
            }
    finally:
        db.dispose()


def settled(stack: Stack, receiver: Receiver) -> bool:
    """Every call completed, its insights in, and its last event delivered to the receiver."""
    db = Database(stack.env["DIALQ_DATABASE_URL"])
    try:
        with db.sessions() as session:
            calls = repo.list_calls(session, limit=100)
            if len(calls) < CALLS + 1 or any(c.status != "completed" for c in calls):
                return False
            harvested = [insights_repo.get(session, c.id) for c in calls]
            if any(h is None or h.status != "ready" for h in harvested):
                return False
    finally:
        db.dispose()
    delivered = [json.loads(r.body) for r in receiver.received()]
    return sum(1 for body in delivered if body["type"] == "call.insights") >= CALLS + 1


def test_the_demo_flow_leaves_no_secret_anywhere_and_the_number_only_in_the_calls_table(
    demo: Stack,
    receiver: Receiver,
    processes: list[Process],
    caplog: pytest.LogCaptureFixture,
) -> None:
    stack = demo
    caplog.set_level(logging.DEBUG)
    broker = stack.env["DIALQ_BROKER_URL"]
    # given Flower watching, and calls to a known number queued before any worker runs
    flower = start_flower(stack, processes)
    request = {"phone_number": NUMBER, "callback_url": f"{receiver.url}/hooks"}
    for index in range(CALLS):
        enqueue_call({**request, "idempotency_key": f"demo-{index}"}, settings=stack.settings)
    queued = redis_dump(broker)
    assert queued[routing.QUEUE_DIAL], "the dial messages should be in the broker now"
    # when a worker and beat run, and one more call arrives by name from a plain Celery client
    stack.start_worker(concurrency=4)
    beat_args = ["beat", "-s", str(stack.workdir / "beat-schedule"), "--loglevel", "INFO"]
    processes.append(Process(stack, "beat", beat_args, {}))
    sender = Celery(broker=broker)
    sender.send_task(
        routing.PLACE_CALL,
        kwargs={"request": request},
        kwargsrepr="{'request': '<redacted>'}",
        queue=routing.QUEUE_DIAL,
    )
    sender.close()
    # and every call connects, is ended by the far end, has its insights and webhooks delivered
    until(lambda: settled(stack, receiver), "calls completed with insights and webhooks", 60)
    until(lambda: len(flower.tasks()) >= 4 * (CALLS + 1), "flower sees the tasks")
    # then nothing anywhere holds a secret, and only the calls table holds the number
    # (the cache holds the token sealed with the app secret: opened here the way workers do)
    tokens = redis.Redis.from_url(broker)
    cache = RedisTokenStore(tokens, prefix=f"{routing.REDIS_PREFIX}token:")
    cache.protect("default", APP_SECRET)
    cached = cache.get("default")
    tokens.close()
    assert cached is not None, "the worker fetched no token"
    token = cached.value
    places = gather(stack, flower, processes, caplog, queued, receiver)
    leaks = [
        f"{place}: {found}" for place, text in places.items() if (found := secrets_in(text, ""))
    ]
    # not even the token cache holds the token as such
    leaks += [f"{place}: access token" for place, text in places.items() if token in text]
    assert not leaks, leaks
    with_number = sorted(place for place, text in places.items() if number_in(text))
    assert with_number == ["database calls"], with_number
    # and the logs show the number masked where they mention it
    assert MASKED in places["worker log"]
    assert any(MASKED in record.getMessage() for record in caplog.records)


def gather(
    stack: Stack,
    flower: Flower,
    processes: list[Process],
    caplog: pytest.LogCaptureFixture,
    queued: dict[str, str],
    receiver: Receiver,
) -> dict[str, str]:
    """Every place to search, as text, named by where it came from."""
    places = {"worker log": stack.worker_logs()}
    places |= {f"{p.log.stem} log": p.log.read_text(errors="replace") for p in processes}
    places["producer log"] = "\n".join(
        f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records
    )
    places |= {f"redis (queued) {k}": v for k, v in queued.items()}
    places |= {f"redis {k}": v for k, v in redis_dump(stack.env["DIALQ_BROKER_URL"]).items()}
    places |= {
        f"database {k}": v for k, v in database_dump(stack.env["DIALQ_DATABASE_URL"]).items()
    }
    places["webhook requests"] = "\n".join(
        r.body.decode() + json.dumps(r.headers) for r in receiver.received()
    )
    task_ids = list(flower.tasks())
    pages = ["/api/tasks", "/api/workers", "/tasks", "/workers", "/broker"]
    pages += [f"/api/task/info/{task_id}" for task_id in task_ids]
    pages += [f"/task/{task_id}" for task_id in task_ids]
    for path in pages:
        status, body = flower.get(path)
        assert status == 200, (path, body[:300])
        places[f"flower {path}"] = body
    return places
