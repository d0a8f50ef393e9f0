"""``dialq apikey``: make, list and revoke the HTTP API's keys. A key is printed once."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import typer
from rich.console import Console

from dialq.cli.ids import EXIT_INVALID, database, short_id
from dialq.cli.output import Json, compact_table, error_console, print_json
from dialq.clock import utcnow
from dialq.config import Settings
from dialq.http.keys import DEFAULT_SCOPES, key_digest, new_key, parse_scopes, shown_part
from dialq.store import apikeys_repo
from dialq.store.tables import ApiKey

apikey_app = typer.Typer(no_args_is_help=True, help="Keys of the HTTP API (`dialq api`).")
out = Console()
err = error_console()


def _invalid(message: str) -> typer.Exit:
    err.print(message, highlight=False, markup=False, soft_wrap=True)
    return typer.Exit(EXIT_INVALID)


def _row(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "accounts": list(key.accounts),
        "scopes": list(key.scopes),
        "created_at": key.created_at.isoformat(),
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


@apikey_app.command()
def create(
    account: Annotated[
        list[str], typer.Option(help="An account the key acts for; repeatable.", show_default=False)
    ],
    scope: Annotated[
        list[str] | None,
        typer.Option(
            help="calls:write, calls:read, schedules:write, schedules:read, admin; repeatable "
            "or comma-separated."
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Whose key, in words.")] = None,
    as_json: Json = False,
) -> None:
    """Make a key and print it, once: only its SHA-256 is kept."""
    settings = Settings()
    unknown = sorted(set(account) - set(settings.accounts))
    if unknown:
        known = ", ".join(sorted(settings.accounts))
        raise _invalid(f"account: {', '.join(unknown)} not configured (known: {known})")
    try:
        scopes = parse_scopes(scope or DEFAULT_SCOPES)
    except ValueError as error:
        raise _invalid(f"scope: {error}") from None
    key = new_key()
    row = ApiKey(
        id=str(uuid.uuid4()),
        name=name,
        prefix=shown_part(key),
        key_sha256=key_digest(key),
        accounts=sorted(set(account)),
        scopes=scopes,
        created_at=utcnow(),
    )
    with database(settings).transaction() as session:
        apikeys_repo.add_key(session, row)
    if as_json:
        print_json({**_row(row), "key": key})
        return
    err.print(
        f"key {short_id(row.id)} for {', '.join(row.accounts)} ({', '.join(scopes)}); "
        "shown once, store it now:",
        highlight=False,
        markup=False,
    )
    typer.echo(key)


@apikey_app.command("list")
def list_keys(as_json: Json = False) -> None:
    """Every key: id, name, its first characters, accounts, scopes, revoked or not."""
    with database(Settings()).sessions() as session:
        rows = [_row(key) for key in apikeys_repo.list_keys(session)]
    if as_json:
        print_json(rows)
        return
    table = compact_table("id", "name", "key", "accounts", "scopes", "created", "revoked")
    for row in rows:
        table.add_row(
            short_id(row["id"]),
            row["name"] or "",
            f"{row['prefix']}...",
            ",".join(row["accounts"]),
            ",".join(row["scopes"]),
            row["created_at"][:19],
            (row["revoked_at"] or "")[:19],
        )
    out.print(table)


@apikey_app.command()
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id, or the start `list` prints.")],
) -> None:
    """Revoke a key: every request with it is refused from now on."""
    with database(Settings()).transaction() as session:
        try:
            key = apikeys_repo.find_key(session, key_id)
        except apikeys_repo.AmbiguousKeyId:
            raise _invalid(f"key_id: {key_id!r} starts several keys' ids; give more") from None
        if key is None:
            err.print(f"no key {key_id}", highlight=False, markup=False)
            raise typer.Exit(1)
        changed = apikeys_repo.revoke(session, key.id, utcnow())
    out.print(f"key {short_id(key.id)} " + ("revoked" if changed else "was already revoked"))
