"""CallRequest: the validated input for "dial this number", from Python or from any Celery client.

Run ``python -m dialq.calls.request > docs/call-request.schema.json`` to regenerate the JSON Schema.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from dialq.validation.errors import (
    WHOLE_REQUEST,
    FieldError,
    InvalidCallRequest,
    from_validation_error,
    rule_error,
)
from dialq.validation.fields import (
    SUPPORTED_LANGUAGES,
    check_callback_url,
    check_email,
    check_language,
    check_phone_number,
    check_sip_uri,
    check_timezone,
    mask_phone,
    mask_sip_uri,
)

__all__ = [
    "SUPPORTED_LANGUAGES",
    "CallRequest",
    "FieldError",
    "InvalidCallRequest",
    "call_request_json_schema",
    "mask_phone",
    "parse_call_request",
]

# Symbl dials only US/Canada numbers today (symbl-api.md §3.3); settings may widen this.
DEFAULT_COUNTRY_CODES: Final = frozenset({1})

# Words for failed pattern constraints; the patterns stay on the fields for the JSON Schema.
_PATTERN_RULES: Final = {
    "dtmf": "only 0-9 * # , are allowed",
    "account": "must be 1-63 of a-z 0-9 _ -, starting with a letter or digit",
    "idempotency_key": "must be printable ASCII only",
}

# Far beyond any real plan, yet a day inside the calendar's ends: deadlines are computed from
# not_before, and an offset can move a time near year 1 or 9999 out of the calendar in UTC.
NOT_BEFORE_RANGE: Final = (datetime(1, 1, 2, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC))
_NOT_BEFORE_RULE = "must be a date-time between 0001-01-02 and 9000-01-01 (UTC)"

# Keys only dialq writes (a schedule's occurrences): refused from producers, so none can take an
# occurrence's key. dialq's own callers pass `reserved_key=True` to parse_call_request.
RESERVED_KEY_PREFIXES: Final = ("schedule:",)
_RESERVED_KEY_CONTEXT: Final = "reserved_key"

_Dtmf = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[0-9*#,]+$")]
_Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


def _email(value: str) -> str:
    return _apply(check_email, value)


# Checked item by item, so that every bad address of a list is named, not only the first.
_Email = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=320), AfterValidator(_email)
]


class CallRequest(BaseModel):
    """What a producer asks for: dial one phone number or SIP URI, with optional extras.

    Pass allowed country codes through the validation context:
    ``CallRequest.model_validate(data, context={"allowed_country_codes": {1, 44}})``.
    """

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        title="CallRequest",
        # The schema is read by other applications: describe the payload, not the Python API.
        json_schema_extra={
            "description": "Payload of the dialq.place_call task: exactly one of phone_number "
            "or sip_uri, plus optional extras. See docs/payload.md.",
        },
    )

    # Personal data stays out of repr(), so logging a request does not leak it.
    phone_number: str | None = Field(
        default=None,
        max_length=64,
        repr=False,
        description="Number to dial; stored as E.164. Without +, read as a US number.",
        examples=["+14155550123", "(415) 555-0123"],
    )
    sip_uri: str | None = Field(
        default=None,
        max_length=512,
        repr=False,
        description="SIP endpoint to dial instead of a phone number (sip:user@host).",
        examples=["sip:8021@sip.example.com"],
    )
    dtmf: _Dtmf | None = Field(
        default=None,
        repr=False,
        description="Keys sent once the call is answered; each ',' waits 0.5 s.",
    )
    session_name: _Name | None = Field(default=None, description="Name of the Symbl session.")
    summary_emails: list[_Email] = Field(
        default_factory=list,
        max_length=20,
        repr=False,
        description="Who gets Symbl's summary email when the call ends.",
    )
    languages: list[str] = Field(
        default_factory=list,
        description="At most one supported language code; en-US when empty.",
        # Not max_length=1: the validator says why more than one is refused.
        json_schema_extra={
            "maxItems": 1,
            "items": {"type": "string", "enum": list(SUPPORTED_LANGUAGES)},
        },
    )
    timezone: str | None = Field(
        default=None, max_length=64, description="IANA zone, e.g. America/New_York."
    )
    max_duration_s: int | None = Field(
        default=None,
        ge=10,
        le=14400,
        strict=True,
        description="dialq stops the call after this; unset: DIALQ_DEFAULT_MAX_DURATION_S (3600).",
    )
    account: str = Field(
        default="default",
        pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$",
        description="Name of the configured Symbl account to dial from.",
    )
    callback_url: str | None = Field(
        default=None, max_length=2048, description="http(s) URL that receives state webhooks."
    )
    priority: int = Field(default=5, ge=0, le=9, strict=True, description="9 dials soonest.")
    not_before: AwareDatetime | None = Field(
        default=None, description="Do not dial before this time (with a UTC offset)."
    )
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=r"^[\x20-\x7e]+$",
        description="Same key, same call: a repeated request does not dial twice.",
    )

    @field_validator("phone_number")
    @classmethod
    def _phone_number(cls, value: str | None, info: ValidationInfo) -> str | None:
        codes = _allowed_country_codes(info.context)
        return None if value is None else _apply(check_phone_number, value, codes)

    @field_validator("sip_uri")
    @classmethod
    def _sip_uri(cls, value: str | None) -> str | None:
        return None if value is None else _apply(check_sip_uri, value)

    @field_validator("session_name")
    @classmethod
    def _session_name(cls, value: str | None) -> str | None:
        # Shown in Symbl's UI and e-mails: a right-to-left override there disguises the text.
        if value is not None and any(_is_hidden_character(ch) for ch in value):
            raise rule_error("must not contain control characters or bidirectional overrides")
        return value

    @field_validator("summary_emails")
    @classmethod
    def _summary_emails(cls, value: list[str], info: ValidationInfo) -> list[str]:
        allowed = _summary_email_domains(info.context)
        if allowed and any(address.rpartition("@")[2].lower() not in allowed for address in value):
            domains = ", ".join(sorted(allowed))
            raise rule_error(f"every address must be at one of the allowed domains ({domains})")
        return list(dict.fromkeys(value))

    @field_validator("languages")
    @classmethod
    def _languages(cls, value: list[str]) -> list[str]:
        if len(value) > 1:
            raise rule_error("at most one language is allowed (the API uses only the first)")
        return [_apply(check_language, item) for item in value]

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        return None if value is None else _apply(check_timezone, value)

    @field_validator("callback_url")
    @classmethod
    def _callback_url(cls, value: str | None) -> str | None:
        return None if value is None else _apply(check_callback_url, value)

    @field_validator("not_before")
    @classmethod
    def _not_before(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        try:
            instant = value.astimezone(UTC)
        except OverflowError:  # 9999-12-31T23:59-23:59 is past the calendar's end in UTC
            raise rule_error(_NOT_BEFORE_RULE) from None
        earliest, latest = NOT_BEFORE_RANGE
        if not earliest <= instant < latest:
            raise rule_error(_NOT_BEFORE_RULE)
        return instant

    @field_validator("idempotency_key")
    @classmethod
    def _idempotency_key(cls, value: str | None, info: ValidationInfo) -> str | None:
        if is_reserved_key(value) and not _context_flag(info.context, _RESERVED_KEY_CONTEXT):
            prefixes = " or ".join(f"'{prefix}'" for prefix in RESERVED_KEY_PREFIXES)
            raise rule_error(f"must not start with {prefixes} (reserved for dialq's own keys)")
        return value

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        if self.phone_number is None and self.sip_uri is None:
            raise rule_error("is required (or give sip_uri instead)", field="phone_number")
        if self.phone_number is not None and self.sip_uri is not None:
            raise rule_error("give either phone_number or sip_uri, not both", field="sip_uri")
        if self.dtmf is not None and self.sip_uri is not None:
            raise rule_error("is only sent on phone_number calls", field="dtmf")
        return self

    @property
    def masked_target(self) -> str:
        """Who is dialed, safe for logs: the masked number, or the SIP URI without its user."""
        if self.phone_number is not None:
            return mask_phone(self.phone_number)
        return mask_sip_uri(self.sip_uri or "")


def parse_call_request(
    data: Mapping[str, object],
    *,
    allowed_country_codes: Collection[int] = (1,),
    reserved_key: bool = False,
    summary_email_domains: Collection[str] = (),
) -> CallRequest:
    """Validate a request as producers send it (Python or JSON by name).

    `reserved_key` is for dialq's own callers only: their idempotency key may start with one of
    RESERVED_KEY_PREFIXES. `summary_email_domains`, when not empty, are the only domains
    summary e-mails may go to. Raises InvalidCallRequest, naming every broken field and rule,
    and no other exception.
    """
    context = {
        "allowed_country_codes": frozenset(allowed_country_codes),
        _RESERVED_KEY_CONTEXT: reserved_key,
        "summary_email_domains": frozenset(summary_email_domains),
    }
    data, unreported = _first_unknown_fields(data)
    try:
        return CallRequest.model_validate(data, context=context)
    except ValidationError as error:
        found = from_validation_error(error, pattern_rules=_PATTERN_RULES)
        if unreported:
            more = f"and {unreported} more unknown field{'s' if unreported > 1 else ''}"
            found = InvalidCallRequest([*found.errors, FieldError(WHOLE_REQUEST, more)])
        raise found from None


# Unknown fields named in an error; the rest are counted. A payload of 300,000 unknown keys
# otherwise costs seconds of validation and a message (and log line) of megabytes.
MAX_UNKNOWN_REPORTED: Final = 20


def _first_unknown_fields(data: Mapping[str, object]) -> tuple[Mapping[str, object], int]:
    """`data` with only its first MAX_UNKNOWN_REPORTED unknown keys, and how many were left."""
    if not isinstance(data, Mapping) or len(data) <= MAX_UNKNOWN_REPORTED:
        return data, 0
    known = CallRequest.model_fields
    unknown = [key for key in data if key not in known]
    if len(unknown) <= MAX_UNKNOWN_REPORTED:
        return data, 0
    dropped = set(unknown[MAX_UNKNOWN_REPORTED:])
    kept = {key: value for key, value in data.items() if key not in dropped}
    return kept, len(dropped)


def call_request_json_schema() -> dict[str, Any]:
    """The JSON Schema of a CallRequest payload, as committed in docs/call-request.schema.json."""
    return CallRequest.model_json_schema()


# Bidirectional marks, embeddings, overrides and isolates (Unicode UAX #9).
_BIDI_CONTROLS: Final = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e") | frozenset(
    "\u2066\u2067\u2068\u2069"
)


def _is_hidden_character(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Zl", "Zp") or ch in _BIDI_CONTROLS


def _summary_email_domains(context: object) -> frozenset[str]:
    """The domains summary e-mails may go to (settings.summary_email_domains); empty: any."""
    if isinstance(context, Mapping):
        domains = context.get("summary_email_domains")
        if isinstance(domains, Collection) and not isinstance(domains, str):
            return frozenset(str(domain).lower() for domain in domains)
    return frozenset()


def _allowed_country_codes(context: object) -> Collection[int]:
    if isinstance(context, Mapping) and "allowed_country_codes" in context:
        codes = context["allowed_country_codes"]
        if isinstance(codes, Collection):
            return frozenset(code for code in codes if isinstance(code, int))
    return DEFAULT_COUNTRY_CODES


def is_reserved_key(key: str | None) -> bool:
    """Whether `key` is in the namespace only dialq writes (see RESERVED_KEY_PREFIXES)."""
    return key is not None and key.startswith(RESERVED_KEY_PREFIXES)


def _context_flag(context: object, name: str) -> bool:
    return isinstance(context, Mapping) and context.get(name) is True


def _apply(check: Callable[..., str], *args: object) -> str:
    """Run a check from dialq.validation.fields, turning its ValueError into a rule error."""
    try:
        return check(*args)
    except ValueError as error:
        raise rule_error(str(error)) from None


if __name__ == "__main__":
    print(json.dumps(call_request_json_schema(), indent=2, sort_keys=True))
