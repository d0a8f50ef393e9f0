"""A schedule as people write it (CLI flags, Python, TOML), validated into one definition.

Every problem is reported as `field: rule`, and nothing is stored until all of it is valid.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dialq.calls.request import NOT_BEFORE_RANGE, CallRequest, parse_call_request
from dialq.schedules.rules import (
    EPOCH,
    MAX_COUNT,
    Kind,
    Rule,
    UnreachableRule,
    check_reachable,
    to_instant,
)
from dialq.validation.durations import parse_duration
from dialq.validation.errors import (
    FieldError,
    InvalidCallRequest,
    from_validation_error,
    rule_error,
)
from dialq.validation.fields import check_timezone

Overlap = Literal["skip", "allow"]
# The dispatcher owns these call fields: each occurrence gets its own instant and its own key.
_OWNED_BY_SCHEDULE = ("not_before", "idempotency_key")
_MAX_EVERY_S = 366 * 86_400
_PATTERN_RULES = {"name": "must be letters, digits and . _ : -, starting with a letter or digit"}
# Times a schedule may name: the range a call's not_before may take, for the same reason.
INSTANT_RANGE = NOT_BEFORE_RANGE
_TIMING_FIELDS = ("kind", "timezone", "cron", "every_s", "at", "start_at", "end_at", "count")


class InvalidSchedule(InvalidCallRequest):
    """Raised when a schedule breaks one or more rules; nothing is stored."""


# A schedule's name: letters, digits and . _ : - (it appears in keys, logs and URLs).
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"


class _Input(BaseModel):
    """The accepted shape; values are checked further in `_resolve`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100, pattern=NAME_PATTERN)
    call: dict[str, Any]
    cron: str | None = Field(default=None, max_length=200)
    every: str | int | None = None
    at: datetime | date | None = None
    timezone: str = "UTC"
    start: datetime | date | None = None
    end: datetime | date | None = None
    count: int | None = Field(default=None, ge=1, le=MAX_COUNT)
    misfire_grace: str | int | None = None
    overlap: Overlap = "skip"
    enabled: bool = True

    @field_validator("at", "start", "end", mode="before")
    @classmethod
    def _iso_text(cls, value: object) -> object:
        # "2026-03-01" is a date (a whole local day), anything longer a date-time; pydantic
        # alone would read a bare date as midnight and lose that distinction.
        if isinstance(value, str):
            text = value.strip()
            try:
                return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
            except ValueError:
                rule = "must be an ISO 8601 date or date-time, e.g. 2030-01-31T09:00"
                raise rule_error(rule) from None
        return value

    @field_validator("overlap", mode="before")
    @classmethod
    def _overlap(cls, value: object) -> object:
        if value not in ("skip", "allow"):
            raise rule_error("must be skip or allow")
        return value


def input_schema() -> dict[str, Any]:
    """The JSON Schema of a schedule as written (the HTTP API's OpenAPI shows it)."""
    return _Input.model_json_schema()


class Timing(Protocol):
    """What a rule is built from: a definition, or a stored schedule row (read only)."""

    @property
    def kind(self) -> str: ...
    @property
    def cron(self) -> str | None: ...
    @property
    def every_s(self) -> int | None: ...
    @property
    def at(self) -> datetime | None: ...
    @property
    def timezone(self) -> str: ...
    @property
    def start_at(self) -> datetime | None: ...
    @property
    def end_at(self) -> datetime | None: ...
    @property
    def count(self) -> int | None: ...


@dataclass(frozen=True)
class ScheduleDefinition:
    """A valid schedule: resolved to aware UTC-comparable datetimes and a checked call template."""

    name: str
    template: dict[str, Any]
    kind: Kind
    timezone: str
    cron: str | None = None
    every_s: int | None = None
    at: datetime | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None
    count: int | None = None
    misfire_grace_s: int | None = None
    overlap: Overlap = "skip"
    enabled: bool = True

    def timing_fingerprint(self) -> str:
        """Changes when anything about *when* it fires changes (then next_due_at is recomputed)."""
        timing = [getattr(self, name) for name in _TIMING_FIELDS]
        return hashlib.sha256(json.dumps(timing, default=str).encode()).hexdigest()[:32]


