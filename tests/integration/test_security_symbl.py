"""Secrets out of API errors, before and after JSON decoding; a shared token cache that is of no
use without the account's app secret. The sandbox over HTTP, a real Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis
import requests
from pydantic import SecretStr

from dialq.config import Account
from dialq.sandbox import RunningSandbox, SandboxConfig, start_sandbox
from dialq.symbl.auth import RedisTokenStore, TokenProvider, TokenStore
from dialq.symbl.errors import APIStatusError
from dialq.symbl.transport import AttemptRecord

APP_ID = "sec-app"
APP_SECRET = "app-secret-7Hq2Vx9Lm4Zr"
TOKEN_PATH = {"path": "/oauth2/token:generate", "method": "POST"}


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    running = start_sandbox(SandboxConfig(app_id=APP_ID, app_secret=APP_SECRET))
    yield running
    running.stop()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def provider(base_url: str, store: TokenStore, secret: str = APP_SECRET) -> TokenProvider:
    return TokenProvider(
        "default",
        Account(app_id=APP_ID, app_secret=SecretStr(secret), base_url=base_url),
        store,
        requests.Session(),
        renew_margin_s=300.0,
        connect_timeout_s=2.0,
        read_timeout_s=2.0,
    )


def escaped(text: str) -> str:
    """The text as JSON may spell it: every character a \\u escape."""
    return "".join(f"\\u{ord(ch):04x}" for ch in text)


@pytest.mark.parametrize(
    "body",
    [
        # the secret echoed JSON-escaped: only decoding shows it
        '{"message": "invalid appSecret ' + escaped(APP_SECRET) + '"}',
        # echoed as sent, in the message and elsewhere in the body
        json.dumps({"message": f"bad secret {APP_SECRET}", "request": {"s": APP_SECRET}}),
        # not JSON at all
        f"<html>secret {APP_SECRET} refused</html>",
    ],
)
def test_a_token_error_that_echoes_the_app_secret_carries_it_nowhere(
    sandbox: RunningSandbox, redis_client: redis.Redis, body: str
) -> None:
    # given the token endpoint answers 400 with a body quoting the app secret
    action = {"type": "status", "status": 400, "body": body, "content_type": "application/json"}
    sandbox.control.script([{"match": TOKEN_PATH, "times": 1, "action": action}])
    attempts: list[AttemptRecord] = []
    tokens = provider(sandbox.url, RedisTokenStore(redis_client))
    # when a token is asked for
    with pytest.raises(APIStatusError) as caught:
        tokens.token(on_attempt=attempts.append)
    # then neither the error (what call rows and webhooks are built from) nor the attempt
    # record holds the secret, in any spelling
    error = caught.value
    shown = [str(error), error.message, error.body, *(a.error or "" for a in attempts)]
    for text in shown:
        assert APP_SECRET not in text
        assert APP_SECRET not in json.loads(json.dumps(text))
        assert escaped(APP_SECRET) not in text
    assert "[redacted]" in error.message or "redacted" in error.body


def test_the_cached_token_in_redis_is_sealed_and_useless_without_the_app_secret(
    sandbox: RunningSandbox, redis_client: redis.Redis
) -> None:
    # given a worker that fetched a token into the shared cache
    token = provider(sandbox.url, RedisTokenStore(redis_client)).token()
    # then Redis does not hold the token in any form a broker client could use
    stored: dict[bytes, bytes] = redis_client.hgetall("dialq:token:default")  # type: ignore[assignment]
    assert all(token.encode() not in value for value in stored.values())
    assert (
        requests.post(
            sandbox.url + "/v1/endpoint:connect",
            headers={"x-api-key": stored[b"value"].decode()},
            json={"operation": "start", "endpoint": {"type": "pstn", "phoneNumber": "14155550177"}},
            timeout=5,
        ).status_code
        == 401
    )
    # and a store keyed with another secret finds no token, while one with the account's
    # secret opens it and needs no new fetch
    wrong = RedisTokenStore(redis_client)
    wrong.protect("default", "not-the-app-secret")
    assert wrong.get("default") is None
    right = RedisTokenStore(redis_client)
    right.protect("default", APP_SECRET)
    found = right.get("default")
    assert found is not None
    assert found.value == token
    fetched = [r for r in sandbox.control.requests() if r["path"] == "/oauth2/token:generate"]
    assert provider(sandbox.url, RedisTokenStore(redis_client)).token() == token
    assert len(fetched) == 1


def test_a_plain_token_left_in_redis_is_not_used_and_is_replaced_sealed(
    sandbox: RunningSandbox, redis_client: redis.Redis
) -> None:
    # given a token written before sealing (or by someone without the secret)
    redis_client.hset("dialq:token:default", mapping={"value": "planted", "expires_at": "9e9"})
    # when a worker needs a token, then it fetches its own and seals it
    token = provider(sandbox.url, RedisTokenStore(redis_client)).token()
    assert token != "planted"
    assert redis_client.hget("dialq:token:default", "value") not in (b"planted", token.encode())


def test_a_sealed_token_is_opened_once_yet_a_token_gone_from_redis_is_never_used(
    sandbox: RunningSandbox, redis_client: redis.Redis
) -> None:
    # given a worker that fetched a token and uses it again (opened once: the same sealed value)
    store = RedisTokenStore(redis_client)
    tokens = provider(sandbox.url, store)
    first = tokens.token()
    opened: list[str] = []
    key = store._keys["default"]
    real_decrypt = key.decrypt

    def counting_decrypt(value: bytes) -> bytes:
        opened.append("")
        return real_decrypt(value)

    key.decrypt = counting_decrypt  # type: ignore[method-assign,assignment]
    assert tokens.token() == first
    assert tokens.token() == first
    assert opened == []
    # when the token is deleted from Redis (revoked, or Redis restarted)
    redis_client.delete("dialq:token:default")
    fetches_before = len(sandbox.control.requests())
    again = tokens.token()
    # then a token is fetched from the API again, not taken from memory
    fetched = [
        r
        for r in sandbox.control.requests()[fetches_before:]
        if r.get("path") == TOKEN_PATH["path"]
    ]
    assert len(fetched) == 1
    assert tokens.token() == again
