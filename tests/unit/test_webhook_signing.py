"""Webhook signatures: what verifies and what does not, with time passed in."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from dialq.webhooks.signing import sign, signature_header, verify_signature

SECRET = "whsec-unit"
BODY = b'{"event_id":"e-1","sequence":1,"state":"queued"}'
T = 1_732_456_800


def test_a_fresh_signature_of_the_same_body_verifies() -> None:
    header = signature_header(SECRET, BODY, T)
    assert header == f"t={T},v1={sign(SECRET, BODY, T)}"
    assert verify_signature(SECRET, header, BODY, now=T + 1)


@pytest.mark.parametrize(
    ("secret", "body", "now", "why"),
    [
        (SECRET, BODY.replace(b"queued", b"failed"), T, "tampered body"),
        (SECRET, BODY + b" ", T, "one byte added"),
        ("another-secret", BODY, T, "wrong secret"),
        (SECRET, BODY, T + 301, "stale: older than the tolerance"),
        (SECRET, BODY, T - 301, "from the future beyond the tolerance"),
    ],
)
def test_a_signature_does_not_verify_when(secret: str, body: bytes, now: int, why: str) -> None:
    header = signature_header(SECRET, BODY, T)
    assert not verify_signature(secret, header, body, now=now), why


@pytest.mark.parametrize(
    "header",
    ["", "garbage", f"t={T}", "v1=" + "0" * 64, f"t=abc,v1={sign(SECRET, BODY, T)}", "t=,v1="],
)
def test_a_malformed_header_is_not_valid_and_raises_nothing(header: str) -> None:
    assert not verify_signature(SECRET, header, BODY, now=T)


def test_the_timestamp_is_signed_so_it_cannot_be_moved_forward() -> None:
    # given a captured signature, replayed later with a fresh timestamp
    captured = sign(SECRET, BODY, T)
    replay = f"t={T + 3600},v1={captured}"
    # then it does not verify at the replay time
    assert not verify_signature(SECRET, replay, BODY, now=T + 3600)


def test_any_of_several_v1_signatures_may_match_which_allows_rotating_the_secret() -> None:
    header = f"t={T},v1={sign('old-secret', BODY, T)},v1={sign(SECRET, BODY, T)}"
    assert verify_signature(SECRET, header, BODY, now=T)
    assert verify_signature("old-secret", header, BODY, now=T)


def test_the_tolerance_is_a_parameter() -> None:
    header = signature_header(SECRET, BODY, T)
    assert verify_signature(SECRET, header, BODY, now=T + 30, tolerance_s=30)
    assert not verify_signature(SECRET, header, BODY, now=T + 31, tolerance_s=30)


def test_the_readme_snippet_verifies_what_dialq_signs_and_rejects_a_tampered_body() -> None:
    # given the stdlib-only snippet from the README's "Webhooks" section
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Webhooks") :]
    start = section.index("```python\n") + len("```python\n")
    namespace: dict[str, Any] = {}
    exec(section[start : section.index("```", start)], namespace)  # noqa: S102
    verify = namespace["verify"]
    # when dialq signs a body now, then the snippet agrees with the library
    header = signature_header(SECRET, BODY, int(time.time()))
    assert verify(SECRET, header, BODY)
    assert not verify(SECRET, header, BODY + b"x")
    assert not verify("other", header, BODY)
    assert not verify(SECRET, signature_header(SECRET, BODY, int(time.time()) - 600), BODY)
