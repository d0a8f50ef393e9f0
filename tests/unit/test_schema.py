"""The committed JSON Schema is the one the model generates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from dialq.calls.request import call_request_json_schema, parse_call_request
from dialq.symbl.payloads import start_body

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "docs" / "call-request.schema.json"
REGENERATE = "python -m dialq.calls.request > docs/call-request.schema.json"


def rendered_schema() -> str:
    return json.dumps(call_request_json_schema(), indent=2, sort_keys=True) + "\n"


def test_committed_schema_matches_the_model() -> None:
    committed = SCHEMA_FILE.read_text(encoding="utf-8")
    assert committed == rendered_schema(), f"schema is stale; regenerate with: {REGENERATE}"


def test_python_m_dialq_models_prints_the_schema() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "dialq.calls.request"],
        capture_output=True,
        text=True,
        check=True,
        cwd=SCHEMA_FILE.parents[1],
        timeout=60,
    ).stdout
    assert printed == rendered_schema()


def test_schema_forbids_unknown_fields_and_lists_every_field() -> None:
    schema = call_request_json_schema()
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {
        "phone_number", "sip_uri", "dtmf", "session_name", "summary_emails", "languages",
        "timezone", "max_duration_s", "account", "callback_url", "priority", "not_before",
        "idempotency_key",
    }  # fmt: skip


def json_block_after(heading: str) -> object:
    """The first ```json block after ``heading`` in docs/payload.md."""
    text = (SCHEMA_FILE.parent / "payload.md").read_text(encoding="utf-8")
    after = text[text.index(heading) :]
    start = after.index("```json\n") + len("```json\n")
    return json.loads(after[start : after.index("```", start)])


def test_the_documented_example_payload_is_valid_and_builds_the_documented_body() -> None:
    # given the example payload and Symbl body in docs/payload.md
    payload = json_block_after("## Example payload")
    documented_body = json_block_after("## What Symbl receives")
    assert isinstance(payload, dict)
    # when the payload is parsed and turned into a start body / then it is what the doc says
    assert start_body(parse_call_request(payload)) == documented_body
