"""The Symbl client over real sockets, against a small scripted HTTP server of its own.

The server answers each route from a script, in order: a status and body, a hang longer than
the client's read timeout, or a connection closed (or reset) after the request was read.
Tokens are shared through a real Redis (the ``redis_url`` fixture).
"""

from __future__ import annotations

import gc
import json
import logging
import socket
import struct
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis
import requests
from pydantic import SecretStr

from dialq import __version__
from dialq.config import Account
from dialq.ops.local_redis import free_port
from dialq.symbl.auth import (
    CachedToken,
    MemoryTokenStore,
    RedisTokenStore,
    TokenProvider,
    TokenStore,
)
from dialq.symbl.client import AttemptRecord, StartResult, SymblClient
from dialq.symbl.errors import (
    AuthenticationError,
    BadRequestError,
    CapacityError,
    CredentialsError,
    NotFoundError,
    NotSentError,
    OutcomeUnknownError,
    ServerError,
    UnexpectedResponseError,
    UnexpectedStatusError,
)
from dialq.symbl.sent import classify_transport_error

APP_ID = "app-under-test"
APP_SECRET = "app-secret-under-test"
CONNECT = "POST /v1/endpoint:connect"
TOKEN = "POST /oauth2/token:generate"
READ_TIMEOUT_S = 0.5
START_BODY = {"operation": "start", "endpoint": {"type": "pstn", "phoneNumber": "14082924837"}}
STARTED = {
    "eventUrl": "http://x/v1/event/c-1",
    "resultWebSocketUrl": "ws://x/events/c-1",
    "connectionId": "c-1",
    "conversationId": "5687907911204864",
}
CAPACITY = {"message": "Maximum number of concurrent jobs reached."}


@dataclass
class Step:
    """One scripted answer. ``kind``: answer, hang, drop (FIN) or reset (RST)."""

    kind: str = "answer"
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


def answer(status: int, body: Any = None, **headers: str) -> Step:
    return Step(status=status, body=body, headers=headers)


@dataclass(frozen=True)
class Received:
    route: str
    headers: dict[str, str]
    body: Any


