"""The documented contract (docs/symbl-api.md §2, §3, §9) over real HTTP: every case in its
tables."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from dialq.sandbox import RunningSandbox, start_sandbox
from tests.fixtures_sandbox import (
    SDK_START_BODY,
    TEST_APP_ID,
    TEST_APP_SECRET,
    SandboxClient,
    test_config,
)

TOKEN_FAILED = {"message": "Token validation failed for provided token."}
EMAIL_ACTION = {
    "invokeOn": "stop",
    "name": "sendSummaryEmail",
    "parameters": {"emails": ["a@b.co"]},
}


@pytest.fixture(scope="module")
def shared() -> Iterator[RunningSandbox]:
    """One sandbox for the table tests: each case only reads or makes a call it stops."""
    running = start_sandbox(test_config(max_concurrent=1000), host="127.0.0.1", port=0)
    yield running
    running.stop()


@pytest.fixture
def api(shared: RunningSandbox) -> Iterator[SandboxClient]:
    client = SandboxClient(shared.url)
    yield client
    client.close()


def start_body(**changes: Any) -> dict[str, Any]:
    """The SDK's body with dotted-path changes; a value of ... deletes the field."""
    body = copy.deepcopy(SDK_START_BODY)
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        target = body
        for parent in parents:
            target = target.setdefault(parent, {})
        if value is ...:
            target.pop(leaf, None)
        else:
            target[leaf] = value
    return body


NOT_E164 = '"endpoint.phoneNumber" must be an E.164'
NOT_NANP = '"endpoint.phoneNumber" must be a US or Canada'


def phone(number: Any) -> dict[str, Any]:
    return start_body(endpoint__phoneNumber=number)


def users(value: Any) -> dict[str, Any]:
    return start_body(data={"session": {"name": "My Awesome Meet", "users": value}})


SIP = {"type": "sip", "uri": "sip:8021@sip.rammer.ai"}
JOHN = {"user": {"name": "John", "userId": "john@symbl.ai", "role": "organizer"}}
ALL_INTENTS = "[answering_machine, interested, not_interested, do_not_call]"


VALID_STARTS = {
    "the exact Python SDK body": start_body(),
    "leading plus": phone("+14082924837"),
    "Canadian number": phone("16135550123"),
    "no dtmf field": start_body(endpoint__dtmf=...),
    "Zoom dtmf": start_body(endpoint__dtmf=",,93929312#,,123456#"),
    "dtmf with star": start_body(endpoint__dtmf="*1#,#2#"),
    "sip uri": start_body(endpoint={"type": "sip", "uri": "sip:8021@sip.rammer.ai"}),
    "sips with audioConfig": start_body(
        endpoint={
            "type": "sip",
            "uri": "sips:8021@sip.example.com",
            "audioConfig": {"sampleRate": 48000, "encoding": "OPUS", "sampleSize": 16},
        }
    ),
    "sdk sip audioConfig": start_body(
        endpoint={
            "type": "sip",
            "uri": "sip:1@x",
            "audioConfig": {"sampleRate": 16000, "sampleSize": "16"},
        }
    ),
    "actions array": start_body(actions=[EMAIL_ACTION]),
    "actions omitted": start_body(actions=...),
    "languages as strings": start_body(languages=["es-US"]),
    "languages as objects": start_body(languages=[{"code": "en-GB"}]),
    "empty languages": start_body(languages=[]),
    "IANA timezone": start_body(timezone="US/Pacific"),
    "Asia timezone": start_body(timezone="Asia/Tokyo"),
    "session name": start_body(data={"session": {"name": "Weekly sync"}}),
    "JS timezone in data": start_body(
        data={"session": {"location": {"timeZone": {"name": "Europe/Paris"}}}}
    ),
    "unknown extras": start_body(intents=[{"intent": "answering_machine"}], headers={"a": "b"}),
    "summary email on start": start_body(actions=[{**EMAIL_ACTION, "invokeOn": "start"}]),
    "every intent, with silence timeouts": start_body(
        intents=[
            {"intent": "answering_machine", "silenceTimeout": 10},
            {"intent": "interested", "silenceTimeout": 2.5},
            {"intent": "not_interested"},
            {"intent": "do_not_call"},
        ]
    ),
    "empty intents": start_body(intents=[]),
    "JS SDK sip defaults": start_body(
        endpoint={
            **SIP,
            "providerName": "AnyMeeting",
            "transportConfig": "transport=UDP;providerName=AnyMeeting;audioTransport=RTP",
        }
    ),
    "D-TSIP providerName": start_body(endpoint={**SIP, "providerName": "Symbl"}),
    "swagger endpoint extras": start_body(
        endpoint__language="en-US", endpoint__timezoneOffset=-480, endpoint__idleTimeout=-1
    ),
    "idle timeout in seconds": start_body(endpoint__idleTimeout=300),
    "idle timeout zero": start_body(endpoint__idleTimeout=0),
    "getTimezoneOffset sign": start_body(endpoint__timezoneOffset=480),
    "widest offsets": start_body(endpoint__timezoneOffset=840, endpoint__language="es-419"),
    "half-hour offset": start_body(endpoint__timezoneOffset=330, endpoint__language="hi-IN"),
    "language with script": start_body(endpoint__language="zh-Hant-TW"),
    "webhook and callback URLs": start_body(
        endpointWebhookUrl="https://hooks.example.com/symbl?team=7",
        callbackUrl="http://127.0.0.1:8080/callback",
    ),
    "nulls for optional fields": start_body(
        intents=None,
        endpointWebhookUrl=None,
        callbackUrl=None,
        endpoint__providerName=None,
        endpoint__language=None,
        endpoint__timezoneOffset=None,
        endpoint__idleTimeout=None,
    ),
    "session users": users([JOHN]),
    "empty session users": users([]),
    "swagger SessionUser status and mode": users(
        [
            {**JOHN, "status": "joined", "mode": "native"},
            {"user": {"userId": "ana@example.com"}, "status": "not_joined", "mode": "external"},
            {"user": {}, "status": "left", "mode": "custom"},
        ]
    ),
    "JS SDK startEndpoint body": start_body(
        actions=[EMAIL_ACTION],
        intents=[{"intent": "interested"}],
        endpointWebhookUrl="https://example.com/webhook",
        headers={"x-meeting": "7"},
        validationToken="abc",
        languages=[{"code": "en-US"}],
        data={
            "session": {
                "name": "My Awesome Meet",
                "users": [JOHN],
                "location": {"timeZone": {"name": "US/Pacific"}},
            }
        },
    ),
}

