"""Small Joi-like type checks shared by the request validators."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class Invalid(ValueError):
    """Raised when a request body breaks the contract; the message names the field path."""

    @property
    def message(self) -> str:
        return str(self.args[0])


def require_object(value: Any, path: str) -> dict[str, Any]:
    if value is None:
        raise Invalid(f'"{path}" is required')
    if not isinstance(value, dict):
        raise Invalid(f'"{path}" must be of type object')
    return value


def optional_object(value: Any, path: str) -> dict[str, Any] | None:
    return None if value is None else require_object(value, path)


def require_string(value: Any, path: str) -> str:
    if value is None:
        raise Invalid(f'"{path}" is required')
    if not isinstance(value, str):
        raise Invalid(f'"{path}" must be a string')
    if not value:
        raise Invalid(f'"{path}" is not allowed to be empty')
    return value


def optional_string(value: Any, path: str) -> str | None:
    return None if value is None else require_string(value, path)


def require_one_of(value: Any, path: str, allowed: Sequence[str]) -> str:
    text = require_string(value, path)
    if text not in allowed:
        raise Invalid(f'"{path}" must be one of [{", ".join(allowed)}]')
    return text


def is_number(value: Any) -> bool:
    """JSON numbers only: ``true`` is a bool to a Joi schema, not the number 1."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def optional_number(value: Any, path: str) -> float | None:
    if value is None:
        return None
    if not is_number(value):
        raise Invalid(f'"{path}" must be a number')
    number: float = value
    return number


def optional_array(value: Any, path: str) -> list[Any]:
    """The items of an optional array; absent or null reads as no items."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise Invalid(f'"{path}" must be an array')
    return value
