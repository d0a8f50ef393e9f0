"""Running `dialq` in the test's own process, as a shell would, for the CLI properties."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator

from hypothesis import strategies as st

from dialq.cli.entry import main
from dialq.config import Settings
from tests.property.strategies import nasty_text


def argv_text() -> st.SearchStrategy[str]:
    """What a shell can pass: anything but NUL (invalid UTF-8 arrives surrogate-escaped)."""
    return nasty_text().map(lambda text: text.replace("\x00", ""))


@contextlib.contextmanager
def environment(settings: Settings) -> Iterator[None]:
    """DIALQ_* as a shell would export them, for the CLI's own Settings()."""
    saved = dict(os.environ)
    os.environ.update(
        {
            "DIALQ_BROKER_URL": settings.broker_url,
            "DIALQ_DATABASE_URL": settings.database_url,
            "DIALQ_DATA_DIR": str(settings.data_dir),
            "DIALQ_SYMBL_APP_ID": settings.symbl_app_id,
            "DIALQ_SYMBL_APP_SECRET": settings.symbl_app_secret.get_secret_value(),
        }
    )
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_cli(args: list[str]) -> tuple[int, str, str]:
    """`dialq` with these arguments, in this process: exit code, stdout, stderr."""
    stdout, stderr = io.StringIO(), io.StringIO()
    saved = sys.argv
    sys.argv = ["dialq", *args]
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            main()
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    else:
        code = 0
    finally:
        sys.argv = saved
    return code, stdout.getvalue(), stderr.getvalue()
