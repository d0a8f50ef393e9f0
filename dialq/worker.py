"""The Celery app and its configuration (design.md §6). `celery -A dialq.worker worker`."""

from __future__ import annotations

from celery import Celery
from kombu.entity import Queue

from dialq import names
from dialq.config import Settings

SWEEP_INTERVAL_S = 5.0


def create_app(settings: Settings | None = None) -> Celery:
    settings = settings or Settings()
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
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": settings.broker_visibility_timeout_s},
        enable_utc=True,
        timezone="UTC",
        task_default_queue=names.QUEUE_DIAL,
        task_queues=[Queue(name) for name in names.ALL_QUEUES],
        task_routes={
            names.PLACE_CALL: {"queue": names.QUEUE_DIAL},
            names.DIAL: {"queue": names.QUEUE_DIAL},
            names.SWEEP: {"queue": names.QUEUE_SWEEP},
            names.WATCH_CALL: {"queue": names.QUEUE_LIFECYCLE},
            names.HARVEST_INSIGHTS: {"queue": names.QUEUE_LIFECYCLE},
            names.SWEEP_INSIGHTS: {"queue": names.QUEUE_SWEEP},
            names.DISPATCH_SCHEDULES: {"queue": names.QUEUE_SWEEP},
        },
        beat_schedule={
            # A tick nobody ran in time is dropped: the next one does the same work.
            "watchdog": {
                "task": names.SWEEP,
                "schedule": SWEEP_INTERVAL_S,
                "options": {"expires": 2 * SWEEP_INTERVAL_S},
            },
            "sweep-insights": {
                "task": names.SWEEP_INSIGHTS,
                "schedule": SWEEP_INTERVAL_S,
                "options": {"expires": 2 * SWEEP_INTERVAL_S},
            },
            # A tick nobody ran in time is dropped, not queued up behind a stopped worker.
            "dispatch-schedules": {
                "task": names.DISPATCH_SCHEDULES,
                "schedule": settings.schedule_tick_s,
                "options": {"expires": max(2.0, 2 * settings.schedule_tick_s)},
            },
        },
        worker_hijack_root_logger=False,
    )
    app.conf.dialq_settings = settings
    return app


app = create_app()
