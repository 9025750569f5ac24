"""The batch's dependency graph, as text for people and as Graphviz dot for pictures; and
which items the dispatcher keeps apart, being predicted to touch one file (see touches)."""

from __future__ import annotations

from typing import Mapping

from ..plan.plan import Plan
from ..state.touches import Claims

Apart = Mapping[str, list[tuple[str, str]]]  # item → (an item it is kept apart from, the file both touch)


def waits_for(plan: Plan, item) -> str:
    """What an item waits for, in words: whole groups by name, else items."""
    names = plan.task_dep(item)
    return ", ".join(f"all of {name}" if ":" not in name else name for name in names) or "nothing"


def kept_apart(plan: Plan, predicted: Mapping[str, frozenset[str]]) -> dict[str, list[tuple[str, str]]]:
    """For each item, the earlier items it is kept apart from: predicted to touch a file it
    will touch, and else free to run at the same time (neither waits for the other)."""
    position = {item.key: number for number, item in enumerate(plan.items())}
    claims, apart = Claims(), {}
    for item in plan.items():
        files = predicted.get(item.key)
        if not files:
            continue
        for other, path in claims.clashes(item.key, sorted(files)):
            if not _waits_on(plan, item, other, position):
                apart.setdefault(item.key, []).append((other, path))
        claims.hold(item.key, files)
    return apart


def _waits_on(plan: Plan, later, earlier: str, position: Mapping[str, int]) -> bool:
    """Whether LATER waits for item EARLIER, through any chain of items (those before EARLIER
    in the file cannot lead to it: items only wait for items above them)."""
    floor, stack, visited = position[earlier], [later], set()
    while stack:
        for member in plan.upstream(stack.pop()):
            if member.key == earlier:
                return True
            if position[member.key] > floor and member.key not in visited:
                visited.add(member.key)
                stack.append(member)
    return False


def as_text(plan: Plan, apart: Apart | None = None) -> str:
    lines = []
    for group in plan.groups:
        hints = [f"{key}: {group.settings[key]}" for key in ("pipeline", "after") if group.settings.get(key)]
        lines.append(f"{group.slug}" + (f"  ({', '.join(hints)})" if hints else ""))
        for item in group.items:
            lines.append(f"  {item.key}  ← {waits_for(plan, item)}")
            if apart and item.key in apart:
                lines.append(f"      kept apart from {apart_from(apart[item.key])}")
    return "\n".join(lines) + "\n"


def apart_from(others: list[tuple[str, str]]) -> str:
    """`a:x (both touch src/x.py), b:y (both touch y.md)`"""
    return ", ".join(f"{key} (both touch {path})" for key, path in others)


def as_dot(plan: Plan, apart: Apart | None = None) -> str:
    """Items in one box per group; an edge from a group box stands for all of its items."""
    lines = ["digraph batch {", "  compound=true;", "  rankdir=LR;", "  node [shape=box, fontsize=10];"]
    for number, group in enumerate(plan.groups):
        lines.append(f'  subgraph "cluster_{group.slug}" {{')
        lines.append(f'    label="{group.title}";')
        for item in group.items:
            lines.append(f'    "{item.key}";')
        lines.append("  }")
    anchors = {group.slug: group.items[0].key for group in plan.groups}
    for item in plan.items():
        for name in plan.task_dep(item):
            if ":" in name:
                lines.append(f'  "{name}" -> "{item.key}";')
            else:
                lines.append(f'  "{anchors[name]}" -> "{item.key}" [ltail="cluster_{name}"];')
    for key, others in (apart or {}).items():
        for other, path in others:
            label = path.replace("\\", "\\\\").replace('"', '\\"')
            lines.append(f'  "{other}" -> "{key}" [style=dashed, dir=none, constraint=false, label="{label}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"
