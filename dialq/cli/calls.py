"""The call commands: call, calls, show, cancel."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Column

from dialq.calls.read import call_detail
from dialq.calls.request import FieldError, InvalidCallRequest
from dialq.cli.ids import CALL_ID_HELP, database, require_call, short_id
from dialq.cli.insights import print_insights
from dialq.cli.output import Fit, Json, compact_table, error_console, fitted_table, print_json
from dialq.cli.when import delayed_until
from dialq.cli.when import since as since_when
from dialq.config import Settings
from dialq.store import CallStatus
from dialq.store.insights_repo import load_insights
from dialq.validation.durations import parse_duration

out = Console()
err = error_console()


def call(
    target: Annotated[
        str, typer.Argument(metavar="TARGET", help="Phone number (E.164 or national) or sip: URI.")
    ],
    name: Annotated[str | None, typer.Option(help="Session name shown in Symbl.")] = None,
    email: Annotated[
        list[str] | None,
        typer.Option(help="Summary e-mail recipient; repeat it or separate with commas."),
    ] = None,
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
    at: Annotated[
        str | None, typer.Option(help="Dial no sooner: ISO time (no offset: local time).")
    ] = None,
    in_: Annotated[
        str | None, typer.Option("--in", help="Dial no sooner than this from now: 10m, 2h.")
    ] = None,
    as_json: Json = False,
) -> None:
    """Enqueue a call (now, or --at/--in later)."""
    from dialq.api import enqueue_call

    payload: dict[str, Any] = {
        "account": account,
        "priority": priority,
        "summary_emails": split_emails(email),
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
    not_before = delayed_until(at, in_, datetime.now(UTC))
    if not_before is not None:
        payload["not_before"] = not_before.isoformat()
    if max_duration:
        try:
            payload["max_duration_s"] = parse_duration(max_duration)
        except ValueError as error:
            raise InvalidCallRequest([FieldError("max_duration_s", str(error))]) from None
    settings = Settings()
    handle = enqueue_call(payload, settings=settings)
    result = {"id": handle.id, "status": handle.status, "created": handle.created}
    if as_json:
        print_json(result)
        return
    if handle.created:
        out.print(f"call [bold]{handle.id}[/] {handle.status}")
    else:
        out.print(
            f"call [bold]{handle.id}[/] already exists (same idempotency key): {handle.status}"
        )
    if callback_url and not settings.webhook_secret.get_secret_value():
        err.print(UNSIGNED_CALLBACK)


# Said at intake, since the worker would only log it: events are sent signed or not at all.
UNSIGNED_CALLBACK = (
    "warning: no webhook is sent to --callback-url while DIALQ_WEBHOOK_SECRET is unset "
    "(events are only sent signed); set it where the workers run"
)


def split_emails(given: list[str] | None) -> list[str]:
    """`--email a@x.com --email b@x.com` and `--email a@x.com,b@x.com` alike."""
    return [part.strip() for item in given or [] for part in item.split(",") if part.strip()]


def list_calls(
    status: Annotated[CallStatus | None, typer.Option(help="Only calls in this state.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    since: Annotated[
        str | None, typer.Option(help="Created since: a duration ago (2h, 1d) or an ISO time.")
    ] = None,
    account: Annotated[
        list[str] | None, typer.Option(help="Only this account's calls; repeat for several.")
    ] = None,
    schedule: Annotated[str | None, typer.Option(help="Only calls this schedule placed.")] = None,
    search: Annotated[
        str | None, typer.Option(help="A part of the session name, in any case.")
    ] = None,
    as_json: Json = False,
) -> None:
    """List recent calls, newest first."""
    from dialq.api import list_calls as calls_where  # imports Celery only when needed

    rows = calls_where(
        status=status and status.value,
        accounts=account or None,
        schedule=schedule,
        search=search,
        since=since_when(since, datetime.now(UTC)),
        limit=limit,
        settings=Settings(),
    )
    if as_json:
        print_json(rows)
        return
    cells = [
        [
            short_id(row["id"]),
            row["status"],
            _masked(row),
            row["conversation_id"] or "",
            str(row["start_attempts"]),
            str(row["capacity_waits"]),
            row["reason"] or "",
        ]
        for row in rows
    ]
    fitted_table(CALL_COLUMNS, cells, out.width).print(out)


# The short id (`dialq show` takes it), state and target stay whole; the reason wraps; in a
# narrow terminal the counters and the conversation id give way, and the table says so.
CALL_COLUMNS = (
    Fit("id"),
    Fit("status"),
    Fit("target"),
    Fit("conversation", drop=3),
    Fit("tries", drop=2),
    Fit("429s", drop=1),
    Fit("reason", wraps=True, min_width=12),
)


def _masked(row: dict[str, Any]) -> str:
    from dialq.calls.request import mask_phone

    return mask_phone(row["phone_number"]) if row["phone_number"] else str(row["sip_uri"] or "")


def show(
    call_id: Annotated[str, typer.Argument(help=CALL_ID_HELP)],
    as_json: Json = False,
) -> None:
    """Show a call, its HTTP attempts, its state changes as a timeline, and its insights."""
    db = database(Settings())
    with db.sessions() as session:
        found = require_call(session, call_id, err)
        detail = call_detail(found)
        detail["insights"] = load_insights(session, found.id)
    if as_json:
        print_json(detail)
        return
    _print_detail(detail)
    print_insights(out, detail["insights"], detail)


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


def cancel(
    call_id: Annotated[str, typer.Argument(help=CALL_ID_HELP)],
    as_json: Json = False,
) -> None:
    """Cancel a call: never dialed if queued, stopped if live, untouched if finished."""
    from dialq.api import cancel_call  # imports Celery only when needed

    settings = Settings()
    db = database(settings)
    with db.sessions() as session:
        call_id = require_call(session, call_id, err).id
    db.dispose()
    result = cancel_call(call_id, settings=settings)
    if as_json:
        print_json(
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
