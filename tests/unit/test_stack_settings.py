"""The test stack's `settings` borrow the process environment to build Settings; from many
threads at once (producers in the fault tests) they must never leave a DIALQ_* variable behind,
where a later test's Settings() would read it (an app id and a sandbox URL leaked this way)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

from tests.stack import Stack


def test_settings_read_from_many_threads_leave_the_process_environment_as_it_was(
    tmp_path: Path,
) -> None:
    # given stacks with different DIALQ_* variables, and a process environment without them
    stacks = [
        Stack(
            env={
                "DIALQ_SYMBL_APP_ID": f"app-{n}",
                "DIALQ_SYMBL_APP_SECRET": f"secret-{n}",
                "DIALQ_DATA_DIR": str(tmp_path),
            },
            sandbox=cast(Any, None),
            workdir=tmp_path,
        )
        for n in range(8)
    ]
    before = {k: v for k, v in os.environ.items() if k.startswith("DIALQ_")}

    # when every stack's settings are read many times, from eight threads at once
    def read(n: int) -> str:
        return stacks[n % 8].settings.symbl_app_id

    with ThreadPoolExecutor(max_workers=8) as pool:
        seen = list(pool.map(read, range(2000)))

    # then each read saw its own stack's variables, and none stayed in the environment
    assert seen == [f"app-{n % 8}" for n in range(2000)]
    assert {k: v for k, v in os.environ.items() if k.startswith("DIALQ_")} == before
