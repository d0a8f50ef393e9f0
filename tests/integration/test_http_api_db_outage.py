"""`POST /v1/calls` while PostgreSQL is unreachable: 503 with Retry-After, no row and no dial
message; once it is back, the client's retries with its key place the call once.

PostgreSQL is real; the API reaches it through a TCP proxy in this process that the test cuts
(open connections reset, new ones refused) and restores."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
import requests

from dialq import routing
from dialq.store import Database, calls_repo
from tests.databases import API_TABLES, empty_database
from tests.integration.test_http_api import (
    Api,
    accounts_env,
    assert_problem,
    running_api,
)
from tests.integration.test_intake_outage import CuttableProxy, proxy
from tests.stack import stack_env

__all__ = ["proxy"]  # the fixture, shared with test_intake_outage.py

NUMBER = "+14155550123"


@pytest.fixture
def proxied_api(pg_url: str, redis_url: str, proxy: CuttableProxy, tmp_path: Path) -> Iterator[Api]:
    empty_database(pg_url, API_TABLES).dispose()
    proxied = pg_url.replace(
        f"@{urlsplit(pg_url).netloc.split('@')[-1]}", f"@127.0.0.1:{proxy.port}"
    )
    env = stack_env(redis_url, proxied, "http://127.0.0.1:9", tmp_path)
    env["DIALQ_ACCOUNTS"] = accounts_env("http://127.0.0.1:9")
    with running_api(env, tmp_path) as api:
        yield api


def dial_messages(api: Api) -> int:
    return int(redis.Redis.from_url(api.env["DIALQ_BROKER_URL"]).llen(routing.QUEUE_DIAL))


def rows(pg_url: str) -> list[str]:
    """The calls' ids, read past the proxy."""
    db = Database(pg_url)
    try:
        with db.sessions() as session:
            return [call.id for call in calls_repo.list_calls(session, limit=100)]
    finally:
        db.dispose()


@pytest.mark.timeout(180)
def test_a_post_while_the_database_is_down_gets_503_writes_nothing_then_is_accepted_once(
    proxied_api: Api, proxy: CuttableProxy, pg_url: str
) -> None:
    api = proxied_api
    # given a key, and a request the client will retry with its idempotency key
    key = api.make_key("sales")
    body = {"phone_number": NUMBER, "idempotency_key": "db-outage-1"}
    assert api.call("GET", "/v1/calls", key).status_code == 200  # the pool is warm
    # when the database becomes unreachable and the call is posted
    proxy.cut()
    down = api.call("POST", "/v1/calls", key, json=body)
    # then 503 says when to retry, and nothing is recorded or published
    assert_problem(down, 503)
    assert down.headers["Retry-After"] == "5"
    assert rows(pg_url) == []
    assert dial_messages(api) == 0
    # when it is back and the client retries as told, then replays once more
    proxy.restore()
    answer = retried_until_accepted(api, key, body)
    replayed = api.call("POST", "/v1/calls", key, json=body)
    # then the call was accepted once: one row, one dial message, the same call replayed
    assert answer.status_code == 201, answer.text
    assert (replayed.status_code, replayed.json()["id"]) == (200, answer.json()["id"])
    assert rows(pg_url) == [answer.json()["id"]]
    assert dial_messages(api) == 1


def retried_until_accepted(api: Api, key: str, body: dict[str, str]) -> requests.Response:
    """What a client does with a 503: wait Retry-After (shortened here), send it again."""
    deadline = time.monotonic() + 60
    while True:
        answer = api.call("POST", "/v1/calls", key, json=body)
        if answer.status_code != 503:
            return answer
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.5)
