"""Log lines: JSON with the call's context, phone numbers masked, secrets never printed."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from dialq.config import Settings
from dialq.ops import logs

SECRET = "app-secret-never-in-a-log"


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO, logging.Handler]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("dialq.test_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logs.remember_secrets([SECRET])
    yield logger, stream, handler
    logger.removeHandler(handler)


def test_json_lines_carry_call_id_state_attempt_and_account(captured) -> None:  # type: ignore[no-untyped-def]
    logger, stream, handler = captured
    handler.setFormatter(logs.formatter("json"))
    # given a task's context, when a line is logged with one more field
    with logs.bind(call_id="c-1", account="sales", task="dialq.dial"):
        logger.info("call %s connected", "c-1", extra={"state": "connected", "attempt": 2})
    # then the JSON line holds all of them
    line = json.loads(stream.getvalue())
    assert line["message"] == "call c-1 connected"
    assert line["level"] == "INFO"
    assert line["logger"] == "dialq.test_logs"
    assert (line["call_id"], line["state"], line["attempt"], line["account"]) == (
        "c-1",
        "connected",
        2,
        "sales",
    )
    assert line["task"] == "dialq.dial"


def test_context_ends_with_its_block(captured) -> None:  # type: ignore[no-untyped-def]
    logger, stream, handler = captured
    handler.setFormatter(logs.formatter("json"))
    with logs.bind(call_id="c-1"):
        pass
    logger.info("after")
    assert "call_id" not in json.loads(stream.getvalue())


@pytest.mark.parametrize("log_format", ["json", "text"])
@pytest.mark.parametrize(
    ("written", "shown", "hidden"),
    [
        ("+14155550100", "+1******0100", "4155550100"),
        ("+1 415 555 0100", "+1******0100", "415 555"),
        ("14155550100", "*******0100", "4155550100"),
        ("(415) 555-0100", "******0100", "555-0100"),
    ],
)
def test_phone_numbers_in_messages_and_arguments_are_masked(  # type: ignore[no-untyped-def]
    captured, log_format: str, written: str, shown: str, hidden: str
) -> None:
    logger, stream, handler = captured
    handler.setFormatter(logs.formatter(log_format))
    logger.warning(f"dialing {written}")
    logger.warning("dialing %s", written)
    logger.warning("payload %r", {"phone_number": written})
    output = stream.getvalue()
    assert hidden not in output
    assert output.count(shown) == 3


def test_ids_timestamps_and_conversation_ids_are_not_mistaken_for_numbers() -> None:
    text = "call 550e8400-e29b-41d4-a716-446655440000 conversation 5656461164675072 at 12:00:01"
    assert logs.redact(text) == text


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_secrets_are_never_printed_even_in_exceptions(captured, log_format: str) -> None:  # type: ignore[no-untyped-def]
    logger, stream, handler = captured
    handler.setFormatter(logs.formatter(log_format))
    try:
        raise RuntimeError(f"token request failed: {{'appSecret': '{SECRET}'}}")
    except RuntimeError:
        logger.exception("could not fetch a token with %s", SECRET)
    logger.info("headers %s", {"Authorization": "Bearer eyJhbGciOi.abc-def"})
    logger.info("broker redis://:hunter2-pass@redis:6379/0 and x-api-key: tok123456")
    output = stream.getvalue()
    for secret in (SECRET, "eyJhbGciOi", "hunter2-pass", "tok123456"):
        assert secret not in output
    assert logs.SECRET_MASK in output


def test_the_settings_secrets_are_all_known() -> None:
    settings = Settings(
        symbl_app_secret=SECRET,
        webhook_secret="whsec-abcdef",
        broker_url="rediss://:broker-pass@redis.example.com:6380/0",
        database_url="postgresql+psycopg://dialq:db-pass@pg/dialq",
        accounts={"sales": {"app_id": "a", "app_secret": "sales-secret"}},
    )
    found = set(logs.secrets_of(settings))
    assert {SECRET, "whsec-abcdef", "broker-pass", "db-pass", "sales-secret"} <= found


def test_configure_sends_json_to_the_root_logger(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        logs.configure("json", "INFO", secrets=["root-secret-x"])
        logging.getLogger("dialq.anything").info("value root-secret-x for +14155550100")
        line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
        assert line["message"] == "value <secret> for +1******0100"
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
