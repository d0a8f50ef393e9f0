"""The README's main command, `dialq demo`, run as a newcomer runs it: a process of its own."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import requests


def _processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line or environment holds `text` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            seen = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if text.encode() in seen:
            found.append(int(entry.name))
    return found


def test_the_demo_places_every_call_once_and_leaves_no_process_behind(tmp_path: Path) -> None:
    # given a clean environment (no DIALQ_* settings) and a temporary directory of its own
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALQ_")}
    env.update(TMPDIR=str(tmp_path), HOME=str(tmp_path), COLUMNS="80")
    # when the demo places three calls against a sandbox allowing two at once
    done = subprocess.run(
        [sys.executable, "-m", "dialq.cli", "demo", "--calls", "3", "--limit", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    # then it succeeds, every call completed with insights, none was started twice
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "3/3 calls completed, 3 with transcript and insights" in done.stdout
    assert "calls started twice: 0" in done.stdout
    # and it served its dashboard while it ran
    assert re.search(r"dashboard: http://127\.0\.0\.1:\d+/dashboard ", done.stdout), done.stdout
    # and, in an 80-column terminal, each row keeps its masked number (or SIP URI) on one line
    rows = re.findall(r"^\d+ +(\+1\*{6}\d{4}|sip:\S+) +completed ", done.stdout, re.MULTILINE)
    assert len(rows) == 3, done.stdout[-3000:]
    # and the bad number it shows is refused by field and rule, before anything is queued
    assert "phone_number: must be a" in done.stdout
    # and its Redis, worker, beat and sandbox are all gone
    assert _processes_mentioning(str(tmp_path)) == []


def test_the_demo_with_keep_leaves_the_dashboard_up_until_ctrl_c(tmp_path: Path) -> None:
    # given a clean environment, and the demo started with --keep
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALQ_")}
    env.update(TMPDIR=str(tmp_path), HOME=str(tmp_path), COLUMNS="80")
    demo = subprocess.Popen(
        [sys.executable, "-m", "dialq.cli", "demo", "--calls", "2", "--limit", "2", "--keep"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # when every call has settled
        seen = []
        assert demo.stdout is not None
        for line in demo.stdout:
            seen.append(line)
            if "Ctrl-C stops it" in line:
                break
        found = re.search(r"dashboard at (http://\S+/dashboard);", "".join(seen))
        assert found, "".join(seen)[-3000:]
        # then the stack stays up: its dashboard still answers
        assert requests.get(f"{found[1]}/sign-in", timeout=10).status_code == 200
        assert demo.poll() is None
        # and Ctrl-C stops it cleanly, leaving no process behind
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=60) == 0
        assert _processes_mentioning(str(tmp_path)) == []
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        if demo.stdout is not None:
            demo.stdout.close()
