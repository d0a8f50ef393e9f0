"""The operations commands: doctor, capacity, db upgrade, worker, beat, flower, demo."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from dialq import routing
from dialq.cli.output import Json, compact_table, error_console, print_json
from dialq.config import Settings
from dialq.ops.logs import configure_from
from dialq.ops.supervisor import (
    POOL_NAMES,
    POOLS,
    Child,
    Supervisor,
    celery_argv,
    worker_children,
)
from dialq.store import Database
from dialq.store import calls_repo as repo

out = Console()
err = error_console()


def doctor(
    as_json: Json = False,
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


def capacity(as_json: Json = False) -> None:
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
    as_json: Json = False,
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
    from dialq.config import mask_url
    from dialq.store.db import schema_levels

    url = Settings().database_url_resolved
    before, heads = schema_levels(url)
    Database(url).upgrade()
    outcome = upgrade_outcome(before, heads, mask_url(url))
    out.print(outcome, highlight=False, markup=False, soft_wrap=True)


def upgrade_outcome(before: set[str], heads: set[str], where: str) -> str:
    """What `dialq db upgrade` did, from the migration heads found before it ran."""
    if not before:
        return f"database created with the newest schema: {where}"
    if before == heads:
        return f"database already had the newest schema, nothing to do: {where}"
    reached = ", ".join(sorted(heads - before))
    return f"database upgraded to the newest schema (now at {reached}): {where}"


# flower: every argument but --help goes to Flower, which checks them (`-- --help` lists them).
PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}
# worker and beat have options of their own; what follows `--` goes to Celery.
EXTRA_ARGS = {"allow_extra_args": True, "ignore_unknown_options": False}


def _exec_celery(*args: str) -> None:
    # Replace this process: signals (SIGTERM from a supervisor) reach Celery directly.
    argv = [sys.executable, "-m", "celery", "-A", "dialq.worker", *args]
    os.execv(sys.executable, argv)  # noqa: S606  (argv is ours, no shell involved)


def worker(
    ctx: typer.Context,
    pools: Annotated[
        str,
        typer.Option(
            help="Which pools to run, comma-separated: dial, lifecycle, webhooks, insights"
        ),
    ] = ",".join(POOL_NAMES),
    dial_concurrency: Annotated[int, typer.Option(min=1, help="Threads placing calls")] = 8,
    lifecycle_concurrency: Annotated[
        int, typer.Option(min=1, help="Threads watching live calls and sweeping")
    ] = 4,
    webhooks_concurrency: Annotated[int, typer.Option(min=1, help="Threads sending webhooks")] = 4,
    insights_concurrency: Annotated[
        int, typer.Option(min=1, help="Threads harvesting transcripts and insights")
    ] = 4,
) -> None:
    """Run dialq's workers: one Celery worker per kind of work, each with its own threads, kept
    running (a worker that exits is restarted). Arguments after `--` go to every `celery worker`.
    Each pool serves /metrics on DIALQ_METRICS_PORT, +1, +2, +3 when that is set."""
    wanted = [name.strip() for name in pools.split(",") if name.strip()]
    unknown = sorted(set(wanted) - set(POOL_NAMES))
    if unknown or not wanted:
        err.print(f"--pools: choose from {', '.join(POOL_NAMES)} (got {pools!r})")
        raise typer.Exit(2)
    concurrency = {
        "dial": dial_concurrency,
        "lifecycle": lifecycle_concurrency,
        "webhooks": webhooks_concurrency,
        "insights": insights_concurrency,
    }
    chosen = [
        dataclasses.replace(pool, concurrency=concurrency[pool.name])
        for pool in POOLS
        if pool.name in wanted
    ]
    settings = Settings()
    configure_from(settings, "INFO")
    children = worker_children(chosen, ctx.args, settings.metrics_port)
    raise typer.Exit(Supervisor(children).run())


def beat(
    ctx: typer.Context,
    schedule: Annotated[
        Path | None,
        typer.Option(help="Beat's state file [default: DIALQ_DATA_DIR/celerybeat-schedule]"),
    ] = None,
) -> None:
    """Run Celery beat (it only ticks idempotent dispatchers), restarted if it exits. Arguments
    after `--` go to `celery beat`."""
    settings = Settings()
    configure_from(settings, "INFO")
    path = schedule or settings.data_dir / "celerybeat-schedule"
    path.parent.mkdir(parents=True, exist_ok=True)
    argv = celery_argv("beat", "--loglevel", "INFO", "--schedule", str(path), *ctx.args)
    raise typer.Exit(Supervisor([Child("beat", argv)]).run())


def flower(ctx: typer.Context) -> None:
    # Every argument goes to Flower; "--" lets Flower's own --help (and any option Celery
    # would otherwise read) reach it.
    _exec_celery("flower", "--", *ctx.args)


# Typer keeps the line breaks inside a help paragraph after the first: one line per paragraph.
flower.__doc__ = "\n\n".join(
    (
        "Run Flower, the Celery monitor, on dialq's app: `celery -A dialq.worker flower -- ARGS`.",
        "dialq sets the app only, so Flower reads the broker from DIALQ_BROKER_URL (environment"
        " or dialq.toml) and shows dialq's tasks with their payloads redacted. Every argument"
        " goes to Flower as it is, written --name=value: --port=5556, --address=127.0.0.1,"
        " --basic-auth=user:password, --read_only; `dialq flower -- --help` lists them all."
        " Flower also reads FLOWER_* variables (FLOWER_BASIC_AUTH=user:password).",
        "Run natively, nothing more is set: Flower listens on every interface on port 5555,"
        " asks for no login, and can shut workers down. docker-compose.yml adds --read_only,"
        " --purge_offline_workers=300 and basic auth from FLOWER_BASIC_AUTH.",
    )
)


def demo(
    calls: Annotated[int, typer.Option(min=1, max=200, help="How many calls to place.")] = 12,
    limit: Annotated[int, typer.Option(min=1, help="The sandbox's concurrent-call limit.")] = 3,
    timeout: Annotated[
        float, typer.Option(min=1, help="Seconds to wait for every call to settle.")
    ] = 180.0,
    keep: Annotated[
        bool, typer.Option("--keep", help="Leave the stack and its dashboard up until Ctrl-C.")
    ] = False,
) -> None:
    """Start a private Redis, the sandbox, a worker, beat and the dashboard; place calls; watch
    them live."""
    from dialq.ops.demo import run_demo

    raise typer.Exit(run_demo(calls=calls, limit=limit, timeout_s=timeout, keep=keep))
