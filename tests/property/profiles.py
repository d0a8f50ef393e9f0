"""Hypothesis profiles for the property tests, applied per test so no other suite changes.

Pure properties run more examples; properties that touch Redis, a database or a process run
few, without a deadline (I/O time varies with the machine). Under CI the examples are
derandomized, so a run is repeatable; locally each run explores new ones. No example database is
written: a failure prints the blob that reproduces it (``@reproduce_failure``).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_CI = bool(os.environ.get("CI"))

settings.register_profile(
    "dialq-pure",
    max_examples=300,
    deadline=None,
    derandomize=_CI,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dialq-io",
    parent=settings.get_profile("dialq-pure"),
    max_examples=40,
    # Function-scoped fixtures (a private Redis, a database) are shared by the examples on
    # purpose: each example checks what it changed, not an empty world.
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)

PURE = settings.get_profile("dialq-pure")
IO = settings.get_profile("dialq-io")
