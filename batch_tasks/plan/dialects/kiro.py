"""The Kiro dialect (.kiro/specs/*/tasks.md): numbered tasks run in order, one at a
time unless marked `(P)`; a task's nested `1.1` sub-tasks are the work items (in
order), and the task's own box is ticked with its last sub-task; `- [ ]*` marks an
optional task, run only when asked for. `_Requirements: …_` lines stay in the text.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from ..outline import Box, Outline
from .drafts import DraftGroup, DraftItem, Reading, group_of, lines_after

NAME = "kiro"
# `2.3`, `2.`, and cc-sdd's optional `2.3*` (Kiro's own is `- [ ]* 2.3`).
NUMBER = re.compile(r"^(\d+(?:\.\d+)*)\.?(\*)?(?:[ \t]+|$)(.*)$", re.S)
PARALLEL = re.compile(r"[ \t]*\(P\)")
REQUIREMENTS = re.compile(r"^[ \t]*(?:[-*+][ \t]+)?_Requirements:")


def cue(outline: Outline, path: Path) -> str | None:
    if ".kiro" in path.parts:
        return "the file is in a .kiro folder"
    numbered = [box for box in outline.boxes if NUMBER.match(box.text)]
    if not numbered or len(numbered) * 2 < len(outline.items()):
        return None
    optional = next((box for box in numbered if _optional(box)), None)
    if optional is not None:
        marked = "- [ ]*" if optional.star else f"{NUMBER.match(optional.text).group(1)}*"
        return f'numbered tasks, and an optional one "{marked}" at line {optional.line}'
    for number, line in enumerate(outline.lines, 1):
        if REQUIREMENTS.match(line):
            return f'numbered tasks with "_Requirements:" lines (line {number})'
    return None


def _optional(box: Box) -> bool:
    """Kiro's `- [ ]* 2.3`, or cc-sdd's `- [ ] 2.3*`."""
    number = NUMBER.match(box.text)
    return box.star or bool(number and number.group(2))


def _parents(boxes: list[Box]) -> dict[int, Box]:
    """Each sub-task's parent, by the sub-task's line: the box it is nested in, else
    (a flat list) the task whose number its own number extends."""
    parents: dict[int, Box] = {}
    by_number: dict[str, Box] = {}
    enclosing: list[Box] = []
    for box in boxes:
        while enclosing and enclosing[-1].end < box.line:
            enclosing.pop()
        number = NUMBER.match(box.text)
        if enclosing:
            parents[box.line] = enclosing[-1]
        elif number and "." in number.group(1):
            parent = by_number.get(number.group(1).rsplit(".", 1)[0])
            if parent is not None:
                parents[box.line] = parent
        if number:
            by_number[number.group(1)] = box
        enclosing.append(box)
    return parents


def read(outline: Outline, path: Path) -> Reading:
    boxes = [box for box in outline.boxes if not box.quoted]
    parents = _parents(boxes)
    children: dict[int, list[Box]] = {}
    for box in boxes:
        if box.line in parents:
            children.setdefault(parents[box.line].line, []).append(box)
    # The box of a parent task is ticked with its last required sub-task, once the others are.
    # A parent whose sub-tasks are all optional is work of its own: its box is its item's.
    ticks_parent: dict[int, tuple[Box, list[Box]]] = {}
    at_line = {box.line: box for box in boxes}
    own_work = set()
    for parent_line, subtasks in children.items():
        parent = at_line[parent_line]
        required = [box for box in subtasks if not _optional(box)]
        if not required and _own_lines(outline, parent, subtasks):
            own_work.add(parent_line)
            continue
        required = required or subtasks
        ticks_parent[required[-1].line] = (parent, required[:-1])

    groups: dict[int | None, DraftGroup] = {}
    for box in boxes:
        if box.line in children and box.line not in own_work:
            continue  # a parent task: its sub-tasks are the work
        number = NUMBER.match(box.text)
        module, text = (number.group(1), number.group(3)) if number else (None, box.text)
        parallel = bool(PARALLEL.search(text))
        text = PARALLEL.sub("", text, count=1).strip()
        parent, needs = ticks_parent.get(box.line, (None, []))
        above = at_line[parents[box.line].line] if box.line in parents else None
        group_of(groups, outline, box, ordered=True).items.append(
            DraftItem(
                text=text,
                body=_own_lines(outline, box, children[box.line]) if box.line in own_work else lines_after(outline, box, box.end),
                done=box.mark != " ",
                line=box.line,
                source_line=box.source,
                module=module,
                parallel_mark=parallel,
                optional=_optional(box),
                parent_box=(parent.line, parent.source) if parent else None,
                parent_needs=tuple((b.line, b.source) for b in needs),
                parent=_as_parent(outline, above, children[above.line]) if above else "",
            )
        )
    return Reading(list(groups.values()))


def _own_lines(outline: Outline, parent: Box, subtasks: list[Box]) -> str:
    """A parent task's lines under its own, without its sub-tasks, dedented."""
    inside = {n for box in subtasks for n in range(box.line, box.end + 1)}
    own = [outline.lines[n - 1] for n in range(parent.line + 1, parent.end + 1) if n not in inside]
    return textwrap.dedent("\n".join(own)).strip("\n")


def _as_parent(outline: Outline, parent: Box, subtasks: list[Box]) -> str:
    """A parent task as its sub-tasks' agents are told of it: its line and its own lines, without its sub-tasks."""
    return "\n".join([parent.text, _own_lines(outline, parent, subtasks)]).strip()
