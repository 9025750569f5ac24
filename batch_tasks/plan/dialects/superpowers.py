"""The superpowers dialect (docs/superpowers/plans/*.md): each `### Task N:` section is
one item, run by one agent session with the whole section (its steps, code blocks and
`**Files:**` list) as its instruction; tasks run in order; the heading above the tasks
is their group. The item is done when all its step boxes are; it ticks them all. The
design document its header names (`**Spec:** docs/superpowers/specs/…-design.md`) is
one every item is told to read.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..outline import Outline
from .drafts import DraftGroup, DraftItem, Reading, prose, slugify

NAME = "superpowers"
# Older plans: bold steps without boxes (`**Step 1: Write the failing test**`).
OLD_STEP = re.compile(r"^\*\*Step[ \t]+\d+")
# The design document a plan's header names: `**Spec:** docs/superpowers/specs/…-design.md`,
# `**Approved design:** …`, `(spec: …)`.
DESIGN = re.compile(r"(?<![\w./-])((?:[\w.-]+/)*[\w.-]+-design\.md|docs/superpowers/specs/[\w./-]+\.md)\b")
TASK = re.compile(r"^(Task[ \t]+\d+(?:\.\d+)*)\b[ \t]*[:.\u2013\u2014-]?[ \t]*(.*)$", re.I)


def cue(outline: Outline, path: Path) -> str | None:
    tasks = [h for h in outline.headings if TASK.match(h.title)]
    if not tasks:
        return None
    steps = any(box.text.startswith("**Step") for box in outline.boxes) or any(
        OLD_STEP.match(line) for line in outline.lines)
    named = "superpowers" in "\n".join(outline.lines[:40]).lower()
    if steps or named or not outline.items():
        return f'the "{tasks[0].source.strip()[:60]}" heading, line {tasks[0].line}'
    return None


def read(outline: Outline, path: Path) -> Reading:
    reading = Reading([])
    groups: dict[int | None, DraftGroup] = {}
    sections = []  # (first, last) lines of each task's section
    for heading in outline.headings:
        match = TASK.match(heading.title)
        if not match:
            continue
        last = outline.section_end(heading)
        sections.append((heading.line, last))
        boxes = [box for box in outline.boxes if heading.line < box.line <= last and not box.quoted]
        boxless = not boxes and any(OLD_STEP.match(outline.lines[n - 1]) for n in range(heading.line + 1, last + 1))
        if not boxes and not boxless:
            reading.warnings.append((heading.line, f'"{heading.title}" has no "- [ ]" step: it is not an item'))
            continue
        if boxless:
            reading.notes.append((heading.line, f'"{heading.title}" has bold steps and no boxes: its state is kept '
                                  "in the state folder only, and nothing in the file is ticked"))
        group = groups.get(heading.parent)
        if group is None:
            parent = outline.headings[heading.parent] if heading.parent is not None else None
            group = groups[heading.parent] = DraftGroup(
                parent, body=prose(outline, parent.line + 1, heading.line - 1) if parent else "", ordered=True,
                headings={heading.parent},
            )
        group.headings.update(h.index for h in outline.headings if heading.line <= h.line <= last)
        group.items.append(
            DraftItem(
                text=match.group(2).strip() or match.group(1),
                body=outline.text(heading.line + 1, last),
                done=bool(boxes) and all(box.mark != " " for box in boxes),
                line=boxes[0].line if boxes else heading.line,
                source_line=boxes[0].source if boxes else "",
                module=slugify(match.group(1)),
                also_ticks=tuple((box.line, box.source) for box in boxes[1:]),
                boxless=boxless,
            )
        )
    for box in outline.items():
        if not any(first < box.line <= last for first, last in sections):
            reading.warnings.append((box.line, 'this checkbox is in no "### Task" section: it is not an item'))
    reading.groups = list(groups.values())
    header = outline.lines[outline.body_start : sections[0][0] - 1] if sections else []
    reading.documents = tuple(dict.fromkeys(m.group(1) for line in header for m in DESIGN.finditer(line)))
    return reading
