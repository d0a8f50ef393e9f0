"""dialq: place transcribed phone calls through Symbl's Telephony API, as Celery jobs.

Exit codes: 0 success, 2 invalid input (the field is named on stderr), 1 otherwise.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Column

from dialq import routing
from dialq.calls.read import call_detail, call_summary
from dialq.calls.request import FieldError, InvalidCallRequest
from dialq.cli.ids import CALL_ID_HELP, EXIT_INVALID, require_call, short_id
from dialq.cli.insights import print_insights, transcript_command
from dialq.cli.output import compact_table
from dialq.cli.schedules import schedule_app
from dialq.config import Settings
from dialq.sandbox.cli import sandbox_command
from dialq.store import CallStatus, Database
from dialq.store import calls_repo as repo
from dialq.store.insights_repo import load_insights
from dialq.validation.durations import parse_duration

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")

out = Console()
err = Console(stderr=True)


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def _database(settings: Settings) -> Database:
    from dialq.api import producer_runtime  # imports Celery only when needed

    return producer_runtime(settings).db


@app.command()
def call(
    target: Annotated[str, typer.Argument(help="Phone number (E.164 or national) or sip: URI.")],
    name: Annotated[str | None, typer.Option(help="Session name shown in Symbl.")] = None,
    email: Annotated[list[str] | None, typer.Option(help="Summary e-mail recipient.")] = None,
    dtmf: Annotated[
        str | None, typer.Option(help="Keys to send once connected (0-9 * # ,).")
    ] = None,
    max_duration: Annotated[str | None, typer.Option(help="e.g. 30m, 1h30m.")] = None,
    language: Annotated[str | None, typer.Option(help="e.g. en-US.")] = None,
    timezone: Annotated[str | None, typer.Option(help="IANA zone, e.g. America/New_York.")] = None,
    account: Annotated[str, typer.Option(help="Symbl account name.")] = "default",
    priority: Annotated[int, typer.Option(help="0-9, higher dials sooner.")] = 5,
    callback_url: Annotated[str | None, typer.Option(help="Webhook for state changes.")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Same key, same call.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Enqueue a call."""
    from dialq.api import enqueue_call

    payload: dict[str, Any] = {
        "account": account,
        "priority": priority,
        "summary_emails": email or [],
    }
    payload["sip_uri" if target.lower().startswith(("sip:", "sips:")) else "phone_number"] = target
    optional = {
        "session_name": name,
        "dtmf": dtmf,
        "timezone": timezone,
        "callback_url": callback_url,
        "idempotency_key": idempotency_key,
    }
    payload.update({key: value for key, value in optional.items() if value is not None})
    if language:
        payload["languages"] = [language]
    if max_duration:
        try:
            payload["max_duration_s"] = parse_duration(max_duration)
        except ValueError as error:
            raise InvalidCallRequest([FieldError("max_duration_s", str(error))]) from None
    handle = enqueue_call(payload, settings=Settings())
    result = {"id": handle.id, "status": handle.status, "created": handle.created}
    if as_json:
        _print_json(result)
    else:
        verb = "queued" if handle.created else "already exists (same idempotency key)"
        out.print(f"call [bold]{handle.id}[/] {verb}: {handle.status}")


