"""Free text refuses what disguises it; summary e-mails can be held to allowed domains."""

from __future__ import annotations

import pytest

from dialq.calls.request import InvalidCallRequest, parse_call_request

VALID = {"phone_number": "+14155550123"}


@pytest.mark.parametrize(
    "name",
    [
        "invoice\u202egnp.exe",  # right-to-left override
        "a\u2066b\u2069",  # isolates
        "mark\u200f",  # right-to-left mark
        "line\u2028separator",
        "tab\tinside",
        "esc\x1b[2J",
    ],
)
def test_a_session_name_with_bidi_or_control_characters_is_refused_naming_the_field(
    name: str,
) -> None:
    with pytest.raises(InvalidCallRequest) as caught:
        parse_call_request({**VALID, "session_name": name})
    text = str(caught.value)
    assert "session_name" in text
    assert "control characters or bidirectional overrides" in text


def test_a_session_name_in_any_script_is_accepted() -> None:
    for name in ("Réunion hebdo", "اجتماع الفريق", "会議", "team 👩‍👩‍👧 sync"):
        assert parse_call_request({**VALID, "session_name": name}).session_name == name


def test_summary_e_mails_outside_the_allowed_domains_are_refused() -> None:
    request = {**VALID, "summary_emails": ["ops@example.com", "x@evil.example"]}
    with pytest.raises(InvalidCallRequest) as caught:
        parse_call_request(request, summary_email_domains=["Example.com"])
    assert "summary_emails" in str(caught.value)
    assert "example.com" in str(caught.value)
    assert "evil" not in str(caught.value)


def test_summary_e_mails_at_allowed_domains_or_without_a_list_are_accepted() -> None:
    request = {**VALID, "summary_emails": ["ops@EXAMPLE.com"]}
    assert parse_call_request(request, summary_email_domains=["example.com"]).summary_emails
    assert parse_call_request({**VALID, "summary_emails": ["x@evil.example"]}).summary_emails
