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

from dialq.validation.fields import mask_phone

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
# Credentials by shape, whatever their value: bearer tokens, API keys, secrets in key=value,
# JSON or URL user-info (redis://:password@host).
_CREDENTIALS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(
        r"(?i)(['\"]?(?:app_?secret|access_?token|x-api-key|password|webhook_secret|secret)"
        r"['\"]?\s*[:=]\s*['\"]?)[^'\"\s,}&]+"
    ),
    re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^/\s@]+(?=@)"),
)


class _Secrets:
    """Secret values known to this process (from the settings); replaced wherever they appear."""

    values: tuple[str, ...] = ()


def remember_secrets(values: Iterable[str]) -> None:
    """Add secret values that must never appear in a log line (short ones are ignored)."""
    known = set(_Secrets.values) | {value for value in values if len(value) >= 4}
    # Longest first, so a secret that contains another is replaced whole.
    _Secrets.values = tuple(sorted(known, key=len, reverse=True))


def _mask_digits(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    if match.group(0).startswith("+"):
        return mask_phone("+" + digits)
    return "*" * (len(digits) - 4) + digits[-4:]


def redact(text: str) -> str:
    """The text with secrets replaced and phone numbers masked."""
    for secret in _Secrets.values:
        text = text.replace(secret, SECRET_MASK)
    for pattern in _CREDENTIALS:
        text = pattern.sub(lambda m: m.group(1) + SECRET_MASK, text)
    text = _E164.sub(_mask_digits, text)
    text = _NANP.sub(_mask_digits, text)
    return _DIGIT_RUN.sub(_mask_digits, text)


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
    """``2026-01-02 03:04:05,678 INFO dialq.calls.dial: message [call_id=... state=...]``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = _fields(record)
        if fields:
            line += " [" + " ".join(f"{k}={v}" for k, v in fields.items()) + "]"
        return redact(line)


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
        # Redacting the finished line also covers field values and exception text; masks
        # hold no quotes or backslashes, so the JSON stays valid.
        return redact(json.dumps(entry, default=str, ensure_ascii=False))


def formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else ReadableFormatter()


def configure(log_format: str, level: int | str, secrets: Iterable[str] = ()) -> None:
    """Send every log line (root logger) to stderr in the chosen format, redacted."""
    remember_secrets(secrets)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
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
