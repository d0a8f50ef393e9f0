"""`dialq call ... --json` under hostile arguments, against SQLite and a private Redis.

Exit 0 with the call's id (one queued row, one dial message), or exit 2 naming the field (or the
option) with nothing written or published; never a traceback, never another exit code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialq.config import Settings
from tests.property.cli_runner import argv_text, run_cli
from tests.property.profiles import IO
from tests.property.strategies import CALL_FIELDS, phone_numbers
from tests.property.world import Snapshot, observed, snapshot

# The options of `dialq call` and the payload field each one fills.
OPTIONS = {
    "--name": "session_name",
    "--email": "summary_emails",
    "--dtmf": "dtmf",
    "--max-duration": "max_duration_s",
    "--language": "languages",
    "--timezone": "timezone",
    "--account": "account",
    "--priority": "priority",
    "--callback-url": "callback_url",
    "--idempotency-key": "idempotency_key",
}
DIALQ_BIN = Path(sys.executable).with_name("dialq")


def option_values() -> dict[str, st.SearchStrategy[str]]:
    plausible = {
        "--name": st.sampled_from(("Weekly sync", "Robert'); DROP TABLE calls;--")),
        "--email": st.sampled_from(("ops@example.com", "a@b")),
        "--dtmf": st.sampled_from(("123#", ",,9")),
        "--max-duration": st.sampled_from(("30m", "1h30m", "90", "5h", "1m1m")),
        "--language": st.sampled_from(("en-US", "fr-fr", "xx-YY")),
        "--timezone": st.sampled_from(("America/New_York", "Mars/Olympus")),
        "--account": st.sampled_from(("default", "sales")),
        "--priority": st.sampled_from(("0", "9", "10", "-1", "high")),
        "--callback-url": st.sampled_from(("https://hooks.example.com/x", "ftp://x")),
        "--idempotency-key": st.uuids().map(str),
    }
    return {option: st.one_of(values, argv_text()) for option, values in plausible.items()}


def call_args() -> st.SearchStrategy[list[str]]:
    """`call [--opt=value ...] -- TARGET --json`, any options, sometimes many e-mails."""
    values = option_values()
    options = st.fixed_dictionaries({}, optional=values).map(
        lambda chosen: [f"{option}={value}" for option, value in chosen.items()]
    )
    many_emails = st.integers(0, 30).map(
        lambda n: [f"--email=user{i}@example.com" for i in range(n)]
    )
    target = st.one_of(phone_numbers().filter(lambda v: isinstance(v, str)), argv_text())
    return st.builds(
        lambda opts, emails, tgt: ["call", *opts, *emails, "--json", "--", tgt.replace("\x00", "")],
        options,
        st.one_of(st.just([]), many_emails),
        target,
    )


def names_a_field_or_option(stderr: str) -> bool:
    text = " ".join(stderr.split())  # Rich wraps long lines
    if text.startswith("invalid input: "):
        return any(f"{field}: " in text or f"{field}[" in text for field in CALL_FIELDS)
    return any(f"'{option}'" in text for option in OPTIONS)


def assert_outcome(code: int, out: str, err: str, before: Snapshot, after: Snapshot) -> None:
    assert "Traceback" not in out + err
    assert code in (0, 2), (code, out, err)
    if code == 2:
        assert names_a_field_or_option(err), err
        assert after == before, "a rejected call changed the database or Redis"
        return
    result: dict[str, Any] = json.loads(out)
    assert result["status"] == "queued"
    if result["created"]:
        assert after.rows["calls"] == before.rows["calls"] + 1
        assert after.dial_messages == before.dial_messages + 1
    else:  # an idempotency key this run already used
        assert after == before


@IO
@given(args=call_args())
def test_dialq_call_exits_0_with_one_call_or_2_naming_the_field_and_writing_nothing(
    cli_settings: Settings, args: list[str]
) -> None:
    with observed(cli_settings) as (db, client):
        # given the database and the broker as they are
        before = snapshot(db, client)
        # when `dialq call` runs with any arguments
        code, out, err = run_cli(args)
        # then it queued one call and one message, or exited 2 naming the field, changing nothing
        assert_outcome(code, out, err, before, snapshot(db, client))


# -- the installed command, in its own process -----------------------------------------------


SUBPROCESS_CASES: list[tuple[list[bytes], int, str]] = [
    ([b"\xff\xfe415"], 2, "phone_number: must be valid Unicode text"),
    ([b"--name=\xc3\x28", b"--", b"+14155550123"], 2, "session_name: must be valid Unicode text"),
    ([b"--", b"+44 20 7946 0958"], 2, "phone_number: must be a NANP (+1) number"),
    ([b"--email=ops@example.com"] * 21 + [b"--", b"+14155550123"], 2, "summary_emails: must"),
    ([b"--priority=high", b"--", b"+14155550123"], 2, "'--priority'"),
    ([b"--callback-url=http://h.example.com/\r\nX: y", b"4155550123"], 2, "callback_url: must"),
    ([b"--name=Robert'); DROP TABLE calls;--", b"--", b"(415) 555-0123"], 0, '"created": true'),
]


@pytest.mark.parametrize(("args", "exit_code", "says"), SUBPROCESS_CASES)
def test_the_installed_command_answers_raw_argv_bytes_with_0_or_2_and_no_traceback(
    cli_settings: Settings, args: list[bytes], exit_code: int, says: str
) -> None:
    with observed(cli_settings) as (db, client):
        # given raw bytes on the command line, as a shell passes them
        before = snapshot(db, client)
        # when the installed `dialq` runs in its own process
        done = subprocess.run(
            [str(DIALQ_BIN), "call", "--json", *args],
            capture_output=True,
            env=dict(os.environ),
            timeout=60,
            check=False,
        )
        out = done.stdout.decode(errors="replace")
        err = done.stderr.decode(errors="replace")
        # then it exits as documented, says why, and a rejection writes and publishes nothing
        assert (done.returncode, says in " ".join((out + err).split())) == (exit_code, True), err
        assert_outcome(done.returncode, out, err, before, snapshot(db, client))
