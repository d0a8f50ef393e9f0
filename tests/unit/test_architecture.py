"""The package's shape: no module imports another that (even indirectly) imports it back."""

from __future__ import annotations

from typing import ClassVar

import grimp


def strongly_connected(graph: grimp.ImportGraph, modules: set[str]) -> list[set[str]]:
    """Tarjan's algorithm over the direct imports between `modules`."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in graph.find_modules_directly_imported_by(module) & modules:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == module:
                    break
            found.append(component)

    for module in sorted(modules):
        if module not in index:
            visit(module)
    return found


def test_no_two_modules_of_dialq_import_each_other_even_through_others() -> None:
    # given the import graph of every dialq module (imports for type checkers left out)
    graph = grimp.build_graph("dialq", exclude_type_checking_imports=True)
    # Packages import their own submodules by nature; the cycles that matter are between modules.
    modules = {m for m in graph.modules if m.startswith("dialq.") and "." in m}
    assert len(modules) > 100
    # when its strongly connected components are computed
    cycles = [c for c in strongly_connected(graph, modules) if len(c) > 1]
    # then every module stands in a component of its own
    assert cycles == []


def test_the_cycle_finder_finds_a_cycle_when_there_is_one() -> None:
    class Graph:
        imports: ClassVar[dict[str, set[str]]] = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}

        def find_modules_directly_imported_by(self, module: str) -> set[str]:
            return self.imports[module]

    components = strongly_connected(Graph(), {"a", "b", "c", "d"})  # type: ignore[arg-type]
    assert {"a", "b", "c"} in components
    assert {"d"} in components
