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

_Dtmf = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[0-9*#,]+$")]
_Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
_Email = Annotated[str, StringConstraints(strip_whitespace=True, max_length=320)]


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
        if value is not None and any(unicodedata.category(ch) == "Cc" for ch in value):
            raise rule_error("must not contain control characters")
        return value

    @field_validator("summary_emails")
    @classmethod
    def _summary_emails(cls, value: list[str]) -> list[str]:
        emails = (
            _apply_item(check_email, item, "summary_emails", i) for i, item in enumerate(value)
        )
        return list(dict.fromkeys(emails))

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
    data: Mapping[str, object], *, allowed_country_codes: Collection[int] = (1,)
) -> CallRequest:
    """Validate a request as producers send it (Python or JSON by name).

    Raises InvalidCallRequest, naming every broken field and rule, and no other exception.
    """
    context = {"allowed_country_codes": frozenset(allowed_country_codes)}
    try:
        return CallRequest.model_validate(data, context=context)
    except ValidationError as error:
        raise from_validation_error(error, pattern_rules=_PATTERN_RULES) from None


def call_request_json_schema() -> dict[str, Any]:
    """The JSON Schema of a CallRequest payload, as committed in docs/call-request.schema.json."""
    return CallRequest.model_json_schema()


def _allowed_country_codes(context: object) -> Collection[int]:
    if isinstance(context, Mapping) and "allowed_country_codes" in context:
        codes = context["allowed_country_codes"]
        if isinstance(codes, Collection):
            return frozenset(code for code in codes if isinstance(code, int))
    return DEFAULT_COUNTRY_CODES


def _apply(check: Callable[..., str], *args: object) -> str:
    """Run a check from dialq.validation.fields, turning its ValueError into a rule error."""
    try:
        return check(*args)
    except ValueError as error:
        raise rule_error(str(error)) from None


def _apply_item(check: Callable[[str], str], item: str, field: str, index: int) -> str:
    """Like _apply, for one item of a list field, naming the item (``summary_emails[2]``)."""
    try:
        return check(item)
    except ValueError as error:
        raise rule_error(str(error), field=f"{field}[{index}]") from None


if __name__ == "__main__":
    print(json.dumps(call_request_json_schema(), indent=2, sort_keys=True))
