"""Which messages a dialq task cannot run: a table, no broker."""

from __future__ import annotations

import pytest

from dialq import routing
from dialq.poison import MAX_BODY_BYTES, problem_with

EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


@pytest.mark.parametrize(
    ("task", "payload", "kind"),
    [
        (routing.DIAL, [["0c6f1f0e-0000-4000-8000-000000000000"], {}, EMBED], None),
        (routing.DIAL, [["c1"], {}, {}], None),
        (routing.SWEEP, [[], {}, EMBED], None),
        (routing.PLACE_CALL, [[], {"request": {"phone_number": "+14155550123"}}, EMBED], None),
        (routing.DIAL, {"not": "a list"}, "not-a-task-body"),
        (routing.DIAL, [[], {}], "not-a-task-body"),
        (routing.DIAL, None, "not-a-task-body"),
        (routing.DIAL, 5, "not-a-task-body"),
        (routing.DIAL, "str", "not-a-task-body"),
        (routing.DIAL, [[], {}, "x"], "bad-embed"),
        (routing.DIAL, [[], {}, {"surprise": 1}], "bad-embed"),
        (routing.DIAL, [["c1"], {}, {"callbacks": [{"task": "x"}]}], "callbacks"),
        (routing.DIAL, ["c1", {}, {}], "bad-arguments"),
        (routing.DIAL, [{}, [], {}], "bad-arguments"),
        (routing.DIAL, [[123], {}, {}], "bad-arguments"),
        (routing.DIAL, [["a", "b"], {}, {}], "bad-arguments"),
        (routing.DIAL, [["x" * 65], {}, {}], "bad-arguments"),
        (routing.WATCH_CALL, [[], {"call_id": "c1"}, {}], "bad-arguments"),
        (routing.SWEEP, [["surprise"], {}, {}], "bad-arguments"),
    ],
)
def test_a_message_is_run_only_when_its_body_fits_its_task(
    task: str, payload: object, kind: str | None
) -> None:
    problem = problem_with(task, b"{}", payload)
    assert (problem.kind if problem else None) == kind


def test_a_body_over_the_size_limit_is_refused_before_anything_else() -> None:
    problem = problem_with(routing.PLACE_CALL, b"x" * (MAX_BODY_BYTES + 1), [[], {}, EMBED])
    assert problem is not None
    assert problem.kind == "too-large"
