"""Issue #20: a beat tick that did nothing leaves no INFO line (Celery's own lines, as Celery
writes them, through dialq's log setup)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from celery.app.trace import LOG_RECEIVED, LOG_SUCCESS

from dialq.ops.logs import configure

IDLE_DISPATCH = "{'due': 0, 'placed': 0, 'skipped: late': 0, 'already_handled': 0}"


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield
    root.handlers[:], root.level = saved[0], saved[1]


def log_task_line(template: str, name: str, result: str = "None") -> None:
    # What celery.worker.strategy and celery.app.trace pass: one dict of fields.
    fields = {"id": "t-1", "name": name, "runtime": 0.01, "return_value": result}
    logging.getLogger("celery.app.trace").info(template, fields)


@pytest.mark.parametrize(
    ("template", "task", "result", "shown"),
    [
        (LOG_RECEIVED, "dialq.dispatch_schedules", "None", False),
        (LOG_SUCCESS, "dialq.dispatch_schedules", IDLE_DISPATCH, False),
        (
            LOG_SUCCESS,
            "dialq.dispatch_schedules",
            IDLE_DISPATCH.replace("'placed': 0", "'placed': 2"),
            True,
        ),
        (LOG_RECEIVED, "dialq.sweep", "None", False),
        (LOG_SUCCESS, "dialq.sweep", "{'stale_dialing': 0, 'dials_republished': 0}", False),
        (LOG_SUCCESS, "dialq.sweep", "{'stale_dialing': 0, 'dials_republished': 3}", True),
        (LOG_SUCCESS, "dialq.sweep_insights", "0", False),
        (LOG_SUCCESS, "dialq.sweep_webhooks", "1", True),
        (LOG_RECEIVED, "dialq.dial", "None", True),
        (LOG_SUCCESS, "dialq.dial", "'connected'", True),
    ],
)
def test_tick_lines_at_info(
    root_logging: None,
    capsys: pytest.CaptureFixture[str],
    template: str,
    task: str,
    result: str,
    shown: bool,
) -> None:
    # given dialq's log setup at INFO, as `dialq worker` runs it
    configure("text", "INFO")
    # when Celery logs a task's receipt or success
    log_task_line(template, task, result)
    # then a tick's receipt and an idle tick's success are not shown; everything else is
    assert (f"INFO celery.app.trace: Task {task}[t-1]" in capsys.readouterr().err) is shown


def test_at_debug_an_idle_tick_is_still_there_as_a_debug_line(
    root_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure("text", "DEBUG")
    log_task_line(LOG_SUCCESS, "dialq.dispatch_schedules", IDLE_DISPATCH)
    assert "DEBUG celery.app.trace: Task dialq.dispatch_schedules[t-1] succeeded" in (
        capsys.readouterr().err
    )