INVALID_STARTS = {
    "no operation": ({"endpoint": SDK_START_BODY["endpoint"]}, '"operation" is required'),
    "bad operation": (start_body(operation="begin"), '"operation" must be one of [start, stop]'),
    "no endpoint": (start_body(endpoint=...), '"endpoint" is required'),
    "endpoint not object": (start_body(endpoint="pstn"), '"endpoint" must be of type object'),
    "no type": (start_body(endpoint__type=...), '"endpoint.type" is required'),
    "type zoom": (start_body(endpoint__type="zoom"), '"endpoint.type" must be one of [pstn, sip]'),
    "pstn without number": (phone(...), '"endpoint.phoneNumber" is required'),
    "number not string": (phone(14082924837), '"endpoint.phoneNumber" must be a string'),
    "parentheses": (phone("(408) 292-4837"), NOT_E164),
    "dashes": (phone("1-408-292-4837"), NOT_E164),
    "spaces": (phone("1 408 292 4837"), NOT_E164),
    "international prefix 00": (phone("0014082924837"), NOT_E164),
    "too short": (phone("+1408"), NOT_E164),
    "UK number": (phone("+442079460958"), NOT_NANP),
    "no country code": (phone("4082924837"), NOT_NANP),
    "area code 1xx": (phone("11082924837"), NOT_NANP),
    "exchange 1xx": (phone("14081924837"), NOT_NANP),
    "sip without uri": (start_body(endpoint={"type": "sip"}), '"endpoint.uri" is required'),
    "sip uri without scheme": (
        start_body(endpoint={"type": "sip", "uri": "8021@x"}),
        '"endpoint.uri" must be a SIP URI',
    ),
    "dtmf letters": (start_body(endpoint__dtmf="123A#"), '"endpoint.dtmf" must contain only'),
    "dtmf w pause": (start_body(endpoint__dtmf="123w4"), '"endpoint.dtmf" must contain only'),
    "dtmf empty": (start_body(endpoint__dtmf=""), '"endpoint.dtmf" is not allowed to be empty'),
    "dtmf number": (start_body(endpoint__dtmf=123), '"endpoint.dtmf" must be a string'),
    "actions string": (start_body(actions="email"), '"actions" must be an array'),
    "actions non-empty object": (start_body(actions={"name": "x"}), '"actions" must be an array'),
    "action no invokeOn": (
        start_body(actions=[{**EMAIL_ACTION, "invokeOn": None}]),
        '"actions[0].invokeOn" is required',
    ),
    "action bad invokeOn": (
        start_body(actions=[{**EMAIL_ACTION, "invokeOn": "end"}]),
        '"actions[0].invokeOn" must be one of [start, stop]',
    ),
    "action bad name": (
        start_body(actions=[{**EMAIL_ACTION, "name": "sendSms"}]),
        '"actions[0].name" must be one of [sendSummaryEmail]',
    ),
    "action no parameters": (
        start_body(actions=[{"invokeOn": "stop", "name": "sendSummaryEmail"}]),
        '"actions[0].parameters" is required',
    ),
    "action no emails": (
        start_body(actions=[{**EMAIL_ACTION, "parameters": {}}]),
        '"actions[0].parameters.emails" is required',
    ),
    "action empty emails": (
        start_body(actions=[{**EMAIL_ACTION, "parameters": {"emails": []}}]),
        '"actions[0].parameters.emails" must contain at least 1 items',
    ),
    "action bad email": (
        start_body(
            actions=[EMAIL_ACTION, {**EMAIL_ACTION, "parameters": {"emails": ["a@b.co", "nope"]}}]
        ),
        '"actions[1].parameters.emails[1]" must be a valid email',
    ),
    "languages string": (start_body(languages="en-US"), '"languages" must be an array'),
    "unsupported language": (
        start_body(languages=["xx-XX"]),
        '"languages[0]" must be one of [en-US',
    ),
    "unsupported language code": (
        start_body(languages=[{"code": "en"}]),
        '"languages[0].code" must be one of',
    ),
    "bad timezone": (start_body(timezone="Mars/Olympus"), '"timezone" must be a valid IANA'),
    "timezone number": (start_body(timezone=-8), '"timezone" must be a string'),
    "data not object": (start_body(data=[]), '"data" must be of type object'),
    "session name number": (
        start_body(data={"session": {"name": 7}}),
        '"data.session.name" must be a string',
    ),
    "bad sampleRate": (
        start_body(
            endpoint={"type": "sip", "uri": "sip:1@x", "audioConfig": {"sampleRate": "fast"}}
        ),
        '"endpoint.audioConfig.sampleRate" must be a number',
    ),
    "audioConfig not object": (
        start_body(endpoint={"type": "sip", "uri": "sip:1@x", "audioConfig": "PCMU"}),
        '"endpoint.audioConfig" must be of type object',
    ),
    "intents object": (
        start_body(intents={"intent": "interested"}),
        '"intents" must be an array',
    ),
    "intent as string": (start_body(intents=["interested"]), '"intents[0]" must be of type object'),
    "intent missing": (
        start_body(intents=[{"silenceTimeout": 5}]),
        '"intents[0].intent" is required',
    ),
    "unknown intent": (
        start_body(intents=[{"intent": "interested"}, {"intent": "angry"}]),
        f'"intents[1].intent" must be one of {ALL_INTENTS}',
    ),
    "intent upper case": (
        start_body(intents=[{"intent": "DO_NOT_CALL"}]),
        f'"intents[0].intent" must be one of {ALL_INTENTS}',
    ),
    "silenceTimeout string": (
        start_body(intents=[{"intent": "interested", "silenceTimeout": "5s"}]),
        '"intents[0].silenceTimeout" must be a number',
    ),
    "idleTimeout string": (
        start_body(endpoint__idleTimeout="60"),
        '"endpoint.idleTimeout" must be a number',
    ),
    "idleTimeout boolean": (
        start_body(endpoint__idleTimeout=True),
        '"endpoint.idleTimeout" must be a number',
    ),
    "idleTimeout below -1": (
        start_body(endpoint__idleTimeout=-5),
        '"endpoint.idleTimeout" must be -1 (no timeout) or seconds >= 0',
    ),
    "providerName number": (
        start_body(endpoint={**SIP, "providerName": 7}),
        '"endpoint.providerName" must be a string',
    ),
    "providerName empty": (
        start_body(endpoint={**SIP, "providerName": ""}),
        '"endpoint.providerName" is not allowed to be empty',
    ),
    "language with underscore": (
        start_body(endpoint__language="en_US"),
        '"endpoint.language" must be a BCP-47 language tag',
    ),
    "language as a name": (
        start_body(endpoint__language="English (US)"),
        '"endpoint.language" must be a BCP-47 language tag',
    ),
    "language array": (
        start_body(endpoint__language=["en-US"]),
        '"endpoint.language" must be a string',
    ),
    "timezoneOffset string": (
        start_body(endpoint__timezoneOffset="-08:00"),
        '"endpoint.timezoneOffset" must be a number',
    ),
    "timezoneOffset in seconds": (
        start_body(endpoint__timezoneOffset=-28800),
        '"endpoint.timezoneOffset" must be minutes from UTC',
    ),
    "webhook without scheme": (
        start_body(endpointWebhookUrl="hooks.example.com/symbl"),
        '"endpointWebhookUrl" must be an http or https URL',
    ),
    "webhook ftp": (
        start_body(endpointWebhookUrl="ftp://example.com/x"),
        '"endpointWebhookUrl" must be an http or https URL',
    ),
    "webhook without host": (
        start_body(endpointWebhookUrl="https:///x"),
        '"endpointWebhookUrl" must be an http or https URL',
    ),
    "webhook empty": (
        start_body(endpointWebhookUrl=""),
        '"endpointWebhookUrl" is not allowed to be empty',
    ),
    "callbackUrl number": (start_body(callbackUrl=5), '"callbackUrl" must be a string'),
    "callbackUrl with a space": (
        start_body(callbackUrl="https://example.com/call back"),
        '"callbackUrl" must be an http or https URL',
    ),
    "callbackUrl broken IPv6": (
        start_body(callbackUrl="http://[::1/x"),
        '"callbackUrl" must be an http or https URL',
    ),
    "users object": (users(JOHN), '"data.session.users" must be an array'),
    "user entry string": (users(["John"]), '"data.session.users[0]" must be of type object'),
    "user entry without user": (
        users([JOHN, {"name": "Ana"}]),
        '"data.session.users[1].user" is required',
    ),
    "user not object": (
        users([{"user": "John"}]),
        '"data.session.users[0].user" must be of type object',
    ),
    "user name number": (
        users([{"user": {"name": 1}}]),
        '"data.session.users[0].user.name" must be a string',
    ),
    "userId empty": (
        users([{"user": {"name": "John", "userId": ""}}]),
        '"data.session.users[0].user.userId" is not allowed to be empty',
    ),
    "user role number": (
        users([{"user": {"role": 3}}]),
        '"data.session.users[0].user.role" must be a string',
    ),
    "user status": (
        users([{**JOHN, "status": "gone"}]),
        '"data.session.users[0].status" must be one of [joined, not_joined, left]',
    ),
    "user mode": (
        users([{**JOHN, "mode": "robot"}]),
        '"data.session.users[0].mode" must be one of [native, external, custom]',
    ),
    "body not object": (["start"], '"value" must be of type object'),
    "stop without connectionId": ({"operation": "stop"}, '"connectionId" is required'),
}


