"""The BMAD story dialect (BMAD-METHOD's `docs/stories/*.story.md`): the `## Tasks / Subtasks`
list is the work, each task (with its `(AC: …)` references) one item, in order, its
subtask boxes ticked with it; the rest of the story (its status, the story, its
acceptance criteria, the dev notes) is what every item is told. A story whose `Status`
is not one a developer takes (Approved, Ready for Dev, In Progress) gets a note.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..outline import Outline
from .drafts import Reading, one_list

NAME = "bmad"
TASKS = re.compile(r"^Tasks\s*/\s*Sub-?tasks\b", re.I)
STATUS = re.compile(r"^Status\b", re.I)
READY = re.compile(r"^\s*(?:approved|ready[ -]for[ -]dev(?:elopment)?|in[ -]?progress)\b", re.I)


def _tasks(outline: Outline):
    return next((h for h in outline.headings if TASKS.match(h.title)), None)


def _status(outline: Outline) -> tuple[int, str] | None:
    """The story's status, and its line: under a `## Status` heading, or on a `Status:` line."""
    for heading in outline.headings:
        if STATUS.match(heading.title):
            for number in range(heading.line + 1, outline.section_end(heading) + 1):
                if outline.lines[number - 1].strip():
                    return number, outline.lines[number - 1].strip()
    for number, line in enumerate(outline.lines, 1):
        match = re.match(r"^\s*\**Status\**:\s*\**\s*(.+)$", line)
        if match:
            return number, match.group(1).strip("* ")
    return None


def cue(outline: Outline, path: Path) -> str | None:
    tasks = _tasks(outline)
    if tasks is not None and _status(outline) is not None:
        return f'its "{tasks.title}" section (line {tasks.line}) and its Status'
    return None


def read(outline: Outline, path: Path) -> Reading:
    reading = one_list(outline, _tasks(outline))
    status = _status(outline)
    if status is not None and not READY.match(status[1]):
        reading.notes.append((status[0], f"the story's status is {status[1]!r}: BMAD's developer takes stories that "
                              "are Approved; it runs as asked"))
    return reading
