"""Producing a call: validate its account, write its row (queued), publish its dial message."""

from __future__ import annotations

import hashlib
import json
import logging
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from dialq import routing
from dialq.backoff import backoff_s
from dialq.calls.context import CallContext
from dialq.calls.dispatch import line_up, publish_dial, release_permit
from dialq.calls.policy import API_UNAVAILABLE, message_due_at, permit_score
from dialq.calls.request import (
    CallRequest,
    FieldError,
    InvalidCallRequest,
    is_reserved_key,
    parse_call_request,
)
from dialq.calls.states import CallStatus
from dialq.capacity import Verdict
from dialq.config import Settings
from dialq.publisher import MAX_COUNTDOWN_S
from dialq.store import Call, Conflict, DatabaseUnavailable, Session
from dialq.store import calls_repo as repo

log = logging.getLogger("dialq.calls")

# Every field at its default, as a request is stored: such fields are left out of fingerprints.
_DEFAULTS: dict[str, Any] = CallRequest.model_construct().model_dump(mode="json")
# A by-name request is retried while the database is down: at most a minute apart (invariant 4),
# this many times is weeks, longer than any outage; its message keeps its id, hence its key.
INTAKE_RETRIES = 50_000
_KEY_REUSED = "was already used for a different request: give each new request a key of its own"


@dataclass(frozen=True)
class CallHandle:
    """What a producer gets back: the call's id, its status, and whether this request made it."""

    id: str
    status: str
    created: bool


@dataclass(frozen=True)
class Placed:
    """A call as this request left it: its handle, and its row (the new one as written, or
    the one an idempotency key already named, as read), so a caller that shows the call
    need not read it again."""

    handle: CallHandle
    call: Call


def enqueue(
    ctx: CallContext,
    request: CallRequest,
    *,
    also: Callable[[Session, Call], None] | None = None,
) -> CallHandle:
    """Write the call row (queued) and publish its dial message (see `place`)."""
    return place(ctx, request, also=also).handle


def place(
    ctx: CallContext,
    request: CallRequest,
    *,
    also: Callable[[Session, Call], None] | None = None,
    by: str | None = None,
) -> Placed:
    """Write the call row (queued) and publish its dial message.

    The same idempotency key with the same request (see `request_fingerprint`) returns the
    existing call and places nothing new; with a different request it raises
    InvalidCallRequest naming `idempotency_key`. If the broker is down the row stays queued and
    the sweeper publishes it later (invariant 6). `also` writes more rows in the call's own
    transaction (a schedule's occurrence), so both are committed or neither is. `by` names
    the producer in the call's log line (an API key).

    Raises DatabaseUnavailable, having published nothing, when the database cannot record it.
    """
    if request.account not in ctx.settings.accounts:
        raise InvalidCallRequest([FieldError("account", "names no configured account")])
    if request.callback_url and not ctx.settings.webhook_secret.get_secret_value():
        # Accepted (the secret may be set before the call changes state), but not silently.
        log.warning("callback_url given while DIALQ_WEBHOOK_SECRET is unset: no webhook is sent")
    try:
        return _enqueue(ctx, request, also, by)
    except DatabaseUnavailable as error:
        raise DatabaseUnavailable(
            "database unavailable: the call may not have been recorded and its dial message was "
            "not published; retry later, with an idempotency_key so a retry never makes two calls"
        ) from error


def _enqueue(
    ctx: CallContext,
    request: CallRequest,
    also: Callable[[Session, Call], None] | None,
    by: str | None,
) -> Placed:
    fingerprint = request_fingerprint(request.model_dump(mode="json"))
    if request.idempotency_key:
        existing = _by_key(ctx, request.idempotency_key)
        if existing is not None:
            return _existing(existing, fingerprint)
    call = _new_call(ctx, request, fingerprint)
    # A call due now joins its account's line before its row is written, so the row is
    # written once, as the line has it (queued with a permit, or waiting): one transaction.
    verdict = _line_up(ctx, call) if call.not_before is None else Verdict.GRANTED
    waits = verdict is not Verdict.GRANTED
    waited = _wait_in_line(call, parked=verdict is Verdict.PAUSED) if waits else None
    try:
        with ctx.db.transaction() as session:
            repo.add_call(session, call, waited=waited)
            if also is not None:
                also(session, call)
    except Conflict:
        # Lost a race with a concurrent producer using the same idempotency key.
        _leave_line(ctx, call)
        existing = _by_key(ctx, request.idempotency_key or "")
        if existing is None:
            raise
        return _existing(existing, fingerprint)
    except BaseException:
        _leave_line(ctx, call)
        raise
    log.info("call %s queued for %s%s", call.id, request.masked_target, f" by {by}" if by else "")
    # A waiting call handed a permit before this commit had its dial sent by the releaser:
    # that dial found no row and looks again a moment later (see calls.dial.NO_ROW).
    if not waits and call.dispatch_due_at is not None:
        publish_dial(ctx, call.id, call.dispatch_due_at)
    # else: due later than a countdown may be; the sweeper publishes it when due
    return Placed(CallHandle(call.id, call.status, created=True), call)


