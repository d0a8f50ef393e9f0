"""The dashboard in Debian's Chromium against a real stack: live pages, actions guarded by
scope and CSRF, the capacity chart, schedules across DST, and nothing secret anywhere."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from dialq.http.keys import key_digest
from dialq.schedules import upsert_schedule
from dialq.store import Database, apikeys_repo
from tests.browser.pages import WIDE, NetworkLog, shoot, sign_in
from tests.integration.test_http_api import Api, running_api
from tests.stack import APP_SECRET, WEBHOOK_SECRET, Stack

NUMBER = "+14155550123"
START = {"path": "/v1/endpoint:connect", "operation": "start"}
READ_ONLY = ("calls:read",)
# `dialq api` imports a lot: on a busy machine it takes far longer to answer than in CI.
API_START_S = 120.0
# A live call's wait is long enough to be canceled by hand; the burst's calls are short.
LONG_S = 10


def revoke(api: Api, key: str) -> None:
    """As `dialq apikey revoke` does."""
    db = Database(api.env["DIALQ_DATABASE_URL"])
    try:
        with db.transaction() as session:
            found = apikeys_repo.find_active(session, key_digest(key))
            assert found is not None
            apikeys_repo.revoke(session, found.id, datetime.now(UTC))
    finally:
        db.dispose()


def secrets_of(key: str) -> list[str]:
    return [NUMBER, NUMBER[2:], APP_SECRET, WEBHOOK_SECRET, key]


def assert_nothing_secret(page: Any, log: NetworkLog, key: str) -> None:
    """No phone number, secret or API key in the page, its URL or anything on the wire."""
    seen = "\n".join([page.url, page.content(), log.text()])
    for secret in secrets_of(key):
        assert secret not in seen, f"{secret[:4]}... shown"


def open_page(browser: Any) -> tuple[Any, NetworkLog]:
    context = browser.new_context(viewport=WIDE)
    page = context.new_page()
    log = NetworkLog()
    log.attach(page)
    return page, log


def place(api: Api, key: str, **fields: Any) -> str:
    answer = api.call("POST", "/v1/calls", key, json={"phone_number": NUMBER, **fields})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def test_the_calls_page_follows_a_call_from_queued_to_completed_and_its_page_shows_the_results(
    stack: Stack, browser: Any, screenshots: Path
) -> None:
    # given a stack whose calls last 3 s, `dialq api`, and a browser signed in with a key
    stack.sandbox.control.configure(call_seconds=3)
    with running_api(stack.env, stack.workdir, API_START_S) as api:
        key = api.make_key("default")
        page, log = open_page(browser)
        sign_in(page, api.url, key)
        page.evaluate("window.notReloaded = true")
        # when a call is placed while no worker runs
        call_id = place(api, key, session_name="Quarterly review")
        status = page.locator(f'tr[data-call="{call_id}"] [data-status]')
        # then the open page shows it queued, counted, masked, without a reload
        expect(status).to_have_text("queued", timeout=15_000)
        expect(page.locator('[data-state="queued"]')).to_have_text("1")
        expect(page.locator(f'tr[data-call="{call_id}"]')).to_contain_text("+1******0123")
        # when a worker dials it and the far end hangs up
        stack.start_worker()
        # then the same page shows it completed, still without a reload
        expect(status).to_have_text("completed", timeout=60_000)
        assert page.evaluate("window.notReloaded") is True
        expect(page.locator(f'tr[data-call="{call_id}"]')).to_contain_text("Quarterly review")
        shoot(page, screenshots, "calls")
        # when its page is opened
        status.click()
        page.wait_for_url(f"{api.url}/dashboard/calls/{call_id}")
        # then it shows the timeline, the transcript and the insights once harvested
        expect(page.locator("#transcript li").first).to_be_visible(timeout=60_000)
        expect(page.locator("#insights h3").first).to_be_visible(timeout=30_000)
        expect(page.locator("#insights")).to_contain_text("Action items")
        timeline = page.locator("table.timeline tbody tr")
        expect(timeline.filter(has_text="start: 2")).to_have_count(1)
        expect(
            timeline.filter(has_text="connected → stopping").or_(
                timeline.filter(has_text="→ completed")
            )
        ).not_to_have_count(0)
        shoot(page, screenshots, "call")
        assert_nothing_secret(page, log, key)


def test_cancel_from_the_call_page_stops_the_live_call_at_the_sandbox(
    stack: Stack, browser: Any
) -> None:
    # given a live call and a browser signed in with a key that may write
    stack.start_worker()
    with running_api(stack.env, stack.workdir, API_START_S) as api:
        key = api.make_key("default")
        call_id = place(api, key)
        stack.wait_for(call_id, {"connected"}, timeout_s=30)
        page, log = open_page(browser)
        sign_in(page, api.url, key)
        page.goto(f"{api.url}/dashboard/calls/{call_id}")
        # when the operator cancels it and confirms
        page.get_by_text("Cancel call…").click()
        page.get_by_role("button", name="Yes, cancel the call").click()
        # then the page says so, and the worker stops the call at the sandbox
        expect(page.get_by_role("status")).to_contain_text("Cancel requested")
        ended = stack.wait_for(call_id, {"canceled", "completed"}, timeout_s=30)
        assert "stop" in [a["operation"] for a in ended["attempts"]]
        live = [c for c in stack.sandbox.control.calls(live_only=True)]
        assert live == [], live
        expect(page.locator("#call-live [data-status]").first).to_have_text(
            ended["status"], timeout=15_000
        )
        assert_nothing_secret(page, log, key)
        # and signing out ends the session: the same cookie opens nothing any more
        cookies = page.context.cookies()
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(f"{api.url}/dashboard/sign-in")
        replay = browser.new_context()
        replay.add_cookies(cookies)
        again = replay.new_page()
        again.goto(f"{api.url}/dashboard/calls")
        assert again.url.endswith("/dashboard/sign-in")


def test_a_read_only_key_sees_no_buttons_and_the_actions_refuse_it_and_any_post_without_csrf(
    stack: Stack, browser: Any, screenshots: Path
) -> None:
    # given a queued call, one browser signed in read-only and one with a writing key
    with running_api(stack.env, stack.workdir, API_START_S) as api:
        writer_key = api.make_key("default")
        reader_key = api.make_key("default", scopes=READ_ONLY)
        call_id = place(api, writer_key)
        reader, reader_log = open_page(browser)
        sign_in(reader, api.url, reader_key)
        # when the reader opens the call
        reader.goto(f"{api.url}/dashboard/calls/{call_id}")
        # then there is nothing to press, and posting anyway is refused
        expect(reader.locator("#call-live [data-status]").first).to_have_text("queued")
        assert reader.get_by_text("Cancel call…").count() == 0
        assert reader.get_by_text("Redial…").count() == 0
        csrf = reader.locator('header input[name="csrf"]').get_attribute("value")
        for action in ("cancel", "redial"):
            refused = reader.request.post(
                f"{api.url}/dashboard/calls/{call_id}/{action}", form={"csrf": csrf or ""}
            )
            assert refused.status == 403, refused.text()
            assert "calls:write" in refused.json()["detail"]
        # and the writer's POST without its CSRF token, or with another's, is refused too
        writer, _ = open_page(browser)
        sign_in(writer, api.url, writer_key)
        for form in ({}, {"csrf": csrf or ""}):
            refused = writer.request.post(f"{api.url}/dashboard/calls/{call_id}/cancel", form=form)
            assert refused.status == 403, refused.text()
            assert "CSRF" in refused.json()["detail"]
        assert stack.call(call_id)["status"] == "queued"
        # and the operators' pages tell the reader they need an admin key
        reader.goto(f"{api.url}/dashboard/health")
        expect(reader.get_by_role("alert")).to_contain_text("admin")
        # and without a session every page sends to sign-in
        stranger = browser.new_context().new_page()
        stranger.goto(f"{api.url}/dashboard/calls/{call_id}")
        assert stranger.url.endswith("/dashboard/sign-in")
        shoot(stranger, screenshots, "sign-in")
        assert_nothing_secret(reader, reader_log, reader_key)


def test_the_capacity_chart_draws_a_burst_larger_than_the_limit_never_above_it(
    stack: Stack, browser: Any, screenshots: Path
) -> None:
    # given an account limited to 3 live calls, calls of 3 s, and an admin signed in
    stack.env["DIALQ_MAX_CONCURRENT_CALLS"] = "3"
    stack.sandbox.control.configure(call_seconds=3)
    stack.start_worker()
    with running_api(stack.env, stack.workdir, API_START_S) as api:
        key = api.make_key("default", scopes=("admin",))
        page, log = open_page(browser)
        sign_in(page, api.url, key)
        page.goto(f"{api.url}/dashboard/capacity")
        # when a burst of 8 calls arrives
        calls = [place(api, key) for _ in range(8)]
        expect(page.locator('[data-field="in-use"]')).to_have_text("3", timeout=30_000)
        shoot(page, screenshots, "capacity")
        for call_id in calls:
            stack.wait_for(call_id, {"completed"}, timeout_s=90)
        # then the chart drew the slots kept full, at the limit and never above it
        page.wait_for_function(
            "() => window.dialqCharts && window.dialqCharts.default"
            " && Math.max(...window.dialqCharts.default.data.live) === 3"
            " && window.dialqCharts.default.data.live.at(-1) === 0",
            timeout=30_000,
        )
        drawn = page.evaluate("window.dialqCharts.default.data")
        assert max(drawn["live"]) == drawn["configured"] == 3
        expect(page.locator('[data-field="peak"]')).to_have_text("3")
        assert page.locator("figure.chart canvas").count() >= 1
        shoot(page, screenshots, "capacity-after")
        assert_nothing_secret(page, log, key)


def test_the_schedules_page_lists_next_occurrences_across_a_dst_change_in_local_time(
    stack: Stack, browser: Any, screenshots: Path
) -> None:
    # given a daily 09:30 New York schedule whose first days span the March 2027 change
    upsert_schedule(
        {
            "name": "standup",
            "cron": "30 9 * * *",
            "timezone": "America/New_York",
            "start": "2027-03-12",
            "call": {"phone_number": NUMBER, "session_name": "Standup"},
        },
        settings=stack.settings,
    )
    with running_api(stack.env, stack.workdir, API_START_S) as api:
        key = api.make_key("default")
        page, log = open_page(browser)
        sign_in(page, api.url, key)
        # when the schedules page is opened
        page.goto(f"{api.url}/dashboard/schedules")
        # then every next occurrence is 09:30 local, and UTC moves by the hour the clocks did
        rows = page.locator("table.next tbody tr")
        expect(rows).to_have_count(5)
        texts = [rows.nth(i).inner_text().split() for i in range(5)]
        assert [local[11:19] for local, _ in texts] == ["09:30:00"] * 5
        assert [utc[11:16] for _, utc in texts] == ["14:30", "14:30", "13:30", "13:30", "13:30"]
        assert texts[0][0].startswith("2027-03-12")
        assert texts[0][0].endswith("-05:00")
        assert texts[2][0].endswith("-04:00")
        shoot(page, screenshots, "schedules")
        # and pausing it from the page stops its occurrences until resumed
        page.get_by_role("button", name="Pause standup").click()
        expect(page.locator("table.next")).to_have_count(0)
        page.get_by_role("button", name="Resume standup").click()
        expect(page.locator("table.next tbody tr")).to_have_count(5)
        assert_nothing_secret(page, log, key)


def test_the_health_page_shows_what_doctor_checks_with_worker_and_beat_up(
    stack: Stack, browser: Any, screenshots: Path
) -> None:
    # given a worker and beat running, and a browser signed in
    stack.start_worker()
    stack.start_beat()
    with running_api(stack.env, stack.workdir, API_START_S) as api:
        key = api.make_key("default", scopes=("admin",))
        page, log = open_page(browser)
        sign_in(page, api.url, key)
        # when the health page is opened
        page.goto(f"{api.url}/dashboard/health")
        # then each of doctor's checks is listed, the broker, database, workers and beat ok
        for name in ("broker", "database", "workers", "beat", "queues"):
            expect(page.locator(f'tr[data-check="{name}"] td').first).to_have_text("OK")
        shoot(page, screenshots, "health")
        # and when the workers stop, the open page says so by itself
        stack.stop_workers()
        expect(page.locator('tr[data-check="workers"] td').first).not_to_have_text(
            "OK", timeout=30_000
        )
        assert_nothing_secret(page, log, key)


def test_redial_from_the_page_puts_a_failed_call_back_in_line_and_a_revoked_key_is_signed_out(
    stack: Stack, browser: Any
) -> None:
    # given a call the API rejected (400: failed for good), and a writer signed in
    stack.sandbox.control.script(
        [{"match": START, "times": 1, "action": {"type": "status", "status": 400}}]
    )
    stack.start_worker()
    with running_api(stack.env, stack.workdir, API_START_S) as api:
        key = api.make_key("default")
        call_id = place(api, key)
        assert stack.wait_for(call_id, {"failed"}, timeout_s=30)["status"] == "failed"
        page, log = open_page(browser)
        sign_in(page, api.url, key)
        page.goto(f"{api.url}/dashboard/calls/{call_id}")
        # when the operator redials it and confirms
        page.get_by_text("Redial…").click()
        page.get_by_role("button", name="Yes, redial").click()
        # then the page says so, and the worker dials it again to the end
        expect(page.get_by_role("status")).to_contain_text("Redial requested")
        redialed = stack.wait_for(call_id, {"connected", "completed"}, timeout_s=30)
        assert any("redial requested" in (e["detail"] or "") for e in redialed["events"])
        assert_nothing_secret(page, log, key)
        # and when the key is revoked, the next page sends the browser to sign-in
        revoke(api, key)
        page.goto(f"{api.url}/dashboard/calls")
        assert page.url.endswith("/dashboard/sign-in")
