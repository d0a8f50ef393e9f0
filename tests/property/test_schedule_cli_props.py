"""`dialq schedule add ... --json` under hostile arguments, against SQLite and a private Redis.

Exit 0 with the schedule stored under its name (created, or the same one updated), or exit 2
naming the field (or the option) with nothing written or published; never a traceback.
"""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from dialq.config import Settings
from dialq.store.schedule_tables import Schedule
from tests.property.cli_runner import argv_text, run_cli
from tests.property.profiles import IO
from tests.property.strategies import phone_numbers
from tests.property.world import observed, snapshot

# A rejection names what was wrong: `invalid input: <field>: <rule>` or Click's `'--option'`.
NAMES_A_FIELD = re.compile(r"^invalid input: [a-z_]+(\.[a-z_]+)*(\[\d+\])?: \S")
NAMES_AN_OPTION = re.compile(r"'--[a-z-]+'")


def rule_options() -> st.SearchStrategy[list[str]]:
    """At most one of each timing option: plausible, broken, or any text at all."""
    plausible = {
        "--cron": st.sampled_from(("0 9 * * 1-5", "*/15 * * * *", "61 * * * *", "bad")),
        "--every": st.sampled_from(("15m", "1h30m", "0m", "90", "1y")),
        "--at": st.sampled_from(("2030-01-31T14:30", "2030-02-30T14:30", "yesterday")),
        "--tz": st.sampled_from(("UTC", "America/New_York", "Mars/Olympus")),
        "--start": st.sampled_from(("2030-01-01", "2030-13-01", "9999-12-31T23:59")),
        "--end": st.sampled_from(("2031-01-01", "2029-01-01", "0001-01-01")),
        "--count": st.sampled_from(("1", "0", "-3", "many")),
        "--misfire-grace": st.sampled_from(("5m", "0s", "400d", "soon")),
        "--overlap": st.sampled_from(("skip", "allow", "queue")),
        "--priority": st.sampled_from(("0", "9", "10", "high")),
        "--max-duration": st.sampled_from(("30m", "5h", "9s")),
    }
    values = {option: st.one_of(found, argv_text()) for option, found in plausible.items()}
    return st.fixed_dictionaries({}, optional=values).map(
        lambda chosen: [f"{option}={value}" for option, value in chosen.items()]
    )


def schedule_args() -> st.SearchStrategy[tuple[str, list[str]]]:
    name = st.one_of(st.sampled_from(("weekly-sync", "standup")), argv_text())
    target = st.one_of(
        phone_numbers().filter(lambda v: isinstance(v, str)),
        st.just("sip:room@example.com"),
        argv_text(),
    )
    return st.builds(
        lambda n, opts, tgt: (
            n.replace("\x00", ""),
            ["schedule", "add", *opts, "--json", "--", n.replace("\x00", ""), tgt],
        ),
        name,
        rule_options(),
        target,
    )


@IO
@given(case=schedule_args())
def test_schedule_add_stores_the_named_schedule_or_exits_2_naming_the_field_and_writes_nothing(
    cli_settings: Settings, case: tuple[str, list[str]]
) -> None:
    name, args = case
    with observed(cli_settings) as (db, client):
        # given the database and the broker as they are
        before = snapshot(db, client)
        # when `dialq schedule add` runs with any arguments
        code, out, err = run_cli(args)
        after = snapshot(db, client)
        # then it never crashes, and answers 0 or 2
        assert "Traceback" not in out + err
        assert code in (0, 2), (code, out, err)
        if code == 2:
            # a rejection says which field or option, and changes nothing anywhere
            text = " ".join(err.split())  # Rich wraps long lines
            assert NAMES_A_FIELD.match(text) or NAMES_AN_OPTION.search(text), err
            assert after == before, "a rejected schedule changed the database or Redis"
            return
        # an accepted one is stored under its name, once, and nothing is dialed yet
        result: dict[str, Any] = json.loads(out)
        assert result["name"] == name
        with db.sessions() as session:
            stored = session.scalars(select(Schedule).where(Schedule.name == name)).all()
        assert [row.id for row in stored] == [result["id"]]
        assert after.dial_messages == before.dial_messages
        created = after.rows["schedules"] - before.rows["schedules"]
        assert created == (1 if result["created"] else 0)
