"""The Celery app's configuration (README, "Celery"), read from the app itself: no broker needed."""

from __future__ import annotations

from typing import Any

import pytest
from celery import Celery
from pydantic import ValidationError

from dialq import routing, worker
from dialq.config import Settings
from dialq.publisher import MAX_COUNTDOWN_S
from dialq.worker import create_app

# Nothing listens on port 1: were building or reading the app to connect, these tests would fail.
UNREACHABLE_BROKER = "redis://127.0.0.1:1/0"
VISIBILITY_TIMEOUT_S = 1800

# One queue per kind of work, so a backlog of one never delays another (README, "Celery").
EXPECTED_QUEUE = {
    routing.PLACE_CALL: routing.QUEUE_DIAL,
    routing.DIAL: routing.QUEUE_DIAL,
    routing.WATCH_CALL: routing.QUEUE_LIFECYCLE,
    routing.HARVEST_INSIGHTS: routing.QUEUE_INSIGHTS,
    routing.DELIVER_WEBHOOKS: routing.QUEUE_WEBHOOKS,
    routing.SWEEP: routing.QUEUE_SWEEP,
    routing.SWEEP_INSIGHTS: routing.QUEUE_SWEEP,
    routing.SWEEP_WEBHOOKS: routing.QUEUE_SWEEP,
    routing.DISPATCH_SCHEDULES: routing.QUEUE_SWEEP,
}
BEAT_TASKS = {
    routing.SWEEP,
    routing.SWEEP_INSIGHTS,
    routing.SWEEP_WEBHOOKS,
    routing.DISPATCH_SCHEDULES,
}


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings(broker_url=UNREACHABLE_BROKER, broker_visibility_timeout_s=VISIBILITY_TIMEOUT_S)


@pytest.fixture(scope="module")
def app(settings: Settings) -> Celery:
    app = create_app(settings)
    app.loader.import_default_modules()  # registers dialq.tasks, as a worker does at start
    return app


def dialq_tasks(app: Celery) -> dict[str, Any]:
    return {name: task for name, task in app.tasks.items() if name.startswith("dialq.")}


def routed_queue(app: Celery, task_name: str) -> str:
    """The queue Celery's own router picks for a task sent without an explicit queue."""
    return str(app.amqp.router.route({}, task_name)["queue"].name)


def test_building_the_app_and_reading_its_configuration_needs_no_running_broker(
    settings: Settings,
) -> None:
    # given settings naming a broker nobody listens on
    # when the app is built, its tasks registered and a route looked up
    app = create_app(settings)
    app.loader.import_default_modules()
    queue = routed_queue(app, routing.DIAL)
    # then all of it worked offline, with the settings the app was given
    assert queue == routing.QUEUE_DIAL
    assert app.conf.broker_url == UNREACHABLE_BROKER
    assert app.conf.dialq_settings is settings  # tasks build their runtime from these


def test_only_json_is_sent_or_accepted(app: Celery) -> None:
    # given the app / when its serializers are read / then JSON is the only format
    # A pickle payload taken from the broker would be code execution; JSON is also what the
    # by-name producers that do not import dialq send (issue 3).
    assert app.conf.task_serializer == "json"
    assert app.conf.result_serializer == "json"
    assert app.conf.event_serializer == "json"
    assert app.conf.accept_content == ["json"]
    # None means "the same as accept_content", so results accept JSON only as well.
    assert app.conf.result_accept_content in (None, ["json"])
    assert {task.serializer for task in dialq_tasks(app).values()} == {"json"}


def test_messages_are_acked_after_the_task_and_not_redelivered_when_a_worker_dies(
    app: Celery,
) -> None:
    # given the app
    # when the acknowledgement settings are read, globally and as each task resolves them
    tasks = dialq_tasks(app).values()
    # then a message is acked only once its task has run (a crash before the end redelivers it;
    # the claim in the database makes the rerun harmless)
    assert app.conf.task_acks_late is True
    assert {task.acks_late for task in tasks} == {True}
    # and a worker killed mid-task does not requeue it: a second delivery of a dial in flight
    # would be a second phone call; the watchdog reconciles the row instead
    # (docs/architecture.md, "Invariants")
    assert app.conf.task_reject_on_worker_lost is False
    assert {task.reject_on_worker_lost for task in tasks} == {False}


def test_each_worker_thread_reserves_one_message_at_a_time(app: Celery) -> None:
    # given the app / when the worker settings are read
    # then no worker hoards messages that an idle worker could run (each reserved message also
    # counts toward the visibility timeout while it waits)
    assert app.conf.worker_prefetch_multiplier == 1
    # and dialing waits on HTTP, so the pool is threads rather than processes
    assert app.conf.worker_pool == "threads"


def test_results_are_ignored_because_the_database_holds_every_outcome(app: Celery) -> None:
    # given the app / when the result settings are read / then nothing is stored in Celery
    assert app.conf.task_ignore_result is True
    assert {task.ignore_result for task in dialq_tasks(app).values()} == {True}
    assert app.conf.result_backend is None


