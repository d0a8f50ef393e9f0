"""The audit of dialq's promises, on plain data: rows, a request log, sandbox calls, permits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from dialq.testing.audit import CallSnapshot, audit

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
RECOVERY_S = 30.0


def row(call_id: str, status: str, *, idle_s: float = 0.0, **more: Any) -> CallSnapshot:
    return CallSnapshot(
        id=call_id,
        status=status,
        account="default",
        updated_at=NOW - timedelta(seconds=idle_s),
        **more,
    )


def start(call_id: str | None, status: int | None) -> dict[str, Any]:
    return {"operation": "start", "call_id": call_id, "status": status}


def run(
    rows: list[CallSnapshot],
    *,
    requests: list[dict[str, Any]] | None = None,
    sandbox_calls: list[dict[str, Any]] | None = None,
    enqueued: set[str] | None = None,
    holders: dict[str, list[str]] | None = None,
) -> Any:
    by_id = {r.id: r for r in rows}
    return audit(
        by_id,
        requests or [],
        sandbox_calls or [],
        enqueued if enqueued is not None else set(by_id),
        now=NOW,
        recovery_s=RECOVERY_S,
        permit_holders=holders,
    )


def test_finished_calls_with_one_start_each_give_a_clean_report() -> None:
    # given completed and failed calls, one 201 each for the completed ones
    rows = [row("a", "completed", idle_s=300), row("b", "failed", idle_s=300)]
    # when audited
    report = run(rows, requests=[start("a", 201), start("b", 500), start("b", 400)])
    # then nothing is lost, doubled, orphaned or leaked
    assert report.clean
    assert report.calls == 2
    assert report.statuses == {"completed": 1, "failed": 1}


def test_an_enqueued_id_without_a_row_is_missing_and_lost() -> None:
    # given a producer that got an id back whose row does not exist
    report = run([row("a", "completed")], enqueued={"a", "ghost"})
    # then the id is missing, hence lost, and counted among the calls
    assert report.missing == ("ghost",)
    assert report.lost == ("ghost",)
    assert report.calls == 2


def test_a_call_idle_in_queued_or_dialing_past_the_recovery_window_is_stuck() -> None:
    # given rows that nothing moved for longer than the window, and one moved just now
    rows = [
        row("q", "queued", idle_s=RECOVERY_S + 1),
        row("w", "waiting", idle_s=RECOVERY_S + 1),
        row("d", "dialing", idle_s=RECOVERY_S + 1),
        row("fresh", "dialing", idle_s=1),
    ]
    # when audited
    report = run(rows)
    # then the idle ones are stuck (and lost), the fresh one is not
    assert report.stuck == ("d", "q", "w")
    assert report.lost == ("d", "q", "w")


def test_a_queued_call_whose_not_before_is_ahead_is_waiting_legitimately() -> None:
    # given a planned call, idle for long, that becomes due later
    rows = [row("planned", "queued", idle_s=3600, not_before=NOW + timedelta(minutes=5))]
    # then it is not stuck
    assert run(rows).stuck == ()


def test_a_live_call_is_stuck_only_when_its_watcher_stopped_looking() -> None:
    # given two long-connected calls: one looked at recently, one whose next look is long overdue
    rows = [
        row("watched", "connected", idle_s=3600, watch_due_at=NOW + timedelta(seconds=1)),
        row("forgotten", "connected", idle_s=3600, watch_due_at=NOW - timedelta(minutes=5)),
        row("never", "stopping", idle_s=3600),
    ]
    # then only the ones nobody watches are stuck
    assert run(rows).stuck == ("forgotten", "never")


def test_unknown_is_final_for_loss_but_counted_apart() -> None:
    # given a call whose start outcome could not be known, long ago
    report = run([row("u", "unknown", idle_s=3600)])
    # then it is not lost, and it is listed as unknown
    assert report.lost == ()
    assert report.unknown == ("u",)
    assert report.clean


def test_two_processed_201_starts_for_one_call_id_are_a_double() -> None:
    # given one call started twice (one reply dropped, still processed) and one retried after 5xx
    requests = [
        start("twice", 201),
        start("twice", 201),
        start("retried", 503),
        start("retried", 201),
        start(None, 201),  # not from dialq: no call id header
        {"operation": "stop", "call_id": "retried", "status": 200},
    ]
    rows = [row("twice", "unknown"), row("retried", "completed")]
    # when audited
    report = run(rows, requests=requests)
    # then only the call started twice is doubled
    assert report.doubled == ("twice",)
    assert not report.clean


def test_a_live_sandbox_call_without_a_live_row_is_an_orphan() -> None:
    # given live sandbox calls: one for a connected row, one for an unknown row, one for a
    # completed row, one for no row, and an ended one for no row
    rows = [row("c", "connected"), row("u", "unknown"), row("done", "completed")]
    sandbox_calls = [
        {"connectionId": "k1", "call_id": "c", "live": True},
        {"connectionId": "k2", "call_id": "u", "live": True},
        {"connectionId": "k3", "call_id": "done", "live": True},
        {"connectionId": "k4", "call_id": "nobody", "live": True},
        {"connectionId": "k5", "call_id": "nobody", "live": False},
    ]
    # then the live calls dialq believes over or never made are orphans, by connection id
    assert run(rows, sandbox_calls=sandbox_calls).orphans == ("k3", "k4")


def test_a_permit_held_by_a_call_that_cannot_be_live_is_leaked() -> None:
    # given permits held by a dialing, an unknown, a completed and a queued call, and no row
    rows = [
        row("d", "dialing"),
        row("u", "unknown"),
        row("done", "completed"),
        row("q", "queued"),
    ]
    holders = {"default": ["d", "u", "done", "q"], "sales": ["gone"]}
    # then the ones whose call cannot be live leak
    assert run(rows, holders=holders).leaked_permits == ("done", "gone", "q")


def test_naive_timestamps_read_from_sqlite_are_taken_as_utc() -> None:
    # given a row whose timestamps carry no zone, idle past the window
    naive = (NOW - timedelta(seconds=RECOVERY_S + 5)).replace(tzinfo=None)
    rows = [CallSnapshot(id="q", status="queued", account="default", updated_at=naive)]
    # then it is compared as UTC and found stuck
    assert run(rows).stuck == ("q",)
