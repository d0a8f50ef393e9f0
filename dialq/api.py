"""The Python API for producers: `enqueue_call(request)`, and the read side: `get_call`,
`list_calls`; `cancel_call` and `redial_call` for operators."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dialq.calls.read import call_detail, call_summary
from dialq.calls.redial import RedialResult
from dialq.calls.request import CallRequest, parse_call_request
from dialq.calls.service import CallHandle
from dialq.calls.watch import CancelResult
from dialq.config import Settings
from dialq.store import calls_repo
from dialq.store.call_pages_repo import CallFilter, page_of_calls
from dialq.store.errors import translated

if TYPE_CHECKING:
    from dialq.runtime import Runtime

_lock = threading.Lock()
_runtimes: dict[str, Runtime] = {}


def _key(settings: Settings) -> str:
    # Equal settings share one runtime (pools, token cache). Hashed: the key holds secrets.
    secrets = [a.app_secret.get_secret_value() for _, a in sorted(settings.accounts.items())]
    text = settings.model_dump_json() + "\0".join(secrets)
    return hashlib.sha256(text.encode()).hexdigest()


def producer_runtime(settings: Settings | None = None) -> Runtime:
    """The process-wide runtime for these settings (default: from the environment)."""
    from dialq.worker import create_app, runtime_for

    settings = settings or Settings()
    key = _key(settings)
    with _lock:
        runtime = _runtimes.get(key)
        if runtime is None:
            runtime = runtime_for(create_app(settings))
            _runtimes[key] = runtime
    return runtime


def close_runtimes() -> None:
    """Release every cached runtime's connections (tests, and producers shutting down)."""
    with _lock:
        for runtime in _runtimes.values():
            runtime.close()
        _runtimes.clear()


def enqueue_call(
    request: CallRequest | Mapping[str, Any], *, settings: Settings | None = None
) -> CallHandle:
    """Record a call (queued) and publish its dial message; returns its handle.

    A mapping is validated exactly as the by-name task payload is, and an invalid one raises
    `InvalidCallRequest` naming the field, with nothing written or published. An
    `idempotency_key` already used for the same request returns the existing call and places
    nothing new; used for a different request, it raises `InvalidCallRequest` naming
    `idempotency_key`. When the database is down it raises `dialq.store.DatabaseUnavailable`
    and publishes nothing: retry later, with an idempotency key.
    """
    runtime = producer_runtime(settings)
    if not isinstance(request, CallRequest):
        request = parse_call_request(
            request,
            allowed_country_codes=runtime.settings.allowed_country_codes,
            summary_email_domains=runtime.settings.summary_email_domains,
        )
    with translated():  # the first use of the database migrates it: outside the store
        service = runtime.service
    return service.enqueue(request)


def cancel_call(call_id: str, *, settings: Settings | None = None) -> CancelResult:
    """Cancel a call: a queued or waiting one is never dialed, a live one is stopped, a
    finished one is left as it is; the result says which."""
    return producer_runtime(settings).service.cancel(call_id)


def redial_call(
    call_id: str, *, by: str = "an operator", settings: Settings | None = None
) -> RedialResult:
    """Dial a failed or unknown call again: an operator's decision, recorded in its events
    (`by` names who asked). An unknown call may already be live at Symbl: check first. Any
    other call is left as it is; the result says which."""
    return producer_runtime(settings).service.redial(call_id, by=by)


def get_call(call_id: str, *, settings: Settings | None = None) -> dict[str, Any] | None:
    """The call as `dialq show --json` shows it (its schedule occurrence, attempts, events),
    or None when no call has this id."""
    with translated():
        db = producer_runtime(settings).db
    with db.sessions() as session:
        call = calls_repo.get_call(session, call_id)
        return call_detail(call) if call is not None else None


def list_calls(
    *,
    status: str | None = None,
    accounts: Collection[str] | None = None,
    schedule: str | None = None,
    search: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    settings: Settings | None = None,
) -> list[dict[str, Any]]:
    """The newest calls first, as `dialq calls --json` shows them: of these accounts (default:
    every one), placed by this schedule, whose session name contains `search` (any case),
    created after `since` and before `until`."""
    where = CallFilter(
        accounts=accounts,
        status=status,
        created_after=since,
        created_before=until,
        schedule=schedule,
        search=search,
    )
    with translated():
        db = producer_runtime(settings).db
    with db.sessions() as session:
        return [call_summary(c) for c in page_of_calls(session, where, limit=limit)]
