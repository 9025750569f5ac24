"""Ticking an item whose state is a status field rather than a checkbox: a task of
Taskmaster's tasks.json (`"status": "done"`), a todo of a Cursor plan's front matter
(`status: completed`).

Touches the task file (and the tick lock), as checkbox does: under the lock, the file is
read, the one status value is rewritten in its text (json_positions, PyYAML's marks say
where), and the text is written back whole or not at all (a new file renamed over it),
unless the file changed meanwhile, when it is read again. Every other byte stays as it
was; a user's edit made meanwhile is kept. A Taskmaster task all of whose subtasks are
done is set done with its last one, as Taskmaster's own tools do.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..plan.plan import Item
from .state import file_lock, write_atomic

ATTEMPTS = 5
BOM = "\ufeff"
# The value each kind writes: done, and not done.
VALUES = {"taskmaster": ("done", "pending"), "cursor": ("completed", "pending")}


def set_status(taskfile: Path, item: Item, done: bool, lock: Path) -> bool:
    """Set the item's status in the file; False when the item is no longer in it."""
    kind = item.status_at[0]
    value = VALUES[kind][0 if done else 1]
    with file_lock(lock):
        for _ in range(ATTEMPTS):
            try:
                before = os.stat(taskfile)
                text = Path(taskfile).read_bytes().decode("utf-8")
            except (OSError, UnicodeDecodeError):
                return False
            edits = _edits(kind, text, item.status_at[1:], value)
            if edits is None:
                return False
            if not edits:
                return True
            changed = text
            for start, end, new in sorted(edits, reverse=True):
                changed = changed[:start] + new + changed[end:]
            now = os.stat(taskfile)
            if (now.st_mtime_ns, now.st_size, now.st_ino) != (before.st_mtime_ns, before.st_size, before.st_ino):
                continue  # changed while we read it: read it again
            write_atomic(taskfile, changed)
            os.chmod(taskfile, before.st_mode & 0o7777)
            return True
    return False


def _edits(kind: str, text: str, where: tuple[str, ...], value: str) -> list[tuple[int, int, str]] | None:
    """(start, end, new text) of each rewrite; [] when nothing needs one; None when the item is gone."""
    try:
        return (_taskmaster if kind == "taskmaster" else _cursor)(text, where, value)
    except (ValueError, KeyError, IndexError, TypeError, RecursionError):
        return None  # the file is no longer what it was: the tick waits for the next run


def _taskmaster(text: str, where: tuple[str, ...], value: str) -> list[tuple[int, int, str]] | None:
    from ..json_positions import parse

    tag, task_id, sub_id = where
    skip = len(BOM) if text.startswith(BOM) else 0
    json.loads(text[skip:])  # raises what is no JSON any more
    root = parse(text, skip)
    holder = root.members[tag] if tag else root
    task = _with_id(holder.members["tasks"].elements, task_id)
    if task is None:
        return None
    target = task
    if sub_id:
        subtasks = task.members["subtasks"].elements
        target = _with_id(subtasks, sub_id)
        if target is None:
            return None
    edits = _set(target, value)
    if sub_id and value == "done":
        others = [s for s in subtasks if s is not target]
        if all(_status_of(s) in ("done", "completed", "cancelled") for s in others):
            edits += _set(task, "done")
    return edits


def _with_id(nodes, wanted: str):
    for node in nodes:
        found = node.members.get("id")
        if found is not None and str(found.value) == wanted:
            return node
    return None


def _status_of(node) -> str:
    found = node.members.get("status")
    return str(found.value).lower() if found is not None else "pending"


def _set(node, value: str) -> list[tuple[int, int, str]]:
    """The edit that gives the object this status: its value replaced, or a member added after its id."""
    status = node.members.get("status")
    if status is not None:
        return [] if status.value == value else [(status.start, status.end, json.dumps(value))]
    after = node.members["id"].end
    return [(after, after, f', "status": {json.dumps(value)}')]


def _cursor(text: str, where: tuple[str, ...], value: str) -> list[tuple[int, int, str]] | None:
    """A todo's `status:` in the YAML front matter, found by its `id`, through PyYAML's marks."""
    import yaml

    skip = len(BOM) if text.startswith(BOM) else 0
    if not text.startswith("---", skip):
        return None
    start = text.index("\n", skip) + 1
    end = next((m for m in _line_starts(text, start) if text[m:m + 3] in ("---", "...")
                and text[m + 3:m + 4] in ("", "\n", "\r")), None)
    if end is None:
        return None
    document = yaml.compose(text[start:end])
    todos = next((v for k, v in document.value if k.value == "todos"), None)
    for todo in todos.value if todos is not None else ():
        fields = {k.value: v for k, v in todo.value}
        if "id" in fields and str(fields["id"].value) == where[0]:
            status = fields.get("status")
            if status is None:
                return None
            if status.value == value:
                return []
            first, last = start + status.start_mark.index, start + status.end_mark.index
            quote = text[first] if text[first] in "'\"" else ""
            return [(first, last, f"{quote}{value}{quote}")]
    return None


def _line_starts(text: str, start: int):
    at = start
    while at < len(text):
        yield at
        newline = text.find("\n", at)
        if newline < 0:
            return
        at = newline + 1
