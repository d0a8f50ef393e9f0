"""The baseline for bench/dispatch.py: a bare Celery task that POSTs the start request.

It claims nothing, records nothing and retries nothing: the least work a Celery system can do
to place a call, so dialq's overhead shows as a ratio against it.
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


@app.task(name="bench.bare_start")
def bare_start(call_id: str, body: dict[str, Any]) -> None:
    base_url = os.environ["BENCH_SANDBOX_URL"]
    _session().post(
        f"{base_url}/v1/endpoint:connect",
        json=body,
        headers={"x-api-key": _access_token(base_url), "X-Dialq-Call-Id": call_id},
        timeout=30,
    )
