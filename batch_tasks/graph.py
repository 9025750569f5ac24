"""The batch's dependency graph, as text for people and as Graphviz dot for pictures."""

from __future__ import annotations

from .plan import Plan


def waits_for(plan: Plan, item) -> str:
    """What an item waits for, in words: whole groups by name, else items."""
    names = plan.task_dep(item)
    return ", ".join(f"all of {name}" if ":" not in name else name for name in names) or "nothing"


def as_text(plan: Plan) -> str:
    lines = []
    for group in plan.groups:
        hints = [f"{key}: {group.settings[key]}" for key in ("pipeline", "after") if group.settings.get(key)]
        lines.append(f"{group.slug}" + (f"  ({', '.join(hints)})" if hints else ""))
        for item in group.items:
            lines.append(f"  {item.key}  ← {waits_for(plan, item)}")
    return "\n".join(lines) + "\n"


def as_dot(plan: Plan) -> str:
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
    lines.append("}")
    return "\n".join(lines) + "\n"
