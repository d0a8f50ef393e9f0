"""What every rejection must look like, shared by the property tests."""

from __future__ import annotations

import re
from collections.abc import Collection

from dialq.validation.errors import WHOLE_REQUEST, InvalidCallRequest

# The fallback words for a pydantic error type nobody mapped to plain words.
UNMAPPED_RULE = re.compile(r"^is not valid \(")


def field_root(field: str) -> str:
    """``summary_emails[3]`` and ``call.phone_number`` name ``summary_emails`` and ``call``."""
    return re.split(r"[.\[]", field, maxsplit=1)[0]


def assert_names_fields_and_rules(
    error: InvalidCallRequest, known: Collection[str], *, whole: str = WHOLE_REQUEST
) -> None:
    """Every error names a known field (or an unknown one as such) and a rule in plain words."""
    assert error.errors, "a rejection with no reason"
    for found in error.errors:
        assert found.rule, found
        assert not UNMAPPED_RULE.match(found.rule), f"unmapped pydantic error: {found}"
        assert found.field.isprintable(), found
        assert found.rule.isprintable(), found
        if found.rule.startswith("unknown field"):
            # the sender's text, shortened (after a prefix such as "call.")
            assert len(found.field) <= 80, found
        else:
            assert field_root(found.field) in {*known, whole}, found
    message = str(error)
    assert message.isprintable(), "a rejection message that could forge log lines"
    assert all(f"{e.field}: {e.rule}" in message for e in error.errors)
