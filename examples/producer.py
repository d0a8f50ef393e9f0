"""Ask dialq to place a call from any application, with nothing but Celery installed.

    DIALQ_BROKER_URL=redis://127.0.0.1:6379/0 python examples/producer.py "(415) 555-0123" \
        --name "Renewal call" --idempotency-key crm-8812

The task is sent by name, so this program needs no dialq code; the payload contract is
docs/payload.md. It reads DIALQ_BROKER_URL from the environment only (not dialq.toml) and
prints the broker it used: a message sent to another Redis than the workers' waits there unseen.

Sending is all a broker can do: the call's id, and whether the request was valid, are decided
later by a worker. So the request always carries an idempotency key (yours, or one made here)
and the program prints it: the call's row holds that key, which is how you find the call
(`dialq calls --json` lists each call's `id` with its `idempotency_key`; then `dialq show ID`).
An invalid payload writes no row and dials nothing; the worker logs a WARNING "rejected
dialq.place_call payload: <every broken rule>" and Flower shows the task's `{"error": ...}`.

A producer that can import dialq and reach its database gets both answers at once from the
Python API instead: see examples/enqueue.py.
"""

from __future__ import annotations

import argparse
import os
import uuid
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
    # Resending with the same key places one call: a retry after a timeout is safe.
    request["idempotency_key"] = args.idempotency_key or f"producer-{uuid.uuid4()}"
    if args.email:
        request["summary_emails"] = args.email
    return request


def main() -> None:
    parser = argparse.ArgumentParser(description="Queue a dialq call through the broker.")
    parser.add_argument("number", help='number to dial, e.g. "+14155550123"')
    parser.add_argument("--name", help="session name shown in Symbl")
    parser.add_argument(
        "--idempotency-key", help="same key, same call: safe to resend (default: a new one)"
    )
    parser.add_argument("--email", action="append", help="summary email recipient (repeatable)")
    args = parser.parse_args()

    request = build_request(args)
    app = Celery(broker=os.environ.get("DIALQ_BROKER_URL", "redis://127.0.0.1:6379/0"))
    app.conf.task_serializer = "json"  # dialq's workers accept JSON only
    result = app.send_task(
        TASK,
        kwargs={"request": request},
        queue=QUEUE,
        serializer="json",
        argsrepr="()",
        kwargsrepr=REDACTED,
    )
    key = request["idempotency_key"]
    broker = app.connection_for_write().as_uri()  # the password masked
    print(f"sent {TASK} to {broker} (Celery task {result.id}) with idempotency_key {key}")
    print(f"the call: the row of `dialq calls --json` whose idempotency_key is {key}")
    print("no such row: the payload was rejected (the worker's log and Flower say why)")


if __name__ == "__main__":
    main()
