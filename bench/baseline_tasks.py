"""The baselines dialq is measured against: plain Celery tasks that POST the start request.

- `bench.bare_start` (bench/dispatch.py) claims, records and retries nothing: the least work a
  Celery system can do to place a call, so dialq's overhead shows as a ratio against it.
- `bench.start_with_retry` (bench/saturation.py) is plain Celery retry on 429: `autoretry_for`
  with `retry_backoff` and `retry_jitter`, and nothing else (the sandbox ends the calls).
"""

from __future__ import annotations

import os
import threading
from typing import Any

import requests
from celery import Celery

app = Celery("bench_baseline", broker=os.environ["BENCH_BROKER_URL"])
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_default_queue="bench.baseline",
)

_token_lock = threading.Lock()
_token: list[str] = []
_local = threading.local()


def _session() -> requests.Session:
    session: requests.Session | None = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
    return session


def _access_token(base_url: str) -> str:
    with _token_lock:
        if not _token:
            reply = _session().post(
                f"{base_url}/oauth2/token:generate",
                json={
                    "type": "application",
                    "appId": os.environ["BENCH_APP_ID"],
                    "appSecret": os.environ["BENCH_APP_SECRET"],
                },
                timeout=10,
            )
            _token.append(reply.json()["accessToken"])
        return _token[0]


# Celery ships no type information, so `app.task` is an untyped decorator. The tasks are only
# ever sent by name (app.send_task), never called through these functions, so nothing is lost.
@app.task(name="bench.bare_start")  # type: ignore[untyped-decorator]
def bare_start(call_id: str, body: dict[str, Any]) -> None:
    base_url = os.environ["BENCH_SANDBOX_URL"]
    _session().post(
        f"{base_url}/v1/endpoint:connect",
        json=body,
        headers={"x-api-key": _access_token(base_url), "X-Dialq-Call-Id": call_id},
        timeout=30,
    )


class CapacityFull(Exception):
    """The API answered 429."""


# Untyped Celery decorator, as above.
@app.task(  # type: ignore[untyped-decorator]
    name="bench.start_with_retry",
    autoretry_for=(CapacityFull,),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=None,
)
def start_with_retry(call_id: str, body: dict[str, Any]) -> None:
    base_url = os.environ["BENCH_SANDBOX_URL"]
    reply = _session().post(
        f"{base_url}/v1/endpoint:connect",
        json=body,
        headers={"x-api-key": _access_token(base_url), "X-Dialq-Call-Id": call_id},
        timeout=30,
    )
    if reply.status_code == 429:
        raise CapacityFull()
