"""Issue #20: a demo that runs out of time says so and keeps what it made for a look."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def test_a_demo_that_times_out_says_so_and_keeps_its_directory(tmp_path: Path) -> None:
    # given a clean environment and a demo given far too little time for its calls
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALQ_")}
    env.update(TMPDIR=str(tmp_path), HOME=str(tmp_path), COLUMNS="80")
    # when it runs
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dialq.cli",
            "demo",
            "--calls",
            "4",
            "--limit",
            "1",
            "--timeout",
            "1",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    # then it exits 1 saying it timed out, where its logs and database are, and what to do next
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert "timed out: not every call settled within 1 s" in done.stdout
    kept = re.search(r"Kept for a look: (\S+)", done.stdout)
    assert kept is not None, done.stdout[-3000:]
    workdir = Path(kept.group(1))
    assert workdir.parent == tmp_path
    assert (workdir / "dialq.db").exists()
    assert (workdir / "worker.log").exists()
    assert f"rm -r {workdir}" in done.stdout
