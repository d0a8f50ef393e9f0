"""Log setup for every dialq process: JSON or readable lines, call context, nothing personal.

Every line passes through `redact`: phone numbers are masked (``+1******0100``), known secret
values and anything shaped like a credential are replaced. Context fields (call id, state,
attempt, account, task) come from `bind` (a contextvar, set around each call-id task) or from
``extra=`` on a single log call.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import phonenumbers
from phonenumbers import Leniency

from dialq import routing
from dialq.config import mask_url
from dialq.validation.fields import DEFAULT_REGION, mask_phone

if TYPE_CHECKING:
    from dialq.config import Settings

CONTEXT_FIELDS = ("call_id", "state", "attempt", "account", "task")
SECRET_MASK = "<secret>"  # noqa: S105  (the mask, not a password)

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "dialq_log_context", default=None
)

# E.164, with or without separators: "+14155550100", "+1 415 555 0100", "+1 (415) 555-0100".
_E164 = re.compile(r"(?<![\w+])\+\d(?:[ ().-]{0,2}\d){7,14}(?!\d)")
# A bare run of 10 to 15 digits (E.164 without its "+", a national number). Not inside a word
# or a hyphenated id, so UUIDs keep their last group; longer runs are ids, not numbers.
_DIGIT_RUN = re.compile(r"(?<![\w-])\d{10,15}(?![\w-])")
# A NANP number written with separators: "(415) 555-0100", "415.555.0100".
_NANP = re.compile(r"(?<![\w-])(?:\(\d{3}\)\s?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\w-])")
# Seven or more digits joined by the punctuation phonenumbers reads in a number ("1(415)5550177",
# "415/555-0177", "011 44 20 7946 0958"): each such run is parsed as the validator parses it,
# and phonenumbers' own matcher (slow, so only then) finds the spellings a run cannot hold.
# Runs inside a hyphenated id (a UUID's last group) are ids, not numbers.
_PUNCTUATION = (
    r"\s().\-/~\[\]\u2010-\u2015\u2212\u30fc\uff0d\uff0f\u00ad\u200b\u2060"
    r"\uff08\uff09\uff3b\uff3d\u2053\u223c\uff5e"
)
_MAYBE_PHONE = re.compile(rf"(?<![\w-])[+\uff0b]?\d(?:[{_PUNCTUATION}]{{0,3}}\d){{6,}}")
_CLOCK = re.compile(r":\d")
# A vanity spelling ("1-800-FLOWERS", "+1 800 356 FLOW"): digits first, then letters and digits
# joined by the same punctuation. The validator reads one with 3 or more letters (phonenumbers'
# keypad rule); the run may take in the next word ("1-800-FLOWERS now"), so shorter runs, one
# group less each time, are tried until one reads as a valid number.
_MAYBE_VANITY = re.compile(
    rf"(?<![\w-])[+\uff0b]?\(?\d(?:[{_PUNCTUATION}]{{0,3}}[0-9A-Za-z]){{6,}}(?![\w-])"
)
_VANITY_GROUP = re.compile(rf"[{_PUNCTUATION}]+[0-9A-Za-z]+$")
_MIN_LETTERS = 3
_MAX_VANITY_CHARS = 40
_MAX_DIGITS = 15  # in an E.164 number, country code included
# A UUID (call, key, task ids), as a group so that re.split keeps it.
_UUID = re.compile(
    r"(\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b)", re.IGNORECASE
)
# Credentials by shape, whatever their value: bearer tokens, API keys, secrets in key=value,
# JSON or URL user-info (redis://:password@host).
_CREDENTIALS = (
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), ("bearer",)),
    (
        re.compile(
            r"(?i)(['\"]?(?:app_?secret|access_?token|x-api-key|password|webhook_secret|secret)"
            r"['\"]?\s*[:=]\s*['\"]?)[^'\"\s,}&]+"
        ),
        ("secret", "token", "-key", "password"),
    ),
    (re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^/\s@]+(?=@)"), ("://",)),
)
# A URL's query string may carry a token (a callback URL, a broker's ?password=).
_URL = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^\s'\"<>\\]+")
_EMAIL = re.compile(r"[\w.+-]+@(?=[\w-]+(?:\.[\w-]+)+)")
# Control and format characters (line breaks, escapes, bidi overrides) in a text log line.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069]")


class _Secrets:
    """Secret values known to this process (from the settings); replaced wherever they appear."""

    values: tuple[str, ...] = ()


def remember_secrets(values: Iterable[str]) -> None:
    """Add secret values that must never appear in a log line (short ones are ignored)."""
    known = set(_Secrets.values) | {value for value in values if len(value) >= 4}
    # Longest first, so a secret that contains another is replaced whole. A secret quoted in
    # JSON text is escaped there, so its escaped spelling is replaced as well.
    known |= {json.dumps(value)[1:-1] for value in known}
    _Secrets.values = tuple(sorted(known, key=len, reverse=True))


def _mask_digits(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    if match.group(0).startswith("+"):
        return mask_phone("+" + "".join(str(int(d)) for d in digits))
    return "*" * (len(digits) - 4) + digits[-4:]


def _mask_vanity(text: str) -> str:
    for run in reversed(list(_MAYBE_VANITY.finditer(text))):
        spelled = run.group(0)[:_MAX_VANITY_CHARS]
        while sum(ch.isalpha() for ch in spelled) >= _MIN_LETTERS:
            # Each letter stands for one digit and E.164 has at most 15: a longer spelling
            # (a UUID and the words after it) is no number, and parsing it is slow.
            e164 = _valid_e164(spelled) if _alnum_count(spelled) <= _MAX_DIGITS else None
            if e164 is not None:
                end = run.start() + len(spelled)
                text = text[: run.start()] + mask_phone(e164) + text[end:]
                break
            shorter = _VANITY_GROUP.sub("", spelled)
            if shorter == spelled:
                break
            spelled = shorter
    return text


def _mask_numbers(text: str) -> str:
    runs = [
        m
        for m in _MAYBE_PHONE.finditer(text)
        # A run followed by ":04" is a date and time ("2026-01-02 03:04"), not a number.
        if 7 <= _digit_count(m.group(0)) <= 15 and not _CLOCK.match(text, m.end())
    ]
    if not runs:
        return text
    for run in reversed(runs):
        e164 = _valid_e164(run.group(0))
        if e164 is not None:
            text = text[: run.start()] + mask_phone(e164) + text[run.end() :]
    found = list(phonenumbers.PhoneNumberMatcher(text, DEFAULT_REGION, Leniency.VALID))
    for match in reversed(found):
        e164 = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
        text = text[: match.start] + mask_phone(e164) + text[match.end :]
    return text


def _valid_e164(text: str) -> str | None:
    try:
        number = phonenumbers.parse(text, DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return None
    # A valid number is a possible one; asking that first (its length) skips the slow check,
    # which walks every region of the country code, for most words after a number.
    if not phonenumbers.is_possible_number(number) or not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _alnum_count(text: str) -> int:
    return sum(ch.isalnum() for ch in text)


def _digit_count(text: str) -> int:
    return sum(ch.isdigit() for ch in text)


def _mask_url(match: re.Match[str]) -> str:
    return mask_url(match.group(0))


def redact(text: str) -> str:
    """The text with secrets replaced, and phone numbers, e-mails and URL queries masked.

    The one masking function of every log path: both formatters, and whatever else prints
    text that may hold a request's data.
    """
    for secret in _Secrets.values:
        text = text.replace(secret, SECRET_MASK)
    # Each pattern below is tried only where the text holds what every match of it must hold
    # (a keyword, "://", "@"): most lines hold none, and a search for a substring costs far less
    # than a case-insensitive pattern tried at every position. casefold() folds every letter of
    # the keywords at least as IGNORECASE does (long s, U+017F, to "s"; the keywords hold no "i",
    # which IGNORECASE also matches to a dotless i, U+0131), so no match is ever skipped.
    folded = text.casefold()
    for pattern, keywords in _CREDENTIALS:
        if any(keyword in folded for keyword in keywords):
            text = pattern.sub(lambda m: m.group(1) + SECRET_MASK, text)
    if "://" in text:
        text = _URL.sub(_mask_url, text)
    if "@" in text:
        text = _EMAIL.sub("***@", text)
    # Ids (UUIDs) are never numbers, and most lines hold one or two: only the text between
    # them is searched, which spares each line the slow tries of a UUID as a spelled number.
    parts = _UUID.split(text)
    return "".join(part if index % 2 else _mask_phones(part) for index, part in enumerate(parts))


def _mask_phones(text: str) -> str:
    text = _mask_vanity(text)
    text = _E164.sub(_mask_digits, text)
    text = _NANP.sub(_mask_digits, text)
    text = _DIGIT_RUN.sub(_mask_digits, text)
    return _mask_numbers(text)


def escape_controls(text: str) -> str:
    """Control characters as escapes (``\\n``, ``\\x1b``, ``\\u202e``): one record, one line."""
    return _CONTROL.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    return match.group(0).encode("unicode_escape").decode("ascii")


@contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Add context fields to every line logged inside the block (this thread or task)."""
    token = push(**fields)
    try:
        yield
    finally:
        _context.reset(token)


