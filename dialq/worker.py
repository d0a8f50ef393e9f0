"""The Celery app and its configuration (design.md §6). `celery -A dialq.worker worker`."""

from __future__ import annotations

import threading
import weakref
from typing import Any

from celery import Celery, Task, signals
from kombu.entity import Exchange, Queue

from dialq import broker, routing
from dialq.config import Settings
from dialq.hands import Hands
from dialq.ops import logs
from dialq.publisher import MAX_COUNTDOWN_S
from dialq.runtime import Runtime

SWEEP_INTERVAL_S = 5.0


def create_app(settings: Settings | None = None) -> Celery:
    settings = settings or Settings()
    broker.install()  # kombu's Redis transport, minus its exit on a Redis restart
    app = Celery("dialq", broker=settings.broker_url, include=["dialq.tasks"])
    app.conf.update(
        # JSON only: a pickle payload from the broker would be code execution.
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        # Acknowledge after the task ran, but never redeliver a task whose worker died mid-dial:
        # the claim in the database decides, and the watchdog reconciles stuck rows.
        task_acks_late=True,
        task_reject_on_worker_lost=False,
        worker_prefetch_multiplier=1,
        # Dialing waits on HTTP: threads, not processes.
        worker_pool="threads",
        worker_concurrency=8,
        task_ignore_result=True,  # the database holds every outcome
        worker_send_task_events=True,  # Flower sees every task
        task_send_sent_event=True,
        task_track_started=True,  # Flower shows STARTED while a dial is in flight
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": settings.broker_visibility_timeout_s},
        enable_utc=True,
        timezone="UTC",
        task_default_queue=routing.QUEUE_DIAL,
        # Each queue bound to an exchange of its own name: declared bare, Celery binds every
        # queue to the default exchange under one key, and a message a client publishes to that
        # exchange lands on all four queues.
        task_queues=[
            Queue(name, Exchange(name, type="direct"), routing_key=name)
            for name in routing.ALL_QUEUES
        ],
        task_routes={
            routing.PLACE_CALL: {"queue": routing.QUEUE_DIAL},
            routing.DIAL: {"queue": routing.QUEUE_DIAL},
            routing.SWEEP: {"queue": routing.QUEUE_SWEEP},
            routing.WATCH_CALL: {"queue": routing.QUEUE_LIFECYCLE},
            routing.HARVEST_INSIGHTS: {"queue": routing.QUEUE_INSIGHTS},
            routing.SWEEP_INSIGHTS: {"queue": routing.QUEUE_SWEEP},
            routing.DISPATCH_SCHEDULES: {"queue": routing.QUEUE_SWEEP},
            routing.DELIVER_WEBHOOKS: {"queue": routing.QUEUE_WEBHOOKS},
            routing.SWEEP_WEBHOOKS: {"queue": routing.QUEUE_SWEEP},
        },
        # Records each tick in Redis, so `dialq doctor` can tell a stopped beat.
        beat_scheduler="dialq.ops.beat:HeartbeatScheduler",
        beat_schedule={
            # A tick nobody ran in time is dropped: the next one does the same work.
            "watchdog": {
                "task": routing.SWEEP,
                "schedule": SWEEP_INTERVAL_S,
                "options": {"expires": 2 * SWEEP_INTERVAL_S},
            },
            "sweep-webhooks": {
                "task": routing.SWEEP_WEBHOOKS,
                "schedule": SWEEP_INTERVAL_S,
                "options": {"expires": 2 * SWEEP_INTERVAL_S},
            },
            "sweep-insights": {
                "task": routing.SWEEP_INSIGHTS,
                "schedule": SWEEP_INTERVAL_S,
                "options": {"expires": 2 * SWEEP_INTERVAL_S},
            },
            # A tick nobody ran in time is dropped, not queued up behind a stopped worker.
            "dispatch-schedules": {
                "task": routing.DISPATCH_SCHEDULES,
                "schedule": settings.schedule_tick_s,
                "options": {"expires": max(2.0, 2 * settings.schedule_tick_s)},
            },
        },
        worker_hijack_root_logger=False,
        # Sets aside unknown tasks and undecodable messages without logging their bodies, and
        # sends task events in batches (dialq.consumer).
        worker_consumer="dialq.consumer:Consumer",
    )
    app.conf.dialq_settings = settings
    return app


app = create_app()


# -- operations (README "Operations"): logging, call context on log lines, metrics ----------


