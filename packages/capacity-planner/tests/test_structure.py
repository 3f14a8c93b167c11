"""The package's module graph: every module imports alone, no cycles, no hidden imports.

A function-level import is how a cycle hides (the module loads, then fails at call
time), so the graph below counts imports at any depth, and it must be acyclic.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import capacity_planner

PKG = Path(capacity_planner.__file__).resolve().parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _targets(node: ast.Import | ast.ImportFrom, module: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:
        pkg = module.split(".")
        if MODULES[module].name != "__init__.py":
            pkg = pkg[:-1]
        base = ".".join(pkg[: len(pkg) - node.level + 1] + ([base] if base else []))
    names = [f"{base}.{a.name}" for a in node.names]
    return [n if n in MODULES else base for n in names]


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        deps: set[str] = set()
        # Function-level imports count too: that is where a cycle hides.
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                deps.update(t for t in _targets(node, module) if t in MODULES and t != module)
        graph[module] = deps
    return graph


def test_import_graph_is_acyclic() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, stack: list[str]) -> bool:
        state[node] = 1
        for dep in sorted(graph[node]):
            # A package's __init__ importing its own submodules is not a cycle of design.
            if dep.startswith(node + "."):
                continue
            if state.get(dep) == 1:
                cycle.extend([*stack, node, dep])
                return True
            if state.get(dep) is None and visit(dep, [*stack, node]):
                return True
        state[node] = 2
        return False

    for node in sorted(graph):
        if state.get(node) is None and visit(node, []):
            break
    assert cycle == []


@pytest.mark.parametrize("module", sorted(m for m in MODULES if not m.endswith("__main__")))
def test_every_module_imports_alone(module: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
