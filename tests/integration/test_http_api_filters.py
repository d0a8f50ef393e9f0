"""Finding calls: the HTTP list's schedule and session-name filters with cursor pages, delayed
calls (`not_before`/`at`, `dialq call --at/--in`), `dialq calls --since/--account/--schedule/
--search` and the Python API's read side, against a running `dialq api`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dialq.api import close_runtimes, get_call, list_calls
from dialq.config import Settings
from dialq.store import Database, schedules_repo
from dialq.store.schedule_tables import Outcome
from tests.integration.test_http_api import Api, api, api_env, assert_problem

__all__ = ["api", "api_env"]  # the fixtures, shared with test_http_api.py

NUMBER = "+14155550123"
NAMES = ("Weekly Standup", "standup 2", "Retro", "100% done", "a_b")


def place(api: Api, key: str, name: str, **extra: Any) -> str:
    body = {"phone_number": NUMBER, "session_name": name, **extra}
    answer = api.call("POST", "/v1/calls", key, json=body)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def link_to_schedule(api: Api, schedule_id: str, call_ids: list[str]) -> None:
    """Record the calls as the schedule's occurrences, as its dispatcher does."""
    db = Database(api.env["DIALQ_DATABASE_URL"])
    now = datetime.now(UTC)
    try:
        with db.transaction() as session:
            for n, call_id in enumerate(call_ids):
                at = now - timedelta(minutes=n + 1)
                schedules_repo.add_occurrence(
                    session, schedule_id, at, Outcome.PLACED, now=now, call_id=call_id
                )
    finally:
        db.dispose()


