"""Ask dialq to place a call from any application, with nothing but Celery installed.

    DIALQ_BROKER_URL=redis://127.0.0.1:6379/0 python examples/producer.py "(415) 555-0123" \
        --name "Renewal call" --idempotency-key crm-8812

The task is sent by name, so this program needs no dialq code; the payload contract is
docs/payload.md. It prints the task id. Whether the request was valid shows in the worker's log
(and the call's row), not here: the payload is validated by dialq, exactly like its Python API.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from celery import Celery

TASK = "dialq.place_call"
QUEUE = "dialq.dial"
# Celery puts a repr of the arguments in the message headers, which Flower and the worker's
# events show; the payload carries a phone number, so send a redacted repr instead.
REDACTED = "{'request': '<redacted>'}"


def build_request(args: argparse.Namespace) -> dict[str, Any]:
    """The CallRequest payload: plain JSON, snake_case fields, only the ones given."""
    request: dict[str, Any] = {"phone_number": args.number}
    if args.name:
        request["session_name"] = args.name
    if args.idempotency_key:
        request["idempotency_key"] = args.idempotency_key
    if args.email:
        request["summary_emails"] = args.email
    return request


def main() -> None:
    parser = argparse.ArgumentParser(description="Queue a dialq call through the broker.")
    parser.add_argument("number", help='number to dial, e.g. "+14155550123"')
    parser.add_argument("--name", help="session name shown in Symbl")
    parser.add_argument("--idempotency-key", help="same key, same call: safe to resend")
    parser.add_argument("--email", action="append", help="summary email recipient (repeatable)")
    args = parser.parse_args()

    app = Celery(broker=os.environ.get("DIALQ_BROKER_URL", "redis://127.0.0.1:6379/0"))
    app.conf.task_serializer = "json"  # dialq's workers accept JSON only
    result = app.send_task(
        TASK,
        kwargs={"request": build_request(args)},
        queue=QUEUE,
        serializer="json",
        argsrepr="()",
        kwargsrepr=REDACTED,
    )
    print(result.id)


if __name__ == "__main__":
    main()
