"""Twenty clients post one request with one Idempotency-Key at once, with a real worker
dialing through the sandbox: one call is made, and the sandbox is asked to start it once."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.integration.test_http_api import running_api
from tests.integration.test_http_api_dial import wait_for_status
from tests.stack import Stack

NUMBER = "+14155550123"


@pytest.mark.timeout(180)
def test_twenty_concurrent_posts_with_one_key_make_one_call_dialed_once(stack: Stack) -> None:
    # given a worker, `dialq api` and a key
    stack.start_worker()
    with running_api(stack.env, stack.workdir) as api:
        key = api.make_key("default")

        def post(_: int) -> requests.Response:
            return api.call(
                "POST", "/v1/calls", key, json={"phone_number": NUMBER},
                headers={"Idempotency-Key": "burst-dial-1"},
            )  # fmt: skip

        # when 20 clients post the same request with the same key at once
        with ThreadPoolExecutor(max_workers=20) as pool:
            answers = list(pool.map(post, range(20)))
        # then one was made (201), the others got it back (200), all naming one call
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [200] * 19 + [201], [a.text for a in answers]
        ids = {a.json()["id"] for a in answers}
        assert len(ids) == 1
        call_id = ids.pop()
        # and the worker dials it once: one start at the sandbox, none for any other call
        wait_for_status(api, key, call_id, {"connected"})
        time.sleep(2.0)  # a second dial message, if any, would have been handled by now
        starts = [r for r in stack.sandbox.control.requests() if r.get("operation") == "start"]
        assert [r.get("call_id") for r in starts] == [call_id]
        assert api.call_rows() == 1
