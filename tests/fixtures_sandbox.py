"""Sandbox fixtures (a pytest plugin): real servers on free ports, stopped at teardown."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from dialq.config import Settings
from dialq.sandbox import RunningSandbox, SandboxConfig, start_sandbox

TEST_APP_ID = "sandbox-test-app"
TEST_APP_SECRET = "sandbox-test-secret"
SDK_START_BODY: dict[str, Any] = {
    "operation": "start",
    "endpoint": {"type": "pstn", "phoneNumber": "14082924837", "dtmf": None},
    "actions": {},
    "data": {},
    "pushSpeakerEvents": True,
}  # byte for byte what symbl 2.0.6's start_pstn sends (docs/symbl-api.md §7.1)


def test_config(**overrides: Any) -> SandboxConfig:
    """Known credentials, room for a few calls, calls that last until stopped."""
    settings: dict[str, Any] = {
        "app_id": TEST_APP_ID,
        "app_secret": TEST_APP_SECRET,
        "max_concurrent": 5,
    }
    settings.update(overrides)
    return SandboxConfig(**settings)


test_config.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def in_process_settings(database_url: str, redis_url: str, sandbox: RunningSandbox) -> Settings:
    """Settings for a runtime built in the test's own process, dialing this sandbox."""
    return Settings(
        database_url=database_url,
        broker_url=redis_url,
        symbl_base_url=sandbox.url,
        symbl_app_id=TEST_APP_ID,
        symbl_app_secret=TEST_APP_SECRET,
    )


@dataclass
class SandboxClient:
    """Plain HTTP against a sandbox, the way any Symbl client would talk to it."""

    url: str
    timeout_s: float = 5.0
    session: requests.Session = field(default_factory=requests.Session)
    _token: str | None = None

    def token(self) -> str:
        if self._token is None:
            body = {"type": "application", "appId": TEST_APP_ID, "appSecret": TEST_APP_SECRET}
            response = self.post("/oauth2/token:generate", body, auth=False)
            assert response.status_code == 200, response.text
            self._token = str(response.json()["accessToken"])
        return self._token

    def post(
        self, path: str, body: Any, *, auth: bool = True, headers: dict[str, str] | None = None
    ) -> requests.Response:
        sent = {"x-api-key": self.token()} if auth else {}
        sent.update(headers or {})
        return self.session.post(self.url + path, json=body, headers=sent, timeout=self.timeout_s)

    def get(self, path: str, *, headers: dict[str, str] | None = None) -> requests.Response:
        sent = headers if headers is not None else {"Authorization": f"Bearer {self.token()}"}
        return self.session.get(self.url + path, headers=sent, timeout=self.timeout_s)

    def start(
        self, body: Any = None, *, headers: dict[str, str] | None = None
    ) -> requests.Response:
        return self.post(
            "/v1/endpoint:connect", SDK_START_BODY if body is None else body, headers=headers
        )

    def stop(self, connection_id: str) -> requests.Response:
        body = {"operation": "stop", "connectionId": connection_id}
        return self.post("/v1/endpoint:connect", body)

    def close(self) -> None:
        self.session.close()


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., RunningSandbox]]:
    """Start sandboxes with ``test_config(**overrides)``; all are stopped at teardown."""
    started: list[RunningSandbox] = []

    def make(**overrides: Any) -> RunningSandbox:
        started.append(start_sandbox(test_config(**overrides), host="127.0.0.1", port=0))
        return started[-1]

    yield make
    for running in started:
        running.stop()


@pytest.fixture
def sandbox(make_sandbox: Callable[..., RunningSandbox]) -> RunningSandbox:
    """A fresh sandbox for one test: 5 concurrent calls, calls last until stopped."""
    return make_sandbox()


@pytest.fixture
def make_sandbox_client() -> Iterator[Callable[[RunningSandbox], SandboxClient]]:
    """HTTP clients for sandboxes, each with its own session, closed at teardown."""
    clients: list[SandboxClient] = []

    def make(running: RunningSandbox) -> SandboxClient:
        clients.append(SandboxClient(running.url))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def sandbox_client(
    sandbox: RunningSandbox, make_sandbox_client: Callable[[RunningSandbox], SandboxClient]
) -> SandboxClient:
    """An HTTP client for the ``sandbox`` fixture."""
    return make_sandbox_client(sandbox)