@pytest.mark.parametrize("body", VALID_STARTS.values(), ids=VALID_STARTS.keys())
def test_valid_start_bodies_get_201_with_all_four_fields(
    api: SandboxClient, body: dict[str, Any]
) -> None:
    # when a documented start body is sent
    response = api.start(body)
    # then the call is created, with URLs on the sandbox's own base
    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) == {"eventUrl", "resultWebSocketUrl", "connectionId", "conversationId"}
    assert created["eventUrl"] == f"{api.url}/v1/event/{created['connectionId']}"
    ws_base = api.url.replace("http://", "ws://")
    assert created["resultWebSocketUrl"] == f"{ws_base}/events/{created['connectionId']}"
    assert len(created["conversationId"]) == 16
    assert created["conversationId"].isdigit()
    assert api.stop(created["connectionId"]).status_code == 200


@pytest.mark.parametrize(("body", "message"), INVALID_STARTS.values(), ids=INVALID_STARTS.keys())
def test_invalid_bodies_get_400_naming_the_field(
    api: SandboxClient, body: Any, message: str
) -> None:
    # when a body that breaks the contract is sent
    response = api.start(body)
    # then it is refused with a Joi-style message that starts with the field's path
    assert response.status_code == 400
    assert response.json()["message"].startswith(message), response.json()