def rule_of(timing: Timing, created_at: datetime) -> Rule:
    """The pure rule for a schedule; an open start means "from when it was first stored"."""
    kind: Kind = "cron" if timing.kind == "cron" else "every" if timing.kind == "every" else "at"
    window_start = timing.at if kind == "at" and timing.at else timing.start_at or created_at
    return Rule(
        kind=kind,
        timezone=timing.timezone,
        window_start=window_start,
        cron=timing.cron,
        every_s=timing.every_s,
        at=timing.at,
        anchor=timing.start_at or EPOCH,
        end_at=timing.end_at,
        count=timing.count,
    )


def parse_schedule(
    data: Mapping[str, Any],
    *,
    allowed_country_codes: Collection[int] = (1,),
    summary_email_domains: Collection[str] = (),
) -> ScheduleDefinition:
    """Validate a schedule; raises InvalidSchedule naming every broken field, storing nothing."""
    try:
        raw = _Input.model_validate(data)
    except ValidationError as error:
        found = from_validation_error(error, pattern_rules=_PATTERN_RULES)
        raise InvalidSchedule(found.errors) from None
    errors: list[FieldError] = []
    timing = _resolve(raw, errors)
    if timing is not None:
        errors += _reach_errors(ScheduleDefinition(name=raw.name, template={}, **timing))
    limits = _TemplateLimits(allowed_country_codes, summary_email_domains)
    errors += _template_errors(raw.call, limits)
    if errors or timing is None:
        raise InvalidSchedule(errors)
    template = limits.parse(raw.call)
    # Stored normalised (E.164 number, deduplicated e-mails), defaults left out so that a
    # default changed later applies to templates that never chose a value.
    stored = template.model_dump(mode="json", exclude_defaults=True)
    return ScheduleDefinition(name=raw.name, template=stored, **timing)


def _reach_errors(definition: ScheduleDefinition) -> list[FieldError]:
    # An open start is "from when it is stored": now, give or take the time to store it.
    try:
        check_reachable(rule_of(definition, datetime.now(UTC)))
    except UnreachableRule as error:
        return [FieldError(error.field, error.rule)]
    return []


@dataclass(frozen=True)
class _TemplateLimits:
    """The settings a call template is checked against, as every call request is."""

    allowed_country_codes: Collection[int]
    summary_email_domains: Collection[str]

    def parse(self, call: Mapping[str, Any]) -> CallRequest:
        return parse_call_request(
            call,
            allowed_country_codes=self.allowed_country_codes,
            summary_email_domains=self.summary_email_domains,
        )


def _template_errors(call: dict[str, Any], limits: _TemplateLimits) -> list[FieldError]:
    errors = [
        FieldError(f"call.{key}", "is set by the schedule for each occurrence")
        for key in _OWNED_BY_SCHEDULE
        if key in call
    ]
    try:
        limits.parse(call)
    except InvalidCallRequest as error:
        errors += [FieldError(f"call.{e.field}", e.rule) for e in error.errors]
    return errors


def _resolve(raw: _Input, errors: list[FieldError]) -> dict[str, Any] | None:
    try:
        zone_name = check_timezone(raw.timezone)
    except ValueError as error:
        errors.append(FieldError("timezone", str(error)))
        return None
    zone = ZoneInfo(zone_name)
    kind = _kind(raw, errors)
    every_s = _every_s(raw.every, errors)
    if raw.cron is not None:
        errors += [FieldError("cron", rule) for rule in _cron_problems(raw.cron)]
    grace = _misfire_grace_s(raw.misfire_grace, errors)
    start_at = _instant("start", raw.start, zone, errors, end_of_day=False)
    end_at = _instant("end", raw.end, zone, errors, end_of_day=True)
    at = _instant("at", raw.at, zone, errors, end_of_day=False)
    if start_at and end_at and end_at <= start_at:
        errors.append(FieldError("end", "must be after start"))
    if kind == "at" and (raw.start or raw.end or raw.count):
        errors.append(FieldError("at", "a single time takes no start, end or count"))
    if errors or kind is None:
        return None
    return {
        "kind": kind,
        "timezone": zone_name,
        "cron": " ".join(raw.cron.split()) if raw.cron else None,
        "every_s": every_s,
        "at": at,
        "start_at": start_at,
        "end_at": end_at,
        "count": raw.count,
        "misfire_grace_s": grace,
        "overlap": raw.overlap,
        "enabled": raw.enabled,
    }


