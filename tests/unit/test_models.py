"""CallRequest validation: every field's rules, the by-name payload, and safe error messages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialq.calls.request import (
    CallRequest,
    FieldError,
    InvalidCallRequest,
    mask_phone,
    parse_call_request,
)

PHONE = "+14155550123"


def valid(**fields: object) -> dict[str, object]:
    """A minimal valid payload, with ``fields`` added or replaced."""
    return {"phone_number": PHONE, **fields}


def rejection(data: object, **kwargs: Any) -> InvalidCallRequest:
    with pytest.raises(InvalidCallRequest) as caught:
        parse_call_request(data, **kwargs)  # type: ignore[arg-type]
    return caught.value


def rules_for(error: InvalidCallRequest, field: str) -> list[str]:
    return [e.rule for e in error.errors if e.field == field]


def assert_rejected(data: object, field: str, rule_part: str, **kwargs: Any) -> None:
    # given a payload that breaks one rule / when it is parsed
    error = rejection(data, **kwargs)
    # then the field is named, with the rule, in the errors and in the message
    rules = rules_for(error, field)
    assert any(rule_part in rule for rule in rules), (field, error.errors)
    assert f"{field}: " in str(error)


# --- phone_number -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_number", "stored"),
    [
        ("+14155550123", "+14155550123"),
        ("14155550123", "+14155550123"),
        ("(415) 555-0123", "+14155550123"),
        ("415-555-0123", "+14155550123"),
        ("4155550123", "+14155550123"),
        ("+1 415 555 0123", "+14155550123"),
        ("  +1.415.555.0123  ", "+14155550123"),
        ("+16135550123", "+16135550123"),  # Canada is NANP too
        ("+18005550199", "+18005550199"),  # toll-free
    ],
)
def test_phone_number_formats_are_normalised_to_e164(given_number: str, stored: str) -> None:
    request = parse_call_request({"phone_number": given_number})
    assert request.phone_number == stored


@pytest.mark.parametrize(
    ("given_number", "rule_part"),
    [
        ("+442071838750", "must be a NANP (+1) number"),  # UK
        ("+33142685300", "must be a NANP (+1) number"),  # France
        ("+81312345678", "must be a NANP (+1) number"),  # Japan
        ("+5511912345678", "must be a NANP (+1) number"),  # Brazil
        ("+15555550123", "is not a valid phone number"),  # 555 is not an area code
        ("+1415555012", "is not a valid phone number"),  # one digit short
        ("555-0123", "is not a valid phone number"),  # no area code
        ("+14155550123 ext. 12", "must not have an extension"),
        ("not a number", "must be a phone number"),
        ("", "must be a phone number"),
        ("+", "must be a phone number"),
        ("1" * 65, "at most 64 characters"),
    ],
)
def test_phone_number_rejections_name_the_rule(given_number: str, rule_part: str) -> None:
    assert_rejected({"phone_number": given_number}, "phone_number", rule_part)


@pytest.mark.parametrize(
    ("given_number", "country_code", "stored"),
    [
        ("+44 20 7183 8750", 44, "+442071838750"),
        ("+33 1 42 68 53 00", 33, "+33142685300"),
        ("+49 30 901820", 49, "+4930901820"),
        ("+61 2 9123 4567", 61, "+61291234567"),
    ],
)
def test_other_regions_are_accepted_when_their_code_is_allowed(
    given_number: str, country_code: int, stored: str
) -> None:
    # given a non-NANP number, rejected by default
    assert_rejected({"phone_number": given_number}, "phone_number", "NANP")
    # when its country code is allowed / then it is accepted and stored as E.164
    allowed = {1, country_code}
    assert (
        parse_call_request(
            {"phone_number": given_number}, allowed_country_codes=allowed
        ).phone_number
        == stored
    )
    context = {"allowed_country_codes": allowed}
    model = CallRequest.model_validate({"phone_number": given_number}, context=context)
    assert model.phone_number == stored


def test_a_nanp_number_is_rejected_when_only_other_codes_are_allowed() -> None:
    assert_rejected(
        {"phone_number": PHONE},
        "phone_number",
        "must have an allowed country code (+44)",
        allowed_country_codes={44},
    )


def test_model_validate_without_context_allows_only_nanp() -> None:
    assert CallRequest.model_validate({"phone_number": PHONE}).phone_number == PHONE
    with pytest.raises(ValueError, match="NANP"):
        CallRequest.model_validate({"phone_number": "+442071838750"})


@pytest.mark.parametrize(
    "given_number",
    ["+14155550123", "+442071838750", "+1415555012", "+14155550123 ext. 12", "+15555550123"],
)
def test_phone_errors_never_echo_the_number(given_number: str) -> None:
    error = rejection({"phone_number": given_number, "dtmf": "x"})
    digits = "".join(ch for ch in given_number if ch.isdigit())
    assert digits not in "".join(ch for ch in str(error) if ch.isdigit())
    assert given_number not in repr(error.errors)


# --- sip_uri ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_uri", "stored"),
    [
        ("sip:8021@sip.rammer.ai", "sip:8021@sip.rammer.ai"),
        ("sips:alice@example.com:5061", "sips:alice@example.com:5061"),
        ("SIP:bob@example.com", "sip:bob@example.com"),
        ("sip:+14155550123@trunk.example.com;transport=tls", None),
        ("sip:room.42@10.0.0.7", None),
        ("sip:x@[2001:db8::1]:5060", None),
        ("sip:meeting@example.com?X-Pin=1234", None),
    ],
)
def test_sip_uris_are_accepted(given_uri: str, stored: str | None) -> None:
    request = parse_call_request({"sip_uri": given_uri})
    assert request.sip_uri == (stored or given_uri)
    assert request.phone_number is None


@pytest.mark.parametrize(
    ("given_uri", "rule_part"),
    [
        ("tel:+14155550123", "sip: or sips: URI"),
        ("sip:example.com", "sip: or sips: URI"),  # no user part
        ("sip:@example.com", "sip: or sips: URI"),
        ("sip:alice:secret@example.com", "sip: or sips: URI"),  # no passwords in rows
        ("sip:alice@", "sip: or sips: URI"),
        ("http://alice@example.com", "sip: or sips: URI"),
        ("sip:al ice@example.com", "whitespace or control characters"),
        ("sip:alice@example.com\r\nX: y", "whitespace or control characters"),
        ("sip:alice@exämple.com", "sip: or sips: URI"),
        ("sip:a@" + "b" * 600, "at most 512 characters"),
    ],
)
def test_sip_uri_rejections_name_the_rule(given_uri: str, rule_part: str) -> None:
    assert_rejected({"sip_uri": given_uri}, "sip_uri", rule_part)


# --- exactly one target -------------------------------------------------------------------


def test_neither_phone_nor_sip_is_rejected() -> None:
    assert_rejected({}, "phone_number", "or give sip_uri")
    assert_rejected({"phone_number": None, "sip_uri": None}, "phone_number", "or give sip_uri")


def test_both_phone_and_sip_are_rejected() -> None:
    assert_rejected({"phone_number": PHONE, "sip_uri": "sip:a@b.com"}, "sip_uri", "not both")


# --- dtmf ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtmf", ["1", "939293#", ",,123456#,,#", "*#0", "," * 128])
def test_dtmf_keypad_keys_and_pauses_are_accepted(dtmf: str) -> None:
    assert parse_call_request(valid(dtmf=dtmf)).dtmf == dtmf


@pytest.mark.parametrize(
    ("dtmf", "rule_part"),
    [
        ("12A", "only 0-9 * # , are allowed"),
        ("1w2", "only 0-9 * # , are allowed"),
        ("1 2", "only 0-9 * # , are allowed"),
        ("\uff11\uff12", "only 0-9 * # , are allowed"),  # full-width digits
        ("", "must not be empty"),
        ("1" * 129, "at most 128 characters"),
        (123, "must be a string"),
    ],
)
def test_dtmf_rejections_name_the_rule(dtmf: object, rule_part: str) -> None:
    assert_rejected(valid(dtmf=dtmf), "dtmf", rule_part)


def test_dtmf_is_refused_on_sip_calls() -> None:
    assert_rejected({"sip_uri": "sip:a@b.com", "dtmf": "1#"}, "dtmf", "phone_number calls")


# --- session_name -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "stored"),
    [("Weekly sync", "Weekly sync"), ("  padded  ", "padded"), ("Réunion 東京", "Réunion 東京")],
)
def test_session_names_are_stripped(name: str, stored: str) -> None:
    assert parse_call_request(valid(session_name=name)).session_name == stored


@pytest.mark.parametrize(
    ("name", "rule_part"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("a" * 201, "at most 200 characters"),
        ("line\nbreak", "control characters"),
        ("bell\x07", "control characters"),
        ("nul\x00", "control characters"),
        ("lone \ud800 surrogate", "valid Unicode"),
        (["a"], "must be a string"),
    ],
)
def test_session_name_rejections_name_the_rule(name: object, rule_part: str) -> None:
    assert_rejected(valid(session_name=name), "session_name", rule_part)


# --- summary_emails -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("emails", "stored"),
    [
        ([], []),
        (["a@example.com"], ["a@example.com"]),
        (["a@example.com", "b@example.com", "a@example.com"], ["a@example.com", "b@example.com"]),
        (["b@Example.COM", "b@example.com"], ["b@example.com"]),  # the domain is normalised
        ([" c@example.com "], ["c@example.com"]),
        ([f"u{i}@example.com" for i in range(20)], [f"u{i}@example.com" for i in range(20)]),
    ],
)
def test_summary_emails_are_normalised_and_deduplicated_in_order(
    emails: list[str], stored: list[str]
) -> None:
    assert parse_call_request(valid(summary_emails=emails)).summary_emails == stored


@pytest.mark.parametrize(
    ("emails", "field", "rule_part"),
    [
        (["not-an-email"], "summary_emails[0]", "valid email address"),
        (["a@example.com", "b@"], "summary_emails[1]", "valid email address"),
        (["a@@example.com"], "summary_emails[0]", "valid email address"),
        (["a@localhost"], "summary_emails[0]", "valid email address"),
        ([f"u{i}@example.com" for i in range(21)], "summary_emails", "at most 20 items"),
        ("a@example.com", "summary_emails", "must be a list"),
        ([1], "summary_emails[0]", "must be a string"),
    ],
)
def test_summary_email_rejections_name_the_item(emails: object, field: str, rule_part: str) -> None:
    assert_rejected(valid(summary_emails=emails), field, rule_part)


def test_email_errors_do_not_echo_the_address() -> None:
    error = rejection(valid(summary_emails=["jane.doe.private@@example.com"]))
    assert "jane.doe" not in str(error)


# --- languages ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("languages", "stored"),
    [([], []), (["en-US"], ["en-US"]), (["es-US"], ["es-US"]), (["fa-IR"], ["fa-IR"]),
     (["EN-gb"], ["en-GB"])],
)  # fmt: skip
def test_supported_languages_are_accepted(languages: list[str], stored: list[str]) -> None:
    assert parse_call_request(valid(languages=languages)).languages == stored


@pytest.mark.parametrize(
    ("languages", "rule_part"),
    [
        (["en-US", "es-US"], "at most one language"),
        (["xx-XX"], "must be one of en-US"),
        (["en"], "must be one of en-US"),
        (["zh-CN"], "must be one of en-US"),
        ("en-US", "must be a list"),
    ],
)
def test_language_rejections_name_the_rule(languages: object, rule_part: str) -> None:
    assert_rejected(valid(languages=languages), "languages", rule_part)


# --- timezone -----------------------------------------------------------------------------


@pytest.mark.parametrize("zone", ["UTC", "US/Pacific", "Asia/Tokyo", "America/Argentina/Salta"])
def test_iana_zones_are_accepted(zone: str) -> None:
    assert parse_call_request(valid(timezone=zone)).timezone == zone


@pytest.mark.parametrize(
    "zone", ["Mars/Olympus", "../../etc/passwd", "/etc/localtime", "", "PST8PDT\x00", "America/"]
)
def test_unknown_zones_are_rejected(zone: str) -> None:
    assert_rejected(valid(timezone=zone), "timezone", "IANA time zone")


def test_overlong_zone_is_rejected() -> None:
    assert_rejected(valid(timezone="A" * 65), "timezone", "at most 64 characters")


# --- max_duration_s and priority ----------------------------------------------------------


@pytest.mark.parametrize(("field", "value"), [("max_duration_s", 10), ("max_duration_s", 14400),
                                               ("priority", 0), ("priority", 9)])  # fmt: skip
def test_integer_bounds_are_inclusive(field: str, value: int) -> None:
    assert getattr(parse_call_request(valid(**{field: value})), field) == value


def test_defaults() -> None:
    request = parse_call_request(valid())
    # the deployment's DIALQ_DEFAULT_MAX_DURATION_S applies when the request leaves it unset
    assert (request.max_duration_s, request.priority, request.account) == (None, 5, "default")
    assert request.summary_emails == []
    assert request.languages == []
    assert request.not_before is None
    assert request.idempotency_key is None


@pytest.mark.parametrize(
    ("field", "value", "rule_part"),
    [
        ("max_duration_s", 9, "at least 10"),
        ("max_duration_s", 14401, "at most 14400"),
        ("max_duration_s", "600", "whole number"),
        ("max_duration_s", 600.5, "whole number"),
        ("max_duration_s", True, "whole number"),
        ("priority", -1, "at least 0"),
        ("priority", 10, "at most 9"),
        ("priority", "high", "whole number"),
        ("priority", None, "whole number"),
    ],
)
def test_integer_rejections_name_the_rule(field: str, value: object, rule_part: str) -> None:
    assert_rejected(valid(**{field: value}), field, rule_part)


# --- account ------------------------------------------------------------------------------


@pytest.mark.parametrize("account", ["default", "sales", "eu-west_2", "0", "a" * 63])
def test_account_names_are_accepted(account: str) -> None:
    assert parse_call_request(valid(account=account)).account == account


@pytest.mark.parametrize("account", ["", "Sales", "-sales", "_x", "a b", "a" * 64, "ñ"])
def test_account_rejections_name_the_rule(account: str) -> None:
    assert_rejected(valid(account=account), "account", "1-63 of a-z 0-9 _ -")


# --- callback_url -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["https://hooks.example.com/dialq", "http://127.0.0.1:8080/cb?x=1", "https://example.com"],
)
def test_callback_urls_are_stored_as_given(url: str) -> None:
    request = parse_call_request(valid(callback_url=url))
    assert request.callback_url == url
    assert isinstance(request.callback_url, str)


@pytest.mark.parametrize(
    ("url", "rule_part"),
    [
        ("ftp://example.com/x", "http:// or https:// URL"),
        ("example.com/hook", "http:// or https:// URL"),
        ("https://", "http:// or https:// URL"),
        ("https://user:pass@example.com/", "user name or password"),
        ("https://example.com/" + "a" * 2040, "at most 2048 characters"),
    ],
)
def test_callback_url_rejections_name_the_rule(url: str, rule_part: str) -> None:
    assert_rejected(valid(callback_url=url), "callback_url", rule_part)


# --- not_before ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "2030-01-31T09:00:00+02:00",
        "2030-01-31T07:00:00Z",
        datetime(2030, 1, 31, 7, tzinfo=UTC),
    ],
)
def test_not_before_is_normalised_to_utc(value: object) -> None:
    not_before = parse_call_request(valid(not_before=value)).not_before
    assert not_before == datetime(2030, 1, 31, 7, tzinfo=UTC)
    assert not_before is not None
    assert not_before.tzinfo is UTC


@pytest.mark.parametrize(
    ("value", "rule_part"),
    [
        ("2030-01-31T09:00:00", "must include a timezone offset"),
        (datetime(2030, 1, 31, 9), "must include a timezone offset"),
        ("tomorrow", "ISO 8601 date-time"),
        ("2030-02-30T09:00:00Z", "ISO 8601 date-time"),
    ],
)
def test_not_before_rejections_name_the_rule(value: object, rule_part: str) -> None:
    assert_rejected(valid(not_before=value), "not_before", rule_part)


# --- idempotency_key ----------------------------------------------------------------------


@pytest.mark.parametrize("key", ["k", "order-42/attempt 1", "~!@#$%^&*()", "x" * 200])
def test_idempotency_keys_are_accepted(key: str) -> None:
    assert parse_call_request(valid(idempotency_key=key)).idempotency_key == key


@pytest.mark.parametrize(
    ("key", "rule_part"),
    [
        ("", "must not be empty"),
        ("x" * 201, "at most 200 characters"),
        ("tab\there", "printable ASCII"),
        ("café", "printable ASCII"),
        (42, "must be a string"),
    ],
)
def test_idempotency_key_rejections_name_the_rule(key: object, rule_part: str) -> None:
    assert_rejected(valid(idempotency_key=key), "idempotency_key", rule_part)


# --- the by-name payload ------------------------------------------------------------------


def test_a_full_json_payload_is_accepted() -> None:
    # given every field, as a Celery client would send them in kwargs {"request": {...}}
    payload = {
        "phone_number": "(415) 555-0123",
        "dtmf": ",,1234#",
        "session_name": "Renewal call",
        "summary_emails": ["ops@example.com"],
        "languages": ["en-US"],
        "timezone": "America/Los_Angeles",
        "max_duration_s": 1800,
        "account": "sales",
        "callback_url": "https://hooks.example.com/dialq",
        "priority": 7,
        "not_before": "2030-01-31T09:00:00-08:00",
        "idempotency_key": "crm-8812",
    }
    # when it is parsed / then every value is kept, normalised
    request = parse_call_request(payload)
    assert request.phone_number == PHONE
    assert request.not_before == datetime(2030, 1, 31, 17, tzinfo=UTC)
    assert request.model_dump(mode="json")["not_before"] == "2030-01-31T17:00:00Z"


@pytest.mark.parametrize("unknown", ["phoneNumber", "phone", "sessionName", "retries"])
def test_unknown_fields_are_rejected_by_name(unknown: str) -> None:
    error = rejection(valid(**{unknown: "x"}))
    assert FieldError(unknown, "unknown field") in error.errors
    assert f"{unknown}: unknown field" in str(error)


def test_unknown_field_names_are_shortened_and_made_printable_in_messages() -> None:
    error = rejection(valid(**{"x\n" + "y" * 500: 1}))
    (field_error,) = error.errors
    assert field_error.field == "x?" + "y" * 62 + "..."
    assert "\n" not in str(error)


def test_invalid_call_request_is_a_value_error_listing_field_errors() -> None:
    error = InvalidCallRequest([FieldError("dtmf", "only 0-9 * # , are allowed"),
                                FieldError("priority", "must be at most 9")])  # fmt: skip
    assert isinstance(error, ValueError)
    assert str(error) == "dtmf: only 0-9 * # , are allowed; priority: must be at most 9"


def test_a_payload_that_is_not_an_object_is_rejected() -> None:
    assert_rejected(["phone_number", PHONE], "request", "must be a JSON object")


def test_every_broken_rule_is_reported_together() -> None:
    error = rejection({"phone_number": "+442071838750", "dtmf": "x", "priority": 11, "zz": 1})
    assert str(error) == (
        "phone_number: must be a NANP (+1) number; dtmf: only 0-9 * # , are allowed; "
        "priority: must be at most 9; zz: unknown field"
    )


def test_a_request_is_frozen() -> None:
    request = parse_call_request(valid())
    with pytest.raises(ValueError, match="frozen"):
        request.priority = 1  # type: ignore[misc]


def test_repr_leaves_out_personal_data() -> None:
    request = parse_call_request(valid(dtmf="99#", summary_emails=["jane@example.com"]))
    assert "0123" not in repr(request)
    assert "jane" not in repr(request)


def test_a_dumped_request_parses_back_to_itself() -> None:
    request = parse_call_request(
        valid(not_before="2030-01-31T09:00:00Z", summary_emails=["a@example.com"])
    )
    assert parse_call_request(request.model_dump(mode="json")) == request


# --- masking ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("e164", "masked"),
    [
        ("+14155550123", "+1******0123"),
        ("+442071838750", "+44******8750"),
        ("+4930901820", "+49****1820"),
        ("+8613800138000", "+86*******8000"),
        ("not-e164", "********"),
        ("", ""),
        ("+1234", "*****"),
    ],
)
def test_mask_phone_keeps_only_the_country_code_and_last_four(e164: str, masked: str) -> None:
    assert mask_phone(e164) == masked


@given(st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True))
def test_mask_phone_never_reveals_more_than_the_last_four_digits(e164: str) -> None:
    masked = mask_phone(e164)
    # then the length is kept, something is hidden, and the only digits after the first '*'
    # (everything past the country code) are the number's own last 4 at most
    assert len(masked) == len(e164)
    assert "*" in masked
    prefix, _, rest = masked.partition("*")
    assert len(prefix) <= 4  # '+' and a country code of 1 to 3 digits
    tail = rest.lstrip("*")
    assert len(tail) <= 4
    assert e164.startswith(prefix)
    assert e164.endswith(tail)


@pytest.mark.parametrize(
    ("payload", "masked"),
    [
        ({"phone_number": PHONE}, "+1******0123"),
        ({"sip_uri": "sip:+14155550123@trunk.example.com;transport=tls"},
         "sip:***@trunk.example.com"),
        ({"sip_uri": "sips:alice@example.com:5061?X-Pin=1"}, "sips:***@example.com:5061"),
    ],
)  # fmt: skip
def test_masked_target_hides_who_is_dialed(payload: dict[str, object], masked: str) -> None:
    assert parse_call_request(payload).masked_target == masked


# --- never any other exception ------------------------------------------------------------

_FIELDS = [
    "phone_number", "sip_uri", "dtmf", "session_name", "summary_emails", "languages", "timezone",
    "max_duration_s", "account", "callback_url", "priority", "not_before", "idempotency_key",
]  # fmt: skip
_NASTY_TEXT = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(codec=None, categories=None), max_size=50),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x1F)),
    st.sampled_from(["\ud800", "a\udfff@example.com", "+1415\ud8005550123", "sip:\udc80@x.com"]),
    st.integers(min_value=1, max_value=20_000).map(lambda n: "9" * n),
    st.from_regex(r"\+?[0-9 ()\-.]{0,20}", fullmatch=True),
    st.from_regex(r"sips?:[^@]{0,10}@[a-z.\[\]:0-9]{0,20}", fullmatch=True),
)
_ANY_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _NASTY_TEXT | st.datetimes(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
_PAYLOADS = st.dictionaries(
    st.sampled_from(_FIELDS) | st.text(max_size=300) | st.integers(), _ANY_VALUE, max_size=6
)


def outcome(payload: object) -> CallRequest | InvalidCallRequest:
    """The request, or the InvalidCallRequest it raised; any other exception propagates."""
    try:
        return parse_call_request(payload)  # type: ignore[arg-type]
    except InvalidCallRequest as error:
        return error


def assert_names_fields(error: InvalidCallRequest) -> None:
    assert error.errors, "a rejection always says why"
    for field_error in error.errors:
        assert field_error.field
        assert field_error.rule
        assert f"{field_error.field}: {field_error.rule}" in str(error)


# Nasty text in each checked field of an otherwise valid request, so every check is reached.
_NASTY_FIELDS: st.SearchStrategy[dict[str, object]] = st.builds(
    dict,
    phone_number=_NASTY_TEXT,
    summary_emails=st.lists(_NASTY_TEXT, max_size=3),
    languages=st.lists(_NASTY_TEXT, max_size=2),
    timezone=_NASTY_TEXT,
    callback_url=_NASTY_TEXT,
    session_name=_NASTY_TEXT,
) | st.builds(dict, sip_uri=_NASTY_TEXT)


@settings(max_examples=400, deadline=None)
@given(payload=_PAYLOADS | _NASTY_FIELDS)
def test_any_payload_parses_or_raises_invalid_call_request(payload: dict[Any, Any]) -> None:
    result = outcome(payload)
    if isinstance(result, InvalidCallRequest):
        assert_names_fields(result)
    else:
        assert isinstance(result, CallRequest)


@settings(max_examples=100, deadline=None)
@given(payload=_ANY_VALUE.filter(lambda value: not isinstance(value, dict)))
def test_any_non_mapping_raises_invalid_call_request(payload: object) -> None:
    result = outcome(payload)
    assert isinstance(result, InvalidCallRequest)
    assert_names_fields(result)