def push(**fields: Any) -> contextvars.Token[dict[str, Any] | None]:
    """Like `bind`, for code that opens and closes the context in two places (task signals)."""
    current = _context.get() or {}
    return _context.set({**current, **{k: v for k, v in fields.items() if v is not None}})


def pop(token: contextvars.Token[dict[str, Any] | None]) -> None:
    _context.reset(token)


def context() -> dict[str, Any]:
    """The context fields bound right now."""
    return dict(_context.get() or {})


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    found = context()
    for name in CONTEXT_FIELDS:
        value = getattr(record, name, None)
        if value is not None:
            found[name] = value
    return found


class ReadableFormatter(logging.Formatter):
    """``2026-01-02 03:04:05,678 INFO dialq.calls.dial: message [call_id=... state=...]``.

    Control characters in the message and fields are escaped and a traceback's lines are
    indented, so no text a sender chose (a by-name call id) can start a line of its own.
    """

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        fields = _fields(record)
        if fields:
            text += " [" + " ".join(f"{k}={v}" for k, v in fields.items()) + "]"
        head = f"{self.formatTime(record, self.datefmt)} {record.levelname} {record.name}: "
        line = escape_controls(head + redact(text))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        for extra in (record.exc_text, record.stack_info and self.formatStack(record.stack_info)):
            if extra:
                line += "".join(
                    "\n    " + escape_controls(part) for part in redact(extra).splitlines()
                )
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, context fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        # Each value is redacted before encoding, so a secret is found as it was written, not
        # as JSON escapes it; JSON escapes every control character itself.
        return json.dumps({k: _redacted(v) for k, v in entry.items()}, ensure_ascii=False)