def _line_up(ctx: CallContext, call: Call) -> Verdict:
    """The line's verdict on the call; when Redis cannot give one, its dial will ask."""
    try:
        return line_up(ctx, call.id, call.account, permit_score(call.priority, call.created_at))
    except Exception:
        log.warning("call %s: could not join the line; its dial will", call.id, exc_info=True)
        return Verdict.GRANTED


def _wait_in_line(call: Call, *, parked: bool) -> str:
    """The row to write says what the line says: waiting, with no message due (a hand-off
    sends it), and why when the account's API is out. Returns the wait's event detail."""
    call.status = CallStatus.WAITING.value
    call.dispatch_due_at = None
    if parked:
        call.reason = API_UNAVAILABLE
        return f"{API_UNAVAILABLE}: parked until it answers"
    return "waiting for capacity: no free permit"


def _leave_line(ctx: CallContext, call: Call) -> None:
    """The row was not written: its place in line, or the permit it held, goes to the next."""
    if call.not_before is None:
        release_permit(ctx, call.account, call.id)


def request_fingerprint(stored: Mapping[str, Any]) -> str:
    """A digest of a request as stored (its JSON dump), without its idempotency key.

    Fields at their defaults are left out, so a default given or omitted is the same request,
    and a field added later with a default does not change the fingerprint of older requests.
    Values are the validated ones: a number written two ways is one request.
    """
    meaningful = {
        name: value
        for name, value in stored.items()
        if name != "idempotency_key" and value != _DEFAULTS.get(name, ...)
    }
    text = json.dumps(meaningful, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _existing(existing: Call, fingerprint: str) -> Placed:
    """The call an idempotency key already names, if it was made for this same request."""
    # Rows older than migration 0008 have no fingerprint: their stored request gives it.
    recorded = existing.request_fingerprint or request_fingerprint(existing.request)
    if recorded != fingerprint:
        raise InvalidCallRequest([FieldError("idempotency_key", _KEY_REUSED)])
    return Placed(CallHandle(existing.id, existing.status, created=False), existing)


def _by_key(ctx: CallContext, key: str) -> Call | None:
    with ctx.db.sessions() as session:
        return repo.find_by_idempotency_key(session, key)


def _new_call(ctx: CallContext, request: CallRequest, fingerprint: str) -> Call:
    now = ctx.now()
    due = request.not_before or now
    stored = request.model_dump(mode="json")
    if is_reserved_key(request.idempotency_key):
        # The dial validates the stored request again, as a producer's: a key only dialq may
        # write stays in its column, not in the request.
        del stored["idempotency_key"]
    return Call(
        id=str(uuid.uuid4()),
        status=CallStatus.QUEUED.value,
        account=request.account,
        phone_number=request.phone_number,
        sip_uri=request.sip_uri,
        request=stored,
        priority=request.priority,
        max_duration_s=request.max_duration_s or ctx.settings.default_max_duration_s,
        callback_url=request.callback_url,
        idempotency_key=request.idempotency_key,
        request_fingerprint=fingerprint,
        not_before=request.not_before,
        deadline_at=due + timedelta(seconds=ctx.settings.dial_deadline_s),
        # Marked before the publish: if the publish fails, the sweeper finds it stale.
        dispatch_due_at=message_due_at(request.not_before, now),
        start_attempts=0,
        failures=0,
        capacity_waits=0,
        created_at=now,
        updated_at=now,
    )


def intake_retry_s(settings: Settings, attempt: int, rng: random.Random | None = None) -> float:
    """Countdown before try `attempt` (1-based) of a by-name request the database refused:
    the dial's failure backoff, with waits that surely grow (equal jitter)."""
    return backoff_s(
        attempt,
        rng or random.Random(),
        base_s=settings.backoff_base_s,
        max_s=min(settings.backoff_max_s, MAX_COUNTDOWN_S),
        jitter="equal",
    )


def enqueue_message(
    ctx: CallContext, args: tuple[Any, ...], kwargs: dict[str, Any], *, message_id: str
) -> dict[str, Any]:
    """A by-name `dialq.place_call` message from any Celery client: validated like the Python
    API, then enqueued. Returns the handle, or the input error (nothing written or dialed)."""
    try:
        request = _payload(args, kwargs)
        if isinstance(request, dict) and not request.get("idempotency_key"):
            # Redis may deliver this message twice; without a key of the producer's, the
            # message's own id makes a second delivery find the first call, not write another.
            request = {**request, "idempotency_key": f"celery-task:{message_id}"}
        call_request = parse_call_request(
            request,
            allowed_country_codes=ctx.settings.allowed_country_codes,
            summary_email_domains=ctx.settings.summary_email_domains,
        )
        handle = enqueue(ctx, call_request)
    except InvalidCallRequest as error:
        # The message names the field and never the number.
        log.warning("rejected %s payload: %s", routing.PLACE_CALL, error)
        return {"error": str(error)}
    return {"id": handle.id, "status": handle.status, "created": handle.created}


def _payload(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The payload of a by-name message: kwargs {"request": {...}}, or it as the one argument.

    Other clients build these messages by hand: a misspelt or extra argument is an input error
    to name, not a TypeError from the task's signature.
    """
    given = [*args, *([kwargs["request"]] if "request" in kwargs else [])]
    if len(given) != 1 or set(kwargs) - {"request"}:
        rule = 'is required, and alone: send kwargs {"request": {...}}'
        raise InvalidCallRequest([FieldError("request", rule)])
    return given[0]