def test_a_non_json_body_is_a_400(api: SandboxClient) -> None:
    response = api.session.post(
        api.url + "/v1/endpoint:connect",
        data=b"operation=start",
        headers={"x-api-key": api.token()},
    )
    assert response.status_code == 400
    assert response.json() == {"message": '"value" must be of type object'}


def test_any_country_is_accepted_when_nanp_only_is_off(
    make_sandbox: Callable[..., RunningSandbox], make_sandbox_client: Callable[..., SandboxClient]
) -> None:
    client = make_sandbox_client(make_sandbox(nanp_only=False))
    assert client.start(phone("+442079460958")).status_code == 201
    assert client.start(phone("(44) 2079")).status_code == 400


def test_stop_answers_200_with_the_ids_and_summary_info_then_404(api: SandboxClient) -> None:
    # given a live call
    created = api.start().json()
    # when it is stopped twice
    first, second = api.stop(created["connectionId"]), api.stop(created["connectionId"])
    # then the first answers the four fields and summaryInfo, the second 404
    assert first.status_code == 200
    stopped = first.json()
    assert {k: stopped[k] for k in created} == created
    assert stopped["summaryInfo"][0]["url"].startswith(api.url)
    assert {"id", "userId", "name"} <= set(stopped["summaryInfo"][0]["user"])
    assert second.status_code == 404
    assert "message" in second.json()
    assert api.stop("9f0e7d9e-0000-4000-8000-000000000000").status_code == 404


