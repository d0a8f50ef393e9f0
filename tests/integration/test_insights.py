"""Insights after a call ends: real worker processes, real Redis, both databases, the sandbox.

The call is mostly ended here by hand (hang up at the sandbox, record the end and its pending
insights row in one transaction as the lifecycle does, publish the harvest by name), so these
tests hold whether or not the lifecycle code has seen the end. The tests of that end-of-call
transaction run the lifecycle in this process, with no worker.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from dialq import routing
from dialq.api import enqueue_call, producer_runtime
from dialq.calls.service import CallService
from dialq.insights.harvest import SWEEP_GRACE_S, InsightsService
from dialq.store import Call, CallStatus, Database, calls_repo, insights_repo
from dialq.store.insights_tables import Insights
from dialq.worker import CeleryPublisher, create_app
from tests.stack import Stack

NUMBER = "+1 415 555 0110"
UNKNOWN_CONVERSATION = "9999999999999999"
PARTS = ("messages", "topics", "questions", "action_items", "follow_ups", "members", "summary")
FAST = {"DIALQ_INSIGHTS_BACKOFF_BASE_S": "0.3", "DIALQ_INSIGHTS_BACKOFF_MAX_S": "1"}


def publish_harvest(stack: Stack, call_id: str) -> None:
    CeleryPublisher(create_app(stack.settings)).publish(routing.HARVEST_INSIGHTS, call_id)


def connected_call(stack: Stack) -> dict[str, Any]:
    handle = enqueue_call({"phone_number": NUMBER}, settings=stack.settings)
    return stack.wait_for(handle.id, {"connected"})


def end_call(stack: Stack, call: dict[str, Any]) -> None:
    """Hang up at the far end, record the end (unless the lifecycle already did) with its
    pending insights row, as the lifecycle does, and publish the harvest."""
    stack.sandbox.control.end_call(call["connection_id"])
    now = datetime.now(UTC)
    db = Database(stack.env["DIALQ_DATABASE_URL"])
    try:
        with db.transaction() as session:
            ended = calls_repo.transition(
                session,
                call["id"],
                from_={CallStatus.CONNECTED, CallStatus.STOPPING},
                to=CallStatus.COMPLETED,
                now=now,
                detail="ended at the far end (test)",
                values={"ended_at": now},
            )
            if ended:
                insights_repo.add_pending(session, call["id"], now=now)
    finally:
        db.dispose()
    publish_harvest(stack, call["id"])


def end_without_a_row(stack: Stack, call: dict[str, Any], *, ended_ago_s: float) -> None:
    """Hang up at the far end and record the end as a worker older than migration 0007 did:
    no insights row, and (as if lost) no harvest message."""
    stack.sandbox.control.end_call(call["connection_id"])
    ended_at = datetime.now(UTC) - timedelta(seconds=ended_ago_s)
    db = Database(stack.env["DIALQ_DATABASE_URL"])
    try:
        with db.transaction() as session:
            calls_repo.transition(
                session,
                call["id"],
                from_={CallStatus.CONNECTED},
                to=CallStatus.COMPLETED,
                now=datetime.now(UTC),
                detail="ended at the far end (test)",
                values={"ended_at": ended_at},
            )
    finally:
        db.dispose()


@dataclass
class Recording:
    """A publisher that sends nothing: what a worker that crashed after its commit sent."""

    sent: list[tuple[str, str]] = field(default_factory=list)

    def publish(self, task: str, call_id: str, countdown_s: float = 0.0) -> None:
        self.sent.append((task, call_id))


def end_in_this_process(stack: Stack, call: dict[str, Any], publisher: Recording) -> str:
    """The far end hangs up and the lifecycle, run here with `publisher`, sees the end."""
    stack.sandbox.control.end_call(call["connection_id"])
    runtime = producer_runtime(stack.settings)
    service = CallService(
        runtime.settings, runtime.db, runtime.client_for, publisher, capacity=runtime.capacity
    )
    return service.watch(call["id"])


@dataclass(frozen=True)
class Commit:
    """What one committing transaction held, read inside it just before its commit."""

    call_status: str | None
    insights_status: str | None


@contextmanager
def commits_of(call_id: str) -> Iterator[list[Commit]]:
    """Every commit this process makes while inside, as seen from within its transaction."""
    seen: list[Commit] = []

    def before_commit(session: Session) -> None:
        status = select(Call.status).where(Call.id == call_id)
        insights = select(Insights.status).where(Insights.call_id == call_id)
        seen.append(Commit(session.scalar(status), session.scalar(insights)))

    event.listen(Session, "before_commit", before_commit)
    try:
        yield seen
    finally:
        event.remove(Session, "before_commit", before_commit)


def insights_service(
    stack: Stack, publisher: Any, *, clock_ahead_s: float = 0.0
) -> InsightsService:
    """The insights facade in this process, its clock `clock_ahead_s` ahead of the real one."""
    runtime = producer_runtime(stack.settings)
    return InsightsService(
        runtime.settings,
        runtime.db,
        runtime.client_for,
        publisher,
        clock=lambda: datetime.now(UTC) + timedelta(seconds=clock_ahead_s),
    )


def ended_call_row(stack: Stack, conversation_id: str, *, ended_ago_s: float = 0.0) -> str:
    """A completed call straight in the database, as if placed and ended long ago."""
    now = datetime.now(UTC)
    call_id = str(uuid.uuid4())
    db = Database(stack.env["DIALQ_DATABASE_URL"])
    try:
        with db.transaction() as session:
            calls_repo.add_call(
                session,
                Call(
                    id=call_id,
                    status=CallStatus.COMPLETED.value,
                    account="default",
                    phone_number="+14155550110",
                    request={},
                    priority=5,
                    max_duration_s=60,
                    deadline_at=now,
                    conversation_id=conversation_id,
                    created_at=now,
                    updated_at=now,
                    ended_at=now - timedelta(seconds=ended_ago_s),
                ),
            )
    finally:
        db.dispose()
    return call_id


def no_client(account: str, on_attempt: Any) -> Any:
    raise AssertionError("the sweep never calls the API")


def insights_of(stack: Stack, call_id: str) -> dict[str, Any] | None:
    db = Database(stack.env["DIALQ_DATABASE_URL"])
    try:
        with db.sessions() as session:
            return insights_repo.load_insights(session, call_id)
    finally:
        db.dispose()


def wait_for_insights(
    stack: Stack, call_id: str, statuses: set[str], timeout_s: float = 25.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        found = insights_of(stack, call_id)
        if found is not None and found["status"] in statuses:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(
                f"insights {found and found['status']}, wanted {statuses}: {found}"
                f"\n{stack.worker_logs()[-4000:]}"
            )
        time.sleep(0.1)


def insight_events(stack: Stack, call_id: str) -> list[dict[str, Any]]:
    events = stack.call(call_id)["events"]
    return [e for e in events if (e["detail"] or "").startswith("insights:")]


def conversation_requests(stack: Stack, conversation_id: str, part: str) -> list[dict[str, Any]]:
    path = f"/v1/conversations/{conversation_id}/{part}"
    return [r for r in stack.sandbox.control.requests() if r["path"] == path]


def test_insights_harvested_after_the_processing_delay_are_stored_ready_with_one_event(
    stack: Stack,
) -> None:
    # given the API needs 2 s after a call ends before its insights exist
    stack.sandbox.control.configure(insights_delay_s=2)
    stack.env.update(FAST)
    stack.start_worker()
    call = connected_call(stack)
    # when the call ends and its harvest is published
    end_call(stack, call)
    # then the insights become ready, every part filled, after retries that met "not ready"
    insights = wait_for_insights(stack, call["id"], {"ready", "unavailable"})
    assert insights["status"] == "ready", insights["reason"]
    for part in PARTS:
        assert insights[part], f"{part} is empty"
    assert insights["analytics"]["metrics"]
    assert insights["harvested_at"] is not None
    assert insights["attempts"] >= 2
    summaries = conversation_requests(stack, call["conversation_id"], "summary")
    assert summaries[0]["status"] == 404
    assert summaries[-1]["status"] == 200
    # and the call's timeline says so once, without changing the call's state
    time.sleep(0.5)
    events = insight_events(stack, call["id"])
    assert [(e["detail"], e["from"], e["to"]) for e in events] == [
        ("insights: ready", "completed", "completed")
    ]
    assert stack.call(call["id"])["events"][-1]["detail"] == "insights: ready"


def test_insights_not_ready_by_the_deadline_are_unavailable_with_the_reason(stack: Stack) -> None:
    # given insights that take 30 s, and a deadline of 1.5 s after the end
    stack.sandbox.control.configure(insights_delay_s=30)
    stack.env.update({**FAST, "DIALQ_INSIGHTS_DEADLINE_S": "1.5"})
    stack.start_worker()
    call = connected_call(stack)
    # when the call ends
    end_call(stack, call)
    # then they are given up with the reason, keeping what the API had (the transcript)
    insights = wait_for_insights(stack, call["id"], {"ready", "unavailable"})
    assert insights["status"] == "unavailable"
    assert insights["reason"] == "summary still not ready after 1.5 s"
    assert insights["messages"]
    assert insights["summary"] is None
    assert [e["detail"] for e in insight_events(stack, call["id"])] == [
        "insights: unavailable: summary still not ready after 1.5 s"
    ]


def test_a_conversation_the_api_does_not_know_is_unavailable_as_not_found(stack: Stack) -> None:
    # given an ended call whose conversation the API has never heard of
    stack.env.update({**FAST, "DIALQ_INSIGHTS_DEADLINE_S": "1"})
    stack.start_worker()
    call_id = ended_call_row(stack, UNKNOWN_CONVERSATION)
    # when its harvest runs
    publish_harvest(stack, call_id)
    # then it retries to the deadline, then records the reason; each 404 is an attempt row
    insights = wait_for_insights(stack, call_id, {"ready", "unavailable"})
    assert insights["status"] == "unavailable"
    assert insights["reason"] == "conversation not found (404)"
    assert [e["detail"] for e in insight_events(stack, call_id)] == [
        "insights: unavailable: conversation not found (404)"
    ]
    conversation_attempts = [
        a for a in stack.call(call_id)["attempts"] if a["operation"] == "conversation"
    ]
    assert len(conversation_attempts) == insights["attempts"] >= 2
    assert {a["status_code"] for a in conversation_attempts} == {404}


def test_five_copies_of_a_harvest_message_read_the_api_once_and_append_one_event(
    stack: Stack,
) -> None:
    # given an ended call whose insights are ready at once, and no worker yet
    stack.env.update(FAST)
    stack.start_worker()
    call = connected_call(stack)
    stack.stop_workers()
    end_call(stack, call)
    # when four more copies of its harvest message are queued and a worker with 8 threads starts
    for _ in range(4):
        publish_harvest(stack, call["id"])
    stack.start_worker(concurrency=8)
    # then one harvest did the work: one read of the summary, one event
    wait_for_insights(stack, call["id"], {"ready"})
    time.sleep(1.0)
    assert len(conversation_requests(stack, call["conversation_id"], "summary")) == 1
    assert len(insight_events(stack, call["id"])) == 1


def test_the_sweep_starts_the_harvest_of_a_call_ended_without_a_row_within_the_deadline_once(
    stack: Stack,
) -> None:
    # given a call that ended 10 s ago with no insights row and no harvest message (ended by a
    # worker older than the row written with the end), and a deadline of 60 s
    stack.env.update({**FAST, "DIALQ_INSIGHTS_DEADLINE_S": "60"})
    stack.start_worker()
    call = connected_call(stack)
    stack.stop_workers()
    end_without_a_row(stack, call, ended_ago_s=10)
    runtime_settings = stack.settings
    db = Database(stack.env["DIALQ_DATABASE_URL"])
    publisher = CeleryPublisher(create_app(runtime_settings))
    service = InsightsService(runtime_settings, db, no_client, publisher)
    try:
        # when the sweep runs twice in a row
        first, second = service.sweep(), service.sweep()
    finally:
        db.dispose()
    # then the first publishes the harvest, the second nothing, and the harvest runs to its end
    assert (first, second) == (1, 0)
    stack.start_worker()
    insights = wait_for_insights(stack, call["id"], {"ready", "unavailable"})
    assert insights["status"] == "ready", insights["reason"]


def test_the_sweep_leaves_alone_a_call_ended_without_a_row_before_the_deadline_window(
    stack: Stack,
) -> None:
    # given a call that ended 120 s ago with no insights row, and a deadline of 60 s (migration
    # 0007 wrote the row of every call ended before it; only an older worker ends one without)
    stack.env.update({"DIALQ_INSIGHTS_DEADLINE_S": "60"})
    call_id = ended_call_row(stack, UNKNOWN_CONVERSATION, ended_ago_s=120)
    sent = Recording()
    # when the sweep runs
    found = insights_service(stack, sent).sweep()
    # then it reads no further back than the deadline: no row, no harvest
    assert (found, sent.sent) == (0, [])
    assert insights_of(stack, call_id) is None


def test_the_end_of_a_call_and_its_pending_insights_row_are_one_transaction(
    stack: Stack,
) -> None:
    # given a connected call, no worker left to see its end, and the far end hanging up
    stack.start_worker()
    call = connected_call(stack)
    stack.stop_workers()
    # when the lifecycle sees the end, in this process, each commit watched from inside it
    with commits_of(call["id"]) as commits:
        outcome = end_in_this_process(stack, call, Recording())
    # then no commit held the call completed without its pending row, or the row without the end
    assert outcome == "completed"
    ended = [c.insights_status for c in commits if c.call_status == "completed"]
    assert ended, commits
    assert set(ended) == {"pending"}, commits
    assert all(c.call_status == "completed" for c in commits if c.insights_status), commits
    # and the row is due now, with no harvest tried yet
    row = insights_of(stack, call["id"])
    assert row is not None
    assert (row["status"], row["attempts"]) == ("pending", 0)
    assert datetime.fromisoformat(row["next_attempt_at"]) <= datetime.now(UTC)


def test_a_harvest_message_lost_after_the_end_is_sent_again_by_the_sweep_and_harvested_once(
    stack: Stack,
) -> None:
    # given a call ended by a lifecycle whose harvest message never left (a crash after the
    # commit), and no worker
    stack.start_worker()
    call = connected_call(stack)
    stack.stop_workers()
    lost = Recording()
    end_in_this_process(stack, call, lost)
    assert (routing.HARVEST_INSIGHTS, call["id"]) in lost.sent
    # when the sweep runs after its grace
    swept = Recording()
    later_s = SWEEP_GRACE_S + 1
    found = insights_service(stack, swept, clock_ahead_s=later_s).sweep()
    # then it publishes the harvest again, found from the due row alone
    assert (found, swept.sent) == (1, [(routing.HARVEST_INSIGHTS, call["id"])])
    # and when that harvest is delivered twice, the first claims the row and reads the API,
    # the second finds it done
    harvester = insights_service(stack, Recording(), clock_ahead_s=later_s)
    outcomes = [harvester.harvest(call["id"]), harvester.harvest(call["id"])]
    assert outcomes == ["ready", "already ready"]
    assert len(conversation_requests(stack, call["conversation_id"], "summary")) == 1
    assert [e["detail"] for e in insight_events(stack, call["id"])] == ["insights: ready"]
    insights = insights_of(stack, call["id"])
    assert insights is not None
    assert insights["attempts"] == 1


def test_cli_transcript_and_show_json_on_a_harvested_call(stack: Stack) -> None:
    # given a call whose insights were harvested
    stack.env.update(FAST)
    stack.start_worker()
    call = connected_call(stack)
    end_call(stack, call)
    insights = wait_for_insights(stack, call["id"], {"ready"})
    messages = insights["messages"]
    first = messages[0]
    # when its transcript is printed in each format
    text = stack.cli("transcript", call["id"])
    srt = stack.cli("transcript", call["id"], "--format", "srt")
    as_json = stack.cli("transcript", call["id"], "--format", "json")
    # then text is "Name: text" lines, SRT numbers timed cues, JSON is the messages list
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines()[0] == f"{first['from']['name']}: {first['text']}"
    assert len(text.stdout.splitlines()) == len(messages)
    assert srt.stdout.startswith("1\n00:00:")
    assert " --> " in srt.stdout.splitlines()[1]
    assert json.loads(as_json.stdout) == messages
    # and `show --json` carries the insights whole, `show` prints them readably
    shown = json.loads(stack.cli("show", call["id"], "--json").stdout)
    assert shown["insights"]["status"] == "ready"
    assert shown["insights"]["action_items"] == insights["action_items"]
    readable = stack.cli("show", call["id"])
    assert readable.returncode == 0, readable.stderr
    for heading in ("transcript:", "summary:", "topics:", "action items:", "members:"):
        assert heading in readable.stdout
    assert insights["action_items"][0]["assignee"]["name"] in readable.stdout


def test_cli_transcript_before_any_harvest_exits_1_saying_why(stack: Stack) -> None:
    call_id = ended_call_row(stack, UNKNOWN_CONVERSATION)
    result = stack.cli("transcript", call_id)
    assert result.returncode == 1
    assert "not harvested" in result.stderr
    assert result.stdout == ""
