"""The operations commands: doctor, capacity, db upgrade, worker, beat, flower, demo."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console

from dialq import routing
from dialq.cli.output import compact_table, print_json
from dialq.config import Settings
from dialq.store import Database
from dialq.store import calls_repo as repo

out = Console()
err = Console(stderr=True)


def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds per network check.")] = 3.0,
    ping_timeout: Annotated[float, typer.Option(min=0.1, help="Seconds for worker pings.")] = 1.0,
) -> None:
    """Check the broker, database, Symbl credentials, workers and queues (exit 1 on any FAIL)."""
    from dialq.ops import doctor as checks

    found, elapsed_s = checks.timed(Settings(), timeout_s=timeout, ping_timeout_s=ping_timeout)
    if as_json:
        print_json(checks.as_json(found, elapsed_s))
    else:
        table = compact_table("check", "status", "details")
        for check in found:
            colour = "green" if check.ok else "red"
            table.add_row(check.name, f"[{colour}]{check.status}[/]", check.detail)
        out.print(table)
    if not all(check.ok for check in found):
        raise typer.Exit(1)


def capacity(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Per account: permits in use, waiting calls, learned limit, 429s in the last hour."""
    from dialq.api import producer_runtime  # imports Celery only when needed

    runtime = producer_runtime(Settings())
    with runtime.db.sessions() as session:
        waiting = dict(repo.count_by_account(session, status="waiting"))
    rows: list[dict[str, Any]] = []
    for account in runtime.settings.accounts:
        usage = runtime.capacity.usage(account)
        rows.append(
            {
                "account": account,
                "configured_limit": usage.configured_limit,
                "learned_limit": usage.learned_limit,
                "permits_in_use": usage.permits_in_use,
                "waiting_calls": waiting.get(account, 0),
                "cooldown_ms": usage.cooldown_ms,
                "http_429_last_hour": usage.http_429_last_hour,
            }
        )
    if as_json:
        print_json(rows)
        return
    table = compact_table("account", "in use", "limit (learned/configured)", "waiting", "429s (1h)")
    for row in rows:
        table.add_row(
            row["account"],
            str(row["permits_in_use"]),
            f"{row['learned_limit']}/{row['configured_limit']}",
            str(row["waiting_calls"]),
            str(row["http_429_last_hour"]),
        )
    out.print(table)


def poison(
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first.")] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Messages no task could run, set aside by the workers (task, reason; never the body)."""
    from dialq.api import producer_runtime  # imports Celery only when needed

    key = f"{routing.REDIS_PREFIX}poison"
    raw = producer_runtime(Settings()).redis.lrange(key, 0, limit - 1)
    records = [json.loads(item) for item in raw]
    if as_json:
        print_json(records)
        return
    table = compact_table("when (UTC)", "task", "kind", "reason")
    for record in records:
        when = datetime.fromtimestamp(record["at"], UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(when, record["task"] or "-", record["kind"], record["reason"])
    out.print(table)
    if not records:
        out.print("no message was set aside")


def db_upgrade() -> None:
    """Create or migrate the schema to the newest version."""
    settings = Settings()
    Database(settings.database_url_resolved).upgrade()
    out.print("database is up to date")


# Every argument, --help included, goes to Celery: it checks them, and its help is the one
# that lists them.
PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def _exec_celery(*args: str) -> None:
    # Replace this process: signals (SIGTERM from a supervisor) reach Celery directly.
    argv = [sys.executable, "-m", "celery", "-A", "dialq.worker", *args]
    os.execv(sys.executable, argv)  # noqa: S606  (argv is ours, no shell involved)


def worker(ctx: typer.Context) -> None:
    """Run a worker on every dialq queue (extra arguments go to `celery worker`)."""
    _exec_celery("worker", "-Q", ",".join(routing.ALL_QUEUES), "--loglevel", "INFO", *ctx.args)


def beat(ctx: typer.Context) -> None:
    """Run Celery beat (it only ticks idempotent dispatchers)."""
    _exec_celery("beat", "--loglevel", "INFO", *ctx.args)


def flower(ctx: typer.Context) -> None:
    """Run Flower, the Celery monitor."""
    _exec_celery("flower", *ctx.args)


def demo(
    calls: Annotated[int, typer.Option(min=1, max=200, help="How many calls to place.")] = 12,
    limit: Annotated[int, typer.Option(min=1, help="The sandbox's concurrent-call limit.")] = 3,
) -> None:
    """Start a private Redis, the sandbox, a worker and beat; place calls; watch them live."""
    from dialq.ops.demo import run_demo

    raise typer.Exit(run_demo(calls=calls, limit=limit))
