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
    assert "batch_tasks.run.run" in order and "batch_tasks.run.lifecycle" in order  # the whole package was read


# The package's folders, from the bottom up: the tree is the map of its layers. The few
# modules at the package's top (errors, events, redaction, formats…) are the ground floor.
LAYERS = ["batch_tasks", "agents", "plan", "state", "repository", "processes", "isolation", "tasks", "executors",
          "landing", "run", "views", "commands"]


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else "batch_tasks"


def test_every_module_is_in_a_layer_and_imports_only_below_its_own():
    graph = imports()
    assert {layer(module) for module in graph} == set(LAYERS), "a folder that is no layer, or a layer with no module"
    upward = [f"{module} -> {imported}" for module, found in graph.items() for imported in found
              if LAYERS.index(layer(imported)) > LAYERS.index(layer(module))]
    assert not upward, "imports up a layer:\n" + "\n".join(sorted(upward))