class ScriptedSymbl(ThreadingHTTPServer):
    """A fake Symbl: token:generate grants tok-1, tok-2, ... unless scripted otherwise."""

    daemon_threads = False  # server_close joins every handler: nothing outlives a test

    def __init__(self, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.scripts: dict[str, list[Step]] = {}
        self.received: list[Received] = []
        self.release = threading.Event()
        self.token_lifetime_s = 86400
        self._granted = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def script(self, route: str, *steps: Step) -> None:
        self.scripts.setdefault(route, []).extend(steps)

    def requests_to(self, route: str) -> list[Received]:
        return [r for r in self.received if r.route == route]

    def next_step(self, route: str, request: Received) -> Step:
        with self._lock:
            self.received.append(request)
            if self.scripts.get(route):
                return self.scripts[route].pop(0)
            if route != TOKEN:
                return answer(500, {"message": f"unscripted {route}"})
            self._granted += 1
            token = {"accessToken": f"tok-{self._granted}", "expiresIn": self.token_lifetime_s}
            return answer(200, token)

    def start(self) -> ScriptedSymbl:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()  # wake hanging handlers so they can be joined
        self.shutdown()
        self.server_close()
        self._thread.join()


class _Handler(BaseHTTPRequestHandler):
    server: ScriptedSymbl

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        route = f"{self.command} {self.path}"
        received = Received(route, dict(self.headers), json.loads(raw) if raw else None)
        step = self.server.next_step(route, received)
        self.close_connection = True
        if step.kind == "hang":
            self.server.release.wait(10 * READ_TIMEOUT_S)
        elif step.kind == "drop":
            self.connection.shutdown(socket.SHUT_RDWR)
        elif step.kind == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        else:
            self.server.release.wait(step.delay_s)
            self._answer(step)

    def _answer(self, step: Step) -> None:
        body = step.body if isinstance(step.body, str) else json.dumps(step.body or {})
        data = body.encode()
        self.send_response(step.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in step.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def symbl() -> Iterator[ScriptedSymbl]:
    server = ScriptedSymbl().start()
    yield server
    server.stop()


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def account(base_url: str) -> Account:
    return Account(app_id=APP_ID, app_secret=SecretStr(APP_SECRET), base_url=base_url)


def provider(
    base_url: str,
    store: TokenStore,
    session: requests.Session,
    clock: Callable[[], float] = time.time,
) -> TokenProvider:
    return TokenProvider(
        "default",
        account(base_url),
        store,
        session,
        renew_margin_s=300.0,
        connect_timeout_s=1.0,
        read_timeout_s=READ_TIMEOUT_S,
        clock=clock,
    )


@dataclass
class Harness:
    client: SymblClient
    records: list[AttemptRecord]
    sleeps: list[float]

    def kinds(self) -> list[tuple[str, int | None]]:
        return [(r.operation, r.status) for r in self.records]


def harness(
    base_url: str,
    session: requests.Session,
    store: TokenStore | None = None,
    sleep: Callable[[float], None] | None = None,
) -> Harness:
    """A client whose attempts and fast-retry waits are recorded; waits do not really sleep."""
    records: list[AttemptRecord] = []
    sleeps: list[float] = []
    tokens = provider(base_url, store or MemoryTokenStore(), session)
    client = SymblClient(
        account(base_url),
        tokens,
        session,
        connect_timeout_s=1.0,
        read_timeout_s=READ_TIMEOUT_S,
        on_attempt=records.append,
        sleep=sleep or sleeps.append,
    )
    return Harness(client, records, sleeps)


def cached_store() -> MemoryTokenStore:
    """A store that already holds a token, so no token request is made."""
    store = MemoryTokenStore()
    store.put("default", CachedToken("tok-cached", time.time() + 86400))
    return store


# -- happy paths -------------------------------------------------------------------------------


def test_start_sends_the_token_call_id_and_body_and_returns_the_connection(
    symbl: ScriptedSymbl, session: requests.Session
) -> None:
    # given an API that starts the call
    symbl.script(CONNECT, answer(201, STARTED))
    h = harness(symbl.url, session)
    # when a call is started
    result = h.client.start(START_BODY, call_id="call-42")
    # then the documented fields come back, and the request carried what the API needs
    assert result == StartResult(
        "c-1", "5687907911204864", STARTED["eventUrl"], STARTED["resultWebSocketUrl"]
    )
    (sent,) = symbl.requests_to(CONNECT)
    assert sent.body == START_BODY
    assert sent.headers["x-api-key"] == "tok-1"
    assert sent.headers["X-Dialq-Call-Id"] == "call-42"
    assert sent.headers["User-Agent"] == f"dialq/{__version__}"
    assert symbl.requests_to(TOKEN)[0].body == {
        "type": "application",
        "appId": APP_ID,
        "appSecret": APP_SECRET,
    }


def test_every_attempt_is_reported_once_with_status_latency_and_utc_time(
    symbl: ScriptedSymbl, session: requests.Session
) -> None:
    symbl.script(CONNECT, answer(201, STARTED))
    h = harness(symbl.url, session)
    h.client.start(START_BODY, call_id="call-1")
    assert h.kinds() == [("token", 200), ("start", 201)]
    for record in h.records:
        assert record.error is None
        assert record.latency_ms > 0
        assert record.started_at.tzinfo is UTC


def test_stop_returns_the_summary_info_and_a_404_is_not_found(
    symbl: ScriptedSymbl, session: requests.Session
) -> None:
    summary = [{"user": {"name": "John", "userId": "john@example.com"}, "url": "https://s/1"}]
    symbl.script(CONNECT, answer(200, {**STARTED, "summaryInfo": summary}))
    symbl.script(CONNECT, answer(404, {"message": "connection not found"}))
    h = harness(symbl.url, session)
    stopped = h.client.stop("c-1")
    assert (stopped.connection_id, stopped.conversation_id) == ("c-1", "5687907911204864")
    assert stopped.summary_info == summary
    assert symbl.requests_to(CONNECT)[0].body == {"operation": "stop", "connectionId": "c-1"}
    with pytest.raises(NotFoundError, match="connection not found"):
        h.client.stop("c-1")


def test_conversation_reads_the_object_or_one_part(
    symbl: ScriptedSymbl, session: requests.Session
) -> None:
    symbl.script("GET /v1/conversations/123", answer(200, {"id": "123"}))
    symbl.script("GET /v1/conversations/123/action-items", answer(200, {"actionItems": []}))
    h = harness(symbl.url, session)
    assert h.client.conversation("123") == {"id": "123"}
    assert h.client.conversation("123", "action-items") == {"actionItems": []}
    assert [r.operation for r in h.records] == ["token", "conversation", "conversation"]
    with pytest.raises(ValueError, match="unknown conversation part"):
        h.client.conversation("123", "../oauth2")


def test_a_failing_attempt_recorder_does_not_lose_a_started_call(
    symbl: ScriptedSymbl, session: requests.Session, caplog: pytest.LogCaptureFixture
) -> None:
    # given a recorder that fails (its database is down, say)
    symbl.script(CONNECT, answer(201, STARTED))

    def broken(record: AttemptRecord) -> None:
        raise RuntimeError("database is down")

    client = SymblClient(
        account(symbl.url),
        provider(symbl.url, MemoryTokenStore(), session),
        session,
        connect_timeout_s=1.0,
        read_timeout_s=READ_TIMEOUT_S,
        on_attempt=broken,
    )
    # when the call starts, then the result still comes back, and the failure is logged
    with caplog.at_level(logging.ERROR, logger="dialq.symbl"):
        assert client.start(START_BODY, call_id="call-1").connection_id == "c-1"
    assert "could not record a start attempt" in caplog.text


def test_a_redirect_is_not_followed_so_the_token_stays_with_the_api(
    symbl: ScriptedSymbl, session: requests.Session
) -> None:
    symbl.script(CONNECT, answer(307, {}, Location="http://127.0.0.1:9/elsewhere"))
    h = harness(symbl.url, session)
    with pytest.raises(UnexpectedStatusError) as caught:
        h.client.start(START_BODY, call_id="call-1")
    assert caught.value.status == 307
    assert len(symbl.requests_to(CONNECT)) == 1


# -- tokens shared through Redis ---------------------------------------------------------------


def test_token_is_fetched_once_and_shared_by_two_providers_on_one_redis(
    symbl: ScriptedSymbl, redis_client: redis.Redis, session: requests.Session
) -> None:
    # given two workers, each with its own provider, on one Redis
    first = provider(symbl.url, RedisTokenStore(redis_client), session)
    second = provider(symbl.url, RedisTokenStore(redis_client), session)
    # when both need a token
    tokens = (first.token(), second.token())
    # then one was fetched and both use it
    assert tokens == ("tok-1", "tok-1")
    assert len(symbl.requests_to(TOKEN)) == 1


def test_redis_keeps_the_token_for_its_remaining_lifetime(
    symbl: ScriptedSymbl, redis_client: redis.Redis, session: requests.Session
) -> None:
    symbl.token_lifetime_s = 1000
    provider(symbl.url, RedisTokenStore(redis_client), session).token()
    ttl_ms = redis_client.pttl("dialq:token:default")
    assert 990_000 < ttl_ms <= 1_000_000
    # sealed with the app secret: the stored value is not the token itself
    assert b"tok-1" not in (redis_client.hget("dialq:token:default", "value") or b"tok-1")


def test_token_is_renewed_before_it_expires(
    symbl: ScriptedSymbl, redis_client: redis.Redis, session: requests.Session
) -> None:
    # given a token that lives 1000 s and a renewal margin of 300 s
    symbl.token_lifetime_s = 1000
    now = [time.time()]
    store = RedisTokenStore(redis_client, clock=lambda: now[0])
    tokens = provider(symbl.url, store, session, clock=lambda: now[0])
    assert tokens.token() == "tok-1"
    now[0] += 699
    assert tokens.token() == "tok-1"
    # when the token comes within the margin of its expiry
    now[0] += 2
    # then a new one is fetched while the old one is still valid
    assert tokens.token() == "tok-2"
    assert len(symbl.requests_to(TOKEN)) == 2


def test_many_workers_starting_at_once_fetch_one_token(
    symbl: ScriptedSymbl, redis_client: redis.Redis
) -> None:
    # given a slow token endpoint and eight workers with empty caches
    symbl.script(
        TOKEN, Step(status=200, body={"accessToken": "tok-slow", "expiresIn": 86400}, delay_s=0.3)
    )
    results: list[str] = []

    def worker() -> None:
        with requests.Session() as own:
            results.append(provider(symbl.url, RedisTokenStore(redis_client), own).token())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    # when they all ask for a token at once
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then the lock made it one request, and everyone got its token
    assert results == ["tok-slow"] * 8
    assert len(symbl.requests_to(TOKEN)) == 1


def test_redis_discard_removes_only_the_named_token(redis_client: redis.Redis) -> None:
    store = RedisTokenStore(redis_client)
    store.protect("default", "app-secret")
    store.put("default", CachedToken("tok-2", time.time() + 60))
    store.discard("default", "tok-1")
    assert store.get("default") is not None
    store.discard("default", "tok-2")
    assert store.get("default") is None


def test_redis_fetch_lock_expires_when_its_holder_dies(redis_client: redis.Redis) -> None:
    store = RedisTokenStore(redis_client, lock_ttl_ms=100)
    assert store.try_lock("default") is not None
    assert store.try_lock("default") is None
    time.sleep(0.2)
    assert store.try_lock("default") is not None


# -- 401 ---------------------------------------------------------------------------------------


def test_401_renews_the_token_once_and_retries_once_to_success(
    symbl: ScriptedSymbl, session: requests.Session, caplog: pytest.LogCaptureFixture
) -> None:
    # given an API that refuses the first token
    symbl.script(CONNECT, answer(401, {"message": "Token validation failed for provided token."}))
    symbl.script(CONNECT, answer(201, STARTED))
    h = harness(symbl.url, session)
    # when a call is started
    with caplog.at_level(logging.DEBUG, logger="dialq"):
        result = h.client.start(START_BODY, call_id="call-1")
    # then a new token was fetched and the start sent once more, with it
    assert result.connection_id == "c-1"
    assert [r.headers["x-api-key"] for r in symbl.requests_to(CONNECT)] == ["tok-1", "tok-2"]
    assert h.kinds() == [("token", 200), ("start", 401), ("token", 200), ("start", 201)]
    assert "tok-" not in caplog.text
    assert APP_SECRET not in caplog.text


def test_401_twice_raises_authentication_error(
    symbl: ScriptedSymbl, session: requests.Session
) -> None:
    refused = answer(401, {"message": "Token validation failed for provided token."})
    symbl.script(CONNECT, refused, refused, answer(201, STARTED))
    h = harness(symbl.url, session)
    with pytest.raises(AuthenticationError, match="Token validation failed"):
        h.client.start(START_BODY, call_id="call-1")
    assert len(symbl.requests_to(CONNECT)) == 2
    assert len(symbl.requests_to(TOKEN)) == 2


def test_wrong_app_secret_is_a_credentials_error_that_hides_the_secret(
    symbl: ScriptedSymbl, session: requests.Session
) -> None:
    symbl.script(TOKEN, answer(401, {"message": f"no app with secret {APP_SECRET}"}))
    h = harness(symbl.url, session)
    with pytest.raises(CredentialsError) as caught:
        h.client.start(START_BODY, call_id="call-1")
    assert caught.value.message == "invalid app id or secret"
    assert APP_SECRET not in f"{caught.value} {caught.value!r} {caught.value.body} {h.records}"
    assert symbl.requests_to(CONNECT) == []


# -- requests that never reached the API -------------------------------------------------------


def test_connection_refused_is_not_sent_after_the_bounded_fast_retries(
    session: requests.Session, caplog: pytest.LogCaptureFixture
) -> None:
    # given nothing listens on the API's port, and a token is already cached
    h = harness(f"http://127.0.0.1:{free_port()}", session, cached_store())
    # when a call is started
    with caplog.at_level(logging.WARNING, logger="dialq.symbl"), pytest.raises(NotSentError):
        h.client.start(START_BODY, call_id="call-1")
    # then it was tried 1 + 2 times, quickly, and each retry was logged without secrets
    assert h.kinds() == [("start", None)] * 3
    assert all((r.error or "").startswith("NotSentError") for r in h.records)
    assert h.sleeps == [0.2, 0.4]
    warnings = [r.getMessage() for r in caplog.records]
    assert [w.split(":")[0] for w in warnings] == [
        "start request not sent (attempt 1 of 3)",
        "start request not sent (attempt 2 of 3)",
    ]
    assert "tok-cached" not in caplog.text
    assert "14082924837" not in caplog.text


def test_a_request_not_sent_is_retried_and_then_succeeds(session: requests.Session) -> None:
    # given the API is down on the first try and up after the first fast wait
    port = free_port()
    servers: list[ScriptedSymbl] = []

    def api_comes_up(_: float) -> None:
        server = ScriptedSymbl(port).start()
        server.script(CONNECT, answer(201, STARTED))
        servers.append(server)

    h = harness(f"http://127.0.0.1:{port}", session, cached_store(), sleep=api_comes_up)
    try:
        # when a call is started
        result = h.client.start(START_BODY, call_id="call-1")
    finally:
        for server in servers:
            server.stop()
    # then the second try reached the API, once
    assert result.connection_id == "c-1"
    assert h.kinds() == [("start", None), ("start", 201)]
    assert len(servers[0].requests_to(CONNECT)) == 1


# -- requests whose outcome is unknown: exactly one request, never retried ---------------------


def test_a_hang_past_the_read_timeout_is_outcome_unknown_with_one_request(
    symbl: ScriptedSymbl, session: requests.Session
) -> None:
    symbl.script(CONNECT, Step(kind="hang"), answer(201, STARTED))
    h = harness(symbl.url, session)
    with pytest.raises(OutcomeUnknownError):
        h.client.start(START_BODY, call_id="call-1")
    assert len(symbl.requests_to(CONNECT)) == 1
    assert h.kinds() == [("token", 200), ("start", None)]
    assert (h.records[1].error or "").startswith("OutcomeUnknownError: ReadTimeout")


@pytest.mark.parametrize("kind", ["drop", "reset"])
def test_a_connection_closed_after_the_request_was_read_is_outcome_unknown_with_one_request(
    symbl: ScriptedSymbl, session: requests.Session, kind: str
) -> None:
    symbl.script(CONNECT, Step(kind=kind), answer(201, STARTED))
    h = harness(symbl.url, session)
    with pytest.raises(OutcomeUnknownError):
        h.client.start(START_BODY, call_id="call-1")
    assert len(symbl.requests_to(CONNECT)) == 1
    assert h.kinds() == [("token", 200), ("start", None)]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("<html><body>Welcome</body></html>", "body is not JSON"),
        ('{"connectionId": "c-1", "conver', "body is not JSON"),
        ('["c-1"]', "body is JSON list"),
        (json.dumps({**STARTED, "connectionId": None}), "connectionId is missing or null"),
        (json.dumps({**STARTED, "connectionId": 5}), "connectionId is a int"),
        (json.dumps({k: v for k, v in STARTED.items() if k != "eventUrl"}), "eventUrl is missing"),
    ],
)
def test_a_malformed_201_is_an_unexpected_response_never_retried(
    symbl: ScriptedSymbl, session: requests.Session, body: str, problem: str
) -> None:
    symbl.script(CONNECT, answer(201, body), answer(201, STARTED))
    h = harness(symbl.url, session)
    with pytest.raises(UnexpectedResponseError, match=problem):
        h.client.start(START_BODY, call_id="call-1")
    assert len(symbl.requests_to(CONNECT)) == 1
    assert (h.records[-1].error or "").startswith("UnexpectedResponseError: HTTP 201")


