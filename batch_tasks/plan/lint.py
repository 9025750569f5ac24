"""What in task.md looks meant but is not read so: lines that look like items and are
not, items that lose the blocks written under them, and a plan with no items at all.

Only reads the outline; warnings are (line, message) pairs, the last is an error.
"""

from __future__ import annotations

import bisect
import re

from .outline import Outline

# A list line with something like a checkbox that is not one: `-[ ]`, `- []`,
# `- [-]`, `- [~]`, `- [ ]d`, `- [ ]*`.
LOOKALIKE = re.compile(
    r"^[ \t]*(?:[-*+]|\d{1,9}[.)])(?:(\[.?\])|[ \t]+(\[[^ xX\]]?\])|[ \t]+\[[ xX]\](\S))"
)
TASK_HEADING = re.compile(r"^Task[ \t]+\d", re.I)
# A section's note after its items (spec-kit's `**Checkpoint**: …`): no item's instruction.
SECTION_NOTE = re.compile(r"^\*\*Checkpoint\*\*:?")
BOX = re.compile(r"\[[ xX]\]")


def _box_inside(line: str) -> bool:
    """A `[ ]` after the line's first character that is not a space; searched from there,
    because one pattern for both takes quadratic time on a long line."""
    first = len(line) - len(line.lstrip())
    return first < len(line) and BOX.search(line, first + 1) is not None


def lookalikes(outline: Outline, dialect: str) -> list[tuple[int, str]]:
    warnings = []
    for number in range(outline.body_start + 1, len(outline.lines) + 1):
        line = outline.lines[number - 1]
        if "[" not in line:
            continue
        match = LOOKALIKE.match(line)
        if match is None or outline.in_opaque(number):
            continue
        tight, odd, after = match.groups()
        if after == "*":
            if dialect == "kiro":
                continue
            why = '"- [ ]*" marks an optional task only in Kiro\'s format (`format: kiro`)'
        elif tight:
            why = 'a space must follow the list marker: "- [ ]"'
        elif odd == "[]":
            why = 'a checkbox has a space between its brackets: "[ ]"'
        elif odd:
            why = f'only "[ ]", "[x]" and "[X]" are checkboxes, not "{odd}"'
        else:
            why = f'a space must follow the checkbox, before "{after}"'
        warnings.append((number, f"looks like an item but is not one: {why}"))
    return warnings


def loose_blocks(outline: Outline, items) -> list[tuple[int, str]]:
    """Items whose instruction is their first line alone while un-indented blocks follow
    them: CommonMark leaves those outside the item (superpowers' steps and their code)."""
    warnings = []
    blocks = [block.line for block in outline.blocks if not SECTION_NOTE.match(outline.lines[block.line - 1])]
    boundaries = sorted([box.line for box in outline.items()] + [h.line for h in outline.headings])
    for item in items:
        if item.body:
            continue
        after = bisect.bisect_right(blocks, item.line)
        if after == len(blocks):
            continue
        block = blocks[after]
        next_boundary = bisect.bisect_right(boundaries, item.line)
        if next_boundary < len(boundaries) and boundaries[next_boundary] < block:
            continue
        warnings.append(
            (item.line, f"this item's instruction is its first line only: the block at line {block} is not "
             "indented under it, so the agent will not see it (indent it, or use `format: checklist`)")
        )
    return warnings


def nothing_found(outline: Outline) -> tuple[int, str]:
    """What a file without items has instead, and its first line, for the error that says so."""
    found, lines = [], []
    tasks = [h for h in outline.headings if TASK_HEADING.match(h.title)]
    if tasks:
        found.append(f'{len(tasks)} "{"#" * tasks[0].level} Task" headings')
        lines.append(tasks[0].line)
    elif outline.headings:
        found.append(f"{len(outline.headings)} heading{'s' if len(outline.headings) > 1 else ''}")
    others = [box for box in outline.boxes if box.depth > 1 or box.quoted]
    if others:
        found.append(f"{len(others)} checkboxes in sub-lists or quotes (line {others[0].line})")
        lines.append(others[0].line)
    lookalike = lookalikes(outline, "")
    if lookalike:
        found.append(f"{len(lookalike)} lines that look like items but are not (line {lookalike[0][0]})")
        lines.append(lookalike[0][0])
    inline = [
        n for n in range(outline.body_start + 1, len(outline.lines) + 1)
        if _box_inside(outline.lines[n - 1]) and not outline.in_opaque(n)
        and not LOOKALIKE.match(outline.lines[n - 1]) and not any(b.line == n for b in outline.boxes)
    ]
    if inline:
        found.append(f'{len(inline)} "[ ]" boxes inside lines (line {inline[0]})')
        lines.append(inline[0])
    what = ", ".join(found) if found else "nothing"
    return min(lines, default=1), f'found {what} and no "- [ ]" items: nothing to run'