@pytest.mark.parametrize("header", ["x-api-key", "X-API-KEY", "X-Api-Key", "Authorization"])
def test_both_auth_headers_are_accepted_in_any_case(api: SandboxClient, header: str) -> None:
    value = f"Bearer {api.token()}" if header == "Authorization" else api.token()
    response = api.session.post(
        api.url + "/v1/endpoint:connect", json=start_body(), headers={header: value}, timeout=5
    )
    assert response.status_code == 201
    api.stop(response.json()["connectionId"])


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-api-key": "nonsense"},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": "Basic abc"},
    ],
    ids=["missing", "unknown key", "unknown bearer", "not bearer"],
)
def test_missing_or_unknown_tokens_get_401_on_every_api_path(
    api: SandboxClient, headers: dict[str, str]
) -> None:
    for method, path in [
        ("POST", "/v1/endpoint:connect"),
        ("POST", "/v1/event/any"),
        ("GET", "/v1/conversations/1234567890123456"),
        ("GET", "/v1/conversations/1234567890123456/messages"),
    ]:
        response = api.session.request(method, api.url + path, json=start_body(), headers=headers)
        assert (response.status_code, response.json()) == (401, TOKEN_FAILED), path


def test_bad_credentials_get_401_and_a_bad_body_400(api: SandboxClient) -> None:
    url = api.url + "/oauth2/token:generate"
    wrong = {"type": "application", "appId": TEST_APP_ID, "appSecret": "wrong"}
    assert api.session.post(url, json=wrong).status_code == 401
    missing = api.session.post(url, json={"type": "application", "appId": TEST_APP_ID})
    assert (missing.status_code, missing.json()) == (400, {"message": '"appSecret" is required'})
    bad_type = {"type": "password", "appId": TEST_APP_ID, "appSecret": TEST_APP_SECRET}
    assert (
        api.session.post(url, json=bad_type).json()["message"].startswith('"type" must be one of')
    )


def test_token_generate_returns_the_cached_token_with_a_smaller_expires_in(
    make_sandbox: Callable[..., RunningSandbox],
) -> None:
    # given a sandbox with 100-second tokens
    running = make_sandbox(token_ttl_s=100.0)
    body = {"type": "application", "appId": TEST_APP_ID, "appSecret": TEST_APP_SECRET}
    # when a token is generated twice, a second apart
    first = requests.post(running.url + "/oauth2/token:generate", json=body, timeout=5).json()
    time.sleep(1.0)
    second = requests.post(running.url + "/oauth2/token:generate", json=body, timeout=5).json()
    # then the same token comes back with less time left
    assert first["expiresIn"] == 100
    assert second["accessToken"] == first["accessToken"]
    assert second["expiresIn"] < first["expiresIn"]


def test_an_expired_token_gets_401_and_a_new_token_works(
    make_sandbox: Callable[..., RunningSandbox], make_sandbox_client: Callable[..., SandboxClient]
) -> None:
    # given a token that lives one second
    client = make_sandbox_client(make_sandbox(token_ttl_s=1.0))
    old = client.token()
    assert client.start().status_code == 201
    # when it has expired
    time.sleep(1.1)
    # then the API refuses it, and token:generate hands out a new one
    refused = client.start()
    assert (refused.status_code, refused.json()) == (401, TOKEN_FAILED)
    client._token = None
    assert client.token() != old
    assert client.start().status_code == 201