def test_a_201_missing_conversation_id_keeps_the_connection_id_for_the_reconciler(
    symbl: ScriptedSymbl, session: requests.Session
) -> None:
    body = {k: v for k, v in STARTED.items() if k != "conversationId"}
    symbl.script(CONNECT, answer(201, body))
    h = harness(symbl.url, session)
    with pytest.raises(UnexpectedResponseError) as caught:
        h.client.start(START_BODY, call_id="call-1")
    assert caught.value.connection_id == "c-1"


# -- status errors: raised to the caller, never fast-retried -----------------------------------


def test_429_without_retry_after_is_a_capacity_error_with_none(
    symbl: ScriptedSymbl, session: requests.Session
) -> None:
    symbl.script(CONNECT, answer(429, CAPACITY))
    h = harness(symbl.url, session)
    with pytest.raises(CapacityError) as caught:
        h.client.start(START_BODY, call_id="call-1")
    assert caught.value.retry_after_s is None
    assert caught.value.message == CAPACITY["message"]
    assert len(symbl.requests_to(CONNECT)) == 1


def test_429_with_retry_after_seconds_is_a_capacity_error_with_that_delay(
    symbl: ScriptedSymbl, session: requests.Session
) -> None:
    symbl.script(CONNECT, answer(429, CAPACITY, **{"Retry-After": "7"}))
    h = harness(symbl.url, session)
    with pytest.raises(CapacityError) as caught:
        h.client.start(START_BODY, call_id="call-1")
    assert caught.value.retry_after_s == 7.0
    assert h.records[-1].retry_after_s == 7.0


