"""The Cursor plan dialect (`.cursor/plans/*.plan.md`): the front matter's `todos` (id,
content, status, dependencies) are the items, in their order, one at a time; the plan
below is what every item is told. A todo whose status is `completed` is done, a
`cancelled` one is not run. The tick is the todo's `status: completed`, written in the
front matter as Cursor does (status_field); a todo without an `id` cannot be found there
again: its state is kept in the state folder only, and a note says so.
"""

from __future__ import annotations

from pathlib import Path

from ..outline import Outline
from .drafts import DraftGroup, DraftItem, Reading

NAME = "cursor"


def _todos(outline: Outline) -> list | None:
    if not outline.body_start:
        return None
    import yaml

    try:
        front = yaml.safe_load("\n".join(outline.lines[1 : outline.body_start - 1]))
    except yaml.YAMLError:
        return None
    todos = front.get("todos") if isinstance(front, dict) else None
    return todos if isinstance(todos, list) and all(isinstance(t, dict) for t in todos) else None


def cue(outline: Outline, path: Path) -> str | None:
    todos = _todos(outline)
    if todos and (path.name.endswith(".plan.md") or ".cursor" in path.parts):
        return f"its front matter's todos ({len(todos)}), in a Cursor plan"
    return None


def read(outline: Outline, path: Path) -> Reading:
    todos = _todos(outline) or []
    title = next((h for h in outline.headings if h.level == 1), None)
    reading = Reading([], preamble=outline.text(title.line + 1, len(outline.lines)) if title else "")
    group = DraftGroup(title, ordered=True, headings={title.index} if title else set())
    seen: set[str] = set()
    for number, todo in enumerate(todos):
        key = str(todo.get("id") or f"todo-{number + 1}")
        line = _line_of(outline, key)
        status = str(todo.get("status") or "pending").lower()
        for needed in todo.get("dependencies") or ():
            if str(needed) not in seen:
                reading.warnings.append((line, f"todo {key!r} depends on {needed!r}, which does not come before it: "
                                         "todos run in their order"))
        seen.add(key)
        if status in ("cancelled", "canceled"):
            reading.notes.append((line, f"todo {key!r} is cancelled: not run"))
            continue
        named = todo.get("id") not in (None, "")
        if not named:
            reading.notes.append((line, f"todo {number + 1} has no id: its status in the file is left as it is; its "
                                  "state is kept in the state folder only"))
        group.items.append(DraftItem(
            text=str(todo.get("content") or key), body="", done=status == "completed", line=line, source_line="",
            module=key, boxless=not named, status_at=("cursor", key) if named else (),
        ))
    if group.items:
        reading.groups.append(group)
    return reading


def _line_of(outline: Outline, key: str) -> int:
    for number, text in enumerate(outline.lines[: outline.body_start], 1):
        if text.strip().lstrip("- ").replace('"', "").replace("'", "") == f"id: {key}":
            return number
    return 1
