"""``dialq api``: serve the HTTP API in the foreground (FastAPI on uvicorn)."""

from __future__ import annotations

from typing import Annotated

import typer

from dialq.config import Settings
from dialq.ops.logs import configure_from


def api_command(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
    access_log: Annotated[
        bool,
        typer.Option(
            help="A line per request (uvicorn's). Placed calls are logged either way, with "
            "their key; turn it off where a proxy in front already logs requests."
        ),
    ] = True,
) -> None:
    """Serve the HTTP API: place, list, read and cancel calls with an API key
    (`dialq apikey create`). OpenAPI at /openapi.json, docs at /docs."""
    import uvicorn

    from dialq.http.app import create_app

    settings = Settings()
    configure_from(settings, "INFO")
    # log_config=None: uvicorn's lines go through dialq's redacting handler like every other.
    uvicorn.run(create_app(settings), host=host, port=port, log_config=None, access_log=access_log)
