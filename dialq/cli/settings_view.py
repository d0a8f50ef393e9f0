"""`dialq config`: the effective settings, where each came from, secrets masked."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from dialq.cli.output import Fit, Json, error_console, fitted_table, print_json
from dialq.config import Settings

TOML_FILE = Path("dialq.toml")  # read from the current directory, as Settings reads it
MASK = "***"

err = error_console()


def config_command(as_json: Json = False) -> None:
    """Print every setting's value and source (environment, dialq.toml or default)."""
    document = _toml()
    for key in sorted(unknown_keys(document)):
        err.print(f"warning: {TOML_FILE}: unknown key {key!r} ignored{_hint(key)}", markup=False)
    settings = Settings()
    rows = [
        {"name": name, "value": _shown(getattr(settings, name)), "source": _source(name, document)}
        for name in Settings.model_fields
    ]
    if as_json:
        print_json(rows)
        return
    from rich.console import Console

    out = Console()
    columns = (Fit("setting"), Fit("value", wraps=True, min_width=16), Fit("source"))
    cells = [[f"DIALQ_{r['name']}".upper(), str(r["value"]), str(r["source"])] for r in rows]
    fitted_table(columns, cells, out.width).print(out)


def unknown_keys(document: dict[str, Any]) -> set[str]:
    """Keys of dialq.toml that name no setting (they are ignored, so a typo goes unnoticed)."""
    return set(document) - set(Settings.model_fields)


def _hint(key: str) -> str:
    name = key.lower().removeprefix("dialq_")
    if name in Settings.model_fields:
        return f" (dialq.toml keys are lower case, without DIALQ_: {name} = ...)"
    return ""


def _toml() -> dict[str, Any]:
    try:
        return tomllib.loads(TOML_FILE.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}


def _source(name: str, document: dict[str, Any]) -> str:
    prefix = f"DIALQ_{name.upper()}"
    if any(key.upper() == prefix or key.upper().startswith(prefix + "__") for key in os.environ):
        return "environment"
    if name in document:
        return str(TOML_FILE)
    return "default"


def _shown(value: object) -> object:
    from dialq.config import mask_url

    if isinstance(value, SecretStr):
        return MASK if value.get_secret_value() else ""
    if isinstance(value, str) and "://" in value:
        return mask_url(value)
    if isinstance(value, dict):  # accounts: their secrets too
        return {key: _shown(item) for key, item in value.items()}
    if hasattr(value, "model_dump"):
        return {key: _shown(getattr(value, key)) for key in value.model_dump()}
    if isinstance(value, Path):
        return str(value)
    return value
