"""The Taskmaster dialect (`.taskmaster/tasks/tasks.json`; older projects keep a flat
`tasks/tasks.json`): JSON, not markdown. Read as Taskmaster means it:

- The tasks of one tag (`{"master": {"tasks": [...]}}`: the current tag of
  `.taskmaster/state.json`, else `master`), or of the older `{"tasks": [...]}`.
- A task with `subtasks` is done by them: each subtask is an item (`3.2`), told its parent
  task; a task without is an item itself (`3`). A task's `dependencies` are task ids, a
  subtask's are its siblings' ids (`1`), or `"3.1"` in full.
- They run one at a time, in the order Taskmaster's `next` gives them: of the tasks whose
  dependencies are done, the highest `priority`, then the fewest dependencies, then the
  lowest id; a task's subtasks in their dependencies' order, before the next task.
- `done` is done; only `pending` and `in-progress` ones run (as `next` picks them):
  `deferred`, `cancelled`, `blocked`, `review` are not run, nor what waits for them, each
  with a note at its line.
- Each item's instruction is its title, description, details, test strategy and priority.
- The tick is its `"status"` set to `"done"` in the file (status_field), all else as it was.

Only reads the text it is given; the lines of its notes are the file's.
"""

from __future__ import annotations

import json
from pathlib import Path

from ...errors import TaskFileError
from ...json_positions import Node, line_of, parse
from ..outline import Heading, Outline
from .drafts import DraftGroup, DraftItem, Reading

NAME = "taskmaster"
DONE = ("done", "completed")
RUN = ("pending", "in-progress", "in_progress", "todo")
PRIORITY = {"critical": 0, "high": 1, "medium": 2, "low": 3}


def is_json(path: Path, text: str) -> bool:
    return path.suffix.lower() == ".json" or text.lstrip().startswith(("{", "["))


