"""Inputs of issue 17: impossible or overflowing schedules are validation errors naming the
field, a schedules file is applied all or nothing and a deeply nested one is refused in words,
unknown fields are reported in bounded form, and summary e-mails can be kept to some domains."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dialq.api import enqueue_call
from dialq.calls.request import MAX_UNKNOWN_REPORTED, parse_call_request
from dialq.config import Settings
from dialq.schedules.api import ScheduleService
from dialq.schedules.file import FileWatcher, read_file, sync_file
from dialq.schedules.spec import InvalidSchedule, parse_schedule
from dialq.store import Database
from dialq.store import schedules_repo as repo
from dialq.validation.errors import InvalidCallRequest

CALL = {"phone_number": "+14155550123"}


def _fields(error: InvalidCallRequest) -> dict[str, str]:
    return {e.field: e.rule for e in error.errors}


# -- schedules that can never fire, or fire past year 9999 -------------------------------------


@pytest.mark.parametrize(
    ("schedule", "field", "words"),
    [
        ({"cron": "0 0 30 2 *"}, "cron", "matches no date"),
        ({"cron": "0 0 31 4,6,9,11 *"}, "cron", "matches no date"),
        ({"cron": "0 0 1 1 *", "count": 9_000}, "count", "past year 9999"),
        ({"every": "366d", "count": 10_000, "start": "8990-01-01"}, "count", "past year 9999"),
    ],
    ids=["30-february", "31st-of-short-months", "yearly-count", "interval-count"],
)
def test_a_schedule_that_cannot_be_computed_is_a_validation_error_naming_its_field(
    schedule: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(InvalidSchedule) as raised:
        parse_schedule({"name": "s", "call": CALL, **schedule})
    assert words in _fields(raised.value)[field]


def test_a_rare_but_possible_cron_is_still_accepted() -> None:
    # 29 February on a Monday: once in about 28 years, and a count within the calendar
    definition = parse_schedule({"name": "s", "cron": "0 0 29 2 1", "count": 3, "call": CALL})
    assert definition.count == 3


# -- unknown fields: the first few by name, the rest counted -----------------------------------


def test_a_payload_of_many_unknown_fields_names_the_first_twenty_and_counts_the_rest() -> None:
    # given 300,000 unknown keys beside a broken number
    payload: dict[str, object] = {"phone_number": "+1415555012"}
    payload.update({f"k{i}": 1 for i in range(300_000)})
    # when it is parsed
    with pytest.raises(InvalidCallRequest) as raised:
        parse_call_request(payload)
    # then the number's error, the first twenty unknown keys and a count of the rest, in a
    # message of a few hundred characters
    fields = _fields(raised.value)
    assert "phone_number" in fields
    assert [f for f in fields if f.startswith("k")] == [f"k{i}" for i in range(20)]
    assert fields["request"] == "and 299980 more unknown fields"
    assert len(str(raised.value)) < 2_000


def test_a_few_unknown_fields_are_all_named() -> None:
    payload: dict[str, object] = {**CALL, **{f"k{i}": 1 for i in range(MAX_UNKNOWN_REPORTED)}}
    with pytest.raises(InvalidCallRequest) as raised:
        parse_call_request(payload)
    fields = _fields(raised.value)
    assert len(fields) == MAX_UNKNOWN_REPORTED
    assert "request" not in fields


# -- summary e-mail domains --------------------------------------------------------------------


def test_the_summary_email_domains_setting_refuses_other_domains_at_the_producer_api(
    tmp_path: Path,
) -> None:
    # given producers limited to example.com (written as people do: any case, with an @)
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'd.db'}",
        broker_url="redis://127.0.0.1:1/0",  # never reached: the request is refused first
        summary_email_domains=["@Example.COM"],
    )
    assert settings.summary_email_domains == ["example.com"]
    # when a call asks Symbl to e-mail another domain
    with pytest.raises(InvalidCallRequest) as raised:
        enqueue_call({**CALL, "summary_emails": ["someone@elsewhere.org"]}, settings=settings)
    # then it is refused naming the field and the allowed domain
    assert "example.com" in _fields(raised.value)["summary_emails"]


def test_the_summary_email_domains_setting_refuses_other_domains_in_a_schedule_template(
    tmp_path: Path,
) -> None:
    # given schedules limited to example.com
    url = f"sqlite:///{tmp_path / 'd.db'}"
    schedules = ScheduleService(
        Settings(database_url=url, summary_email_domains=["example.com"]), Database(url)
    )
    # when a schedule's call asks Symbl to e-mail another domain
    call = {**CALL, "summary_emails": ["someone@elsewhere.org"]}
    with pytest.raises(InvalidSchedule) as raised:
        schedules.parse({"name": "s", "cron": "0 9 * * *", "call": call})
    # then it is refused naming the template's field
    assert "example.com" in _fields(raised.value)["call.summary_emails"]


def test_without_the_setting_any_summary_email_domain_is_accepted() -> None:
    assert Settings().summary_email_domains == []
    request = parse_call_request({**CALL, "summary_emails": ["a@elsewhere.org"]})
    assert request.summary_emails == ["a@elsewhere.org"]


# -- the schedules file ------------------------------------------------------------------------


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ScheduleService]:
    url = f"sqlite:///{tmp_path / 'schedules.db'}"
    db = Database(url)
    db.upgrade()
    yield ScheduleService(Settings(database_url=url), db)
    db.dispose()


def _stored(service: ScheduleService) -> set[str]:
    with service.db.sessions() as session:
        return {s.name for s in repo.list_schedules(session)}


def test_a_deeply_nested_schedules_file_is_refused_in_words_not_a_recursion_error(
    service: ScheduleService, tmp_path: Path
) -> None:
    path = tmp_path / "schedules.toml"
    path.write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(InvalidSchedule, match="nested too deeply"):
        read_file(path, service)


def test_a_schedules_file_the_store_would_refuse_part_way_writes_nothing(
    service: ScheduleService, tmp_path: Path
) -> None:
    # given a file whose second schedule is valid alone but has no occurrence left after now
    path = tmp_path / "schedules.toml"
    path.write_text(
        '[schedules.a]\ncron = "0 9 * * *"\ncall = { phone_number = "+14155550123" }\n'
        '[schedules.b]\nat = "2001-01-01T09:00"\ncall = { phone_number = "+14155550123" }\n'
    )
    # when it is applied
    with pytest.raises(InvalidSchedule) as raised:
        sync_file(path, service)
    # then the error names b's field, and not even a is stored
    assert "schedules.b.at" in _fields(raised.value)
    assert _stored(service) == set()


def test_the_watcher_applies_a_file_again_after_the_database_was_unavailable(
    service: ScheduleService, tmp_path: Path
) -> None:
    # given a watcher whose database is down (a PostgreSQL port nobody listens on)
    path = tmp_path / "schedules.toml"
    path.write_text('[schedules.a]\ncron = "0 9 * * *"\ncall = { phone_number = "+14155550123" }\n')
    down_url = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1"
    down = ScheduleService(Settings(database_url=down_url), Database(down_url))
    watcher = FileWatcher(down, path)
    watcher.sync_if_changed()
    # when the database is back and the next tick looks at the unchanged file
    watcher.service = service
    watcher.sync_if_changed()
    # then the file is applied
    assert _stored(service) == {"a"}
