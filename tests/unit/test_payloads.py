"""The exact endpoint:connect bodies built from a CallRequest (docs/symbl-api.md §3.1-3.5)."""

from __future__ import annotations

import pytest

from dialq.calls.request import parse_call_request
from dialq.symbl.payloads import api_phone_number, start_body, stop_body

EMAIL_ACTION = {
    "invokeOn": "stop",
    "name": "sendSummaryEmail",
    "parameters": {"emails": ["a@example.com", "b@example.com"]},
}


@pytest.mark.parametrize(
    ("request_fields", "body"),
    [
        pytest.param(
            {"phone_number": "+14155550123"},
            {"operation": "start", "endpoint": {"type": "pstn", "phoneNumber": "14155550123"}},
            id="pstn-minimal",
        ),
        pytest.param(
            {"phone_number": "(415) 555-0123", "dtmf": ",,123#"},
            {
                "operation": "start",
                "endpoint": {"type": "pstn", "phoneNumber": "14155550123", "dtmf": ",,123#"},
            },
            id="pstn-dtmf",
        ),
        pytest.param(
            {"sip_uri": "sip:8021@sip.example.com"},
            {"operation": "start", "endpoint": {"type": "sip", "uri": "sip:8021@sip.example.com"}},
            id="sip-minimal",
        ),
        pytest.param(
            {
                "phone_number": "+14155550123",
                "summary_emails": ["a@example.com", "b@example.com"],
                "session_name": "Renewal",
                "languages": ["es-US"],
                "timezone": "America/Chicago",
            },
            {
                "operation": "start",
                "endpoint": {"type": "pstn", "phoneNumber": "14155550123"},
                "actions": [EMAIL_ACTION],
                "data": {"session": {"name": "Renewal"}},
                "languages": ["es-US"],
                "timezone": "America/Chicago",
            },
            id="pstn-everything",
        ),
        pytest.param(
            {"sip_uri": "sips:room@meet.example.com", "summary_emails": ["a@example.com"]},
            {
                "operation": "start",
                "endpoint": {"type": "sip", "uri": "sips:room@meet.example.com"},
                "actions": [
                    {
                        "invokeOn": "stop",
                        "name": "sendSummaryEmail",
                        "parameters": {"emails": ["a@example.com"]},
                    }
                ],
            },
            id="sip-emails",
        ),
        pytest.param(
            # dialq-only fields never reach Symbl
            {
                "phone_number": "+14155550123",
                "priority": 9,
                "max_duration_s": 60,
                "account": "sales",
                "callback_url": "https://example.com/cb",
                "not_before": "2030-01-01T00:00:00Z",
                "idempotency_key": "k1",
            },
            {"operation": "start", "endpoint": {"type": "pstn", "phoneNumber": "14155550123"}},
            id="dialq-fields-stay-home",
        ),
    ],
)
def test_start_body(request_fields: dict[str, object], body: dict[str, object]) -> None:
    assert start_body(parse_call_request(request_fields)) == body


@pytest.mark.parametrize(
    ("given_number", "allowed", "sent"),
    [
        ("+14155550123", {1}, "14155550123"),
        ("415-555-0123", {1}, "14155550123"),
        ("+442071838750", {44}, "442071838750"),
    ],
)
def test_the_phone_number_is_sent_without_the_plus(
    given_number: str, allowed: set[int], sent: str
) -> None:
    request = parse_call_request({"phone_number": given_number}, allowed_country_codes=allowed)
    endpoint = start_body(request)["endpoint"]
    assert isinstance(endpoint, dict)
    assert endpoint["phoneNumber"] == sent
    assert sent.isdigit()


@pytest.mark.parametrize(("e164", "sent"), [("+14155550123", "14155550123"), ("1415", "1415")])
def test_api_phone_number_strips_only_the_leading_plus(e164: str, sent: str) -> None:
    assert api_phone_number(e164) == sent


def test_start_body_copies_lists_so_the_request_stays_untouched() -> None:
    request = parse_call_request({"phone_number": "+14155550123", "summary_emails": ["a@b.co"]})
    body = start_body(request)
    body["actions"][0]["parameters"]["emails"].append("x@y.co")  # type: ignore[index]
    assert request.summary_emails == ["a@b.co"]


@pytest.mark.parametrize("connection_id", ["771a8757-eff8-4b6c-97cd-64132a7bfc6e", "c1"])
def test_stop_body(connection_id: str) -> None:
    assert stop_body(connection_id) == {"operation": "stop", "connectionId": connection_id}
