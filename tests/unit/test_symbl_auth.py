"""Token caching and renewal with a fake clock, a memory store and a scripted token endpoint."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import requests
from pydantic import SecretStr
from requests.adapters import BaseAdapter

from dialq.config import Account
from dialq.symbl.auth import CachedToken, MemoryTokenStore, TokenProvider
from dialq.symbl.errors import CapacityError, CredentialsError, ServerError, TokenError
from dialq.symbl.transport import AttemptRecord

BASE_URL = "https://symbl.test"
SECRET = "app-secret-value"
ACCOUNT = Account(app_id="app-1", app_secret=SecretStr(SECRET), base_url=BASE_URL)
MARGIN_S = 300.0


class ScriptedTokenEndpoint(BaseAdapter):
    """Answers token:generate from a script, in order, and keeps what it was sent."""

    def __init__(self) -> None:
        super().__init__()
        self.script: list[tuple[int, str] | Exception] = []
        self.bodies: list[dict[str, Any]] = []

    def grant(self, token: str, expires_in: float) -> None:
        self.script.append((200, json.dumps({"accessToken": token, "expiresIn": expires_in})))

    def send(  # type: ignore[override]  # requests passes timeout, verify, ... by keyword
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        assert request.url == f"{BASE_URL}/oauth2/token:generate"
        assert isinstance(request.body, bytes)
        self.bodies.append(json.loads(request.body))
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        response = requests.Response()
        response.status_code, text = step
        response._content = text.encode()
        response.encoding = "utf-8"
        response.url = request.url
        response.request = request
        return response

    def close(self) -> None:
        pass


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def endpoint() -> ScriptedTokenEndpoint:
    return ScriptedTokenEndpoint()


@pytest.fixture
def session(endpoint: ScriptedTokenEndpoint) -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.mount(BASE_URL, endpoint)
        yield session


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> MemoryTokenStore:
    return MemoryTokenStore(clock)


def provider(
    store: MemoryTokenStore, session: requests.Session, clock: FakeClock, **kw: Any
) -> TokenProvider:
    options: Mapping[str, Any] = {
        "renew_margin_s": MARGIN_S,
        "connect_timeout_s": 1.0,
        "read_timeout_s": 1.0,
        "clock": clock,
        **kw,
    }
    return TokenProvider("default", ACCOUNT, store, session, **options)


def test_first_token_is_fetched_with_the_documented_body_then_served_from_the_cache(
    endpoint: ScriptedTokenEndpoint,
    session: requests.Session,
    clock: FakeClock,
    store: MemoryTokenStore,
) -> None:
    # given a token endpoint that grants one token for a day
    endpoint.grant("tok-1", 86400)
    tokens = provider(store, session, clock)
    # when the token is asked for twice, an hour apart
    first = tokens.token()
    clock.now += 3600
    second = tokens.token()
    # then one request was made, with the documented body, and both answers are that token
    assert (first, second) == ("tok-1", "tok-1")
    assert endpoint.bodies == [{"type": "application", "appId": "app-1", "appSecret": SECRET}]
    assert store.get("default") == CachedToken("tok-1", clock.now - 3600 + 86400)


def test_token_is_renewed_once_it_expires_within_the_margin(
    endpoint: ScriptedTokenEndpoint,
    session: requests.Session,
    clock: FakeClock,
    store: MemoryTokenStore,
) -> None:
    endpoint.grant("tok-1", 1000)
    endpoint.grant("tok-2", 86400)
    tokens = provider(store, session, clock)
    assert tokens.token() == "tok-1"
    # when the clock reaches the renewal margin (299 s left of 1000)
    clock.now += 701
    # then a new token is fetched before the old one expires
    assert tokens.token() == "tok-2"
    assert len(endpoint.bodies) == 2


def test_same_token_given_back_inside_the_margin_is_used_without_asking_on_every_call(
    endpoint: ScriptedTokenEndpoint,
    session: requests.Session,
    clock: FakeClock,
    store: MemoryTokenStore,
) -> None:
    # given Symbl's server-side cache: a second fetch returns the same token, 200 s left
    endpoint.grant("tok-1", 600)
    endpoint.grant("tok-1", 200)
    endpoint.grant("tok-2", 86400)
    tokens = provider(store, session, clock)
    assert tokens.token() == "tok-1"
    clock.now += 400
    # when the token is asked for repeatedly inside the renewal margin
    answers = [tokens.token()]
    for _ in range(5):
        clock.now += 30
        answers.append(tokens.token())
    # then it was fetched once more, not on every call
    assert answers == ["tok-1"] * 6
    assert len(endpoint.bodies) == 2
    # and at the very end of its life a fresh token is fetched
    clock.now += 48  # 2 s left
    assert tokens.token() == "tok-2"


def test_renew_discards_the_stale_token_and_fetches_another(
    endpoint: ScriptedTokenEndpoint,
    session: requests.Session,
    clock: FakeClock,
    store: MemoryTokenStore,
) -> None:
    endpoint.grant("tok-1", 86400)
    endpoint.grant("tok-2", 86400)
    tokens = provider(store, session, clock)
    stale = tokens.token()
    # when the API refused the token and it is renewed
    fresh = tokens.renew(stale)
    # then the store holds the new one
    assert fresh == "tok-2"
    assert tokens.token() == "tok-2"
    assert len(endpoint.bodies) == 2


def test_renew_takes_a_token_another_worker_already_renewed(
    endpoint: ScriptedTokenEndpoint,
    session: requests.Session,
    clock: FakeClock,
    store: MemoryTokenStore,
) -> None:
    # given another worker already replaced the stale token in the shared store
    store.put("default", CachedToken("tok-new", clock.now + 86400))
    tokens = provider(store, session, clock)
    # when this worker renews its stale token
    fresh = tokens.renew("tok-old")
    # then it gets the other worker's token and fetches nothing
    assert fresh == "tok-new"
    assert endpoint.bodies == []


def test_renew_may_legitimately_return_the_same_value(
    endpoint: ScriptedTokenEndpoint,
    session: requests.Session,
    clock: FakeClock,
    store: MemoryTokenStore,
) -> None:
    endpoint.grant("tok-1", 86400)
    endpoint.grant("tok-1", 86000)
    tokens = provider(store, session, clock)
    assert tokens.renew(tokens.token()) == "tok-1"


def test_wrong_credentials_raise_a_credentials_error_that_never_echoes_the_secret(
    endpoint: ScriptedTokenEndpoint,
    session: requests.Session,
    clock: FakeClock,
    store: MemoryTokenStore,
) -> None:
    # given a server that echoes the secret it refused
    endpoint.script.append((401, json.dumps({"message": f"bad appSecret {SECRET}"})))
    tokens = provider(store, session, clock)
    with pytest.raises(CredentialsError) as caught:
        tokens.token()
    error = caught.value
    assert error.message == "invalid app id or secret"
    for text in (str(error), repr(error), error.body, error.message):
        assert SECRET not in text


@pytest.mark.parametrize(
    ("status", "raised"),
    [(400, CredentialsError), (403, CredentialsError), (429, CapacityError), (503, ServerError)],
)
def test_only_a_4xx_other_than_429_from_the_token_endpoint_is_a_credentials_error(
    endpoint: ScriptedTokenEndpoint,
    session: requests.Session,
    clock: FakeClock,
    store: MemoryTokenStore,
    status: int,
    raised: type[Exception],
) -> None:
    # given a token endpoint answering this status
    endpoint.script.append((status, json.dumps({"message": "no"})))
    tokens = provider(store, session, clock)
    # when a token is asked for, then a 4xx is the account's credentials problem; a 429 stays
    # a capacity signal and a 5xx an outage
    with pytest.raises(raised) as caught:
        tokens.token()
    assert type(caught.value) is raised


@pytest.mark.parametrize(
    "body",
    [
        "<html>gateway</html>",
        json.dumps({"accessToken": "tok-leak", "expiresIn": "86400"}),
        json.dumps({"accessToken": "tok-leak", "expiresIn": 0}),
        json.dumps({"accessToken": "tok-leak"}),
        json.dumps({"accessToken": 5, "expiresIn": 60}),
        json.dumps(["tok-leak"]),
    ],
)
def test_malformed_token_answer_raises_token_error_without_quoting_the_body(
    endpoint: ScriptedTokenEndpoint,
    session: requests.Session,
    clock: FakeClock,
    store: MemoryTokenStore,
    body: str,
) -> None:
    endpoint.script.append((200, body))
    tokens = provider(store, session, clock)
    with pytest.raises(TokenError) as caught:
        tokens.token()
    assert "tok-leak" not in str(caught.value)
    assert store.get("default") is None


@pytest.mark.parametrize(
    "exc", [requests.ReadTimeout("read timed out"), requests.ConnectionError("refused")]
)
def test_transport_failure_of_the_token_request_is_a_token_error_safe_to_retry(
    endpoint: ScriptedTokenEndpoint,
    session: requests.Session,
    clock: FakeClock,
    store: MemoryTokenStore,
    exc: Exception,
) -> None:
    # a token request that timed out started no call: the call's request was never sent
    endpoint.script.append(exc)
    with pytest.raises(TokenError):
        provider(store, session, clock).token()


def test_server_error_from_the_token_endpoint_stays_a_server_error(
    endpoint: ScriptedTokenEndpoint,
    session: requests.Session,
    clock: FakeClock,
    store: MemoryTokenStore,
) -> None:
    endpoint.script.append((503, '{"message": "down"}'))
    with pytest.raises(ServerError, match="down"):
        provider(store, session, clock).token()


def test_each_token_fetch_is_reported_once_as_a_token_attempt(
    endpoint: ScriptedTokenEndpoint,
    session: requests.Session,
    clock: FakeClock,
    store: MemoryTokenStore,
) -> None:
    endpoint.script.append((503, "{}"))
    endpoint.grant("tok-1", 86400)
    records: list[AttemptRecord] = []
    tokens = provider(store, session, clock)
    with pytest.raises(ServerError):
        tokens.token(on_attempt=records.append)
    tokens.token(on_attempt=records.append)
    tokens.token(on_attempt=records.append)  # cached: no attempt
    assert [(r.operation, r.status) for r in records] == [("token", 503), ("token", 200)]
    assert records[0].error == "ServerError: HTTP 503: {}"
    assert records[1].error is None


def test_a_waiter_takes_the_token_the_lock_holder_fetched(
    endpoint: ScriptedTokenEndpoint,
    session: requests.Session,
    clock: FakeClock,
    store: MemoryTokenStore,
) -> None:
    # given another worker holds the fetch lock, and puts its token while we poll
    holder = store.try_lock("default")
    assert holder is not None

    def holder_finishes(_: float) -> None:
        store.put("default", CachedToken("tok-held", clock.now + 86400))
        store.unlock("default", holder)

    tokens = provider(store, session, clock, sleep=holder_finishes)
    # when this worker needs a token
    # then it gets the holder's token without a request of its own
    assert tokens.token() == "tok-held"
    assert endpoint.bodies == []


def test_a_waiter_fetches_anyway_when_the_lock_holder_never_finishes(
    endpoint: ScriptedTokenEndpoint,
    session: requests.Session,
    clock: FakeClock,
    store: MemoryTokenStore,
) -> None:
    assert store.try_lock("default") is not None  # a holder that died
    endpoint.grant("tok-1", 86400)
    tokens = provider(store, session, clock, lock_wait_s=0.0, sleep=lambda _: None)
    assert tokens.token() == "tok-1"


def test_memory_store_discards_only_the_named_token(clock: FakeClock) -> None:
    store = MemoryTokenStore(clock)
    store.put("a", CachedToken("tok-2", clock.now + 60))
    store.discard("a", "tok-1")
    assert store.get("a") == CachedToken("tok-2", clock.now + 60)
    store.discard("a", "tok-2")
    assert store.get("a") is None


def test_memory_store_forgets_expired_tokens(clock: FakeClock) -> None:
    store = MemoryTokenStore(clock)
    store.put("a", CachedToken("tok-1", clock.now + 60))
    clock.now += 60
    assert store.get("a") is None


def test_fetch_lock_is_exclusive_and_released_only_by_its_owner(clock: FakeClock) -> None:
    store = MemoryTokenStore(clock)
    owner = store.try_lock("a")
    assert owner is not None
    assert store.try_lock("a") is None
    store.unlock("a", "someone-else")
    assert store.try_lock("a") is None
    store.unlock("a", owner)
    assert store.try_lock("a") is not None


def test_cached_token_repr_hides_the_value() -> None:
    text = repr(CachedToken("tok-secret", 1234.0))
    assert "tok-secret" not in text
    assert "1234" in text
