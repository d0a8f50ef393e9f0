"""The log masking function against every spelling of a number that phonenumbers reads.

Numbers are built from phonenumbers' own metadata and written in its formats (E.164,
international, national, RFC 3966) and in the free forms people type (any grouping, any of the
separators phonenumbers reads, a trunk "1" or "+1"). Each spelling is first checked to be one
phonenumbers reads as the validator does; then no log line built around it may show more than
its last 4 digits.
"""

from __future__ import annotations

import re

import phonenumbers
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat

from dialq.ops import logs
from dialq.validation.fields import DEFAULT_REGION, check_phone_number
from tests.property.profiles import PURE

FORMATS = [
    PhoneNumberFormat.E164,
    PhoneNumberFormat.INTERNATIONAL,
    PhoneNumberFormat.NATIONAL,
    PhoneNumberFormat.RFC3966,
]
# Where a number shows up in a log line: a message, a repr of a request, a key=value field.
CONTEXTS = [
    "dialing {}",
    "payload {{'phone_number': '{}'}}",
    '{{"phone_number": "{}", "x": 1}}',
    "number={}&next=a",
    "failed for {}: busy",
    "({})",
    "[target={} state=queued]",
]
SEPARATORS = ["", " ", "-", ".", "/", "\u00a0"]
# Every region that shares a country code with another is reached through the main region.
REGIONS = sorted(
    region
    for region in phonenumbers.SUPPORTED_REGIONS
    if phonenumbers.example_number(region) is not None
)


AREA_CODES = [
    area
    for area in range(200, 1000)
    if phonenumbers.is_valid_number(phonenumbers.parse(f"+1{area}2345678", None))
]


def _nanp(area: int, exchange: int, line: int) -> phonenumbers.PhoneNumber:
    return phonenumbers.parse(f"+1{area}{exchange}{line:04d}", None)


def nanp_numbers() -> st.SearchStrategy[phonenumbers.PhoneNumber]:
    """Valid US/Canada numbers: an assigned area code, an exchange 2-9xx, a 4-digit line."""
    return st.builds(
        _nanp, st.sampled_from(AREA_CODES), st.integers(200, 999), st.integers(0, 9999)
    ).filter(phonenumbers.is_valid_number)


@st.composite
def typed_spellings(draw: st.DrawFn, number: phonenumbers.PhoneNumber) -> str:
    """The national digits cut into groups joined by separators, with an optional trunk."""
    national = str(number.national_number)
    cuts = sorted(draw(st.sets(st.integers(1, len(national) - 1), max_size=4)))
    groups = [national[a:b] for a, b in zip([0, *cuts], [*cuts, len(national)], strict=True)]
    if draw(st.booleans()) and len(groups) > 1 and len(groups[0]) == 3:
        groups[0] = f"({groups[0]})"
    text = "".join(group + draw(st.sampled_from(SEPARATORS)) for group in groups[:-1])
    text += groups[-1]
    trunk = draw(st.sampled_from(["", "1", "1-", "1 ", "+1 ", "+1-", "+1.", "+1"]))
    return trunk + text


def spellings(number: phonenumbers.PhoneNumber) -> st.SearchStrategy[str]:
    formatted = st.sampled_from(FORMATS).map(lambda f: phonenumbers.format_number(number, f))
    return formatted | typed_spellings(number) if number.country_code == 1 else formatted


