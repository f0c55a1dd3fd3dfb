"""The layout tells the call's story: dependencies point down, no cycles, no hidden imports.

Read from the source (ast), so a wrong import fails here before it hides in a function.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import smartpbx_ari

pytestmark = pytest.mark.unit
ROOT = Path(smartpbx_ari.__file__).parent
PACKAGE = "smartpbx_ari"

# package -> packages of ours it must never import
FORBIDDEN = {
    "media": {"telephony", "ai", "web", "store", "call", "sipcaller", "cli"},
    "call": {"telephony", "web", "store", "sipcaller", "cli"},
    "web": {"telephony", "sipcaller", "cli"},
    "ai": {"telephony", "web", "call", "sipcaller", "cli"},
    "store": {"telephony", "web", "call", "ai", "sipcaller", "cli"},
    "telephony": {"web", "sipcaller", "cli"},
    "sipcaller": {"telephony", "web", "store", "call", "cli"},
}
BOTTOM = {"config", "events", "errors"}  # import nothing of ours but each other


def _modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(ROOT.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), ast.parse(path.read_text(), str(path))


def _ours(node: ast.AST, module: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == PACKAGE]
    if isinstance(node, ast.ImportFrom):
        if node.level:  # relative: resolve against the importing package
            base = module.split(".")[: -node.level]
            name = ".".join(base + ([node.module] if node.module else []))
        else:
            name = node.module or ""
        if name.split(".")[0] != PACKAGE:
            return []
        # "from pkg import mod" imports a module when mod is one
        subs = [f"{name}.{a.name}" for a in node.names]
        return [s for s in subs if _is_module(s)] or [name]
    return []


def _is_module(name: str) -> bool:
    path = ROOT.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _top_level_imports(module: str, tree: ast.Module) -> set[str]:
    return {name for node in tree.body for name in _ours(node, module)} | {
        name for node in tree.body if isinstance(node, ast.If)  # no TYPE_CHECKING tricks
        for inner in ast.walk(node) for name in _ours(inner, module)}


def _all_imports(module: str, tree: ast.Module) -> set[str]:
    return {name for node in ast.walk(tree) for name in _ours(node, module)}


GRAPH = {module: _top_level_imports(module, tree) for module, tree in _modules()}
# with the imports made inside functions: a lazy import must not hide a cycle either
FULL_GRAPH = {module: _all_imports(module, tree) for module, tree in _modules()}
LAZY_OK = {"cli"}  # a command imports its wiring when it runs (start-up time), nothing else


def _area(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_dependencies_point_down(module: str) -> None:
    area = _area(module)
    bad = sorted(m for m in GRAPH[module] if _area(m) in FORBIDDEN.get(area, ()))
    assert not bad, f"{module} imports {bad}"
    if area in BOTTOM:
        assert {_area(m) for m in GRAPH[module]} <= BOTTOM, GRAPH[module]


def test_no_imports_inside_functions_or_type_checking() -> None:
    hidden = []
    for module, tree in _modules():
        if _area(module) in LAZY_OK:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                hidden += [f"{module}.{node.name}: {name}" for inner in ast.walk(node)
                           for name in _ours(inner, module)]
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                hidden.append(f"{module}: TYPE_CHECKING import")
    assert hidden == []


@pytest.mark.smoke
def test_no_import_cycles() -> None:
    state: dict[str, int] = {}  # 1 = on the path, 2 = done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for dep in sorted(FULL_GRAPH.get(module, ())):
            if dep == module or dep not in FULL_GRAPH:
                continue
            if state.get(dep) == 1:
                cycle = [*path[path.index(dep):], dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        path.pop()
        state[module] = 2

    for module in sorted(FULL_GRAPH):
        if module not in state:
            visit(module)
