"""Messages no dialq task can run: acknowledged and set aside, never a crash, never a retry.

Any Celery client can put anything on dialq's queues. Celery itself stops the worker on a task
message whose body is not `[args, kwargs, embed]` ("Unrecoverable error"; the message returns to
the queue and kills the next worker too), and logs the whole body of an unknown task at ERROR.
Here every message is checked before Celery builds a request from it; one that fails is acked,
recorded in Redis (`dialq:poison`, the newest 1,000: time, task, queue, reason, size, never the
body), counted (`dialq_poison_messages_total{reason}`) and logged without its body.
`dialq poison` lists them.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from celery.worker.consumer import Consumer
from celery.worker.strategy import default as default_strategy

from dialq import routing
from dialq.hands import Hands
from dialq.ops.metrics import POISON_MESSAGES

log = logging.getLogger("dialq.poison")

POISON_KEY = f"{routing.REDIS_PREFIX}poison"
KEEP = 1000
# A by-name request is a few hundred bytes; a call-id task under a hundred.
MAX_BODY_BYTES = 64 * 1024
# The tasks that take exactly one call id; the beat tasks take nothing.
CALL_ID_TASKS = frozenset(routing.QUEUE_FOR)
NO_ARGUMENT_TASKS = frozenset(
    {
        routing.SWEEP,
        routing.SWEEP_WEBHOOKS,
        routing.SWEEP_INSIGHTS,
        routing.DISPATCH_SCHEDULES,
    }
)
EMBED_KEYS = frozenset({"callbacks", "errbacks", "chain", "chord"})


@dataclass(frozen=True)
class Problem:
    """Why a message was set aside: `kind` is a fixed word (a metric label), `detail` words."""

    kind: str
    detail: str


def _too_large(body: object) -> Problem | None:
    size = len(body) if isinstance(body, bytes | str) else 0
    if size > MAX_BODY_BYTES:
        return Problem("too-large", f"body of {size} bytes is over {MAX_BODY_BYTES}")
    return None


def problem_with(task: str, body: object, payload: object) -> Problem | None:
    """Why this task cannot run this message; None when it can."""
    if (too_large := _too_large(body)) is not None:
        return too_large
    if not (isinstance(payload, list | tuple) and len(payload) == 3):
        return Problem("not-a-task-body", "body is not [args, kwargs, embed]")
    args, kwargs, embed = payload
    if not (isinstance(args, list | tuple) and isinstance(kwargs, dict)):
        return Problem("bad-arguments", "args is not a list or kwargs not an object")
    if not isinstance(embed, dict) or set(embed) - EMBED_KEYS:
        return Problem("bad-embed", "embed is not an object of callbacks, errbacks, chain, chord")
    if any(value is not None for value in embed.values()):
        return Problem("callbacks", "callbacks, errbacks, chains and chords are not accepted")
    if task in CALL_ID_TASKS and not _one_call_id(args, kwargs):
        return Problem("bad-arguments", "a call-id task takes one call id (a string) only")
    if task in NO_ARGUMENT_TASKS and (args or kwargs):
        return Problem("bad-arguments", "this task takes no arguments")
    return None


def _one_call_id(args: Any, kwargs: Any) -> bool:
    return len(args) == 1 and not kwargs and isinstance(args[0], str) and 0 < len(args[0]) <= 64


def set_aside(redis_client: Any, message: Any, task: str | None, problem: Problem) -> None:
    """Record the message's envelope and the reason; never its body (it may hold a number)."""
    record = {
        "at": round(time.time(), 3),
        "task": _printable(task),
        "id": _printable((getattr(message, "headers", None) or {}).get("id")),
        "queue": _printable((getattr(message, "delivery_info", None) or {}).get("routing_key")),
        "kind": problem.kind,
        "reason": problem.detail,
        "size": len(getattr(message, "body", b"") or b""),
    }
    POISON_MESSAGES.labels(kind=problem.kind).inc()
    log.warning(
        "set aside a message no task can run: task %s, id %s: %s",
        record["task"],
        record["id"],
        problem.detail,
    )
    try:
        pipe = redis_client.pipeline(transaction=False)
        pipe.lpush(POISON_KEY, json.dumps(record))
        pipe.ltrim(POISON_KEY, 0, KEEP - 1)
        pipe.execute()
    except Exception:  # the log line and the counter still tell
        log.warning("could not record the set-aside message in Redis", exc_info=True)


def _printable(value: object) -> str | None:
    """An id or name from a message, cut and cleaned: it is the sender's text, not ours."""
    if value is None:
        return None
    text = str(value)[:200]
    return "".join(c if c.isprintable() else "?" for c in text)


def guarded_strategy(task: Any, app: Any, consumer: Any, **kwargs: Any) -> Any:
    """Celery's default strategy, behind a check of every message against `problem_with`."""
    from dialq.worker import hands_for

    handle = default_strategy(task, app, consumer, **kwargs)
    hands = hands_for(app)  # once per task at consumer start, not per message

    def guarded(message: Any, body: Any, ack: Any, reject: Any, callbacks: Any, **kw: Any) -> Any:
        problem = _too_large(message.body)
        if problem is None:
            try:
                payload = message.payload if body is None else body
                problem = problem_with(task.name, message.body, payload)
            except Exception as error:  # decoding it failed: that is the problem
                problem = Problem("unreadable", f"unreadable body ({type(error).__name__})")
        if problem is None:
            return _handle_in_hand(hands, handle, message, body, ack, reject, callbacks, **kw)
        set_aside(_redis(app), message, task.name, problem)
        message.ack_log_error(log, consumer.connection_errors)
        return None

    return guarded


def _handle_in_hand(
    hands: Hands,
    handle: Any,
    message: Any,
    body: Any,
    ack: Any,
    reject: Any,
    callbacks: Any,
    **kw: Any,
) -> Any:
    """Celery's handling, with the message counted in this worker's hands (dialq.hands) until
    it is acked or rejected: if the worker dies first, the watchdog gives it back at once."""
    tag = message.delivery_tag

    def acked(*args: Any) -> Any:
        hands.let_go(tag)
        return ack(*args)

    def rejected(*args: Any) -> Any:
        hands.let_go(tag)
        return reject(*args)

    hands.took(tag)
    try:
        return handle(message, body, acked, rejected, callbacks, **kw)
    except BaseException:
        hands.let_go(tag)
        raise


def _redis(app: Any) -> Any:
    from dialq.worker import runtime_for

    return runtime_for(app).redis


class GuardedConsumer(Consumer):  # type: ignore[misc]
    """Celery's consumer, setting aside what it would log whole or choke on."""

    def on_unknown_message(self, body: Any, message: Any) -> None:
        set_aside(_redis(self.app), message, None, Problem("not-a-task", "no task header"))
        message.reject_log_error(log, self.connection_errors)

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        task = (getattr(message, "headers", None) or {}).get("task")
        set_aside(_redis(self.app), message, task, Problem("unknown-task", "no such task here"))
        message.reject_log_error(log, self.connection_errors)

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        task = (getattr(message, "headers", None) or {}).get("task")
        problem = Problem("invalid", f"invalid task message ({type(exc).__name__})")
        set_aside(_redis(self.app), message, task, problem)
        message.reject_log_error(log, self.connection_errors)

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        task = (getattr(message, "headers", None) or {}).get("task")
        problem = Problem("undecodable", f"undecodable body ({type(exc).__name__})")
        set_aside(_redis(self.app), message, task, problem)
        message.ack()
