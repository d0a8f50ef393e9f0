"""Thin Celery tasks: unpack ids, call the service, nothing else (style.md habit 1)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Celery, Task, shared_task
from celery.worker.request import Request

from dialq import routing
from dialq.calls.dial import Later
from dialq.calls.request import FieldError, InvalidCallRequest, parse_call_request
from dialq.config import Settings
from dialq.publisher import MAX_COUNTDOWN_S
from dialq.runtime import Runtime
from dialq.schedules.api import dispatch_due

log = logging.getLogger("dialq.tasks")
_lock = threading.Lock()


class CeleryPublisher:
    """Publishes dial messages by name, carrying only the call id."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def publish_dial(self, call_id: str, countdown_s: float) -> None:
        self.publish(routing.DIAL, call_id, countdown_s)

    def publish(self, task: str, call_id: str, countdown_s: float = 0.0) -> None:
        # Invariant 4: a countdown never exceeds the cap, whatever the caller computed.
        countdown = min(countdown_s, MAX_COUNTDOWN_S)
        self.app.send_task(
            task,
            args=[call_id],
            queue=routing.QUEUE_FOR[task],
            countdown=countdown if countdown > 0 else None,
        )


def runtime_for(app: Celery) -> Runtime:
    """One Runtime per process and app, built on first use (after a prefork fork, if any)."""
    runtime: Runtime | None = getattr(app, "dialq_runtime", None)
    if runtime is None:
        with _lock:
            runtime = getattr(app, "dialq_runtime", None)
            if runtime is None:
                settings: Settings = app.conf.dialq_settings or Settings()
                runtime = Runtime(settings, CeleryPublisher(app))
                app.dialq_runtime = runtime
    return runtime


class RedactedRequest(Request):  # type: ignore[misc]
    """The by-name payload carries a phone number: keep it out of Flower and worker events."""

    @property
    def argsrepr(self) -> str:
        return "(...)"

    @property
    def kwargsrepr(self) -> str:
        return "{'request': '<redacted>'}"


# Celery's event state turns an unknown `task-<name>` event into the task state `<NAME>`, no
# result backend needed. Not Celery's own names (sent, received, started, succeeded, failed,
# retried, revoked, rejected): a dial that redials later is a new task, not a `task-retried`.
LATER_EVENTS = {"waiting": "task-waiting", "redial": "task-redial"}


class FlowerState:
    """Shows a dial that left its call for later as WAITING or REDIAL, with its reason.

    The event holds the call id, reason, attempt, retries and delay, never a number, secret or
    token; `result` repeats them in words because Flower's task API shows only Celery's own fields.
    """

    def __init__(self, task: Task) -> None:
        self.task = task
        self.shown = False

    def __call__(self, later: Later) -> None:
        if self.task.request.called_directly or not self.task.app.conf.worker_send_task_events:
            return
        fields: dict[str, Any] = {
            "call_id": later.call_id,
            "reason": later.reason,
            "attempt": later.attempt,
            # Flower's `retries` column: dialq never calls Celery's retry (a redial is a new
            # task), so it shows how many of the call's start attempts have been retried so far.
            "retries": later.attempt if later.kind == "redial" else later.attempt - 1,
            "result": f"waiting for capacity: {later.reason}",
        }
        if later.delay_s is not None:
            fields["delay_s"] = round(later.delay_s, 3)
            fields["result"] = f"redial in {later.delay_s:.1f}s: {later.reason}"
        try:
            self.task.send_event(LATER_EVENTS[later.kind], **fields)
        except Exception:  # monitoring is a nicety: the call's row is already committed
            log.warning("call %s: could not send the %s event", later.call_id, later.kind)
            return
        self.shown = True


# What a dial returns once Flower was told WAITING or REDIAL (see DialRequest).
LEFT_FOR_LATER = "left for later"


class DialRequest(Request):  # type: ignore[misc]
    """A dial whose call was left for later sent Flower a WAITING or REDIAL event: the
    `task-succeeded` event that would replace that state at once is not sent. The message is
    acked and the worker's bookkeeping done as for any success (no exception path: raising
    `Ignore` instead kept ~7 MB more per worker alive in a 3-minute soak)."""

    def send_event(self, type: str, **fields: Any) -> None:
        if type == "task-succeeded" and fields.get("result") == repr(LEFT_FOR_LATER):
            return
        super().send_event(type, **fields)


