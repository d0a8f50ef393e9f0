"""The call state machine: every move the code asks for is one the machine allows."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from dialq.calls import states
from dialq.calls.states import (
    ALLOWED,
    TERMINAL,
    CallStatus,
    IllegalTransition,
    check_transition,
)

PACKAGE = Path(__file__).resolve().parents[2] / "dialq"
# Names a `transition(...)` argument may use; anything else (a variable) is checked at run time.
NAMESPACE: dict[str, object] = {
    name: getattr(states, name) for name in dir(states) if not name.startswith("_")
}


# The repository's state changes: `transition_returning` is `transition` reading columns back.
TRANSITIONS = {"transition", "transition_returning"}


def transition_calls() -> list[tuple[str, ast.Call]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            keywords = {k.arg for k in node.keywords}
            if name in TRANSITIONS and {"from_", "to"} <= keywords:
                found.append((f"{path.relative_to(PACKAGE)}:{node.lineno}", node))
    return found


def literal(node: ast.Call, keyword: str) -> object | None:
    """The keyword's value when it is built from states' names only, else None."""
    expr = next(k.value for k in node.keywords if k.arg == keyword)
    try:
        value: object = eval(compile(ast.Expression(expr), "<arg>", "eval"), {}, NAMESPACE)  # noqa: S307
        return value
    except NameError:
        return None


def test_every_transition_written_in_the_code_is_an_allowed_move() -> None:
    # given every `repo.transition(..., from_=..., to=...)` in the package
    calls = transition_calls()
    assert len(calls) >= 10, "the scan found too few transitions: has the call been renamed?"
    checked = 0
    for where, node in calls:
        # when its states can be read from the source
        from_, to = literal(node, "from_"), literal(node, "to")
        if from_ is None or to is None:
            continue
        # then each of its moves is in ALLOWED
        assert isinstance(to, CallStatus)
        for source in from_:  # type: ignore[attr-defined]
            assert (source, to) in ALLOWED, f"{where}: {source} -> {to} is not allowed"
        checked += 1
    # The rest name their source state at run time; the guard in `transition` checks those.
    assert checked >= 5


def test_a_move_out_of_a_terminal_state_is_refused() -> None:
    for source in TERMINAL:
        for target in CallStatus:
            with pytest.raises(IllegalTransition, match=f"{source.value} -> {target.value}"):
                check_transition({source}, target)


def test_every_state_but_the_terminal_ones_has_a_way_out_and_every_state_a_way_in() -> None:
    sources = {source for source, _ in ALLOWED}
    targets = {target for _, target in ALLOWED}
    assert sources == set(CallStatus) - TERMINAL
    assert targets == set(CallStatus)


def test_a_refused_move_names_every_bad_edge_and_none_of_the_good_ones() -> None:
    with pytest.raises(IllegalTransition) as caught:
        check_transition({CallStatus.DIALING, CallStatus.COMPLETED}, CallStatus.QUEUED)
    assert "completed -> queued" in str(caught.value)
    assert "dialing" not in str(caught.value)
