"""Place a call from Python with dialq's API, and get its answer at once.

    DIALQ_BROKER_URL=redis://127.0.0.1:6379/0 python examples/enqueue.py "(415) 555-0123" \
        --name "Renewal call" --idempotency-key crm-8812

`dialq.enqueue_call` validates the request here, writes the call's row and publishes its dial
message, so it needs the same DIALQ_* settings as the workers (broker and database). It returns
the call's id; an invalid request raises `InvalidCallRequest` naming every broken rule, with
nothing written or dialed. Exit codes as the CLI's: 0 queued, 2 invalid input.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import dialq


def main() -> int:
    parser = argparse.ArgumentParser(description="Queue a dialq call with the Python API.")
    parser.add_argument("number", help='number to dial, e.g. "+14155550123"')
    parser.add_argument("--name", help="session name shown in Symbl")
    parser.add_argument("--idempotency-key", help="same key, same call: safe to resend")
    args = parser.parse_args()

    request: dict[str, Any] = {"phone_number": args.number}
    if args.name:
        request["session_name"] = args.name
    if args.idempotency_key:
        request["idempotency_key"] = args.idempotency_key
    try:
        handle = dialq.enqueue_call(request)
    except dialq.InvalidCallRequest as error:
        for broken in error.errors:  # one line per broken rule; never the value sent
            print(f"invalid: {broken}", file=sys.stderr)
        return 2
    # created is False when the idempotency key was already used for this same request.
    print(json.dumps({"id": handle.id, "status": handle.status, "created": handle.created}))
    print(f"follow it: dialq show {handle.id}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
