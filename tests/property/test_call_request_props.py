"""CallRequest under hostile input: a valid call or an error naming the field, never a crash."""

from __future__ import annotations

from typing import Any

import phonenumbers
from hypothesis import example, given
from hypothesis import strategies as st

from dialq.calls.request import CallRequest, InvalidCallRequest, parse_call_request
from tests.property.checks import assert_names_fields_and_rules, field_root
from tests.property.profiles import PURE
from tests.property.strategies import (
    CALL_FIELDS,
    EXAMPLE_NUMBERS,
    INJECTION_MARKERS,
    INJECTIONS,
    call_payloads,
    one_field_changes,
)

VALID = {"phone_number": "+14155550123"}


def parse(payload: Any, **kwargs: Any) -> CallRequest | InvalidCallRequest:
    """The request, or the documented rejection; any other exception fails the property."""
    try:
        return parse_call_request(payload, **kwargs)
    except InvalidCallRequest as error:
        return error


def assert_is_a_dialable_call(request: CallRequest) -> None:
    assert (request.phone_number is None) != (request.sip_uri is None)
    if request.phone_number is not None:
        number = phonenumbers.parse(request.phone_number, None)
        assert phonenumbers.is_valid_number(number)
        assert phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) == (
            request.phone_number
        )
    assert len(request.summary_emails) == len(set(request.summary_emails)) <= 20
    assert 0 <= request.priority <= 9
    assert request.max_duration_s is None or 10 <= request.max_duration_s <= 14400
    if request.not_before is not None:
        assert request.not_before.utcoffset() is not None


@PURE
@given(payload=call_payloads())
def test_any_payload_becomes_a_dialable_call_or_an_error_naming_known_fields_and_rules(
    payload: dict[Any, Any],
) -> None:
    # given any mix of known fields with hostile values, and unknown keys
    # when it is parsed
    outcome = parse(payload)
    # then it is a dialable call, or every error names a known field and a rule in plain words
    if isinstance(outcome, InvalidCallRequest):
        assert_names_fields_and_rules(outcome, CALL_FIELDS)
    else:
        assert_is_a_dialable_call(outcome)


@PURE
@given(change=one_field_changes())
# Found by this property: OverflowError out of parse_call_request, now a rule on not_before.
@example(change=("not_before", "9999-12-31T23:59:59-23:59"))
@example(change=("not_before", "0001-01-01T00:00:00+23:59"))
# Accepted and stored as given: a NUL failed the PostgreSQL insert, a CRLF was kept.
@example(change=("callback_url", "https://hooks.example.com/\x00"))
@example(change=("callback_url", "https://hooks.example.com/\r\nX-Injected: yes"))
def test_one_changed_field_in_a_valid_payload_is_the_only_field_an_error_names(
    change: tuple[str, Any],
) -> None:
    # given a valid payload with one field set to any value
    field, value = change
    payload = {**VALID, field: value}
    # when it is parsed
    outcome = parse(payload)
    # then a rejection names that field (a second target is named as the conflict it makes)
    if isinstance(outcome, InvalidCallRequest):
        assert_names_fields_and_rules(outcome, CALL_FIELDS)
        named = {field_root(e.field) for e in outcome.errors}
        assert named == {field}, (field, outcome.errors)
    else:
        assert_is_a_dialable_call(outcome)


@PURE
@given(field=st.sampled_from(CALL_FIELDS), text=st.sampled_from(INJECTIONS))
def test_a_rejection_never_repeats_injection_shaped_input(field: str, text: str) -> None:
    # given injection-shaped text in a field, alone or wrapped in plausible text
    for value in (text, f"+1415555{text}", f"ops{text}@example.com", [text]):
        # when it is parsed
        outcome = parse({**VALID, field: value})
        # then a rejection says which rule broke without echoing the text into logs
        if isinstance(outcome, InvalidCallRequest):
            message = str(outcome)
            assert not [m for m in INJECTION_MARKERS if m in message], message
        else:
            assert_is_a_dialable_call(outcome)


US_CANADA = frozenset({"US", "CA"})


def _refused_as_outside_us_canada(outcome: object) -> bool:
    return (
        isinstance(outcome, InvalidCallRequest)
        and [e.field for e in outcome.errors] == ["phone_number"]
        and "US or Canada" in outcome.errors[0].rule
    )


def test_every_regions_example_number_is_accepted_when_allowed_and_named_when_not() -> None:
    # given the example number of every region phonenumbers supports, in two spellings
    wrong: list[str] = []
    assert len(EXAMPLE_NUMBERS) > 200
    for region, number in EXAMPLE_NUMBERS.items():
        code = number.country_code
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        spaced = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        for text in (e164, spaced):
            # when it is parsed with its country allowed, and with only NANP allowed
            allowed = parse({"phone_number": text}, allowed_country_codes={code})
            nanp_only = parse({"phone_number": text})
            # then a +1 number outside the US and Canada is refused whatever is allowed...
            if code == 1 and region not in US_CANADA:
                for outcome in (allowed, nanp_only):
                    if not _refused_as_outside_us_canada(outcome):
                        wrong.append(f"{region} {text!r} outside US/Canada: {outcome!r}")
                continue
            # ...and any other is stored as E.164 when allowed, and refused as non-NANP otherwise
            if not isinstance(allowed, CallRequest) or allowed.phone_number != e164:
                wrong.append(f"{region} {text!r} allowed: {allowed!r}")
            if code == 1:
                if not isinstance(nanp_only, CallRequest):
                    wrong.append(f"{region} {text!r} NANP: {nanp_only}")
            elif not isinstance(nanp_only, InvalidCallRequest) or [
                (e.field, e.rule) for e in nanp_only.errors
            ] != [("phone_number", "must be a NANP (+1) number")]:
                wrong.append(f"{region} {text!r} NANP-only: {nanp_only!r}")
    assert not wrong, "\n".join(wrong)


@PURE
@given(region=st.sampled_from(sorted(EXAMPLE_NUMBERS)), codes=st.sets(st.integers(1, 999)))
def test_a_number_from_any_region_is_accepted_exactly_when_its_country_code_is_allowed(
    region: str, codes: set[int]
) -> None:
    # given a region's example number and any set of allowed country codes
    number = EXAMPLE_NUMBERS[region]
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    # when it is parsed
    outcome = parse({"phone_number": e164}, allowed_country_codes=codes)
    # then it passes exactly when its code is allowed (and, for +1, it is a US or Canada
    # number), and otherwise the rule says why
    if number.country_code == 1 and region not in US_CANADA:
        assert _refused_as_outside_us_canada(outcome) or (
            1 not in codes and isinstance(outcome, InvalidCallRequest)
        )
    elif number.country_code in codes:
        assert isinstance(outcome, CallRequest)
        assert outcome.phone_number == e164
    else:
        assert isinstance(outcome, InvalidCallRequest)
        assert [e.field for e in outcome.errors] == ["phone_number"]
        assert "country code" in outcome.errors[0].rule or "NANP" in outcome.errors[0].rule
