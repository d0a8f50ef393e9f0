"""The schedule routes of the HTTP API over real HTTP (a `dialq api` process, real Redis,
SQLite and PostgreSQL): create, replace, read, list, pause, resume, preview and delete, each
bound to the key's accounts and scopes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.integration.test_http_api import Api, api, api_env, assert_problem

__all__ = ["api", "api_env"]  # the fixtures, shared with test_http_api.py

NUMBER = "+14155550123"
WRITE = ("schedules:write", "schedules:read")


def standup(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "cron": "0 9 * * 1-5",
        "timezone": "America/New_York",
        "call": {"phone_number": NUMBER, "session_name": "Standup"},
    }
    return {**body, **changes}


def test_a_schedule_is_created_replaced_read_listed_previewed_paused_resumed_and_deleted(
    api: Api,
) -> None:
    # given a key for sales that may change schedules
    key = api.make_key("sales", scopes=WRITE)
    # when a schedule is put by name, then put again with another time
    created = api.call("PUT", "/v1/schedules/standup", key, json=standup())
    replaced = api.call("PUT", "/v1/schedules/standup", key, json=standup(cron="30 8 * * 1-5"))
    # then it was created (201), then replaced (200), for the key's one account
    assert created.status_code == 201, created.text
    assert created.headers["Location"] == "/v1/schedules/standup"
    assert replaced.status_code == 200, replaced.text
    body = replaced.json()
    assert (body["account"], body["state"], body["cron"], body["source"]) == (
        "sales", "active", "30 8 * * 1-5", "api",
    )  # fmt: skip
    assert body["call"]["phone_number"] == NUMBER
    assert body["next_local"][11:19] == "08:30:00"
    # and it is read, listed, and its next times are on New York's clock and in UTC
    read = api.call("GET", "/v1/schedules/standup", key).json()
    assert (read["name"], read["recent_occurrences"]) == ("standup", [])
    assert [s["name"] for s in api.call("GET", "/v1/schedules", key).json()] == ["standup"]
    after = "2030-03-08T12:00:00+00:00"  # a Friday; New York moves to summer time on the 10th
    following = api.call(
        "GET", "/v1/schedules/standup/next", key, params={"count": 3, "after": after}
    )
    assert following.status_code == 200, following.text
    times = following.json()["occurrences"]
    assert [t["local"] for t in times] == [
        "2030-03-08T08:30:00-05:00", "2030-03-11T08:30:00-04:00", "2030-03-12T08:30:00-04:00",
    ]  # fmt: skip
    assert [datetime.fromisoformat(t["utc"].replace("Z", "+00:00")).hour for t in times] == [
        13, 12, 12,
    ]  # fmt: skip
    # when it is paused, then resumed
    paused = api.call("POST", "/v1/schedules/standup/pause", key).json()
    resumed = api.call("POST", "/v1/schedules/standup/resume", key).json()
    # then nothing is due while paused, and it is due again once resumed
    assert (paused["state"], paused["next_due_at"]) == ("paused", None)
    assert resumed["state"] == "active"
    assert resumed["next_due_at"] is not None
    # when it is deleted, it is gone
    assert api.call("DELETE", "/v1/schedules/standup", key).status_code == 204
    assert_problem(api.call("GET", "/v1/schedules/standup", key), 404)
    assert_problem(api.call("DELETE", "/v1/schedules/standup", key), 404)


def test_a_naive_after_is_read_on_the_schedules_own_clock(api: Api) -> None:
    # given a daily 09:00 schedule in Tokyo
    key = api.make_key("sales", scopes=WRITE)
    body = standup(cron="0 9 * * *", timezone="Asia/Tokyo")
    assert api.call("PUT", "/v1/schedules/tokyo", key, json=body).status_code == 201
    # when its next time after 08:00 (no offset) is asked for
    answer = api.call(
        "GET", "/v1/schedules/tokyo/next", key, params={"count": 1, "after": "2030-01-05T08:00"}
    )
    # then 08:00 is Tokyo's, so 09:00 the same day comes next
    assert answer.json()["occurrences"][0]["local"] == "2030-01-05T09:00:00+09:00"


def test_every_broken_field_of_a_schedule_is_named_and_nothing_is_stored(api: Api) -> None:
    # given a key that may change schedules
    key = api.make_key("sales", scopes=WRITE)
    # when a schedule with a bad cron and no number is put
    bad = {"cron": "61 * * * *", "call": {"session_name": "x"}}
    answer = api.call("PUT", "/v1/schedules/broken", key, json=bad)
    # then one problem names each field, and nothing was stored
    problem = assert_problem(answer, 422)
    fields = {e["field"] for e in problem["errors"]}
    assert {"cron", "call.phone_number"} <= fields, problem
    assert api.call("GET", "/v1/schedules", key).json() == []
    zone = api.call("PUT", "/v1/schedules/a", key, json=standup(timezone="Mars/Olympus"))
    assert [e["field"] for e in assert_problem(zone, 422)["errors"]] == ["timezone"]
    # and a body naming another schedule, a name no schedule can have, a body that is not an
    # object and an unknown field are problems too
    other = api.call("PUT", "/v1/schedules/a", key, json={**standup(), "name": "b"})
    assert [e["field"] for e in assert_problem(other, 422)["errors"]] == ["name"]
    assert_problem(api.call("PUT", "/v1/schedules/-bad", key, json=standup()), 422)
    assert_problem(api.call("PUT", "/v1/schedules/a", key, json=[1]), 422)
    unknown = api.call("PUT", "/v1/schedules/a", key, json={**standup(), "colour": "red"})
    assert "colour" in {e["field"] for e in assert_problem(unknown, 422)["errors"]}
    assert_problem(api.call("GET", "/v1/schedules/a/next", key, params={"count": 0}), 422)


def test_schedules_are_bound_to_the_keys_accounts_and_scopes(api: Api) -> None:
    # given a schedule of sales, a key for support, a calls-only key and a read-only key
    sales = api.make_key("sales", scopes=WRITE)
    support = api.make_key("support", scopes=WRITE)
    calls_only = api.make_key("sales", scopes=("calls:write",))
    reader = api.make_key("sales", scopes=("calls:read",))
    assert api.call("PUT", "/v1/schedules/standup", sales, json=standup()).status_code == 201
    # then support neither sees, previews, pauses, deletes nor takes over sales' schedule
    assert api.call("GET", "/v1/schedules", support).json() == []
    for method, path in (
        ("GET", "/v1/schedules/standup"),
        ("GET", "/v1/schedules/standup/next"),
        ("POST", "/v1/schedules/standup/pause"),
        ("DELETE", "/v1/schedules/standup"),
    ):
        assert_problem(api.call(method, path, support), 404)
    assert_problem(api.call("PUT", "/v1/schedules/standup", support, json=standup()), 409)
    # and a key for sales cannot schedule calls for support
    theirs = standup(call={"phone_number": NUMBER, "account": "support"})
    assert_problem(api.call("PUT", "/v1/schedules/theirs", sales, json=theirs), 403)
    # and changing needs schedules:write, while calls:read is enough to read
    assert_problem(api.call("PUT", "/v1/schedules/x", calls_only, json=standup()), 403)
    assert_problem(api.call("GET", "/v1/schedules", calls_only), 403)
    assert api.call("GET", "/v1/schedules/standup", reader).status_code == 200
    assert_problem(api.call("POST", "/v1/schedules/standup/pause", reader), 403)
    # and sales' schedule is as it was
    assert api.call("GET", "/v1/schedules/standup", sales).json()["state"] == "active"
