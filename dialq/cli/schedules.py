"""`dialq schedule ...`: planned and recurring calls from the command line.

Invalid input exits 2 with the field named on stderr, and stores nothing.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Column

from dialq.cli.calls import UNSIGNED_CALLBACK, split_emails
from dialq.cli.ids import short_id
from dialq.cli.output import Fit, Json, compact_table, error_console, fitted_table, print_json
from dialq.config import Settings
from dialq.schedules.api import ScheduleService, UnknownSchedule, service_for
from dialq.schedules.file import SOURCE as FILE_SOURCE
from dialq.schedules.file import sync_file
from dialq.schedules.rules import local_iso, to_instant, utc_iso
from dialq.schedules.spec import NAME_PATTERN, InvalidSchedule, rule_of
from dialq.store import schedules_repo as repo
from dialq.store.schedule_tables import Schedule
from dialq.validation.durations import format_duration, parse_duration
from dialq.validation.errors import FieldError

schedule_app = typer.Typer(no_args_is_help=True, help="Planned and recurring calls.")
out = Console()
err = error_console()

# Each occurrence places a call: an interval shorter than this from the command line is a typo
# (1s for 1m) far more often than a plan. The Python API and the file take any interval.
MIN_CLI_EVERY_S = 60


def _service() -> ScheduleService:
    return service_for(Settings())


def _or_exit(error: UnknownSchedule) -> typer.Exit:
    err.print(str(error), markup=False)
    return typer.Exit(1)


@schedule_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Unique schedule name; adding it again updates it.")],
    target: Annotated[str, typer.Argument(help="Phone number (E.164 or national) or sip: URI.")],
    cron: Annotated[str | None, typer.Option(help="5-field cron, e.g. '0 9 * * 1-5'.")] = None,
    every: Annotated[str | None, typer.Option(help="Fixed interval, e.g. 15m, 1h30m.")] = None,
    at: Annotated[str | None, typer.Option(help="A single time, e.g. 2030-01-31T14:30.")] = None,
    tz: Annotated[
        str | None,
        typer.Option(
            "--tz",
            "--timezone",
            help="IANA zone the times are read in. Default: UTC, or the zone it already has.",
        ),
    ] = None,
    start: Annotated[str | None, typer.Option(help="First day or time (inclusive).")] = None,
    end: Annotated[
        str | None, typer.Option(help="Last day (inclusive) or time (exclusive).")
    ] = None,
    count: Annotated[int | None, typer.Option(help="Stop after this many occurrences.")] = None,
    misfire_grace: Annotated[
        str | None, typer.Option(help="Skip an occurrence this late, e.g. 5m.")
    ] = None,
    overlap: Annotated[str, typer.Option(help="skip or allow a live previous call.")] = "skip",
    paused: Annotated[bool, typer.Option(help="Store it paused.")] = False,
    session_name: Annotated[
        str | None, typer.Option("--session-name", "--name", help="Symbl session name.")
    ] = None,
    email: Annotated[
        list[str] | None,
        typer.Option(help="Summary e-mail recipient; repeat it or separate with commas."),
    ] = None,
    dtmf: Annotated[str | None, typer.Option(help="Keys to send once connected.")] = None,
    max_duration: Annotated[str | None, typer.Option(help="e.g. 30m, 1h30m.")] = None,
    language: Annotated[str | None, typer.Option(help="e.g. en-US.")] = None,
    call_timezone: Annotated[
        str | None, typer.Option(help="The call's own time zone (`dialq call --timezone`).")
    ] = None,
    account: Annotated[str, typer.Option(help="Symbl account name.")] = "default",
    priority: Annotated[int, typer.Option(help="0-9, higher dials sooner.")] = 5,
    callback_url: Annotated[str | None, typer.Option(help="Webhook for state changes.")] = None,
    as_json: Json = False,
) -> None:
    """Add or update a schedule (by name); one declared in the schedules file is left to it."""
    service = _service()
    existing = _existing(service, name)
    if existing is not None and existing.source == FILE_SOURCE:
        rule = "is declared in the schedules file (DIALQ_SCHEDULES_FILE): change it there"
        raise InvalidSchedule([FieldError("name", rule)])
    if every is not None:
        _check_cli_every(every)
    if tz is None:
        tz = existing.timezone if existing is not None else "UTC"
    call: dict[str, Any] = {"account": account, "priority": priority}
    call["sip_uri" if target.lower().startswith(("sip:", "sips:")) else "phone_number"] = target
    extras: dict[str, object] = {"session_name": session_name, "dtmf": dtmf}
    extras |= {"timezone": call_timezone, "callback_url": callback_url}
    extras |= {"summary_emails": split_emails(email) or None}
    extras |= {"languages": [language] if language else None}
    call.update({key: value for key, value in extras.items() if value is not None})
    spec: dict[str, Any] = {"name": name, "call": call, "timezone": tz, "overlap": overlap}
    when = {"cron": cron, "every": every, "at": at, "start": start, "end": end, "count": count}
    spec.update({key: value for key, value in when.items() if value is not None})
    if misfire_grace is not None:
        spec["misfire_grace"] = misfire_grace
    if max_duration is not None:
        call["max_duration_s"] = _duration_or_invalid(max_duration)
    spec["enabled"] = not paused
    saved = service.upsert(spec, source="cli")
    result = {"id": saved.id, "name": saved.name, "created": saved.created}
    result["next_due_at"] = utc_iso(saved.next_due_at) if saved.next_due_at else None
    if as_json:
        print_json(result)
    else:
        verb = "added" if saved.created else "updated"
        following = local_iso(saved.next_due_at, tz) if saved.next_due_at else "none"
        out.print(f"schedule [bold]{name}[/] {verb} ({tz}); next: {following}", soft_wrap=True)
    if callback_url and not service.settings.webhook_secret.get_secret_value():
        err.print(UNSIGNED_CALLBACK)


def _existing(service: ScheduleService, name: str) -> Schedule | None:
    if not re.fullmatch(NAME_PATTERN, name) or len(name) > 100:
        return None  # not a name any schedule can have: the validation below says why
    try:
        return service.get(name)
    except UnknownSchedule:
        return None


def _check_cli_every(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except ValueError:
        return  # the schedule's own check names the accepted forms
    if seconds < MIN_CLI_EVERY_S:
        rule = f"must be at least {MIN_CLI_EVERY_S}s here: each occurrence places a call"
        raise InvalidSchedule([FieldError("every", rule)])


def _duration_or_invalid(text: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise InvalidSchedule([FieldError("call.max_duration_s", str(error))]) from None


def schedule_view(row: Schedule) -> dict[str, Any]:
    if row.cron:
        when = row.cron
    elif row.every_s:
        when = f"every {format_duration(row.every_s)}"
    else:
        when = f"at {local_iso(row.at, row.timezone) if row.at else '?'}"
    state = "paused" if not row.enabled else "finished" if row.next_due_at is None else "active"
    return {
        "name": row.name,
        "id": row.id,
        "when": when,
        "timezone": row.timezone,
        "state": state,
        "next": local_iso(row.next_due_at, row.timezone) if row.next_due_at else None,
        "overlap": row.overlap,
        "misfire_grace_s": row.misfire_grace_s,
        "source": row.source,
        "start_at": row.start_at.isoformat() if row.start_at else None,
        "end_at": row.end_at.isoformat() if row.end_at else None,
        "count": row.count,
        "call": row.template,
    }


@schedule_app.command("list")
def list_schedules(as_json: Json = False) -> None:
    """List every schedule with its next occurrence."""
    service = _service()
    with service.db.sessions() as session:
        rows = [schedule_view(row) for row in repo.list_schedules(session)]
    if as_json:
        print_json(rows)
        return
    cells = [
        [
            r["name"],
            "once" if r["when"].startswith("at ") else r["when"],  # its time is the next one
            r["timezone"],
            r["state"],
            r["next"] or "",
            r["overlap"],
            r["source"],
        ]
        for r in rows
    ]
    fitted_table(SCHEDULE_COLUMNS, cells, out.width).print(out)


# Times are local to each schedule's zone, with their offset, whole on one line; names and
# rules wrap; in a narrow terminal the overlap rule, the source, then the zone give way.
SCHEDULE_COLUMNS = (
    Fit("name", wraps=True, min_width=10),
    Fit("when", wraps=True, min_width=11),
    Fit("zone", drop=1),
    Fit("state"),
    Fit("next (local)"),
    Fit("overlap", drop=3),
    Fit("source", drop=2),
)


@schedule_app.command("show")
def show(
    name: str,
    recent: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    as_json: Json = False,
) -> None:
    """Show a schedule and what became of its recent occurrences."""
    service = _service()
    with service.db.sessions() as session:
        row = repo.find(session, name)
        if row is None:
            raise _or_exit(UnknownSchedule(f"no schedule named {name!r}"))
        view = schedule_view(row)
        view["occurrences"] = [
            {
                "occurrence_at": local_iso(o.occurrence_at, row.timezone),
                "utc": utc_iso(o.occurrence_at),
                "outcome": o.outcome,
                "call_id": o.call_id,
                "call_status": repo.call_status(session, o.call_id) if o.call_id else None,
                "detail": o.detail,
            }
            for o in repo.recent_occurrences(session, row.id, limit=recent)
        ]
    if as_json:
        print_json(view)
        return
    out.print(f"[bold]{view['name']}[/]  {view['when']} ({view['timezone']})  {view['state']}")
    out.print(f"  next: {view['next'] or 'none'}   overlap: {view['overlap']}")
    # Whole on one line: the time with its offset, the outcome and the short id `dialq show` takes.
    table = compact_table(
        Column("occurrence (local)", no_wrap=True),
        Column("outcome", no_wrap=True),
        Column("call", no_wrap=True),
        Column("call status", no_wrap=True),
        "detail",
        title="recent occurrences",
    )
    for o in view["occurrences"]:
        table.add_row(
            o["occurrence_at"],
            o["outcome"],
            short_id(o["call_id"]),
            o["call_status"] or "",
            o["detail"] or "",
        )
    out.print(table)


@schedule_app.command("pause")
def pause(name: str) -> None:
    """Pause a schedule: nothing is due until it is resumed."""
    try:
        _service().set_enabled(name, False)
    except UnknownSchedule as error:
        raise _or_exit(error) from None
    out.print(f"schedule {name} paused")


@schedule_app.command("resume")
def resume(name: str) -> None:
    """Resume a schedule from now on (occurrences missed while paused are not replayed)."""
    try:
        saved = _service().set_enabled(name, True)
    except UnknownSchedule as error:
        raise _or_exit(error) from None
    following = utc_iso(saved.next_due_at) if saved.next_due_at else "none"
    out.print(f"schedule {name} resumed; next: {following}")


@schedule_app.command("remove")
def remove(name: str) -> None:
    """Remove a schedule and its occurrence records (its calls are kept)."""
    try:
        _service().remove(name)
    except UnknownSchedule as error:
        raise _or_exit(error) from None
    out.print(f"schedule {name} removed")


@schedule_app.command("next")
def next_(
    name: str,
    count: Annotated[int, typer.Option(min=1, max=1000)] = 5,
    after: Annotated[str | None, typer.Option(help="ISO time; naive means the zone's.")] = None,
    as_json: Json = False,
) -> None:
    """Print the next occurrences in the schedule's local time and in UTC."""
    service = _service()
    try:
        row = service.get(name)
    except UnknownSchedule as error:
        raise _or_exit(error) from None
    since = _after(after, row.timezone)
    if not row.enabled:
        err.print(f"note: {name} is paused; these are the times it keeps once resumed")
    first = rule_of(row, row.created_at).window_start
    if since is not None and since < first:
        err.print(
            f"note: {name} starts at {local_iso(first, row.timezone)} (its start, or when it "
            "was stored); nothing comes before that"
        )
    instants = service.next_occurrences(name, count, since)
    rows = [{"local": local_iso(i, row.timezone), "utc": utc_iso(i)} for i in instants]
    if as_json:
        print_json(rows)
        return
    table = compact_table(
        Column(f"local ({row.timezone})", no_wrap=True), Column("UTC", no_wrap=True)
    )
    for r in rows:
        table.add_row(r["local"], r["utc"])
    out.print(table)


def _after(text: str | None, timezone: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        rule = "must be an ISO 8601 date-time, e.g. 2030-01-31T09:00"
        raise InvalidSchedule([FieldError("after", rule)]) from None
    return value if value.tzinfo else to_instant(value, ZoneInfo(timezone))


@schedule_app.command("load")
def load(
    path: Annotated[Path | None, typer.Argument(help="Default: DIALQ_SCHEDULES_FILE.")] = None,
) -> None:
    """Apply a schedules TOML file now (workers also apply it whenever it changes)."""
    settings = Settings()
    chosen = path or settings.schedules_file
    if chosen is None:
        raise InvalidSchedule([FieldError("path", "give a file or set DIALQ_SCHEDULES_FILE")])
    names = sync_file(chosen, service_for(settings))
    out.print(f"{len(names)} schedule(s) applied from {chosen}")