def test_429_with_retry_after_date_is_a_capacity_error_with_the_seconds_until_then(
    symbl: ScriptedSymbl, session: requests.Session
) -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    symbl.script(
        CONNECT, answer(429, CAPACITY, **{"Retry-After": format_datetime(when, usegmt=True)})
    )
    h = harness(symbl.url, session)
    with pytest.raises(CapacityError) as caught:
        h.client.start(START_BODY, call_id="call-1")
    assert caught.value.retry_after_s is not None
    assert 27.0 <= caught.value.retry_after_s <= 30.0


def test_400_is_a_bad_request_error_with_the_api_message(
    symbl: ScriptedSymbl, session: requests.Session
) -> None:
    symbl.script(
        CONNECT, answer(400, {"message": "phoneNumber is invalid"}, **{"X-Request-Id": "r-9"})
    )
    h = harness(symbl.url, session)
    with pytest.raises(BadRequestError) as caught:
        h.client.start(START_BODY, call_id="call-1")
    assert caught.value.message == "phoneNumber is invalid"
    assert caught.value.request_id == "r-9"
    assert len(symbl.requests_to(CONNECT)) == 1
    assert h.records[-1].error == "BadRequestError: HTTP 400: phoneNumber is invalid"


def test_503_is_a_server_error_left_to_the_task_layer(
    symbl: ScriptedSymbl, session: requests.Session
) -> None:
    symbl.script(CONNECT, answer(503, {"message": "unavailable"}), answer(201, STARTED))
    h = harness(symbl.url, session)
    with pytest.raises(ServerError, match="unavailable"):
        h.client.start(START_BODY, call_id="call-1")
    assert len(symbl.requests_to(CONNECT)) == 1
    assert h.sleeps == []


