"""`dialq redial ID`: dial a failed or unknown call again, as an operator decides."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer
from rich.console import Console

from dialq.cli.ids import CALL_ID_HELP, database, require_call
from dialq.cli.output import Json, error_console, print_json
from dialq.config import Settings

out = Console()
err = error_console()


def _operator() -> str:
    """Who to record as asking: the login name, when the system knows one."""
    try:
        return f"{getpass.getuser()} (dialq redial)"
    except (KeyError, OSError):  # no login name (a container run as an unnamed uid)
        return "dialq redial"


def redial(
    call_id: Annotated[str, typer.Argument(help=CALL_ID_HELP)],
    as_json: Json = False,
) -> None:
    """Dial a failed or unknown call again. An unknown call may be live at Symbl already:
    check there first. Any other call is left as it is (exit 1)."""
    from dialq.api import redial_call  # imports Celery only when needed

    settings = Settings()
    db = database(settings)
    with db.sessions() as session:
        call_id = require_call(session, call_id, err).id
    db.dispose()
    result = redial_call(call_id, by=_operator(), settings=settings)
    if as_json:
        print_json(
            {"id": call_id, "status": result.status, "changed": result.changed,
             "message": result.message}
        )  # fmt: skip
    else:
        out.print(f"{call_id}: {result.message}", highlight=False)
    if not result.changed:
        raise typer.Exit(1)