def read(text: str, lines: list[str], path: Path) -> tuple[Outline, Reading, str]:
    """The outline (one heading, the tag's), the reading, and why it was read so, in words."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise TaskFileError(path, error.lineno, f"is not valid JSON: {error.msg} (column {error.colno})") from None
    except RecursionError:
        raise TaskFileError(path, 1, "is JSON nested too deeply to be a task list") from None
    tag, why = _tag(data, path)
    root = parse(text)
    holder = root.members[tag] if tag is not None else root
    tasks_node = holder.members["tasks"]
    where = line_of(text, holder.keys["tasks"])
    heading = Heading(0, where, 2, tag or "tasks", lines[where - 1], None)
    outline = Outline(lines, [heading], [], [], [], [], 0)
    reading = Reading([], preamble=_preamble(data, tag))
    tasks = list(zip(tasks_node.elements, _holder(data, tag)["tasks"]))
    group = DraftGroup(heading, ordered=True, headings={0})
    _Order(text, path, tag, tasks, reading).into(group)
    if not group.items:
        raise TaskFileError(path, where, f"none of its {len(tasks)} tasks is pending, in progress or done: "
                            "nothing to run")
    reading.groups.append(group)
    return outline, reading, f"read as Taskmaster's tasks.json: {why}"


def _holder(data, tag):
    return data[tag] if tag is not None else data


def _tag(data, path: Path) -> tuple[str | None, str]:
    """The tag whose tasks run (None: the older flat file), and why."""
    if isinstance(data, dict) and isinstance(data.get("tasks"), list):
        return None, 'its "tasks" list'
    tags = [key for key, value in data.items() if isinstance(value, dict) and isinstance(value.get("tasks"), list)] \
        if isinstance(data, dict) else []
    if not tags:
        raise TaskFileError(path, 1, 'is JSON but not Taskmaster\'s tasks.json (no "tasks" list, at its top or under a '
                            'tag such as "master"): it is not read; nothing ran, nothing changed')
    current = _current_tag(path)
    for chosen, reason in ((current, "the current tag in .taskmaster/state.json"), ("master", "the master tag")):
        if chosen in tags:
            others = f"; not run: the tags {', '.join(t for t in tags if t != chosen)}" if len(tags) > 1 else ""
            return chosen, f'the tasks of tag "{chosen}", {reason}{others}'
    return tags[0], f'the tasks of tag "{tags[0]}", its first' + (
        f"; not run: the tags {', '.join(tags[1:])}" if len(tags) > 1 else "")


def _current_tag(path: Path) -> str | None:
    try:
        state = json.loads((path.parent.parent / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state.get("currentTag") if isinstance(state, dict) else None


def _preamble(data, tag) -> str:
    metadata = _holder(data, tag).get("metadata")
    return str(metadata.get("description") or "") if isinstance(metadata, dict) else ""


def _listed(value, name: str) -> list:
    """A list member of a task (its dependencies, its subtasks); anything else is none."""
    found = value.get(name) if isinstance(value, dict) else None
    return found if isinstance(found, list) else []


def _priority(value: dict) -> int:
    return PRIORITY.get(str(value.get("priority") or "medium").lower(), 2)


def _status(value: dict) -> str:
    return str(value.get("status") or "pending").strip().lower()


def _id(value: dict, node: Node, text: str, path: Path) -> str:
    if not isinstance(value, dict) or value.get("id") in (None, ""):
        raise TaskFileError(path, line_of(text, node.start), "this task has no \"id\": Taskmaster's tasks all have one")
    return str(value["id"])


class _Order:
    """The items in the order Taskmaster's `next` would give them."""

    def __init__(self, text: str, path: Path, tag: str | None, tasks, reading: Reading):
        self.text, self.path, self.tag, self.reading = text, path, tag, reading
        self.tasks: dict[str, tuple[Node, dict]] = {}
        for node, value in tasks:
            key = _id(value, node, text, path)
            if key in self.tasks:
                raise TaskFileError(path, self.line(node), f"task id {key} is given twice (also at line "
                                    f"{self.line(self.tasks[key][0])})")
            self.tasks[key] = (node, value)
        self.subs: dict[str, tuple[Node, dict]] = {}  # the subtasks of the task being read, by full id

    def line(self, node: Node) -> int:
        return line_of(self.text, node.keys.get("id", node.start))

    def deps(self, key: str) -> list[str]:
        """A task's dependencies as task ids, with those its subtasks name in other tasks."""
        node, value = self.tasks[key]
        found = [str(d).split(".")[0] for d in _listed(value, "dependencies")]
        for sub in _listed(value, "subtasks"):
            for needed in _listed(sub, "dependencies"):
                if "." in str(needed) and str(needed).split(".")[0] != key:
                    found.append(str(needed).split(".")[0])
        for needed in found:
            if needed not in self.tasks:
                self.reading.warnings.append((self.line(node), f"task {key} depends on task {needed}, which is not in "
                                              "the file: it does not wait for it"))
        return [needed for needed in dict.fromkeys(found) if needed in self.tasks and needed != key]

    def into(self, group: DraftGroup) -> None:
        """Done tasks take their place in the order as open ones do, so that it stays the same
        as they get done."""
        waiting, stopped = [], {}
        for key, (node, value) in self.tasks.items():
            status = _status(value)
            if status in DONE or status in RUN:
                waiting.append(key)
            else:
                stopped[key] = status
                self.reading.notes.append((self.line(node), f"task {key} is {status}: not run"))
        deps = {key: self.deps(key) for key in waiting}
        for key in self.in_order(waiting, deps, stopped, "task"):
            self.add(group, key, done=_status(self.tasks[key][1]) in DONE)

    def in_order(self, waiting: list[str], deps: dict[str, list[str]], stopped: dict[str, str], kind: str) -> list[str]:
        """Those whose dependencies come before them, as `next` picks them: the highest priority,
        the fewest dependencies, the first; what waits for one not run is not run either."""
        placed, order = set(), []
        while waiting:
            held = [key for key in waiting if any(d in stopped for d in deps[key])]
            for key in held:
                reason = next(d for d in deps[key] if d in stopped)
                stopped[key] = f"waiting for {kind} {reason}"
                self.reading.notes.append((self.line(self.node(key)), f"{kind} {key} waits for {kind} {reason}, "
                                           f"which is not run ({stopped[reason]}): not run"))
                waiting.remove(key)
            ready = [key for key in waiting if all(d in placed for d in deps[key])]
            if not ready:
                if held:
                    continue
                raise TaskFileError(self.path, self.line(self.node(waiting[0])), f"{kind}s {', '.join(waiting)} wait "
                                    "for each other (a dependency cycle): none of them can start")
            key = min(ready, key=lambda k: (_priority(self.value(k)), len(deps[k]), waiting.index(k)))
            waiting.remove(key)
            placed.add(key)
            order.append(key)
        return order

    def node(self, key: str) -> Node:
        return self.subs[key][0] if "." in key else self.tasks[key][0]

    def value(self, key: str) -> dict:
        return self.subs[key][1] if "." in key else self.tasks[key][1]

    def add(self, group: DraftGroup, key: str, done: bool) -> None:
        """The task's items: itself, or its subtasks in their order (all done with it)."""
        node, value = self.tasks[key]
        subtasks = list(zip(node.members["subtasks"].elements, value["subtasks"])) if _listed(value, "subtasks") else []
        if not subtasks:
            group.items.append(self.item(key, node, value, done, key))
            return
        parent = _instruction(f"Task {key}: {value.get('title', '')}".strip(), value)
        self.subs = {}
        for sub_node, sub in subtasks:
            self.subs[f"{key}.{_id(sub, sub_node, self.text, self.path)}"] = (sub_node, sub)
        waiting, stopped = [], {}
        for full, (sub_node, sub) in self.subs.items():
            status = "done" if done else _status(sub)
            if status in DONE or status in RUN:
                waiting.append(full)
            else:
                stopped[full] = status
                self.reading.notes.append((self.line(sub_node), f"subtask {full} is {status}: not run"))
        deps = {}
        for full in waiting:
            named = [str(d) if "." in str(d) else f"{key}.{d}" for d in _listed(self.subs[full][1], "dependencies")]
            deps[full] = [d for d in dict.fromkeys(named) if d in self.subs and d != full]
        for full in self.in_order(waiting, deps, stopped, "subtask"):
            sub_node, sub = self.subs[full]
            is_done = done or _status(sub) in DONE
            group.items.append(self.item(full, sub_node, sub, is_done, key, full.split(".", 1)[1], parent))

    def item(self, key: str, node: Node, value: dict, done: bool, task_id: str, sub_id: str = "",
             parent: str = "") -> DraftItem:
        """An item: a task (`3`), or a subtask (`3.2`) told its task."""
        return DraftItem(
            text=str(value.get("title") or f"Task {key}"), body=_instruction("", value), done=done,
            line=self.line(node), source_line="", module=key, parent=parent,
            status_at=("taskmaster", self.tag or "", task_id, sub_id),
        )


def _instruction(first: str, value: dict) -> str:
    parts = [first] if first else []
    for name, label in (("description", ""), ("details", "Details:\n"), ("testStrategy", "Test strategy:\n")):
        if str(value.get(name) or "").strip():
            parts.append(label + str(value[name]).strip())
    if value.get("priority"):
        parts.append(f"Priority: {value['priority']}")
    return "\n\n".join(parts)