# -- classify_transport_error against real sockets ---------------------------------------------


@dataclass
class RawServer:
    """A bare TCP listener that treats its first connection as ``behaviour`` says."""

    behaviour: Callable[[socket.socket], None]
    listener: socket.socket = field(default_factory=socket.socket)
    thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            self.behaviour(conn)

    def close(self) -> None:
        if self.thread is not None:
            self.thread.join(timeout=5)
        self.listener.close()


def _reset(conn: socket.socket) -> None:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _garbage(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    time.sleep(0.2)


def _read_then(after: Callable[[socket.socket], None]) -> Callable[[socket.socket], None]:
    def behaviour(conn: socket.socket) -> None:
        conn.recv(65536)
        after(conn)

    return behaviour


def _classify(session: requests.Session, url: str, connect_timeout_s: float = 1.0) -> type:
    try:
        session.post(url, json={}, timeout=(connect_timeout_s, READ_TIMEOUT_S)).content  # noqa: B018
    except requests.RequestException as exc:
        classified = type(classify_transport_error(exc))
    else:
        pytest.fail("the request succeeded")
    # CPython 3.11's SSLSocket._create leaks its socket when the peer resets before the
    # handshake; the traceback held it until the except block ended. Collect it now.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    return classified


@pytest.mark.parametrize(
    ("scheme", "behaviour", "expected"),
    [
        ("https", _garbage, NotSentError),  # not TLS: the handshake fails
        ("https", lambda conn: None, NotSentError),  # closed during the handshake
        ("https", _reset, NotSentError),  # reset during the handshake
        ("http", _read_then(lambda conn: None), OutcomeUnknownError),  # FIN after the request
        ("http", _read_then(_reset), OutcomeUnknownError),  # RST after the request
        (
            "http",
            _read_then(lambda conn: time.sleep(READ_TIMEOUT_S + 0.2)),
            OutcomeUnknownError,
        ),  # read timeout
        (
            "http",
            _read_then(
                lambda conn: conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 99\r\n\r\n{")
            ),
            OutcomeUnknownError,  # incomplete body
        ),
    ],
)
def test_classify_real_socket_failures_by_whether_the_request_was_sent(
    session: requests.Session,
    scheme: str,
    behaviour: Callable[[socket.socket], None],
    expected: type,
) -> None:
    server = RawServer(behaviour)
    try:
        assert (
            _classify(session, f"{scheme}://127.0.0.1:{server.port}/v1/endpoint:connect")
            is expected
        )
    finally:
        server.close()


def test_classify_real_connection_refused_as_not_sent(session: requests.Session) -> None:
    assert _classify(session, f"http://127.0.0.1:{free_port()}/x") is NotSentError


def test_classify_real_name_resolution_failure_as_not_sent(session: requests.Session) -> None:
    # .invalid never resolves (RFC 6761)
    assert _classify(session, "http://dialq-test.invalid/x") is NotSentError


def test_classify_real_connect_timeout_as_not_sent(session: requests.Session) -> None:
    # given a listener whose accept queue is full, so the kernel drops further SYNs
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(4)]
        try:
            for filler in fillers:
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
            time.sleep(0.1)
            # when a request is sent there with a short connect timeout
            # then it is classified as never sent
            assert (
                _classify(session, f"http://127.0.0.1:{port}/x", connect_timeout_s=0.3)
                is NotSentError
            )
        finally:
            for filler in fillers:
                filler.close()
