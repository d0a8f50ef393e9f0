"""`dialq demo`: a private Redis, SQLite, the sandbox, a worker and beat, placing real calls."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Column

from dialq import routing
from dialq.api import enqueue_call
from dialq.calls.read import call_summary
from dialq.calls.request import InvalidCallRequest, mask_phone
from dialq.cli.output import compact_table
from dialq.config import Settings
from dialq.ops import demo_dashboard
from dialq.ops.local_redis import PrivateRedis, free_port
from dialq.sandbox import SandboxConfig, start_sandbox
from dialq.store import Database, insights_repo
from dialq.store import calls_repo as repo

# Fictional-range North American numbers (555-01xx): valid in form, reach nobody.
DEMO_TARGETS = [f"+1 415 555 01{n:02d}" for n in range(10, 99)]
# Done: the call is over and its insights are in (or it never started).
SETTLED = {"completed", "failed", "canceled", "unknown"}
STYLE = {
    "queued": "white",
    "waiting": "yellow",
    "dialing": "cyan",
    "connected": "green",
    "stopping": "green",
    "completed": "bold green",
}
TIMEOUT_S = 180.0

console = Console()


@contextmanager
def _process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as sink:
        process = subprocess.Popen(args, env=env, stdout=sink, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _environment(
    redis_url: str, sandbox_url: str, workdir: Path, secret: str, limit: int
) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DIALQ_BROKER_URL": redis_url,
            "DIALQ_DATA_DIR": str(workdir),
            "DIALQ_DATABASE_URL": f"sqlite:///{workdir / 'dialq.db'}",
            "DIALQ_SYMBL_BASE_URL": sandbox_url,
            "DIALQ_SYMBL_APP_ID": "demo-app",
            "DIALQ_SYMBL_APP_SECRET": secret,
            "DIALQ_MAX_CONCURRENT_CALLS": str(limit),
            # Short waits so the demo shows a full account draining within a minute.
            "DIALQ_CAPACITY_RETRY_S": "2",
            "DIALQ_WATCH_INTERVAL_S": "0.5",
        }
    )
    return env


def run_demo(
    *, calls: int = 12, limit: int = 3, timeout_s: float = TIMEOUT_S, keep: bool = False
) -> int:
    """Place `calls` calls and watch them; 0 when all settled within `timeout_s`, else 1.
    With `keep`, the stack (and its dashboard) stays up after that until Ctrl-C.

    The working directory (database, worker and beat logs) is removed after a clean run and
    kept, with its path printed, after one that did not finish.
    """
    workdir = Path(tempfile.mkdtemp(prefix="dialq-demo-"))
    try:
        finished = _run(workdir, calls=calls, limit=limit, timeout_s=timeout_s, keep=keep)
    except BaseException:
        console.print(f"[red]the demo stopped early[/]; its logs and database are in {workdir}")
        raise
    if finished:
        shutil.rmtree(workdir, ignore_errors=True)
        return 0
    _explain_unfinished(workdir, timeout_s)
    return 1


def _explain_unfinished(workdir: Path, timeout_s: float) -> None:
    console.print(
        f"[bold red]timed out[/]: not every call settled within {timeout_s:g} s "
        "(more calls or a lower --limit take longer; raise --timeout).\n"
        f"Kept for a look: {workdir}\n"
        f"  worker log:  {workdir / 'worker.log'}\n"
        f"  calls:       DIALQ_DATABASE_URL=sqlite:///{workdir / 'dialq.db'} dialq calls\n"
        f"Remove it when done: rm -r {workdir}",
        highlight=False,
        soft_wrap=True,
    )


def _run(workdir: Path, *, calls: int, limit: int, timeout_s: float, keep: bool) -> bool:
    secret = secrets.token_urlsafe(24)
    with ExitStack() as stack:
        console.print(
            "[bold]dialq demo[/]: starting a private Redis, the Symbl sandbox, a worker and beat"
        )
        redis = PrivateRedis().start()
        stack.callback(redis.stop)
        sandbox = start_sandbox(
            SandboxConfig(
                app_id="demo-app",
                app_secret=secret,
                max_concurrent=limit,
                call_seconds=(4.0, 9.0),
                seed=7,
            ),
            host="127.0.0.1",
            port=0,
        )
        stack.callback(sandbox.stop)
        env = _environment(redis.url, sandbox.url, workdir, secret, limit)
        os.environ.update(env)  # this process produces calls with the same settings
        settings = Settings()
        Database(settings.database_url_resolved).upgrade()
        api_url = _start_dashboard(stack, env, workdir)
        celery = [sys.executable, "-m", "celery", "-A", "dialq.worker"]
        stack.enter_context(
            _process(
                [
                    *celery,
                    "worker",
                    "-Q",
                    ",".join(routing.ALL_QUEUES),
                    "-c",
                    "4",
                    "--loglevel",
                    "INFO",
                ],
                env,
                workdir / "worker.log",
            )
        )
        stack.enter_context(
            _process(
                [*celery, "beat", "-s", str(workdir / "beat-schedule"), "--loglevel", "INFO"],
                env,
                workdir / "beat.log",
            )
        )
        dashboard = demo_dashboard.announce(api_url, settings, workdir, console)
        console.print(
            f"sandbox at {sandbox.url} allows {limit} live calls; placing {calls} calls "
            "(dialq holds the others as 'waiting' and starts each the moment a slot frees)"
        )
        _show_rejection(settings)
        ids = [_enqueue(settings, index) for index in range(calls)]
        rows = _watch(settings, ids, sandbox, timeout_s)
        _report(rows, sandbox.control.requests())
        if keep:
            console.print(
                f"--keep: the stack stays up, dashboard at {dashboard}; Ctrl-C stops it",
                highlight=False,
                soft_wrap=True,
            )
            demo_dashboard.wait_for_ctrl_c()
        return all(_settled(row) for row in rows)
    return False


def _start_dashboard(stack: ExitStack, env: dict[str, str], workdir: Path) -> str:
    """`dialq api` for the demo's stack, started first: it takes a while to import."""
    port = free_port()
    stack.enter_context(_process(demo_dashboard.api_command(port), env, workdir / "api.log"))
    return f"http://127.0.0.1:{port}"


