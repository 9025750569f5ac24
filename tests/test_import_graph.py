"""The modules of batch_tasks import one another one way only: no module imports one that
imports it back, counting imports at run time, in functions and for type checking alike."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "batch_tasks"


def imports() -> dict[str, set[str]]:
    """Each module's name, and the modules of the package it imports."""
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in names.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = ".".join(package[:len(package) - node.level + 1] + [node.module or ""]).strip(".") \
                    if node.level else node.module
                found |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in names else base for alias in node.names}
        graph[name] = {module for module in found if module in names and module != name}
    return graph


def test_no_module_imports_one_that_imports_it_back():
    try:
        order = list(graphlib.TopologicalSorter(imports()).static_order())
    except graphlib.CycleError as error:
        raise AssertionError(f"an import circle: {' -> '.join(error.args[1])}") from None
    assert "batch_tasks.run" in order and "batch_tasks.lifecycle" in order  # the whole package was read
