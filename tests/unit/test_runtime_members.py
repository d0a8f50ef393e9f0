"""The Runtime's members are built once, by whichever thread asks first, and two threads asking
for members that need each other at the same moment never wait on each other forever."""

from __future__ import annotations

import threading
from typing import Any

from dialq.config import Settings
from dialq.runtime import Runtime, built_once


class _Publisher:
    def publish(self, task: str, call_id: str, countdown_s: float = 0.0) -> None:
        raise AssertionError("nothing is published here")


class TwoMembers(Runtime):
    """`outer` needs `inner`, like the schedule tick needs the call service."""

    def __init__(self) -> None:
        super().__init__(Settings(), _Publisher())
        self.outer_building = threading.Event()
        self.inner_asked = threading.Event()
        self.builds: list[str] = []

    @built_once
    def outer(self) -> tuple[str, str]:
        def make() -> tuple[str, str]:
            self.builds.append("outer")
            self.outer_building.set()
            self.inner_asked.wait(5)  # another thread is asking for `inner` now
            return "outer", self.inner

        return self._build("outer", make)  # type: ignore[return-value]

    @built_once
    def inner(self) -> str:
        self.inner_asked.set()

        def make() -> str:
            self.builds.append("inner")
            return "inner"

        return self._build("inner", make)  # type: ignore[return-value]


def test_two_threads_asking_for_members_that_need_each_other_both_get_them_once() -> None:
    runtime = TwoMembers()
    got: dict[str, Any] = {}
    # given a thread building `outer`, which will need `inner`
    first = threading.Thread(target=lambda: got.setdefault("outer", runtime.outer), daemon=True)
    first.start()
    assert runtime.outer_building.wait(5)
    # when another thread asks for `inner` at that moment
    second = threading.Thread(target=lambda: got.setdefault("inner", runtime.inner), daemon=True)
    second.start()
    first.join(10)
    second.join(10)
    # then both finish (on Python 3.11, functools.cached_property deadlocked here), each
    # member was built once, and later reads return the same objects
    assert not first.is_alive(), "the two threads deadlocked"
    assert not second.is_alive(), "the two threads deadlocked"
    assert got == {"outer": ("outer", "inner"), "inner": "inner"}
    assert sorted(runtime.builds) == ["inner", "outer"]
    assert runtime.outer is got["outer"]
