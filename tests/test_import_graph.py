"""The project's modules import each other without cycles and without reaching for another
module's private (leading-underscore) names. Every import counts, also one inside a function:
an import moved into a function to dodge a cycle is still a cycle."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("absenteeism", "penguins", "etl_job", "feature_service", "clients", "testkit", "bench", "tools")


def project_modules() -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the project's packages."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> Iterator[tuple[str, str | None, int]]:
    """(imported project module, name imported from it or None, line) for every import in the file."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, path, node)
            for alias in node.names:
                if f"{source}.{alias.name}" in modules:  # a submodule
                    yield f"{source}.{alias.name}", None, node.lineno
                elif source in modules:
                    yield source, alias.name, node.lineno


def import_graph() -> tuple[dict[str, set[str]], list[str]]:
    """Edges between project modules, and each import of a private name from another module."""
    modules = project_modules()
    edges: dict[str, set[str]] = {name: set() for name in modules}
    private = []
    for module, path in modules.items():
        for target, name, line in imports_of(module, path, modules):
            if target != module:
                edges[module].add(target)
            if name is not None and name.startswith("_") and not name.startswith("__") and target != module:
                private.append(f"{path.relative_to(ROOT)}:{line}: imports {name} from {target}")
    return edges, private


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def _describe(component: list[str], edges: dict[str, set[str]]) -> str:
    members = set(component)
    inside = [f"    {source} -> {target}" for source in component for target in sorted(edges[source] & members)]
    return "cycle among " + ", ".join(component) + ":\n" + "\n".join(inside)


def test_the_walk_sees_imports_inside_functions():
    edges, _ = import_graph()
    assert "etl_job.dag" in edges["etl_job.cli"]  # imported inside a function (graphviz only there)
    assert "etl_job.chunk_steps" in edges["etl_job.local_engine"]


def test_no_import_cycle_among_project_modules():
    edges, _ = import_graph()
    found = cycles(edges)
    assert not found, "\n".join(_describe(component, edges) for component in found)


def test_no_module_imports_a_private_name_of_another():
    _, private = import_graph()
    assert not private, "private names imported across modules:\n" + "\n".join(private)


def test_module_names_are_unique_in_the_project():
    """A name says which module it is without its package: no `profile` here and `profile` there
    to alias on import (generated stubs, __init__ and __main__ aside)."""
    by_name: dict[str, list[str]] = {}
    for module, path in project_modules().items():
        if path.name not in ("__init__.py", "__main__.py") and ".v1." not in module:
            by_name.setdefault(path.stem, []).append(module)
    repeated = {name: modules for name, modules in by_name.items() if len(modules) > 1}
    assert not repeated, f"module names used more than once: {repeated}"
