"""The API session reads the environment's proxy and CA settings once per host, as requests
would read them per request."""

from __future__ import annotations

import pytest
import requests

from dialq.symbl.transport import ApiSession

API = "https://api.symbl.ai/v1/endpoint:connect"


def settings_for(session: requests.Session, url: str) -> dict[str, object]:
    # What Session.request hands to send(): the same call, with what it passes by default.
    return dict(session.merge_environment_settings(url, {}, None, None, None))


def https_proxy(session: requests.Session, url: str) -> object:
    return session.merge_environment_settings(url, {}, None, None, None)["proxies"].get("https")


@pytest.fixture
def proxied(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "sandbox.internal")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/dialq/ca.pem")


@pytest.mark.usefixtures("proxied")
def test_the_session_honours_proxies_no_proxy_and_the_ca_bundle_as_requests_does() -> None:
    # given proxy, no_proxy and CA bundle settings in the environment
    ours, plain = ApiSession(), requests.Session()
    # then each host gets what a plain requests session would give it
    for url in (API, "https://sandbox.internal/oauth2/token:generate"):
        assert settings_for(ours, url) == settings_for(plain, url)
    assert https_proxy(ours, API) == "http://proxy.internal:3128"
    assert settings_for(ours, "https://sandbox.internal/x")["proxies"] == {}
    assert settings_for(ours, API)["verify"] == "/etc/dialq/ca.pem"


@pytest.mark.usefixtures("proxied")
def test_the_environment_is_read_once_per_host_not_per_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a session that has sent to the API once
    session = ApiSession()
    first = settings_for(session, API)
    # when the environment changes afterwards
    monkeypatch.setenv("HTTPS_PROXY", "http://elsewhere:8080")
    # then that host keeps the settings read at its first request
    assert settings_for(session, API) == first
    # and a host not seen before reads the environment as it is now
    assert https_proxy(session, "https://other.example/") == "http://elsewhere:8080"


@pytest.mark.usefixtures("proxied")
def test_what_a_caller_changes_in_the_settings_never_reaches_the_next_request() -> None:
    # given the settings of one request, changed by whoever received them
    session = ApiSession()
    settings = session.merge_environment_settings(API, {}, None, None, None)
    settings["proxies"]["https"] = "http://tampered:1"
    settings["verify"] = False
    # then the next request to that host gets the environment's settings
    assert https_proxy(session, API) == "http://proxy.internal:3128"
    assert settings_for(session, API)["verify"] == "/etc/dialq/ca.pem"


@pytest.mark.usefixtures("proxied")
def test_proxies_given_with_a_request_win_and_are_not_remembered() -> None:
    # given a request that names its own proxy
    session = ApiSession()
    given = session.merge_environment_settings(
        API, {"https": "http://explicit:9000"}, None, None, None
    )
    # then it is used for that request, and the next one is back to the environment's
    assert given["proxies"]["https"] == "http://explicit:9000"
    assert https_proxy(session, API) == "http://proxy.internal:3128"