def _kind(raw: _Input, errors: list[FieldError]) -> Kind | None:
    given: list[Kind] = []
    if raw.cron is not None:
        given.append("cron")
    if raw.every is not None:
        given.append("every")
    if raw.at is not None:
        given.append("at")
    if len(given) != 1:
        errors.append(FieldError("cron", "give exactly one of cron, every or at"))
        return None
    return given[0]


# Each field's name and what it takes, in the order cron reads them.
_CRON_FIELDS = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day of month", "1-31"),
    ("month", "1-12 or JAN-DEC"),
    ("day of week", "0-7 or SUN-SAT"),
)


def _cron_problems(expression: str) -> list[str]:
    """What is wrong with a cron expression, field by field; empty when it is valid."""
    fields = expression.split()
    # Exactly five fields: croniter also reads a sixth (seconds) field, which we do not offer.
    if len(fields) != len(_CRON_FIELDS):
        return [f"must be a 5-field cron expression, e.g. '0 9 * * 1-5' (got {len(fields)})"]
    if croniter.is_valid(expression):
        return []
    problems = []
    for index, (name, accepted) in enumerate(_CRON_FIELDS):
        alone = ["*"] * len(_CRON_FIELDS)
        alone[index] = fields[index]
        if not croniter.is_valid(" ".join(alone)):
            problems.append(f"the {name} field (number {index + 1}) must be within {accepted}")
    return problems or ["is not a valid cron expression, e.g. '0 9 * * 1-5'"]


def _duration(field: str, value: str | int | None, errors: list[FieldError]) -> int | None:
    if value is None:
        return None
    try:
        seconds = value if isinstance(value, int) else parse_duration(value)
    except ValueError as error:
        errors.append(FieldError(field, str(error)))
        return None
    if seconds < 0:
        errors.append(FieldError(field, "must not be negative"))
    return seconds


def _every_s(value: str | int | None, errors: list[FieldError]) -> int | None:
    seconds = _duration("every", value, errors)
    if seconds is not None and not 1 <= seconds <= _MAX_EVERY_S:
        errors.append(FieldError("every", "must be between 1s and 366 days"))
    return seconds


def _misfire_grace_s(value: str | int | None, errors: list[FieldError]) -> int | None:
    seconds = _duration("misfire_grace", value, errors)
    if seconds is not None and seconds > _MAX_EVERY_S:
        errors.append(FieldError("misfire_grace", "must be at most 366 days"))
    return seconds


def _instant(
    field: str,
    value: datetime | date | None,
    zone: ZoneInfo,
    errors: list[FieldError],
    *,
    end_of_day: bool,
) -> datetime | None:
    """A date means a whole local day (an end date includes it); a naive time is local.

    Out of range (near year 1 or 9999 the arithmetic leaves the calendar) is an error on field.
    """
    if value is None:
        return None
    earliest, latest = INSTANT_RANGE
    try:
        if not isinstance(value, datetime):
            day = value + timedelta(days=1) if end_of_day else value
            value = datetime.combine(day, time(0))
        instant = to_instant(value, zone) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        instant = None
    if instant is None or not earliest <= instant < latest:
        errors.append(FieldError(field, "must be between 0001-01-02 and 9000-01-01 (UTC)"))
        return None
    return instant
