"""Thin Celery tasks: unpack ids, call the runtime's service, nothing else (style.md habit 1)."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from dialq import hands, routing
from dialq.calls.dial import NO_ROW, NO_ROW_RECHECK_S
from dialq.calls.enqueue import INTAKE_RETRIES, intake_retry_s
from dialq.flower import LEFT_FOR_LATER, DialRequest, FlowerState, RedactedRequest
from dialq.store import DatabaseUnavailable
from dialq.store.errors import translated
from dialq.worker import DialqTask


@shared_task(name=routing.DIAL, bind=True, ignore_result=True, base=DialqTask, Request=DialRequest)
def dial(self: DialqTask, call_id: str) -> str:
    """Place the call `call_id` (claimed first, so a duplicate delivery does nothing)."""
    flower = FlowerState(self)
    status = self.runtime.service.dial(call_id, on_later=flower)
    if status == NO_ROW and not self.request.retries:
        # Its producer may not have committed the row yet: look once more (see NO_ROW).
        raise self.retry(countdown=NO_ROW_RECHECK_S, max_retries=1)
    return LEFT_FOR_LATER if flower.shown else status


@shared_task(
    name=routing.PLACE_CALL, bind=True, ignore_result=True, base=DialqTask, Request=RedactedRequest
)
def place_call(self: DialqTask, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Intake for any Celery client: validate the payload like the Python API, then enqueue.

    Never lost: while the database is down the message comes back after a short countdown,
    under the same id, so the call it records is one call however many tries it takes."""
    try:
        with translated():  # the first use of the database migrates it: outside the store
            service = self.runtime.service
        return service.enqueue_message(args, kwargs, message_id=self.request.id)
    except DatabaseUnavailable as error:
        countdown = intake_retry_s(self.runtime.settings, self.request.retries + 1)
        raise self.retry(exc=error, countdown=countdown, max_retries=INTAKE_RETRIES) from None


@shared_task(name=routing.SWEEP, bind=True, ignore_result=True, base=DialqTask)
def sweep(self: DialqTask) -> dict[str, int]:
    """Beat tick, the watchdog: give back what dead workers held, repair stuck states,
    republish lost messages (idempotent)."""
    given_back = hands.give_back_orphans(self.app, self.runtime.redis)
    return {"messages_given_back": given_back, **self.runtime.service.watchdog()}


# No events (see dialq.worker.UNSEEN_TASKS): Flower shows calls by their dials, not each look.
@shared_task(
    name=routing.WATCH_CALL, bind=True, ignore_result=True, base=DialqTask, send_events=False
)
def watch_call(self: DialqTask, call_id: str) -> str:
    """One look at a live call: ended? past its maximum duration? cancel asked? then again."""
    return self.runtime.service.watch(call_id)


@shared_task(name=routing.HARVEST_INSIGHTS, bind=True, ignore_result=True, base=DialqTask)
def harvest_insights(self: DialqTask, call_id: str) -> str:
    """An ended call's transcript and insights: stored, or re-published while not ready."""
    return self.runtime.insights.harvest(call_id)


@shared_task(name=routing.SWEEP_INSIGHTS, bind=True, ignore_result=True, base=DialqTask)
def sweep_insights(self: DialqTask) -> int:
    """Beat tick: publish harvests never started, or due again with their message lost."""
    return self.runtime.insights.sweep()


@shared_task(name=routing.DELIVER_WEBHOOKS, bind=True, ignore_result=True, base=DialqTask)
def deliver_webhooks(self: DialqTask, call_id: str) -> str:
    """Send the call's undelivered events to its callback, in order (one sender per call)."""
    return self.runtime.webhooks.deliver(call_id)


@shared_task(name=routing.SWEEP_WEBHOOKS, bind=True, ignore_result=True, base=DialqTask)
def sweep_webhooks(self: DialqTask) -> int:
    """Beat tick: publish deliveries due again (backoff over 60 s) or whose nudge was lost."""
    return self.runtime.webhooks.sweep()


@shared_task(name=routing.DISPATCH_SCHEDULES, bind=True, ignore_result=True, base=DialqTask)
def dispatch_schedules(self: DialqTask) -> dict[str, Any]:
    """Beat tick: turn due schedule occurrences into calls (each occurrence at most once)."""
    report = self.runtime.dispatch_schedules()
    return {"due": report.due, **report.outcomes, "already_handled": report.already_handled}