@signals.setup_logging.connect
def _configure_logging(loglevel: int | None = None, **_: Any) -> None:
    """With a receiver here Celery leaves logging to dialq: JSON or text, masked, no secrets."""
    logs.configure_from(app.conf.dialq_settings, loglevel)


_task_tokens = threading.local()  # prerun and postrun of one task run on the same thread


@signals.task_prerun.connect
def _bind_task_context(task_id: str, task: Any, args: Any = (), **_: Any) -> None:
    """Every line a call-id task logs carries the call's id and the task's name.

    Not the call's state or account: reading the row before every task only for its log lines
    cost 16 % of a worker's time at 50 live calls; the lines that need them say them.
    """
    fields: dict[str, Any] = {"task": task.name}
    if task.name in routing.QUEUE_FOR and args:
        fields["call_id"] = str(args[0])
    _task_tokens.__dict__.setdefault("tokens", {})[task_id] = logs.push(**fields)


@signals.task_postrun.connect
def _unbind_task_context(task_id: str, **_: Any) -> None:
    token = _task_tokens.__dict__.get("tokens", {}).pop(task_id, None)
    if token is not None:
        logs.pop(token)


@signals.worker_init.connect
def _serve_metrics(**_: Any) -> None:
    """Prometheus metrics on DIALQ_METRICS_PORT, from the worker's main process (0: off)."""
    settings: Settings = app.conf.dialq_settings
    if settings.metrics_port:
        from dialq.ops import metrics
        from dialq.store import Database

        # An engine of its own: scrapes never take a connection a task is waiting for.
        db = Database(settings.database_url_resolved)
        metrics.serve(
            settings.metrics_port,
            db,
            metrics.capacity_permits(settings),
            addr=settings.metrics_addr,
        )


# -- the process's runtime, reached from every task through its base class ------------------


# Tasks sent without a `task-sent` event and run without worker events (`send_events=False`):
# the looks at live calls, every `DIALQ_WATCH_INTERVAL_S` per call, would flood Flower with
# rows that say nothing a call's own row does not, and their four events cost about a third of
# a look (bench/saturation.py, 100 accounts x 2: 3.8-4.1 x the ideal makespan with them, 2.8
# without).
UNSEEN_TASKS = frozenset({routing.WATCH_CALL})


class _NoEvents:
    """An event dispatcher that sends nothing (for UNSEEN_TASKS)."""

    def publish(self, *_: Any, **__: Any) -> None:
        return None


class CeleryPublisher:
    """Publishes tasks by name, carrying only the call id."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def publish(self, task: str, call_id: str, countdown_s: float = 0.0) -> None:
        # Invariant 4: a countdown never exceeds the cap, whatever the caller computed.
        countdown = min(countdown_s, MAX_COUNTDOWN_S)
        extra = {"event_dispatcher": _NoEvents()} if task in UNSEEN_TASKS else {}
        self.app.send_task(
            task,
            args=[call_id],
            queue=routing.QUEUE_FOR[task],
            countdown=countdown if countdown > 0 else None,
            **extra,
        )


_runtimes: weakref.WeakKeyDictionary[Celery, Runtime] = weakref.WeakKeyDictionary()
_runtimes_lock = threading.Lock()


def runtime_for(app: Celery) -> Runtime:
    """One Runtime per process and app, built on first use (after a prefork fork, if any)."""
    runtime = _runtimes.get(app)
    if runtime is None:
        with _runtimes_lock:
            runtime = _runtimes.get(app)
            if runtime is None:
                settings: Settings = app.conf.dialq_settings or Settings()
                runtime = Runtime(settings, CeleryPublisher(app))
                _runtimes[app] = runtime
    return runtime


_hands: weakref.WeakKeyDictionary[Celery, Hands] = weakref.WeakKeyDictionary()


def hands_for(app: Celery) -> Hands:
    """The messages this worker process holds (dialq.hands), one record per process."""
    hands = _hands.get(app)
    if hands is None:
        client = runtime_for(app).redis  # before the lock: runtime_for takes it too
        with _runtimes_lock:
            hands = _hands.get(app)
            if hands is None:
                keep_s = float(app.conf.dialq_settings.broker_visibility_timeout_s)
                hands = Hands(client, keep_s=keep_s)
                _hands[app] = hands
    return hands


class DialqTask(Task):  # type: ignore[misc]
    """The base of every dialq task: `self.runtime` is the process's composition root."""

    # Every message is checked before Celery builds a request from it (see dialq.poison).
    Strategy = "dialq.poison:guarded_strategy"

    @property
    def runtime(self) -> Runtime:
        return runtime_for(self.app)