def _show_rejection(settings: Settings) -> None:
    try:
        enqueue_call(
            {"phone_number": "+44 20 7946 0958", "session_name": "London"}, settings=settings
        )
    except InvalidCallRequest as error:
        console.print(f"[dim]a non-NANP number is refused before anything is queued: {error}[/]")


def _enqueue(settings: Settings, index: int) -> str:
    request: dict[str, Any] = {
        "phone_number": DEMO_TARGETS[index % len(DEMO_TARGETS)],
        "session_name": f"Demo call {index + 1}",
        "idempotency_key": f"demo-{index}",
        "priority": 9 if index == 0 else 5,
    }
    if index % 4 == 1:
        request["dtmf"] = ",,123456#,,4321#"
    if index % 5 == 2:
        request = {
            "sip_uri": f"sip:room{index}@meet.example.com",
            "session_name": f"SIP room {index}",
            "idempotency_key": f"demo-{index}",
        }
    return enqueue_call(request, settings=settings).id


def _rows(settings: Settings, ids: list[str]) -> list[dict[str, Any]]:
    db = Database(settings.database_url_resolved)
    try:
        with db.sessions() as session:
            rows = []
            for call_id in ids:
                call = repo.get_call(session, call_id)
                if call is None:
                    continue
                row = call_summary(call)
                harvested = insights_repo.get(session, call_id)
                row["insights"] = harvested.status if harvested else ""
                rows.append(row)
            return rows
    finally:
        db.dispose()


def _settled(row: dict[str, Any]) -> bool:
    if row["status"] not in SETTLED:
        return False
    # A call that talked to someone is done once its insights are in (or given up).
    return not row["conversation_id"] or row["insights"] in {"ready", "unavailable"}


def _table(rows: list[dict[str, Any]], live_calls: int, limit: int) -> Group:
    # Kept whole on one line in an 80-column terminal: the masked target tells calls apart and the
    # conversation id is what a reader looks up in Symbl; the reason column gives way instead.
    table = compact_table(
        Column("#", min_width=2),
        Column("target", min_width=12, max_width=14, no_wrap=True, overflow="ellipsis"),
        Column("status", min_width=9),
        Column("tries", min_width=5),
        Column("429s", min_width=4),
        Column("conversation", min_width=16),
        Column("insights", min_width=8),
        Column("reason", max_width=40, no_wrap=True, overflow="ellipsis"),
    )
    for index, row in enumerate(rows, start=1):
        status = row["status"]
        target = mask_phone(row["phone_number"]) if row["phone_number"] else row["sip_uri"]
        table.add_row(
            str(index),
            target,
            f"[{STYLE.get(status, 'red')}]{status}[/]",
            str(row["start_attempts"]),
            str(row["capacity_waits"]),
            row["conversation_id"] or "",
            row["insights"],
            (row["reason"] or "")[:30],
        )
    counts = Counter(row["status"] for row in rows)
    line = "  ".join(f"{state}: {count}" for state, count in sorted(counts.items()))
    return Group(table, f"live calls at the sandbox: {live_calls}/{limit}    {line}")


def _watch(
    settings: Settings, ids: list[str], sandbox: Any, timeout_s: float
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    rows = _rows(settings, ids)
    limit = settings.max_concurrent_calls
    with Live(_table(rows, 0, limit), console=console, refresh_per_second=4) as live:
        while time.monotonic() < deadline:
            rows = _rows(settings, ids)
            live.update(_table(rows, sandbox.control.live_count(), limit))
            if all(_settled(row) for row in rows):
                break
            time.sleep(0.25)
    return rows


def _report(rows: list[dict[str, Any]], requests: list[dict[str, Any]]) -> None:
    starts = [r for r in requests if r.get("operation") == "start"]
    by_status = Counter(r.get("status") for r in starts)
    completed = sum(1 for row in rows if row["status"] == "completed")
    ready = sum(1 for row in rows if row["insights"] == "ready")
    console.print(
        f"\n[bold]{completed}/{len(rows)} calls completed, {ready} with transcript and insights[/]"
        f"; the sandbox saw {len(starts)} start "
        f"requests: {by_status.get(201, 0)} x 201, {by_status.get(429, 0)} x 429 "
        "(429s are capacity signals: the call waits, nothing is lost or dialed twice)."
    )
    per_call = Counter(r.get("call_id") for r in starts if r.get("status") == 201)
    doubled = [call_id for call_id, count in per_call.items() if count > 1]
    console.print(f"calls started twice: {len(doubled)}")
