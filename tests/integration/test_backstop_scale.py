"""The watchdog's capacity backstop costs a fixed number of database questions per tick, however
many accounts have calls in play, and walks their lines in turn (all at once after Redis lost
its data). Real Redis, SQLite and PostgreSQL; no workers: the tick is called in-process."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import event, insert

from dialq.api import producer_runtime
from dialq.calls import watchdog
from dialq.calls.states import CallStatus
from dialq.capacity import Verdict, waiting_score
from dialq.runtime import Runtime
from dialq.store import Call
from tests.call_rows import call_row
from tests.stack import APP_ID, APP_SECRET, Stack


def accounts_in_play(stack: Stack, count: int, prefix: str = "acct") -> Runtime:
    """`count` accounts of limit 1, each with a live call holding its permit and a waiting
    call the Redis index lost (in the database, not in line)."""
    stack.env["DIALQ_ACCOUNTS"] = json.dumps(
        {
            f"{prefix}{n:03}": {
                "app_id": APP_ID,
                "app_secret": APP_SECRET,
                "max_concurrent_calls": 1,
            }
            for n in range(count)
        }
    )
    runtime = producer_runtime(stack.settings)
    ctx = runtime.service.ctx
    now = ctx.now()
    with runtime.db.transaction() as session:
        for n in range(count):
            account = f"{prefix}{n:03}"
            live = f"live-{account}"
            grant = ctx.capacity.acquire(account, live, score=waiting_score(5, 0), lease_s=600)
            assert grant.verdict is Verdict.GRANTED
            connected = {"status": CallStatus.CONNECTED.value, "account": account}
            waiting = {"status": CallStatus.WAITING.value, "account": account}
            session.execute(insert(Call).values(call_row(live, now, **connected)))
            later = now + timedelta(seconds=1)
            session.execute(insert(Call).values(call_row(f"wait-{account}", later, **waiting)))
    ctx.capacity.index_intact()  # the marker of an intact index is set (as by any earlier tick)
    return runtime


def one_tick(runtime: Runtime) -> tuple[dict[str, int], int]:
    """The backstop's report and how many SQL statements it sent."""
    statements: list[str] = []

    def record(*_: Any) -> None:
        statements.append("")

    event.listen(runtime.db.engine, "before_cursor_execute", record)
    try:
        report = watchdog.capacity_backstop(runtime.service.ctx)
    finally:
        event.remove(runtime.db.engine, "before_cursor_execute", record)
    return report, len(statements)


def test_a_tick_asks_the_database_as_much_for_40_accounts_as_for_20(stack: Stack) -> None:
    # given 20 accounts in play, then 40 (each a live call and a waiter the index lost)
    few = accounts_in_play(stack, 20)
    _, statements_for_20 = one_tick(few)
    many = accounts_in_play(stack, 40, prefix="more")
    # when one tick of the backstop runs for each
    report, statements_for_40 = one_tick(many)
    # then both asked the same number of questions, under one per account in play
    print(f"SQL statements per tick: 20 accounts {statements_for_20}, 40: {statements_for_40}")
    assert statements_for_40 == statements_for_20
    assert statements_for_40 < 40
    # and no live call's permit was freed
    assert report["permits_freed"] == 0


def test_lost_waiters_are_put_back_a_few_lines_a_tick_and_all_at_once_after_redis_lost_its_data(
    stack: Stack,
) -> None:
    # given 25 accounts in play, each with a waiter the Redis index lost
    runtime = accounts_in_play(stack, 25)
    ctx = runtime.service.ctx
    # when ticks run while the rest of Redis is intact
    per_tick = [one_tick(runtime)[0]["waiters_reindexed"] for _ in range(3)]
    # then ten lines are walked a tick, in turn, until every waiter is back in line
    assert per_tick == [10, 10, 5]
    assert all(ctx.capacity.head_of_line(f"acct{n:03}") == f"wait-acct{n:03}" for n in range(25))
    # when Redis then loses everything (a restart without AOF) and the waiters are lost again
    ctx.capacity.redis.flushall()
    report, _ = one_tick(runtime)
    # then the next tick walks every line at once
    assert report["waiters_reindexed"] == 25