def e164_of(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def read_as_the_validator_does(spelled: str) -> str:
    return e164_of(phonenumbers.parse(spelled, DEFAULT_REGION))


def hidden_part(number: phonenumbers.PhoneNumber) -> str:
    """The digits that must not show: everything of the national number but its last 4."""
    return str(number.national_number)[:-4]


def assert_masked(line: str, number: phonenumbers.PhoneNumber) -> None:
    masked = logs.redact(line)
    digits = re.sub(r"[^\d*]", "", masked)  # the stars keep masked digits apart
    assert str(number.national_number) not in digits, (line, masked)
    # A short hidden part (2 digits of a 6-digit number) may occur anywhere by chance.
    if len(hidden_part(number)) >= 4:
        assert hidden_part(number) not in digits, (line, masked)
    if len(str(number.national_number)) > 6:  # shorter ones are masked whole
        assert str(number.national_number)[-4:] in digits, (line, masked)


@PURE
@given(data=st.data(), number=nanp_numbers(), context=st.sampled_from(CONTEXTS))
def test_every_spelling_of_a_nanp_number_phonenumbers_reads_is_masked(
    data: st.DataObject, number: phonenumbers.PhoneNumber, context: str
) -> None:
    # given a spelling of a valid number that phonenumbers reads as that number, as the
    # validator reads it (the validator may still refuse it, e.g. a premium-rate number)
    spelled = data.draw(spellings(number))
    assert read_as_the_validator_does(spelled) == e164_of(number)
    # when it is logged in some context, then only its last 4 digits show
    assert_masked(context.format(spelled), number)


KEYPAD = {
    "2": "ABC", "3": "DEF", "4": "GHI", "5": "JKL",
    "6": "MNO", "7": "PQRS", "8": "TUV", "9": "WXYZ",
}  # fmt: skip


@st.composite
def vanity_spellings(draw: st.DrawFn, number: phonenumbers.PhoneNumber) -> tuple[str, str]:
    """(the number with its last 3 to 7 digits as keypad letters, e.g. "1-800-FLOWERS"; the
    letters). Only numbers whose spelled digits are all on lettered keys (2-9) are drawn."""
    national = str(number.national_number)
    tail = draw(st.integers(3, 7))
    keep, spelled = national[:-tail], national[-tail:]
    letters = "".join(draw(st.sampled_from(KEYPAD[digit])) for digit in spelled)
    letters = letters.lower() if draw(st.booleans()) else letters
    cut = draw(st.sampled_from([3, len(keep)])) if len(keep) > 3 else len(keep)
    head = keep[:cut] + (draw(st.sampled_from(SEPARATORS)) + keep[cut:] if keep[cut:] else "")
    if draw(st.booleans()) and cut == 3:
        head = f"({keep[:3]})" + head[3:]
    trunk = draw(st.sampled_from(["", "1", "1-", "1 ", "+1 ", "+1-", "+1"]))
    return trunk + head + draw(st.sampled_from(SEPARATORS)) + letters, letters


def lettered_nanp_numbers() -> st.SearchStrategy[phonenumbers.PhoneNumber]:
    """Valid US/Canada numbers whose last 7 digits are all on lettered keys (2-9)."""
    lettered = st.text(alphabet="23456789", min_size=7, max_size=7)
    return st.builds(
        lambda area, local: phonenumbers.parse(f"+1{area}{local}", None),
        st.sampled_from(AREA_CODES),
        lettered,
    ).filter(phonenumbers.is_valid_number)


@PURE
@given(data=st.data(), number=lettered_nanp_numbers())
def test_a_vanity_number_the_validator_accepts_is_masked_letters_and_all(
    data: st.DataObject, number: phonenumbers.PhoneNumber
) -> None:
    # given a vanity spelling ("1-800-FLOWERS") the validator reads as the number
    spelled, letters = data.draw(vanity_spellings(number))
    assume(read_as_the_validator_does(spelled) == e164_of(number))  # not "201222/XWPA"
    context = data.draw(st.sampled_from(CONTEXTS))
    # when it is logged in some context
    line = context.format(spelled)
    masked = logs.redact(line)
    # then neither its letters nor its hidden digits show, only its last 4 digits
    assert letters not in masked, (line, masked)
    assert_masked(line, number)


@pytest.mark.parametrize(
    "spelled",
    ["1-800-FLOWERS", "800-FLOWERS", "+1 800 FLOWERS", "1 (800) flowers", "1800FLOWERS"],
)
def test_1_800_flowers_is_masked_wherever_it_is_logged(spelled: str) -> None:
    # given the vanity number, accepted by the validator
    assert check_phone_number(spelled, [1]) == "+18003569377"
    # when logged in a sentence, then it shows as the masked number, the sentence intact
    assert logs.redact(f"dialing {spelled} now") == "dialing +1******9377 now"


@PURE
@given(
    region=st.sampled_from(REGIONS),
    style=st.sampled_from(
        [PhoneNumberFormat.E164, PhoneNumberFormat.INTERNATIONAL, PhoneNumberFormat.RFC3966]
    ),
    context=st.sampled_from(CONTEXTS),
)
def test_any_region_s_number_in_international_form_is_masked(
    region: str, style: int, context: str
) -> None:
    # given a valid number of any region, written so the validator can read it
    number = phonenumbers.example_number(region)
    assert number is not None
    spelled = phonenumbers.format_number(number, style)
    assert read_as_the_validator_does(spelled) == e164_of(number)
    # when it is logged, then only its last 4 digits show
    assert_masked(context.format(spelled), number)


@PURE
@given(
    number=nanp_numbers(),
    style=st.sampled_from(FORMATS),
    log_format=st.sampled_from(["json", "text"]),
)
def test_both_formatters_mask_through_the_same_function(
    number: phonenumbers.PhoneNumber, style: int, log_format: str
) -> None:
    import logging

    spelled = phonenumbers.format_number(number, style)
    record = logging.LogRecord("dialq.x", logging.INFO, __file__, 1, "dial %s", (spelled,), None)
    line = logs.formatter(log_format).format(record)
    assert hidden_part(number) not in re.sub(r"\D", "", line.split("dial", 1)[1])