def every_page(api: Api, key: str, **params: Any) -> list[list[str]]:
    """The session names of each page, following next_cursor to the end."""
    pages: list[list[str]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        answer = api.call("GET", "/v1/calls", key, params=query)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        pages.append([api_name(api, key, item["id"]) for item in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


def api_name(api: Api, key: str, call_id: str) -> str:
    return str(api.call("GET", f"/v1/calls/{call_id}", key).json()["request"]["session_name"])


def test_calls_are_found_by_a_part_of_their_session_name_and_by_schedule_a_page_at_a_time(
    api: Api,
) -> None:
    # given calls of sales with several session names, two placed by a schedule
    key = api.make_key("sales", scopes=("calls:write", "calls:read", "schedules:write"))
    ids = {name: place(api, key, name) for name in NAMES}
    put = api.call("PUT", "/v1/schedules/standup", key, json={
        "cron": "0 9 * * 1-5", "call": {"phone_number": NUMBER},
    })  # fmt: skip
    assert put.status_code == 201, put.text
    link_to_schedule(api, put.json()["id"], [ids["Weekly Standup"], ids["Retro"]])
    # when they are searched for, in another case, one per page
    pages = every_page(api, key, search="STANDUP", limit=1)
    # then both matches come, newest first, each once, and the pages end
    assert [name for page in pages for name in page] == ["standup 2", "Weekly Standup"]
    # and LIKE's wildcards in a term are plain characters
    assert every_page(api, key, search="%") == [["100% done"]]
    assert every_page(api, key, search="_") == [["a_b"]]
    # and the schedule filter gives what the schedule placed, with the other filters too
    assert every_page(api, key, schedule="standup") == [["Retro", "Weekly Standup"]]
    assert every_page(api, key, schedule="standup", search="retro") == [["Retro"]]
    assert every_page(api, key, schedule="nothing") == [[]]
    # and a key of support finds none of them
    support = api.make_key("support")
    assert every_page(api, support, schedule="standup") == [[]]
    assert every_page(api, support, search="standup") == [[]]
    # and a term longer than any session name, or an empty one, is a problem naming it
    too_long = api.call("GET", "/v1/calls", key, params={"search": "x" * 201})
    assert [e["field"] for e in assert_problem(too_long, 422)["errors"]] == ["query.search"]
    empty = api.call("GET", "/v1/calls", key, params={"search": ""})
    assert [e["field"] for e in assert_problem(empty, 422)["errors"]] == ["query.search"]


def test_a_call_posted_with_at_or_not_before_waits_for_that_time(api: Api) -> None:
    # given a key, and a time two hours ahead
    key = api.make_key("sales")
    later = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    # when calls are posted with `at`, with `not_before`, and with both
    by_at = api.call("POST", "/v1/calls", key, json={"phone_number": NUMBER,
                                                      "at": later.isoformat()})  # fmt: skip
    by_nb = api.call("POST", "/v1/calls", key, json={"phone_number": NUMBER,
                                                      "not_before": later.isoformat()})  # fmt: skip
    both = api.call("POST", "/v1/calls", key, json={
        "phone_number": NUMBER, "at": later.isoformat(), "not_before": later.isoformat(),
    })  # fmt: skip
    # then the first two wait until then, and the third names `at` with nothing written
    for answer in (by_at, by_nb):
        assert answer.status_code == 201, answer.text
        assert datetime.fromisoformat(answer.json()["not_before"]) == later
    assert [e["field"] for e in assert_problem(both, 422)["errors"]] == ["at"]
    assert api.call_rows() == 2
    naive = api.call("POST", "/v1/calls", key, json={"phone_number": NUMBER, "at": "2030-01-01"})
    assert [e["field"] for e in assert_problem(naive, 422)["errors"]] == ["not_before"]


@pytest.mark.timeout(600)  # a dozen CLI processes, each importing Celery, on a loaded machine
def test_the_cli_places_delayed_calls_and_lists_them_by_time_account_schedule_and_name(
    api: Api,
) -> None:
    # given a call of support placed over HTTP, and a key to read calls
    place(api, api.make_key("support"), "Support sync")
    reader = api.make_key("sales", "support", scopes=("calls:read",))
    # when the CLI places a call in 2 hours and one at a fixed time
    later = api.cli("call", NUMBER, "--account", "sales", "--name", "Later", "--in", "2h", "--json")
    fixed = api.cli("call", NUMBER, "--account", "sales", "--name", "Fixed",
                    "--at", "2030-01-31T09:00+01:00", "--json")  # fmt: skip
    # then each waits for its time
    assert later.returncode == 0, later.stderr
    assert fixed.returncode == 0, fixed.stderr
    read = api.call("GET", f"/v1/calls/{json.loads(later.stdout)['id']}", reader).json()
    waits = datetime.fromisoformat(read["not_before"]) - datetime.now(UTC)
    assert timedelta(hours=1, minutes=50) < waits <= timedelta(hours=2)
    read = api.call("GET", f"/v1/calls/{json.loads(fixed.stdout)['id']}", reader).json()
    assert datetime.fromisoformat(read["not_before"]) == datetime(2030, 1, 31, 8, tzinfo=UTC)

    def names(*args: str) -> list[str]:
        listed = api.cli("calls", "--json", *args)
        assert listed.returncode == 0, listed.stderr
        return [api_name(api, reader, row["id"]) for row in json.loads(listed.stdout)]

    # and `dialq calls` filters by name, account, time and schedule
    assert names("--search", "SYNC") == ["Support sync"]
    assert names("--account", "sales", "--since", "1h") == ["Fixed", "Later"]
    assert names("--since", "2999-01-01T00:00") == []
    assert names("--schedule", "none-such") == []
    # and a broken time or a double delay is refused naming the option, with nothing written
    for args, field in ((("--in", "2 parsecs"), "in"),
                        (("--at", "2030-01-01T00:00", "--in", "1h"), "at")):  # fmt: skip
        refused = api.cli("call", NUMBER, *args)
        assert refused.returncode == 2, refused.stderr
        assert field in refused.stderr
    bad_since = api.cli("calls", "--since", "yesterday")
    assert bad_since.returncode == 2
    assert "since" in bad_since.stderr
    assert api.call_rows() == 3


def test_the_python_api_reads_a_call_and_lists_calls_by_filter(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given two calls over HTTP, and a producer with the API's settings
    sales = place(api, api.make_key("sales"), "Quarterly review")
    place(api, api.make_key("support"), "Helpdesk")
    for name, value in api.env.items():
        if name.startswith("DIALQ_"):
            monkeypatch.setenv(name, value)
    settings = Settings()
    try:
        # when a call is read, and calls are listed by account and by name
        detail = get_call(sales, settings=settings)
        by_account = list_calls(accounts=["support"], settings=settings)
        by_name = list_calls(search="review", settings=settings)
        since = list_calls(since=datetime.now(UTC) + timedelta(minutes=1), settings=settings)
        missing = get_call("no-such-call", settings=settings)
    finally:
        close_runtimes()
    # then the call comes with its events, and each list holds what it should
    assert detail is not None
    assert (detail["id"], detail["status"], detail["events"][0]["to"]) == (
        sales,
        "queued",
        "queued",
    )
    assert [row["account"] for row in by_account] == ["support"]
    assert [row["id"] for row in by_name] == [sales]
    assert since == []
    assert missing is None