def test_task_events_are_on_so_flower_sees_every_task(app: Celery) -> None:
    # given the app / when the event settings are read / then sent, started and the rest show
    assert app.conf.worker_send_task_events is True
    assert app.conf.task_send_sent_event is True  # producers report "sent" too
    assert app.conf.task_track_started is True  # a dial in flight shows as STARTED


def test_the_broker_connection_is_retried_at_startup_and_time_is_utc(app: Celery) -> None:
    # given the app / when its startup and clock settings are read
    # then a worker started before Redis is up waits for it instead of exiting
    assert app.conf.broker_connection_retry_on_startup is True
    # and every time Celery computes (ETAs, beat) is UTC, like the database's
    assert app.conf.enable_utc is True
    assert app.conf.timezone == "UTC"


def test_the_visibility_timeout_comes_from_settings_and_outlasts_every_countdown(
    app: Celery,
) -> None:
    # given settings with a visibility timeout of 1800 s
    # when the broker transport options are read
    visibility_timeout_s = app.conf.broker_transport_options["visibility_timeout"]
    # then Redis redelivers an unacked message only after that long, which is far beyond the
    # longest countdown dialq ever sets (docs/architecture.md invariant 4: a countdown longer
    # than the visibility timeout makes Redis hand the same message out again)
    assert visibility_timeout_s == VISIBILITY_TIMEOUT_S
    assert visibility_timeout_s >= 2 * MAX_COUNTDOWN_S


def test_a_visibility_timeout_too_close_to_the_countdown_cap_is_refused() -> None:
    # given the default and a too-short visibility timeout
    default_s = Settings.model_fields["broker_visibility_timeout_s"].default
    # when / then the default leaves a wide margin, and 60 s is rejected at startup
    assert default_s >= 2 * MAX_COUNTDOWN_S
    with pytest.raises(ValidationError, match="broker_visibility_timeout_s"):
        Settings(broker_visibility_timeout_s=int(MAX_COUNTDOWN_S))


def test_there_are_five_queues_one_per_kind_of_work(app: Celery) -> None:
    # given the app / when its queues are read
    declared = [queue.name for queue in app.conf.task_queues]
    # then dialing, watching, insights, webhooks and sweeps each have their own
    assert sorted(declared) == sorted(routing.ALL_QUEUES)
    assert len(set(routing.ALL_QUEUES)) == 5
    # and whatever is sent without a route goes to the dial queue, not Celery's "celery"
    assert app.conf.task_default_queue == routing.QUEUE_DIAL


@pytest.mark.parametrize(("task_name", "queue"), sorted(EXPECTED_QUEUE.items()))
def test_each_task_is_routed_to_the_queue_of_its_kind(
    app: Celery, task_name: str, queue: str
) -> None:
    # given a task name / when Celery routes it / then it lands on its kind's queue
    assert routed_queue(app, task_name) == queue
    # and publishing by name (dialq.tasks.CeleryPublisher) picks the same queue, so the same
    # task never ends up on two queues depending on who sent it
    if task_name in routing.QUEUE_FOR:
        assert routing.QUEUE_FOR[task_name] == queue


def test_every_registered_task_has_a_deliberate_queue(app: Celery) -> None:
    # given the tasks a worker registers / when compared with the routing table
    registered = set(dialq_tasks(app))
    # then none is missing a route (it would silently share the dial queue) and none is stale
    assert registered == set(EXPECTED_QUEUE)
    assert set(app.conf.task_routes) == set(EXPECTED_QUEUE)


def test_beat_only_ticks_sweepers_and_dispatchers_and_drops_late_ticks(app: Celery) -> None:
    # given the beat schedule / when its entries are read
    entries = app.conf.beat_schedule.values()
    # then beat never says "dial X", only ticks idempotent sweepers
    # (docs/architecture.md invariant 5)
    assert {entry["task"] for entry in entries} == BEAT_TASKS
    assert {routed_queue(app, entry["task"]) for entry in entries} == {routing.QUEUE_SWEEP}
    # and a tick nobody ran in time expires (within two ticks, 2 s at least) instead of piling
    # up behind a stopped worker
    for entry in entries:
        assert 0 < entry["options"]["expires"] <= 2 * max(entry["schedule"], 1.0)


def test_the_app_celery_loads_from_dialq_worker_is_configured_the_same(app: Celery) -> None:
    # given the module-level app that `celery -A dialq.worker` loads
    # when the settings-independent configuration is compared with create_app's
    keys = (
        "task_serializer",
        "accept_content",
        "task_acks_late",
        "task_reject_on_worker_lost",
        "worker_prefetch_multiplier",
        "worker_pool",
        "task_ignore_result",
        "worker_send_task_events",
        "broker_connection_retry_on_startup",
        "enable_utc",
        "task_default_queue",
        "task_routes",
    )
    # then they agree: the worker really runs with the configuration tested above
    assert {key: worker.app.conf[key] for key in keys} == {key: app.conf[key] for key in keys}
    assert [q.name for q in worker.app.conf.task_queues] == [q.name for q in app.conf.task_queues]
