"""Checks for CallRequest fields that need more than a type: numbers, URIs, emails, zones.

Each ``check_*`` function returns the normalised value or raises ValueError with a plain rule
that never repeats the input, because rejected input is logged. Masks make targets safe to log.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Collection

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from pydantic import HttpUrl, TypeAdapter, ValidationError

# Numbers written without a country code are read as US/Canada numbers: Symbl dials only those.
DEFAULT_REGION = "US"
# +1 is shared by some twenty countries (Jamaica is +1 876): within it, only these are dialed.
NANP_REGIONS = frozenset({"US", "CA"})
# phonenumbers refuses longer input anyway; bounding it first keeps parsing cheap.
MAX_PHONE_INPUT_CHARS = 64
MAX_SIP_URI_CHARS = 512

# The Telephony API's languages (docs/symbl-api.md §3.2).
SUPPORTED_LANGUAGES = (
    *("en-US", "en-GB", "en-AU", "en-IE", "en-IN", "en-ZA", "ru-RU", "fr-CA", "fr-FR", "de-DE"),
    *("it-IT", "nl-NL", "ja-JP", "es-US", "es-ES", "ar-SA", "hi-IN", "pt-BR", "pt-PT", "fa-IR"),
)
# Keyed by lower case so that "EN-us" is accepted and sent as "en-US".
_LANGUAGES_BY_KEY = {code.lower(): code for code in SUPPORTED_LANGUAGES}
_HTTP_URL = TypeAdapter(HttpUrl)
# Zone names are path-like keys; checking their shape first keeps odd input off the filesystem.
_ZONE_NAME = re.compile(r"[A-Za-z0-9_+\-]+(?:/[A-Za-z0-9_+\-]+)*")

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_SIP_URI = re.compile(
    r"(?P<scheme>sips?):"
    # RFC 3261 user part, minus ':' so that no password can ride along in a call row.
    r"(?P<user>[A-Za-z0-9\-_.!~*'()&=+$,;?/%]+)@"
    rf"(?P<host>{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])"
    r"(?P<port>:[0-9]{1,5})?"
    r"(?P<rest>(?:;[A-Za-z0-9\-_.!~*'()%\[\]/:&+$=]+)*(?:\?[!-~]+)?)",
    re.IGNORECASE,
)


def check_phone_number(text: str, allowed_country_codes: Collection[int]) -> str:
    """The number in E.164 ("+14155550123"), if it is valid and its country code is allowed."""
    if len(text) > MAX_PHONE_INPUT_CHARS:
        raise ValueError(f"must be at most {MAX_PHONE_INPUT_CHARS} characters")
    try:
        number = phonenumbers.parse(text, DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        raise ValueError("must be a phone number, e.g. +14155550123") from None
    if number.country_code not in allowed_country_codes:
        raise ValueError(_country_rule(allowed_country_codes))
    if number.extension:
        raise ValueError("must not have an extension (send key presses with dtmf)")
    if not phonenumbers.is_valid_number(number):
        raise ValueError("is not a valid phone number (wrong length or unassigned prefix)")
    if number.country_code == 1 and phonenumbers.region_code_for_number(number) not in NANP_REGIONS:
        raise ValueError("must be a US or Canada number (other +1 countries are not dialed)")
    if phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.PREMIUM_RATE:
        raise ValueError("must not be a premium-rate number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _country_rule(allowed: Collection[int]) -> str:
    if set(allowed) == {1}:
        return "must be a NANP (+1) number"
    codes = ", ".join(f"+{code}" for code in sorted(allowed))
    return f"must have an allowed country code ({codes or 'none configured'})"


def check_sip_uri(text: str) -> str:
    """The URI with its scheme in lower case, if it is a ``sip:``/``sips:`` user@host URI."""
    if len(text) > MAX_SIP_URI_CHARS:
        raise ValueError(f"must be at most {MAX_SIP_URI_CHARS} characters")
    if any(ch.isspace() or not ch.isprintable() for ch in text):
        raise ValueError("must not contain whitespace or control characters")
    match = _SIP_URI.fullmatch(text)
    if match is None:
        raise ValueError("must be a sip: or sips: URI of the form sip:user@host")
    scheme = match["scheme"].lower()
    return scheme + text[len(scheme) :]


def check_email(text: str) -> str:
    """The address in normalised form (domain lower-cased); its domain is not looked up."""
    try:
        return validate_email(text, check_deliverability=False).normalized
    except (EmailNotValidError, UnicodeError):
        raise ValueError("must be a valid email address") from None


def check_language(text: str) -> str:
    """The supported language code, spelled as the API spells it."""
    code = _LANGUAGES_BY_KEY.get(text.lower())
    if code is None:
        raise ValueError("must be one of " + ", ".join(SUPPORTED_LANGUAGES))
    return code


def check_timezone(name: str) -> str:
    """``name`` unchanged, if it is an IANA time zone this system knows."""
    rule = "must be an IANA time zone name, e.g. America/New_York"
    if not _ZONE_NAME.fullmatch(name):
        raise ValueError(rule)
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(rule) from None
    return name


def check_callback_url(text: str) -> str:
    """``text`` unchanged, if it is an http(s) URL without credentials in it."""
    # The URL parser drops tabs and line breaks and escapes other control characters, but the
    # text is stored as given: refuse them, or a NUL would fail PostgreSQL and a CRLF be kept.
    if any(ch.isspace() or not ch.isprintable() for ch in text):
        raise ValueError("must not contain whitespace or control characters")
    try:
        url = _HTTP_URL.validate_python(text)
    except ValidationError:
        raise ValueError("must be an http:// or https:// URL") from None
    # Call rows are no place for secrets (README, "Configuration").
    if url.username or url.password:
        raise ValueError("must not contain a user name or password")
    return text


def mask_phone(e164: str) -> str:
    """The number with every digit but the country code and the last 4 replaced by ``*``.

    "+14155550123" becomes "+1******0123". Input that is not E.164 is masked entirely.
    """
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return "*" * len(e164)
    code = str(number.country_code)
    digits = e164.removeprefix("+")
    if not e164.startswith("+" + code) or len(digits) <= len(code) + 4:
        return "*" * len(e164)
    national = digits[len(code) :]
    return f"+{code}{'*' * (len(national) - 4)}{national[-4:]}"


def mask_sip_uri(uri: str) -> str:
    """The URI reduced to scheme and host: its user part may be a phone number, and its
    parameters and headers may carry anything."""
    match = _SIP_URI.fullmatch(uri)
    if match is None:
        return "sip:***"
    return f"{match['scheme'].lower()}:***@{match['host']}{match['port'] or ''}"
