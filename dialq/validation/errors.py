"""Turn pydantic's validation errors into plain "field: rule" messages that are safe to log.

A rejected request is logged and recorded, and its input may hold personal data (a phone number,
an email address). So these messages say which rule was broken and never echo the submitted value;
pydantic's own messages and its ``input`` key are deliberately not used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

# The error type our own checks raise; its message is already a plain rule.
RULE_ERROR = "dialq_rule"

# The name used when the whole request, not one field, is wrong.
WHOLE_REQUEST = "request"

# Unknown field names are user input too: keep them short and printable in messages.
_MAX_NAME_CHARS = 64


@dataclass(frozen=True)
class FieldError:
    """One broken rule: which field, and what the rule is, in plain words."""

    field: str
    rule: str

    def __str__(self) -> str:
        return f"{self.field}: {self.rule}"


class InvalidCallRequest(ValueError):
    """Raised when a call request breaks one or more rules; nothing is dialed."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(error) for error in errors))


def rule_error(rule: str, *, field: str | None = None) -> PydanticCustomError:
    """An error for a broken rule; ``field`` names it when pydantic cannot (model checks)."""
    context = {"field": field} if field else None
    return PydanticCustomError(RULE_ERROR, rule, context)


def from_validation_error(
    error: ValidationError, *, pattern_rules: Mapping[str, str] | None = None
) -> InvalidCallRequest:
    """The plain-words version of a pydantic ValidationError, duplicates dropped.

    ``pattern_rules`` gives, per field, the words for a failed ``pattern`` constraint, because
    "should match pattern '^...$'" helps nobody.
    """
    patterns = pattern_rules or {}
    errors = [FieldError(_field_name(d), _rule(d, patterns)) for d in error.errors()]
    return InvalidCallRequest(list(dict.fromkeys(errors)))


def _field_name(detail: ErrorDetails) -> str:
    ctx = detail.get("ctx") or {}
    if isinstance(ctx.get("field"), str):
        return str(ctx["field"])
    parts: list[str] = []
    for part in detail["loc"]:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(("." if parts else "") + _printable(str(part)))
    return "".join(parts) or WHOLE_REQUEST


def _printable(name: str) -> str:
    if not name:
        return '""'  # an empty key is still a field of its own, not the whole request
    shown = "".join(ch if ch.isprintable() else "?" for ch in name[:_MAX_NAME_CHARS])
    return shown + ("..." if len(name) > _MAX_NAME_CHARS else "")


_FIXED_RULES: Mapping[str, str] = {
    "missing": "is required",
    "extra_forbidden": "unknown field",
    "invalid_key": "unknown field (field names must be strings)",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
    "string_type": "must be a string",
    "string_unicode": "must be valid Unicode text",
    "string_sub_type": "must be a string",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "int_parsing_size": "must be a whole number of a sensible size",
    "finite_number": "must be a finite number",
    "list_type": "must be a list",
    "datetime_type": "must be an ISO 8601 date-time, e.g. 2030-01-31T09:00:00Z",
    "datetime_parsing": "must be an ISO 8601 date-time, e.g. 2030-01-31T09:00:00Z",
    "datetime_from_date_parsing": "must be an ISO 8601 date-time, e.g. 2030-01-31T09:00:00Z",
    "datetime_object_invalid": "must be an ISO 8601 date-time, e.g. 2030-01-31T09:00:00Z",
    "timezone_aware": "must include a timezone offset, e.g. 2030-01-31T09:00:00Z or +02:00",
    "date_type": "must be an ISO 8601 date, e.g. 2030-01-31",
    "date_parsing": "must be an ISO 8601 date, e.g. 2030-01-31",
    "date_from_datetime_parsing": "must be an ISO 8601 date, e.g. 2030-01-31",
    "date_from_datetime_inexact": "must be an ISO 8601 date, e.g. 2030-01-31",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
}


def _rule(detail: ErrorDetails, pattern_rules: Mapping[str, str]) -> str:
    kind = detail["type"]
    ctx = detail.get("ctx") or {}
    if kind == RULE_ERROR:
        return detail["msg"]
    if kind in _FIXED_RULES:
        return _FIXED_RULES[kind]
    if kind == "string_pattern_mismatch":
        field = str(detail["loc"][0]) if detail["loc"] else ""
        return pattern_rules.get(field, "has an invalid format")
    bounded = _bound_rule(kind, ctx)
    # A type we did not foresee: name it rather than risk echoing the input via pydantic's msg.
    return bounded or f"is not valid ({kind})"


_BOUND_RULES: Mapping[str, str] = {
    "greater_than_equal": "must be at least {ge}",
    "less_than_equal": "must be at most {le}",
    "greater_than": "must be greater than {gt}",
    "less_than": "must be less than {lt}",
    "string_too_short": "must be at least {min_length} characters",
    "string_too_long": "must be at most {max_length} characters",
    "too_long": "must have at most {max_length} items",
    "too_short": "must have at least {min_length} items",
}


def _bound_rule(kind: str, ctx: Mapping[str, object]) -> str | None:
    if kind == "string_too_short" and ctx.get("min_length") == 1:
        return "must not be empty"
    template = _BOUND_RULES.get(kind)
    try:
        return template.format(**ctx) if template else None
    except (KeyError, IndexError):  # a context without the bound: fall back to the type name
        return None
