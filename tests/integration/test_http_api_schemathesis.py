"""Schemathesis against the live `/openapi.json` of a running `dialq api`: generated requests,
examples and the document's links followed statefully (place a call, then read, cancel, redial
it; store a schedule, then read, pause, resume, preview, delete it). No answer may be a 5xx, and
every answer must match its documented status, content type and schema: a 4xx is a problem
document naming the problem. The run is bounded in time."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.databases import API_TABLES, empty_database
from tests.integration.test_http_api import accounts_env, running_api
from tests.stack import stack_env

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
# The run's budget: about a minute of generation, in CI alone and here under load alike.
MAX_TIME_S = 75


def schemathesis() -> str:
    found = shutil.which("st", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("schemathesis is in the dev extra: pip install -e '.[dev]'")
    return found


@pytest.mark.timeout(400)
def test_generated_and_linked_requests_get_no_5xx_and_answers_match_the_document(
    redis_url: str, pg_url: str, tmp_path: Path
) -> None:
    # given an API on PostgreSQL whose rate limit a generated run cannot reach, and a key
    empty_database(pg_url, API_TABLES).dispose()
    env = stack_env(redis_url, pg_url, "http://127.0.0.1:9", tmp_path)
    env.update(DIALQ_ACCOUNTS=accounts_env("http://127.0.0.1:9"),
               DIALQ_API_RATE_LIMIT="1000000/minute")  # fmt: skip
    with running_api(env, tmp_path) as api:
        key = api.make_key("sales", scopes=("admin",))
        # when Schemathesis runs its examples, fuzzing and stateful phases against it
        run = subprocess.run(
            [
                schemathesis(),
                "run",
                f"{api.url}/openapi.json",
                "--header",
                f"Authorization: Bearer {key}",
                "--checks",
                ",".join(CHECKS),
                "--phases",
                "examples,fuzzing,stateful",
                # A queued call's event stream stays open until the call ends (no worker
                # here): it is followed by test_http_api_more.py and test_http_clients.py.
                "--exclude-path-regex",
                "/events$",
                "--max-examples",
                "20",
                "--max-time",
                str(MAX_TIME_S),
                "--request-timeout",
                "20",
                "--seed",
                "18",
                "--workers",
                "1",
                "--no-color",
            ],
            cwd=tmp_path,  # its cache of found crashes stays out of the work tree
            capture_output=True,
            text=True,
            timeout=360,
            check=False,
        )
        # then it found nothing, and the stateful phase followed the links
        report = run.stdout + run.stderr
        assert run.returncode == 0, report[-8000:]
        assert "✅ Stateful" in report, report[-4000:]
        assert "Traceback" not in api.log.read_text(), api.log.read_text()[-4000:]
