"""The baseline for bench/saturation.py: plain Celery retry with exponential backoff on 429.

It POSTs the start request and, on 429, lets Celery's `autoretry_for` retry it with
`retry_backoff` and `retry_jitter`; it does nothing else (the sandbox ends the calls).
"""

from __future__ import annotations

import os
import threading
from typing import Any

import requests
from celery import Celery

app = Celery("bench_saturation", broker=os.environ["BENCH_BROKER_URL"])
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_default_queue="bench.saturation",
)

_lock = threading.Lock()
_token: list[str] = []


class CapacityFull(Exception):
    """The API answered 429."""


def _access_token(base_url: str) -> str:
    with _lock:
        if not _token:
            reply = requests.post(
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


@app.task(
    name="bench.start_with_retry",
    autoretry_for=(CapacityFull,),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=None,
)
def start_with_retry(call_id: str, body: dict[str, Any]) -> None:
    base_url = os.environ["BENCH_SANDBOX_URL"]
    reply = requests.post(
        f"{base_url}/v1/endpoint:connect",
        json=body,
        headers={"x-api-key": _access_token(base_url), "X-Dialq-Call-Id": call_id},
        timeout=30,
    )
    if reply.status_code == 429:
        raise CapacityFull()
