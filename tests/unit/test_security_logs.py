"""Log lines: the one masking function covers what the validator accepts, e-mails and URL
queries; text lines cannot be forged; Celery's body-quoting lines lose their body."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest
from celery.app.trace import LOG_SUCCESS
from celery.worker.consumer.consumer import (
    INVALID_TASK_ERROR,
    MESSAGE_DECODE_ERROR,
    UNKNOWN_FORMAT,
    UNKNOWN_TASK_ERROR,
)

from dialq.ops import logs
from dialq.validation.fields import check_phone_number

# The spellings issue 17 found passing through unmasked; each one the validator accepts.
ISSUE_SPELLINGS = ["1-415-555-0177", "415 5550177", "415/555-0177", "1(415)5550177"]


@pytest.fixture
def stream() -> Iterator[tuple[logging.Logger, io.StringIO, logging.Handler]]:
    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.addFilter(logs.WithholdBodies())
    logger = logging.getLogger("dialq.test_security_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, sink, handler
    logger.removeHandler(handler)


@pytest.mark.parametrize("log_format", ["json", "text"])
@pytest.mark.parametrize("spelled", ISSUE_SPELLINGS)
def test_every_spelling_the_validator_accepts_is_masked_in_both_formats(
    stream: tuple[logging.Logger, io.StringIO, logging.Handler], log_format: str, spelled: str
) -> None:
    logger, sink, handler = stream
    handler.setFormatter(logs.formatter(log_format))
    # given a spelling the validator accepts
    assert check_phone_number(spelled, {1}) == "+14155550177"
    # when it is logged as a message, an argument and inside a repr
    logger.warning(f"dialing {spelled}")
    logger.warning("dialing %s", spelled)
    logger.warning("payload %r", {"phone_number": spelled})
    # then only the last 4 digits show
    output = sink.getvalue()
    assert "415" not in output.replace("dialq.test_security_logs", "")
    assert output.count("0177") == 3


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_e_mails_and_url_query_values_are_masked(
    stream: tuple[logging.Logger, io.StringIO, logging.Handler], log_format: str
) -> None:
    logger, sink, handler = stream
    handler.setFormatter(logs.formatter(log_format))
    logger.info(
        "summary to %s, callback %s",
        ["jane.doe+calls@example.com"],
        "https://hooks.example.com/dialq?token=cb-tok-123&tenant=acme",
    )
    output = sink.getvalue()
    for hidden in ("jane.doe", "cb-tok-123", "acme"):
        assert hidden not in output
    assert "***@example.com" in output
    assert "https://hooks.example.com/dialq?token=***&tenant=***" in output


def test_a_call_id_with_a_newline_cannot_forge_a_text_log_line(
    stream: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, sink, handler = stream
    handler.setFormatter(logs.formatter("text"))
    forged = "c-1\n2026-01-01 00:00:00,000 INFO dialq.calls.dial: call c-2 completed"
    # when a by-name call id carrying a line break is logged, in the message and the context
    with logs.bind(call_id=forged):
        logger.info("call %s queued\x1b[2K\u202e", forged)
    # then it is one line, its breaks and escapes shown as escapes
    lines = sink.getvalue().splitlines()
    assert len(lines) == 1
    assert "c-1\\n2026-01-01" in lines[0]
    assert "\\x1b" in lines[0]
    assert "\\u202e" in lines[0]


def test_a_traceback_keeps_every_line_after_the_first_indented(
    stream: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, sink, handler = stream
    handler.setFormatter(logs.formatter("text"))
    try:
        raise ValueError("bad id\n2026-01-01 00:00:00,000 INFO dialq: forged")
    except ValueError:
        logger.exception("failed")
    lines = sink.getvalue().splitlines()
    assert lines[0].endswith("failed")
    assert all(line.startswith("    ") for line in lines[1:])


@pytest.mark.parametrize(
    ("template", "args"),
    [
        (UNKNOWN_TASK_ERROR, ("no.such", "BODY", "{}", "{}")),
        (INVALID_TASK_ERROR, ("bad", "BODY")),
        (UNKNOWN_FORMAT, ("BODY",)),
        (MESSAGE_DECODE_ERROR, ("x", "y", "z", "BODY")),
    ],
)
@pytest.mark.parametrize("log_format", ["json", "text"])
def test_celery_never_logs_a_message_body(
    template: str, args: tuple[str, ...], log_format: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    body = "{'request': {'phone_number': '+14155550177', 'summary_emails': ['a@b.example']}}"
    try:
        # given dialq's logging, when Celery's consumer logs one of its body-quoting lines
        logs.configure(log_format, "INFO")
        filled = tuple(body if arg == "BODY" else arg for arg in args)
        logging.getLogger("celery.worker.consumer.consumer").error(template, *filled)
        # then the line says what happened, without the body
        err = capsys.readouterr().err
        assert "(body withheld)" in err
        assert "phone_number" not in err
        assert "summary_emails" not in err
        if log_format == "json":
            json.loads(err.strip().splitlines()[-1])
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_a_secret_quoted_in_json_text_is_replaced_in_its_escaped_spelling_too() -> None:
    logs.remember_secrets(['sec"ret\\value-1'])
    text = json.dumps({"echo": 'sec"ret\\value-1'})
    assert logs.redact(text) == '{"echo": "<secret>"}'


def test_dates_times_and_ids_are_not_mistaken_for_numbers() -> None:
    text = (
        "due 2026-01-02 03:04:05 call 550e8400-e29b-41d4-a716-446655440000 "
        "conversation 5656461164675072 latency 1234567.89 ms pid 123456"
    )
    assert logs.redact(text) == text


@pytest.mark.parametrize(
    "line",
    [
        "call {id} queued for +14155550177 by key {id} over HTTP",
        "call {id}: dialing 1-800-FLOWERS for {id}",
        "{id} +1 (415) 555-0177 {id}",
    ],
)
def test_a_number_between_ids_is_masked_and_the_ids_are_kept_whole(line: str) -> None:
    # given ids that are all digits where a number could hide, and one with letters
    for call_id in ("12345678-1234-1234-1234-123456789012", "550e8400-e29b-41d4-a716-446655440000"):
        text = line.format(id=call_id)
        # when the line is masked
        masked = logs.redact(text)
        # then each id is whole, and of the number only its last 4 digits show
        assert masked.count(call_id) == 2, masked
        assert "555" not in masked.replace(call_id, ""), masked
        assert "FLOWERS" not in masked, masked
        assert "******" in masked, masked


def test_the_credential_patterns_keywords_are_found_in_every_spelling_the_patterns_match() -> None:
    # given the keywords that let redact skip a credential pattern: every match holds one
    for pattern, keywords in logs._CREDENTIALS:
        for keyword in keywords:
            for letter in set(keyword):
                # when any character the pattern's IGNORECASE takes for the letter is folded
                same = re.compile("(?i)" + re.escape(letter))
                spellings = [chr(c) for c in range(0x2200) if same.fullmatch(chr(c))]
                # then the folded text still holds the letter where the keyword is searched
                assert all(letter in spelling.casefold() for spelling in spellings), (
                    pattern.pattern,
                    letter,
                )


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ("Authorization: BEARER abc.def-123", "abc.def-123"),
        ("\u017fecret=hunter22 next", "hunter22"),
        ("X-Api-Key: k-12345678", "k-12345678"),
        ("x-ap\u0131-key: k-12345678", "k-12345678"),
        ('{"access_token": "tok-123456"}', "tok-123456"),
        ("broker redis://:pa55word@redis:6379/0", "pa55word"),
        ("PASSWORD=swordfish", "swordfish"),
    ],
)
def test_credentials_are_masked_whatever_the_letters_case(line: str, value: str) -> None:
    # given a credential in a spelling the patterns match, when redacted, then its value is gone
    redacted = logs.redact(line)
    assert logs.SECRET_MASK in redacted
    assert value not in redacted


def test_a_tasks_runtime_is_logged_to_the_millisecond_so_it_is_never_read_as_a_number(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        # given dialq's logging, when Celery logs a success with a runtime of 7 or more digits
        logs.configure("text", "INFO")
        fields = {"id": "t-1", "name": "dialq.dial", "runtime": 0.0123456789, "return_value": "1"}
        logging.getLogger("celery.app.trace").info(LOG_SUCCESS, fields)
        # then it shows milliseconds
        assert "succeeded in 0.012s: 1" in capsys.readouterr().err
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
