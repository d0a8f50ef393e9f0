"""What Flower shows of dialq's tasks: redacted by-name requests, and WAITING / REDIAL states
for a dial that left its call for later. Ids and reasons only, never a number or a secret."""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Task
from celery.worker.request import Request
from flower.views.monitor import Metrics
from tornado.web import authenticated

from dialq.calls.claim import Later

log = logging.getLogger("dialq.tasks")


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
            request = getattr(_running, "request", None)
            eventer = getattr(request, "_eventer", None)
            # Sent there only while it sends: a disabled one (mid-reconnect) drops events unsaid.
            if (
                request is not None
                and request.id == self.task.request.id
                and eventer
                and eventer.enabled
            ):
                # The worker's own dispatcher holds this task's received and started events in
                # its next batch (dialq.consumer): sent after them, never overwritten by them.
                request.send_event(LATER_EVENTS[later.kind], **fields)
            else:  # a pool whose tasks run in other processes: sent at once
                self.task.send_event(LATER_EVENTS[later.kind], **fields)
        except Exception:  # monitoring is a nicety: the call's row is already committed
            log.warning("call %s: could not send the %s event", later.call_id, later.kind)
            return
        self.shown = True


# The dial this pool thread runs: a threads pool accepts a task in the thread that runs it.
_running = threading.local()

# What a dial returns once Flower was told WAITING or REDIAL (see DialRequest).
LEFT_FOR_LATER = "left for later"


class DialRequest(Request):  # type: ignore[misc]
    """A dial whose call was left for later sent Flower a WAITING or REDIAL event: the
    `task-succeeded` event that would replace that state at once is not sent. The message is
    acked and the worker's bookkeeping done as for any success (no exception path: raising
    `Ignore` instead kept ~7 MB more per worker alive in a 3-minute soak)."""

    def on_accepted(self, pid: int, time_accepted: float) -> None:
        _running.request = self
        super().on_accepted(pid, time_accepted)

    def send_event(self, type: str, **fields: Any) -> None:
        if type == "task-succeeded" and fields.get("result") == repr(LEFT_FOR_LATER):
            return
        super().send_event(type, **fields)


def protect_flower_metrics() -> None:
    """Flower answers /metrics (worker names, task counts by name) without its basic auth:
    ask for the same credentials as every other page. /healthcheck stays open, for the
    container's healthcheck. Flower imports this module through the app's tasks, before its
    first request; idempotent."""
    if not getattr(Metrics.get, "dialq_authenticated", False):
        guarded = authenticated(Metrics.get)
        guarded.dialq_authenticated = True  # type: ignore[attr-defined]
        Metrics.get = guarded


protect_flower_metrics()