@app.command("calls")
def list_calls(
    status: Annotated[CallStatus | None, typer.Option(help="Only calls in this state.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List recent calls, newest first."""
    db = _database(Settings())
    with db.sessions() as session:
        rows = [
            call_summary(c)
            for c in repo.list_calls(session, status=status and status.value, limit=limit)
        ]
    if as_json:
        _print_json(rows)
        return
    # The short id (`dialq show` takes it) and the conversation id stay whole in 80 columns.
    table = compact_table(
        Column("id", no_wrap=True),
        Column("status", min_width=9),
        Column("target", min_width=12, max_width=14, no_wrap=True, overflow="ellipsis"),
        Column("conversation", min_width=16),
        Column("tries", min_width=5),
        Column("429s", min_width=4),
        Column("reason", overflow="fold"),
    )
    for row in rows:
        table.add_row(
            short_id(row["id"]),
            row["status"],
            _masked(row),
            row["conversation_id"] or "",
            str(row["start_attempts"]),
            str(row["capacity_waits"]),
            row["reason"] or "",
        )
    out.print(table)


def _masked(row: dict[str, Any]) -> str:
    from dialq.calls.request import mask_phone

    return mask_phone(row["phone_number"]) if row["phone_number"] else str(row["sip_uri"] or "")


@app.command()
def show(
    call_id: Annotated[str, typer.Argument(help=CALL_ID_HELP)],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show a call, its HTTP attempts, its state changes as a timeline, and its insights."""
    db = _database(Settings())
    with db.sessions() as session:
        found = require_call(session, call_id, err)
        detail = call_detail(found)
        detail["insights"] = load_insights(session, found.id)
    if as_json:
        _print_json(detail)
        return
    _print_detail(detail)
    print_insights(out, detail["insights"])


def _print_detail(detail: dict[str, Any]) -> None:
    out.print(f"[bold]{detail['id']}[/]  {detail['status']}  {detail['reason'] or ''}")
    for key in ("phone_number", "sip_uri", "conversation_id", "connection_id", "event_url"):
        if detail[key]:
            out.print(f"  {key}: {detail[key]}")
    if detail["ended_at"]:
        lasted = f", {detail['duration_s']} s live" if detail["duration_s"] is not None else ""
        out.print(f"  ended: {detail['ended_at']}{lasted}")
    if scheduled := detail.get("schedule"):
        out.print(f"  schedule: {scheduled['name']}, occurrence {scheduled['occurrence_at']}")
    timeline = compact_table("#", Column("at", no_wrap=True), "state", "detail", title="timeline")
    for event in detail["events"]:
        timeline.add_row(str(event["seq"]), event["at"], event["to"], event["detail"] or "")
    out.print(timeline)
    attempts = compact_table(
        "operation", Column("at", no_wrap=True), "status", "ms", "error", title="HTTP attempts"
    )
    for attempt in detail["attempts"]:
        attempts.add_row(
            attempt["operation"],
            attempt["started_at"],
            str(attempt["status_code"] or "-"),
            str(attempt["latency_ms"]),
            attempt["error"] or "",
        )
    out.print(attempts)


@app.command()
def cancel(
    call_id: Annotated[str, typer.Argument(help=CALL_ID_HELP)],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Cancel a call: never dialed if queued, stopped if live, untouched if finished."""
    from dialq.api import cancel_call  # imports Celery only when needed

    settings = Settings()
    db = _database(settings)
    with db.sessions() as session:
        call_id = require_call(session, call_id, err).id
    db.dispose()
    result = cancel_call(call_id, settings=settings)
    if as_json:
        _print_json(
            {
                "id": call_id,
                "status": result.status,
                "changed": result.changed,
                "message": result.message,
            }
        )
    else:
        out.print(f"{call_id}: {result.message}")
    if result.status == "missing":
        raise typer.Exit(1)


@app.command()
def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds per network check.")] = 3.0,
    ping_timeout: Annotated[float, typer.Option(min=0.1, help="Seconds for worker pings.")] = 1.0,
) -> None:
    """Check the broker, database, Symbl credentials, workers and queues (exit 1 on any FAIL)."""
    from dialq.ops import doctor as checks

    found, elapsed_s = checks.timed(Settings(), timeout_s=timeout, ping_timeout_s=ping_timeout)
    if as_json:
        _print_json(checks.as_json(found, elapsed_s))
    else:
        table = compact_table("check", "status", "details")
        for check in found:
            colour = "green" if check.ok else "red"
            table.add_row(check.name, f"[{colour}]{check.status}[/]", check.detail)
        out.print(table)
    if not all(check.ok for check in found):
        raise typer.Exit(1)


@app.command()
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
        _print_json(rows)
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


@db_app.command("upgrade")
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


@app.command(context_settings=PASS_THROUGH)
def worker(ctx: typer.Context) -> None:
    """Run a worker on every dialq queue (extra arguments go to `celery worker`)."""
    _exec_celery("worker", "-Q", ",".join(routing.ALL_QUEUES), "--loglevel", "INFO", *ctx.args)


@app.command(context_settings=PASS_THROUGH)
def beat(ctx: typer.Context) -> None:
    """Run Celery beat (it only ticks idempotent dispatchers)."""
    _exec_celery("beat", "--loglevel", "INFO", *ctx.args)


@app.command(context_settings=PASS_THROUGH)
def flower(ctx: typer.Context) -> None:
    """Run Flower, the Celery monitor."""
    _exec_celery("flower", *ctx.args)


@app.command()
def demo(
    calls: Annotated[int, typer.Option(min=1, max=200, help="How many calls to place.")] = 12,
    limit: Annotated[int, typer.Option(min=1, help="The sandbox's concurrent-call limit.")] = 3,
) -> None:
    """Start a private Redis, the sandbox, a worker and beat; place calls; watch them live."""
    from dialq.ops.demo import run_demo

    raise typer.Exit(run_demo(calls=calls, limit=limit))


# Registered here so `dialq --help` lists calls first, then schedules, then the rest.
app.command("transcript")(transcript_command)
app.add_typer(schedule_app, name="schedule")
app.add_typer(db_app, name="db")
app.command("sandbox", help="Run the local Symbl API sandbox.")(sandbox_command)


def main() -> None:
    try:
        # Without standalone mode Click hands back the code of a `typer.Exit` instead of exiting.
        code = app(standalone_mode=False)
    except InvalidCallRequest as error:
        err.print(f"invalid input: {error}", highlight=False)
        sys.exit(EXIT_INVALID)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        sys.exit(1)
    except Exception as error:  # click usage errors carry their own exit code (2)
        exit_code = getattr(error, "exit_code", None)
        if exit_code is not None and hasattr(error, "show"):
            error.show()
            sys.exit(exit_code)
        err.print(f"error: {type(error).__name__}: {error}", highlight=False)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
