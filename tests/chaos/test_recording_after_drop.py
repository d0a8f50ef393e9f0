"""A start the API accepted is recorded even when the database connection drops while recording.

Found by the fault suite: with PostgreSQL sessions terminated, calls whose start had answered
201 were left `dialing`, then made `unknown` by the watchdog, though dialq had their ids; nobody
watched, stopped or harvested them.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from sqlalchemy import event

from dialq.api import enqueue_call, producer_runtime
from tests.chaos.harness import ChaosStack
from tests.servers import PG_ADMIN_URL


@pytest.mark.timeout(120)
def test_a_connection_dropped_while_recording_a_201_still_leaves_the_call_connected(
    chaos: ChaosStack,
) -> None:
    # given a queued call and a database session that is terminated (for real, by the server)
    # just as the call's connected state is being written
    settings = chaos.stack.settings
    handle = enqueue_call({"phone_number": "+1 415 555 0110"}, settings=settings)
    runtime = producer_runtime(settings)
    dropped: list[int] = []

    def drop_once(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        # (the UPDATE may come after a WITH that inserts the start's HTTP attempts)
        if dropped or "UPDATE calls" not in statement or "connection_id" not in statement:
            return
        pid = conn.connection.dbapi_connection.info.backend_pid
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        dropped.append(pid)

    event.listen(runtime.db.engine, "before_cursor_execute", drop_once)
    try:
        # when the call is dialed
        status = runtime.service.dial(handle.id)
    finally:
        event.remove(runtime.db.engine, "before_cursor_execute", drop_once)
    # then the drop happened, and the call is connected with the API's ids after one start
    assert dropped
    assert status == "connected"
    call = chaos.stack.call(handle.id)
    assert call["status"] == "connected"
    starts = chaos.stack.starts_for(handle.id)
    assert [s["status"] for s in starts] == [201]
    assert call["connection_id"] == starts[0]["connectionId"]