@shared_task(name=routing.DIAL, bind=True, ignore_result=True, Request=DialRequest)
def dial(self: Task, call_id: str) -> str:
    """Place the call `call_id` (claimed first, so a duplicate delivery does nothing)."""
    flower = FlowerState(self)
    status = runtime_for(self.app).service.dial(call_id, on_later=flower)
    return LEFT_FOR_LATER if flower.shown else status


def _intake_payload(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The payload of a by-name message: kwargs {"request": {...}}, or it as the one argument.

    Other clients build these messages by hand: a misspelt or extra argument is an input error
    to name, not a TypeError from the task's signature.
    """
    given = [*args, *([kwargs["request"]] if "request" in kwargs else [])]
    if len(given) != 1 or set(kwargs) - {"request"}:
        rule = 'is required, and alone: send kwargs {"request": {...}}'
        raise InvalidCallRequest([FieldError("request", rule)])
    return given[0]


@shared_task(name=routing.PLACE_CALL, bind=True, ignore_result=True, Request=RedactedRequest)
def place_call(self: Task, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Intake for any Celery client: validate the payload like the Python API, then enqueue."""
    runtime = runtime_for(self.app)
    try:
        request = _intake_payload(args, kwargs)
        if isinstance(request, dict) and not request.get("idempotency_key"):
            # Redis may deliver this message twice; without a key of the producer's, the
            # message's own id makes a second delivery find the first call, not write another.
            request = {**request, "idempotency_key": f"celery-task:{self.request.id}"}
        call_request = parse_call_request(
            request, allowed_country_codes=runtime.settings.allowed_country_codes
        )
        handle = runtime.service.enqueue(call_request)
    except InvalidCallRequest as error:
        # Nothing is written or dialed; the message names the field and never the number.
        log.warning("rejected %s payload: %s", routing.PLACE_CALL, error)
        return {"error": str(error)}
    return {"id": handle.id, "status": handle.status, "created": handle.created}


@shared_task(name=routing.SWEEP, bind=True, ignore_result=True)
def sweep(self: Task) -> dict[str, int]:
    """Beat tick, the watchdog: repair stuck states, republish lost messages (idempotent)."""
    return runtime_for(self.app).service.watchdog()


@shared_task(name=routing.WATCH_CALL, bind=True, ignore_result=True)
def watch_call(self: Task, call_id: str) -> str:
    """One look at a live call: ended? past its maximum duration? cancel asked? then again."""
    return runtime_for(self.app).service.watch(call_id)


@shared_task(name=routing.HARVEST_INSIGHTS, bind=True, ignore_result=True)
def harvest_insights(self: Task, call_id: str) -> str:
    """An ended call's transcript and insights: stored, or re-published while not ready."""
    return runtime_for(self.app).insights.harvest(call_id)


@shared_task(name=routing.SWEEP_INSIGHTS, bind=True, ignore_result=True)
def sweep_insights(self: Task) -> int:
    """Beat tick: publish harvests never started, or due again with their message lost."""
    return runtime_for(self.app).insights.sweep()


@shared_task(name=routing.DELIVER_WEBHOOKS, bind=True, ignore_result=True)
def deliver_webhooks(self: Task, call_id: str) -> str:
    """Send the call's undelivered events to its callback, in order (one sender per call)."""
    return runtime_for(self.app).webhooks.deliver(call_id)


@shared_task(name=routing.SWEEP_WEBHOOKS, bind=True, ignore_result=True)
def sweep_webhooks(self: Task) -> int:
    """Beat tick: publish deliveries due again (backoff over 60 s) or whose nudge was lost."""
    return runtime_for(self.app).webhooks.sweep()


@shared_task(name=routing.DISPATCH_SCHEDULES, bind=True, ignore_result=True)
def dispatch_schedules(self: Task) -> dict[str, Any]:
    """Beat tick: turn due schedule occurrences into calls (each occurrence at most once)."""
    report = dispatch_due(runtime_for(self.app))
    return {"due": report.due, **report.outcomes, "already_handled": report.already_handled}