def _redacted(value: Any) -> Any:
    if isinstance(value, bool | int | float) or value is None:
        return value
    return redact(value if isinstance(value, str) else str(value))


class WithholdBodies(logging.Filter):
    """Celery's consumer logs a message's whole body when it meets an unknown, invalid or
    undecodable task message (``dump_body``, logger ``celery.worker.consumer.consumer``).
    dialq.poison handles those first; this keeps any such line, from any Celery or kombu
    logger, to its first line, without the body (it may hold a phone number and an e-mail).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        template = str(record.msg)
        if record.name.startswith(("celery", "kombu")) and "body" in template.lower():
            first = template.strip().splitlines()[0] if template.strip() else ""
            record.msg = _FORMAT_DIRECTIVE.sub("?", first) + " (body withheld)"
            record.args = ()
        return True


_FORMAT_DIRECTIVE = re.compile(r"%(?:\(\w+\))?[-#0 +]*(?:\d+|\*)?(?:\.\d+)?[a-zA-Z%]")

# Beat's ticks: idempotent, every 1 to 5 s, each "received" and "succeeded" at INFO otherwise.
TICK_TASKS = frozenset(
    {routing.DISPATCH_SCHEDULES, routing.SWEEP, routing.SWEEP_INSIGHTS, routing.SWEEP_WEBHOOKS}
)
_RECEIVED = "Task %(name)s[%(id)s] received"  # celery.app.trace.LOG_RECEIVED
_SUCCEEDED = "Task %(name)s[%(id)s] succeeded"  # the start of celery.app.trace.LOG_SUCCESS


class QuietTicks(logging.Filter):
    """A beat tick's "received" line, and its "succeeded" line when it did nothing (every count
    in its result is 0), are DEBUG, not INFO: idle ticks would be most of a worker's log. A tick
    that did something still logs its counts at INFO; a failing one logs as any task does."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if record.levelno != logging.INFO or not isinstance(args, dict):
            return True
        if args.get("name") not in TICK_TASKS or not record.name.startswith("celery"):
            return True
        template = str(record.msg)
        idle = template.startswith(_SUCCEEDED) and _all_zero(args.get("return_value"))
        if template != _RECEIVED and not idle:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)


class MillisecondRuntimes(logging.Filter):
    """Celery's "succeeded in 0.0123456789s" shows its runtime to the millisecond: a run of 7 or
    more digits is read as a possible phone number and validated, which made masking that one
    line cost more than all of a dial's other lines (and microseconds tell an operator nothing)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, dict) and isinstance(args.get("runtime"), float):
            record.args = {**args, "runtime": round(args["runtime"], 3)}
        return True


def _all_zero(result: object) -> bool:
    # A tick returns counts (an int, or a dict of them), shown here as Celery's repr of it.
    return all(int(number) == 0 for number in re.findall(r"\d+", str(result)))


def formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else ReadableFormatter()


def configure(log_format: str, level: int | str, secrets: Iterable[str] = ()) -> None:
    """Send every log line (root logger) to stderr in the chosen format, redacted."""
    remember_secrets(secrets)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    handler.addFilter(WithholdBodies())
    handler.addFilter(QuietTicks())
    handler.addFilter(MillisecondRuntimes())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Celery's task loggers propagate to the root; make sure none keeps a handler of its own.
    for name in ("celery", "celery.task", "celery.redirected"):
        logging.getLogger(name).handlers = []


def secrets_of(settings: Settings) -> list[str]:
    """Every secret value the settings hold: app secrets, the webhook key, a broker password."""
    found = [account.app_secret.get_secret_value() for account in settings.accounts.values()]
    found += [
        settings.symbl_app_secret.get_secret_value(),
        settings.webhook_secret.get_secret_value(),
    ]
    for url in (settings.broker_url, settings.database_url):
        password = urlsplit(url).password if "://" in url else None
        if password:
            found.append(password)
    return found


def configure_from(settings: Settings, level: int | str | None = None) -> None:
    """`configure` with the settings' format, level and secrets (each process's entry point)."""
    chosen = settings.log_level.upper() or level or logging.INFO
    configure(settings.log_format, chosen, secrets_of(settings))
