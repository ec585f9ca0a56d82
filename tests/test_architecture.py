"""The import graph follows the floor plan of docs/architecture.md: no upward or sideways import, no cycle.

The graph is read from the source with ``ast`` (nothing is imported), so a lazy import inside a function and
one under ``TYPE_CHECKING`` count like any other: each is a dependency a reader has to follow.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLAN = ROOT / "docs" / "architecture.md"

Graph = dict[str, set[str]]


def read_floors(text: str) -> dict[str, int]:
    """The ```` ```floors ```` block of the plan: each line a floor number and the parts standing on it."""
    block = re.search(r"```floors\n(.*?)```", text, re.S)
    assert block is not None, f"{PLAN}: no ```floors block"
    floors: dict[str, int] = {}
    for line in block.group(1).splitlines():
        number, *parts = line.split()
        for part in parts:
            assert part not in floors, f"{PLAN}: {part} stands on two floors"
            floors[part] = int(number)
    return floors


def module_names(root: Path) -> dict[str, Path]:
    """Every module of ``bench`` and ``locustfiles`` by dotted name (a package by its ``__init__``).

    The C extension counts by its stub (``bench/_native.pyi``): it has no Python source, but it is a module
    its callers import like any other.
    """
    found: dict[str, Path] = {}
    for path in [*root.glob("bench/**/*.py"), *root.glob("bench/**/*.pyi"), *root.glob("locustfiles/*.py")]:
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imported(node: ast.AST, package: str) -> Iterator[tuple[str, ...]]:
    """What one import statement loads, each as the names to try in turn, most specific first.

    ``from a import b`` loads ``a.b`` when b is a module, else ``a``.
    """
    if isinstance(node, ast.Import):
        yield from ((alias.name,) for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*anchor, *([base] if base else [])])
        yield from ((f"{base}.{alias.name}", base) for alias in node.names)


def import_graph(root: Path) -> Graph:
    """Module -> the modules of this tree it imports, anywhere in its body."""
    modules = module_names(root)

    def resolve(names: tuple[str, ...]) -> str | None:
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                return name
        return None

    graph: Graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(), str(path))
        found = {resolve(names) for node in ast.walk(tree) for names in _imported(node, package)}
        graph[name] = {t for t in found if t is not None and t != name}
    return graph


def part_of(module: str, floors: dict[str, int]) -> str:
    """The part of the plan that holds ``module``: itself, or the part whose modules it is under.

    A part with other parts inside it (``bench``) holds only its own module, so a new folder of ``bench``
    has to be placed on a floor before its imports can pass.
    """
    def holds(part: str) -> bool:
        nested = any(other.startswith(part + ".") for other in floors)
        return module == part or (not nested and module.startswith(part + "."))

    candidates = [p for p in floors if holds(p)]
    assert candidates, f"{module} stands on no floor of {PLAN}: add its part there"
    return max(candidates, key=len)


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan's algorithm), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def part_graph(graph: Graph, floors: dict[str, int]) -> Graph:
    parts: Graph = {}
    for module, targets in graph.items():
        here = part_of(module, floors)
        parts.setdefault(here, set()).update(p for p in (part_of(t, floors) for t in targets) if p != here)
    return parts


def violations(graph: Graph, floors: dict[str, int]) -> Iterable[str]:
    """Each import from a part to a part on its own floor or above, as ``a -> b (floor m -> n)``."""
    for module, targets in sorted(graph.items()):
        here = part_of(module, floors)
        for target in sorted(targets):
            there = part_of(target, floors)
            if there != here and floors[there] >= floors[here]:
                yield f"{module} -> {target} (floor {floors[here]} -> {floors[there]})"


@pytest.fixture(scope="module")
def floors() -> dict[str, int]:
    return read_floors(PLAN.read_text())


@pytest.fixture(scope="module")
def graph() -> Graph:
    return import_graph(ROOT)


def test_every_import_runs_down_the_floors(graph: Graph, floors: dict[str, int]) -> None:
    """No module imports a part on its own floor or above (docs/architecture.md)."""
    assert list(violations(graph, floors)) == []


def test_no_module_cycle(graph: Graph) -> None:
    """No modules of ``bench`` import each other in a loop, lazily or not."""
    assert cycles(graph) == []


def test_no_part_cycle(graph: Graph, floors: dict[str, int]) -> None:
    """No parts of the plan import each other in a loop."""
    assert cycles(part_graph(graph, floors)) == []


def test_the_checks_catch_what_they_forbid() -> None:
    """An upward import and a cycle, written into a scratch graph, are both reported."""
    floors = {"bench.low": 0, "bench.high": 1}
    graph: Graph = {"bench.low.a": {"bench.high.b"}, "bench.high.b": {"bench.low.a"}}
    assert list(violations(graph, floors)) == ["bench.low.a -> bench.high.b (floor 0 -> 1)"]
    assert cycles(graph) == [["bench.high.b", "bench.low.a"]]
    sideways = {"bench.low": 0, "bench.side": 0}
    assert list(violations({"bench.low.a": {"bench.side.c"}}, sideways)) == [
        "bench.low.a -> bench.side.c (floor 0 -> 0)"]


def test_the_graph_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    """An import inside a function and a relative import both become edges."""
    pkg = tmp_path / "bench"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "a.py").write_text("def f():\n    from bench.sub import b\n    return b\n")
    (pkg / "sub" / "b.py").write_text("from . import c\n")
    (pkg / "sub" / "c.py").write_text("")
    got = import_graph(tmp_path)
    assert got["bench.sub.a"] == {"bench.sub.b"}
    assert got["bench.sub.b"] == {"bench.sub.c"}
