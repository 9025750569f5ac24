"""The checklist dialect (Maestro Auto Run documents, Ralph's fix_plan.md, hand-written
TODOs): headings are groups, items run one at a time in document order, and each item
owns everything up to the next item or heading, indented or not. No item names a
module: each gets one made from its text.
"""

from __future__ import annotations

import bisect
import re
from pathlib import Path

from ..outline import Outline
from .batch import module_like
from .drafts import Reading, by_heading

NAME = "checklist"
FILE_NAMES = {"fix_plan.md", "@fix_plan.md"}
# The template variables Maestro fills in an Auto Run document.
MAESTRO = re.compile(r"\{\{(?:AUTORUN_FOLDER|AGENT_NAME|AGENT_PATH|LOOP_NUMBER)\}\}")


def cue(outline: Outline, path: Path) -> str | None:
    if path.name.lower() in FILE_NAMES:
        return f"the file is named {path.name}"
    maestro = next((n for n, line in enumerate(outline.lines, 1) if MAESTRO.search(line)), None)
    if maestro is not None:
        return f"Maestro's Auto Run variables ({MAESTRO.search(outline.lines[maestro - 1]).group()}, line {maestro})"
    items = outline.items()
    if items and not any(module_like(box.text) for box in items):
        return f'no item names a module (the first, line {items[0].line}: "{items[0].text[:40]}")'
    return None


def read(outline: Outline, path: Path) -> Reading:
    # Where each item's instruction ends: before the next item or heading.
    starts = sorted([box.line for box in outline.items() if not box.star] + [h.line for h in outline.headings])

    def extent(outline: Outline, box) -> int:
        after = bisect.bisect_right(starts, box.line)
        return starts[after] - 1 if after < len(starts) else len(outline.lines)

    return by_heading(outline, lambda text: (None, text, False), ordered=True, extent=extent)
