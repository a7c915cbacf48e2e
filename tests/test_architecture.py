"""The structure the README promises, checked on the code itself (imports read with ast).

- Layers point one way: nothing in relabel/ (the automatic side) imports review/ (the human side).
- Only relabel/tasks/ and agenther_site/ import Celery: the pipeline never knows it runs in a task.
- No two product modules import each other, directly or round a longer circle.
- No product function is over 50 lines.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("agenther_site", "relabel", "review")
MAX_FUNCTION_LINES = 50


def product_files() -> Iterator[Path]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(tree: ast.AST) -> Iterator[tuple[str, list[str]]]:
    """(module, names) of every import, at any depth (imports inside functions count too)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module, [alias.name for alias in node.names]


def import_graph() -> dict[str, set[str]]:
    """Product module -> the product modules it imports (``from pkg import mod`` is mod)."""
    files = {module_name(p): p for p in product_files()}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        for module, names in imported_names(ast.parse(path.read_text())):
            targets = [f"{module}.{n}" for n in names if f"{module}.{n}" in files]
            if len(targets) < len(names) or not names:
                targets.append(module)
            graph[name] |= {t for t in targets if t in files and t != name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while (member := stack.pop()) != node:
                component.append(member)
            component.append(node)
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_automatic_side_never_imports_the_human_side():
    offenders = [
        f"{module_name(path)} imports {module}"
        for path in product_files()
        if module_name(path).startswith("relabel")
        for module, _ in imported_names(ast.parse(path.read_text()))
        if module == "review" or module.startswith("review.")
    ]
    assert offenders == []


def test_only_the_task_layer_imports_celery():
    allowed = ("relabel.tasks", "agenther_site")
    offenders = [
        module_name(path)
        for path in product_files()
        for module, _ in imported_names(ast.parse(path.read_text()))
        if module.split(".")[0] == "celery" and not module_name(path).startswith(allowed)
    ]
    assert offenders == []


def test_no_modules_import_each_other():
    assert circles(import_graph()) == []


def test_the_circle_finder_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]


def test_no_product_function_is_over_fifty_lines():
    long = [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1})"
        for path in product_files()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []
