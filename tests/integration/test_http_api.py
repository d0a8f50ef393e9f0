"""The HTTP API over real HTTP: a `dialq api` process on a free port, real Redis, SQLite and
PostgreSQL. Calls are recorded and published; no worker dials them here (test_http_api_dial.py
does).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import text

from dialq.http.keys import key_digest, new_key, shown_part
from dialq.ops.local_redis import PrivateRedis, free_port
from dialq.store import Database, apikeys_repo
from dialq.store.tables import ApiKey
from tests.databases import API_TABLES, empty_database
from tests.stack import stack_env

NUMBER = "+14155550123"
PROBLEM_JSON = "application/problem+json"
ACCOUNTS = ("sales", "support")


def accounts_env(base_url: str) -> str:
    account = {"app_id": "a", "app_secret": "s", "base_url": base_url, "max_concurrent_calls": 5}
    return json.dumps({name: account for name in ACCOUNTS})


@dataclass
class Api:
    """A running `dialq api` process and what a test needs to talk to it."""

    url: str
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes]

    def make_key(
        self, *accounts: str, scopes: tuple[str, ...] = ("calls:write", "calls:read")
    ) -> str:
        """A key stored as `dialq apikey create` stores it (the CLI's own test is below)."""
        key = new_key()
        db = Database(self.env["DIALQ_DATABASE_URL"])
        try:
            with db.transaction() as session:
                apikeys_repo.add_key(
                    session,
                    ApiKey(
                        id=str(uuid.uuid4()),
                        prefix=shown_part(key),
                        key_sha256=key_digest(key),
                        accounts=list(accounts),
                        scopes=list(scopes),
                        created_at=datetime.now(UTC),
                    ),
                )
        finally:
            db.dispose()
        return key

    def call(self, method: str, path: str, key: str | None = None, **kw: Any) -> requests.Response:
        headers = dict(kw.pop("headers", {}))
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        return requests.request(method, self.url + path, headers=headers, timeout=30, **kw)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "dialq.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def call_rows(self) -> int:
        db = Database(self.env["DIALQ_DATABASE_URL"])
        try:
            with db.sessions() as session:
                return int(session.execute(text("SELECT COUNT(*) FROM calls")).scalar_one())
        finally:
            db.dispose()


def process_env(dialq: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALQ_")}
    return {**env, **dialq}


@contextmanager
def running_api(dialq_env: dict[str, str], workdir: Path, timeout_s: float = 30.0) -> Iterator[Api]:
    """`dialq api` on a free port; returns once /healthz answers, stops it with SIGTERM."""
    port = free_port()
    env = process_env(dialq_env)
    log = workdir / f"api-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "dialq.cli", "api", "--port", str(port)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    api = Api(f"http://127.0.0.1:{port}", env, log, process)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if requests.get(api.url + "/healthz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:  # not listening yet, or too busy starting
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield api
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def api_env(redis_url: str, database_url: str, tmp_path: Path) -> dict[str, str]:
    empty_database(database_url, API_TABLES).dispose()
    env = stack_env(redis_url, database_url, "http://127.0.0.1:9", tmp_path)
    return {**env, "DIALQ_ACCOUNTS": accounts_env("http://127.0.0.1:9")}


@pytest.fixture
def api(api_env: dict[str, str], tmp_path: Path) -> Iterator[Api]:
    with running_api(api_env, tmp_path) as running:
        yield running


def assert_problem(answer: requests.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM_JSON
    problem: dict[str, Any] = answer.json()
    assert problem["status"] == status
    assert problem["title"]
    assert problem["detail"]
    return problem


# -- placing a call -----------------------------------------------------------------------------


def test_a_call_is_created_then_replayed_by_its_key_and_the_key_is_refused_for_another_request(
    api: Api,
) -> None:
    # given a key for sales
    key = api.make_key("sales")
    body = {"phone_number": NUMBER, "session_name": "renewal"}
    # when a call is posted with an Idempotency-Key header
    first = api.call("POST", "/v1/calls", key, json=body, headers={"Idempotency-Key": "crm-1"})
    # then it is created (201) in the key's only account, queued, with its Location
    assert first.status_code == 201, first.text
    call = first.json()
    assert call["account"] == "sales"
    assert call["status"] == "queued"
    assert call["phone_number"] == NUMBER  # the owner sees its number
    assert first.headers["Location"] == f"/v1/calls/{call['id']}"
    # when the same request comes again, by header, then by the body's own key
    again = api.call("POST", "/v1/calls", key, json=body, headers={"Idempotency-Key": "crm-1"})
    in_body = api.call("POST", "/v1/calls", key, json={**body, "idempotency_key": "crm-1"})
    # then each is a replay (200) of the same call, and only one call exists
    assert (again.status_code, again.json()["id"]) == (200, call["id"])
    assert (in_body.status_code, in_body.json()["id"]) == (200, call["id"])
    assert api.call_rows() == 1
    # when the key comes with another request
    other = api.call(
        "POST", "/v1/calls", key, json={"phone_number": "+14155550199"},
        headers={"Idempotency-Key": "crm-1"},
    )  # fmt: skip
    # then it is refused (409) naming the key, and nothing new is written
    problem = assert_problem(other, 409)
    assert [e["field"] for e in problem["errors"]] == ["idempotency_key"]
    assert api.call_rows() == 1
    # and the header and the body naming two keys is a broken field, not a guess
    both = api.call(
        "POST", "/v1/calls", key, json={**body, "idempotency_key": "crm-2"},
        headers={"Idempotency-Key": "crm-3"},
    )  # fmt: skip
    assert [e["field"] for e in assert_problem(both, 422)["errors"]] == ["idempotency_key"]


def test_every_broken_field_is_named_in_one_problem_and_nothing_is_written(api: Api) -> None:
    # given a key
    key = api.make_key("sales")
    # when a request breaks three rules at once
    answer = api.call(
        "POST", "/v1/calls", key, json={"phone_number": "12", "priority": 11, "colour": "red"}
    )
    # then one 422 problem names each field and its rule, never the value sent
    problem = assert_problem(answer, 422)
    assert {e["field"] for e in problem["errors"]} == {"phone_number", "priority", "colour"}
    assert all(e["rule"] for e in problem["errors"])
    assert '"12"' not in answer.text
    # and a body that is not a JSON object is named as the whole request
    for raw in (b"not json", b"[1, 2]", b"\xff"):
        bad = api.call("POST", "/v1/calls", key, data=raw)
        assert [e["field"] for e in assert_problem(bad, 422)["errors"]] == ["request"]
    # and a body past the size limit is refused before it is read (413)
    huge = api.call("POST", "/v1/calls", key, json={"session_name": "x" * 70_000})
    assert_problem(huge, 413)
    assert api.call_rows() == 0


def test_twenty_concurrent_posts_with_one_key_make_one_call(api: Api) -> None:
    # given a key and one request with one idempotency key
    key = api.make_key("sales")

    def post(_: int) -> requests.Response:
        return api.call(
            "POST", "/v1/calls", key, json={"phone_number": NUMBER},
            headers={"Idempotency-Key": "burst-1"},
        )  # fmt: skip

    # when 20 clients post it at once
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(post, range(20)))
    # then exactly one made it (201), every other got the same call (200), and one row exists
    assert sorted(a.status_code for a in answers) == [200] * 19 + [201], [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    assert api.call_rows() == 1


# -- keys -----------------------------------------------------------------------------------


def test_missing_wrong_revoked_and_underscoped_keys_are_refused_and_no_key_is_logged(
    api: Api,
) -> None:
    # given a key made by the CLI, printed once on stdout
    made = api.cli("apikey", "create", "--account", "sales", "--name", "crm", "--json")
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    key = created["key"]
    reader = api.make_key("sales", scopes=("calls:read",))
    # then only its digest is stored, and the listing shows its first characters only
    listed = api.cli("apikey", "list", "--json")
    assert key not in listed.stdout
    assert json.loads(listed.stdout)[0]["prefix"] == key[:11]
    # when requests come with no key, a wrong key, or a key lacking the scope
    missing = api.call("GET", "/v1/calls")
    wrong = api.call("GET", "/v1/calls", "dq_" + "x" * 43)
    underscoped = api.call("POST", "/v1/calls", reader, json={"phone_number": NUMBER})
    # then 401 asks for a bearer key, and 403 names the missing scope
    assert assert_problem(missing, 401)
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert_problem(wrong, 401)
    assert "calls:write" in assert_problem(underscoped, 403)["detail"]
    assert api.call("GET", "/v1/calls", key).status_code == 200
    # when the key is revoked by the CLI
    revoked = api.cli("apikey", "revoke", created["id"][:8])
    assert revoked.returncode == 0, revoked.stderr
    # then it is refused within DIALQ_API_KEY_CACHE_S (5 s by default: the API process trusts
    # a key it found that long), and for good once refused
    deadline = time.monotonic() + 5 + 3
    while api.call("GET", "/v1/calls", key).status_code != 401:
        assert time.monotonic() < deadline, "a revoked key was still accepted after 8 s"
        time.sleep(0.25)
    assert_problem(api.call("GET", "/v1/calls", key), 401)
    # and neither key ever appears in the API's log
    log = api.log.read_text()
    assert "GET /v1/calls" in log
    assert key not in log
    assert reader not in log


def test_a_key_for_sales_neither_sees_nor_creates_nor_cancels_calls_of_support(api: Api) -> None:
    # given a call of support, and a key for sales
    support = api.make_key("support")
    sales = api.make_key("sales")
    placed = api.call("POST", "/v1/calls", support, json={"phone_number": NUMBER})
    assert placed.status_code == 201, placed.text
    call_id = placed.json()["id"]
    # when the sales key reads, lists, cancels it, or places a call for support
    read = api.call("GET", f"/v1/calls/{call_id}", sales)
    listed = api.call("GET", "/v1/calls", sales)
    asked = api.call("GET", "/v1/calls?account=support", sales)
    canceled = api.call("POST", f"/v1/calls/{call_id}/cancel", sales)
    created = api.call(
        "POST", "/v1/calls", sales, json={"phone_number": NUMBER, "account": "support"}
    )
    # then the call does not exist for it, and support's calls are out of its reach
    assert_problem(read, 404)
    assert listed.json() == {"items": [], "next_cursor": None}
    assert_problem(asked, 403)
    assert_problem(canceled, 404)
    assert_problem(created, 403)
    assert api.call_rows() == 1
    assert api.call("GET", f"/v1/calls/{call_id}", support).json()["status"] == "queued"


# -- reading and canceling ----------------------------------------------------------------------


def test_calls_are_listed_by_status_and_time_a_page_at_a_time_and_read_with_their_events(
    api: Api,
) -> None:
    # given five calls of a key for two accounts (which must name one), two of them canceled
    key = api.make_key("sales", "support")
    ids = []
    without_account = api.call("POST", "/v1/calls", key, json={"phone_number": NUMBER})
    assert [e["field"] for e in assert_problem(without_account, 422)["errors"]] == ["account"]
    for n in range(5):
        body = {"phone_number": f"+1415555013{n}", "account": "sales"}
        answer = api.call("POST", "/v1/calls", key, json=body)
        assert answer.status_code == 201, answer.text
        ids.append(answer.json()["id"])
    for call_id in ids[:2]:
        canceled = api.call("POST", f"/v1/calls/{call_id}/cancel", key)
        assert canceled.status_code == 200, canceled.text
        assert (canceled.json()["status"], canceled.json()["changed"]) == ("canceled", True)
    # when they are listed two at a time
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.call("GET", "/v1/calls", key, params=params).json()
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    # then every call comes once, newest first, in three pages
    assert seen == list(reversed(ids))
    assert pages == 3
    # and the filters narrow the list: by status, by creation time, by account
    by_status = api.call("GET", "/v1/calls", key, params={"status": "canceled"}).json()
    assert {item["id"] for item in by_status["items"]} == set(ids[:2])
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    after = api.call("GET", "/v1/calls", key, params={"created_after": future}).json()
    assert after["items"] == []
    before = api.call("GET", "/v1/calls", key, params={"created_before": future}).json()
    assert len(before["items"]) == 5
    support = api.call("GET", "/v1/calls", key, params={"account": "support"}).json()
    assert support["items"] == []
    # and a broken filter is a 422 naming it
    naive = api.call("GET", "/v1/calls", key, params={"created_after": "2030-01-01T00:00:00"})
    assert [e["field"] for e in assert_problem(naive, 422)["errors"]] == ["query.created_after"]
    bad_cursor = api.call("GET", "/v1/calls", key, params={"cursor": "nope"})
    assert [e["field"] for e in assert_problem(bad_cursor, 422)["errors"]] == ["query.cursor"]
    # when one canceled call is read
    detail = api.call("GET", f"/v1/calls/{ids[0]}", key).json()
    # then its events tell its story and its stored request is there
    assert [(e["from"], e["to"]) for e in detail["events"]] == [
        (None, "queued"),
        ("queued", "canceled"),
    ]
    assert detail["request"]["phone_number"] == "+14155550130"
    assert detail["attempts"] == []
    # and canceling it again changes nothing
    again = api.call("POST", f"/v1/calls/{ids[0]}/cancel", key).json()
    assert (again["status"], again["changed"]) == ("canceled", False)


# -- outages and probes -------------------------------------------------------------------------


def test_with_the_broker_down_a_call_is_refused_with_503_and_nothing_then_accepted_once(
    api_env: dict[str, str], tmp_path: Path
) -> None:
    # given an API whose Redis is not running yet
    broker = PrivateRedis(port=free_port())
    env = {**api_env, "DIALQ_BROKER_URL": broker.url}
    with running_api(env, tmp_path) as api:
        key = api.make_key("sales")
        body = {"phone_number": NUMBER, "idempotency_key": "outage-1"}
        # when a call is posted
        down = api.call("POST", "/v1/calls", key, json=body)
        # then 503 says when to retry, nothing is recorded, and /readyz says why
        assert_problem(down, 503)
        assert down.headers["Retry-After"] == "5"
        assert api.call_rows() == 0
        ready = api.call("GET", "/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["broker"]["ok"] is False
        # when Redis comes up and the client retries with its key, twice
        broker.start()
        try:
            retried = api.call("POST", "/v1/calls", key, json=body)
            replayed = api.call("POST", "/v1/calls", key, json=body)
            # then the call is accepted once
            assert retried.status_code == 201, retried.text
            assert (replayed.status_code, replayed.json()["id"]) == (200, retried.json()["id"])
            assert api.call_rows() == 1
            assert api.call("GET", "/readyz").status_code == 200
        finally:
            broker.stop()


def test_with_the_database_down_requests_get_503_and_readyz_names_the_database(
    redis_url: str, tmp_path: Path
) -> None:
    # given an API whose PostgreSQL does not answer
    env = stack_env(
        redis_url,
        f"postgresql+psycopg://dialq@127.0.0.1:{free_port()}/dialq",
        "http://127.0.0.1:9",
        tmp_path,
    )
    with running_api(env, tmp_path) as api:
        # when a call is posted, and the probes are asked
        posted = api.call("POST", "/v1/calls", "dq_any", json={"phone_number": NUMBER})
        ready = api.call("GET", "/readyz")
        # then the call gets 503 with Retry-After, the process is alive but not ready
        assert_problem(posted, 503)
        assert posted.headers["Retry-After"] == "5"
        assert api.call("GET", "/healthz").json() == {"status": "ok"}
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"]["ok"] is False
        assert ready.json()["checks"]["broker"]["ok"] is True


def test_probes_capacity_and_the_openapi_document_answer(api: Api) -> None:
    # given an admin key for sales and a plain key
    admin = api.make_key("sales", scopes=("admin",))
    plain = api.make_key("sales")
    # when the probes, the capacity and the documents are asked for
    ready = api.call("GET", "/readyz")
    capacity = api.call("GET", "/v1/capacity", admin)
    openapi = api.call("GET", "/openapi.json").json()
    docs = api.call("GET", "/docs")
    # then all is ready, capacity shows the key's accounts only, and needs admin
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["database"] == {"ok": True, "detail": "at the newest schema"}
    assert [row["account"] for row in capacity.json()] == ["sales"]
    assert_problem(api.call("GET", "/v1/capacity", plain), 403)
    # and the OpenAPI document has every route, the CallRequest body and bearer keys
    assert {"/v1/calls", "/v1/calls/{call_id}", "/v1/calls/{call_id}/cancel", "/v1/capacity",
            "/healthz", "/readyz"} <= set(openapi["paths"])  # fmt: skip
    post = openapi["paths"]["/v1/calls"]["post"]
    schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert "phone_number" in schema["properties"]
    assert {"201", "200", "409", "413", "422", "503"} <= set(post["responses"])
    assert openapi["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
