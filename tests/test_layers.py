"""The architecture holds: imports point down the layers, and there is no import circle.

Reads every module of the package's rooms with ``ast`` (function-local imports count too;
imports under ``if TYPE_CHECKING:`` do not run and are left out) and checks:

- each room imports only the rooms below it (docs/architecture.md):
  ``model`` nothing; ``sim`` only ``model``; ``reports`` nothing (result tables only);
  ``explorer`` only ``model``; ``cli`` anything; the front door (``releasesim/``) only
  what its modules document;
- the module graph has no strongly connected component of more than one module (Tarjan).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROOMS = {"model": "model", "sim": "sim", "reports": "reports", "explorer": "explorer",
         "cli": "cli", "scenarios": "scenarios"}
ALLOWED: dict[str, set[str]] = {
    "model": set(),
    "sim": {"model"},
    "reports": set(),
    "explorer": {"model"},
    "cli": {"model", "sim", "reports", "explorer"},
    "scenarios": set(),
}


def _modules() -> dict[str, Path]:
    """``releasesim.<room>.<module>`` -> file, for every module of every room."""
    out: dict[str, Path] = {}
    for room, folder in ROOMS.items():
        for path in (ROOT / folder).rglob("*.py"):
            if "__pycache__" in path.parts:
                continue
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            name = ".".join(("releasesim", room, *parts)).removesuffix(".__init__")
            out[name] = path
    return out


MODULES = _modules()


def _runtime_imports(path: Path) -> set[str]:
    """Absolute ``releasesim.*`` names imported by the module at run time."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_checking: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_checking.update(id(sub) for sub in ast.walk(node))
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in type_checking:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {n for n in names if n.startswith("releasesim.")}


def _resolve(name: str) -> str | None:
    parts = name.split(".")
    for cut in range(len(parts), 1, -1):
        candidate = ".".join(parts[:cut])
        if candidate in MODULES:
            return candidate
    return None


GRAPH = {
    module: {target for name in _runtime_imports(path) if (target := _resolve(name))}
    - {module}
    for module, path in MODULES.items()
}


def test_the_rooms_are_all_there() -> None:
    rooms = {name.split(".")[1] for name in MODULES}
    assert rooms == set(ROOMS)
    assert len(MODULES) > 60


@pytest.mark.parametrize("room", sorted(ALLOWED))
def test_imports_point_down_the_layers(room: str) -> None:
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items() if module.split(".")[1] == room
        for target in targets
        if target.split(".")[1] != room and target.split(".")[1] not in ALLOWED[room]
    )
    assert not wrong, "\n".join(wrong)


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
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
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def test_no_import_circle() -> None:
    assert _circles(GRAPH) == []


def test_the_circle_check_finds_a_circle() -> None:
    """The check itself can fail: a graph with a planted circle is reported."""
    planted = {name: set(targets) for name, targets in GRAPH.items()}
    planted["releasesim.sim.world"].add("releasesim.sim.runner")  # runner -> world already
    assert ["releasesim.sim.runner", "releasesim.sim.world"] in _circles(planted)
