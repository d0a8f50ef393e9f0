"""`dialq doctor` pieces that need no server: URLs without passwords, results, exit codes."""

from __future__ import annotations

import json
import os
from typing import cast

import pytest
import redis
from typer.testing import CliRunner

from dialq.cli.entry import app
from dialq.config import Settings, mask_url
from dialq.ops import doctor
from dialq.ops.doctor import FAIL, OK, Check
from dialq.ops.local_redis import free_port


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@redis:6379/0", "redis://:***@redis:6379/0"),
        ("rediss://user:pw@host:6380/1", "rediss://user:***@host:6380/1"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("postgresql+psycopg://dialq:pw@pg/dialq", "postgresql+psycopg://dialq:***@pg/dialq"),
    ],
)
def test_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_json_report_is_ok_only_when_every_check_is() -> None:
    checks = [Check("broker", OK, "fine"), Check("workers", FAIL, "none")]
    report = doctor.as_json(checks, 0.5)
    assert report == {
        "ok": False,
        "elapsed_s": 0.5,
        "checks": [
            {"name": "broker", "status": "OK", "detail": "fine"},
            {"name": "workers", "status": "FAIL", "detail": "none"},
        ],
    }
    assert doctor.as_json(checks[:1], 0.1)["ok"] is True


def test_an_unreachable_broker_fails_fast_and_skips_what_needs_it(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # given no account credentials anywhere Settings looks (environment, ./dialq.toml)
    for key in [k for k in os.environ if k.startswith("DIALQ_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    settings = Settings(
        broker_url=f"redis://:secret-pw@127.0.0.1:{free_port()}/0",
        database_url=f"sqlite:///{tmp_path / 'none.db'}",
    )
    checks = {check.name: check for check in doctor.run_checks(settings, timeout_s=0.5)}
    assert checks["broker"].status == FAIL
    assert "cannot reach Redis" in checks["broker"].detail
    assert "secret-pw" not in checks["broker"].detail
    assert checks["database"].detail == "no dialq schema yet: run `dialq db upgrade`"
    assert checks["symbl:default"].detail == "no app id or secret set for this account"
    assert (
        checks["workers"].detail == checks["queues"].detail == "skipped: the broker is unreachable"
    )


def test_the_command_exits_1_and_prints_json_when_a_check_fails(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    found = [Check("broker", OK, "fine"), Check("symbl:default", FAIL, "wrong id or secret")]
    monkeypatch.setattr(doctor, "timed", lambda settings, **_: (found, 0.2))
    result = CliRunner().invoke(app, ["doctor", "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["checks"][1]["detail"] == "wrong id or secret"


def test_the_command_exits_0_with_a_table_when_all_is_well(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(doctor, "timed", lambda settings, **_: ([Check("broker", OK, "up")], 0.1))
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 0
    assert "broker" in result.stdout
    assert "OK" in result.stdout


class _ListLengths:
    """Stands in for the broker: the length of each list, by key (0 when absent)."""

    def __init__(self, lengths: dict[str, int]) -> None:
        self.lengths = lengths

    def llen(self, key: str) -> int:
        return self.lengths.get(key, 0)


@pytest.mark.parametrize(
    ("lengths", "status"),
    [
        ({}, OK),
        ({"dialq.dial": 10}, OK),  # at the limit is not yet a backlog
        ({"dialq.dial": 11}, FAIL),
        ({"dialq.dial": 10, "dialq.dial\x06\x163": 1}, FAIL),  # priority lists count too
        ({"dialq.webhooks\x06\x169": 11}, FAIL),
        ({"dialq.dial": 10, "dialq.webhooks": 10}, OK),  # each queue on its own
    ],
)
def test_a_queue_is_a_backlog_only_above_the_limit_priority_messages_included(
    lengths: dict[str, int], status: str
) -> None:
    check = doctor.check_queues(cast(redis.Redis, _ListLengths(lengths)), max_depth=10)
    assert check.status == status, check.detail
