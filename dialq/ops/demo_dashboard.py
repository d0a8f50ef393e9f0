"""The demo's dashboard: `dialq api` beside the demo's worker and beat, and a key to sign in.

The key is made for the demo's throwaway database and printed once, as `dialq apikey create`
prints one: the database and the key are gone when the demo ends.
"""

from __future__ import annotations

import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import requests
from rich.console import Console

from dialq.config import DEFAULT_ACCOUNT, Settings
from dialq.http.keys import ADMIN, key_digest, new_key, shown_part
from dialq.store import Database, apikeys_repo
from dialq.store.tables import ApiKey

# Generous: on a busy machine importing the API alone can take many seconds.
START_TIMEOUT_S: Final = 120.0


def api_command(port: int) -> list[str]:
    return [sys.executable, "-m", "dialq.cli", "api", "--port", str(port)]


def demo_key(settings: Settings) -> str:
    """An admin key for the demo's account, stored as `dialq apikey create` stores one."""
    key = new_key()
    db = Database(settings.database_url_resolved)
    try:
        with db.transaction() as session:
            apikeys_repo.add_key(
                session,
                ApiKey(
                    id=str(uuid.uuid4()),
                    prefix=shown_part(key),
                    key_sha256=key_digest(key),
                    accounts=[DEFAULT_ACCOUNT],
                    scopes=[ADMIN],
                    name="demo",
                    created_at=datetime.now(UTC),
                ),
            )
    finally:
        db.dispose()
    return key


def wait_until_up(url: str, timeout_s: float = START_TIMEOUT_S) -> bool:
    """Whether `url`/healthz answered within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.2)
    return False


def announce(url: str, settings: Settings, workdir: Path, console: Console) -> str:
    """Print the dashboard's URL and a key to sign in with, once it answers; its URL."""
    if not wait_until_up(url):
        console.print(f"[yellow]the dashboard did not start[/] (see {workdir / 'api.log'})")
        return f"{url}/dashboard"
    console.print(
        f"dashboard: [bold]{url}/dashboard[/] (sign in with the demo's admin key "
        f"{demo_key(settings)}; it lives as long as the demo)",
        highlight=False,
        soft_wrap=True,
    )
    return f"{url}/dashboard"


def wait_for_ctrl_c() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
