"""Sandbox settings: defaults, runtime changes, and the CLI's spellings."""

from __future__ import annotations

from typing import Any

import pytest

from dialq.sandbox.config import ConfigError, SandboxConfig, parse_call_seconds, parse_retry_after
from dialq.sandbox.wire import retry_after_value


def test_defaults_match_the_documented_ones() -> None:
    config = SandboxConfig()
    assert (config.app_id, config.token_ttl_s, config.max_concurrent) == ("sandbox-app", 86400.0, 5)
    assert config.call_seconds is None
    assert config.retry_after_s is None
    assert config.nanp_only


@pytest.mark.parametrize(
    ("value", "parsed"),
    [(None, None), (3, 3.0), ("2.5", 2.5), ("4-9", (4.0, 9.0)), ([1, 2], (1.0, 2.0))],
)
def test_call_seconds_accepts_fixed_ranges_and_never(value: Any, parsed: Any) -> None:
    assert parse_call_seconds(value) == parsed


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"app_secret": "new"}, "cannot be changed"),
        ({"colour": "red"}, "not a sandbox setting"),
        ({"max_concurrent": -1}, "max_concurrent"),
        ({"call_seconds": [9, 4]}, "call_seconds"),
        ({"fault_rates": {"500": 2}}, "fault_rates"),
    ],
)
def test_runtime_changes_are_checked(changes: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        SandboxConfig().updated(changes)


def test_the_public_view_never_shows_the_secret() -> None:
    view = SandboxConfig(app_secret="hunter2", call_seconds=(1.0, 2.0)).public_view()
    assert view["app_secret"] == "***"
    assert view["call_seconds"] == [1.0, 2.0]


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("2", (2.0, "seconds")), ("date", (1.0, "date")), ("date:30", (30.0, "date"))],
)
def test_retry_after_spellings(text: str, parsed: tuple[float, str]) -> None:
    assert parse_retry_after(text) == parsed


def test_retry_after_values_are_whole_seconds_or_http_dates() -> None:
    assert retry_after_value(1.2) == "2"
    assert retry_after_value("date:60", now=0.0) == "Thu, 01 Jan 1970 00:01:00 GMT"
    assert retry_after_value("soon") == "soon"
