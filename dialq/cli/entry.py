"""dialq: place transcribed phone calls through Symbl's Telephony API, as Celery jobs.

Exit codes: 0 success, 2 invalid input (the field is named on stderr), 1 otherwise.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from dialq.calls.request import InvalidCallRequest
from dialq.cli import calls, ops
from dialq.cli.api_server import api_command
from dialq.cli.apikeys import apikey_app
from dialq.cli.ids import EXIT_INVALID
from dialq.cli.insights import transcript_command
from dialq.cli.output import error_console
from dialq.cli.redial import redial
from dialq.cli.schedules import schedule_app
from dialq.cli.settings_view import config_command
from dialq.sandbox.cli import sandbox_command

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
err = error_console()


def _print_version(asked: bool) -> None:
    if asked:
        try:
            typer.echo(f"dialq {version('dialq')}")
        except PackageNotFoundError:  # run from a source tree that was never installed
            typer.echo("dialq (not installed)")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            metavar="",
            is_eager=True,
            callback=_print_version,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """dialq: place transcribed phone calls through Symbl's Telephony API, as Celery jobs."""


# Registered in this order so `dialq --help` lists calls first, then schedules, then the rest.
app.command()(calls.call)
app.command("calls")(calls.list_calls)
app.command()(calls.show)
app.command()(calls.cancel)
app.command()(redial)
app.command()(ops.doctor)
app.command("config")(config_command)
app.command()(ops.capacity)
app.command()(ops.poison)
db_app.command("upgrade")(ops.db_upgrade)
app.command(context_settings=ops.EXTRA_ARGS)(ops.worker)
app.command(context_settings=ops.EXTRA_ARGS)(ops.beat)
app.command(context_settings=ops.PASS_THROUGH)(ops.flower)
app.command()(ops.demo)
app.command("transcript")(transcript_command)
app.add_typer(schedule_app, name="schedule")
app.add_typer(db_app, name="db")
app.command("sandbox", help="Run the local Symbl API sandbox.")(sandbox_command)
app.command("api")(api_command)
app.add_typer(apikey_app, name="apikey")


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
