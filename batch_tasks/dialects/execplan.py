"""The ExecPlan dialect (OpenAI's PLANS.md convention: `ExecPlan`s, living documents): the
`## Progress` section's checkboxes are the work, in order, one at a time; everything else
in the document (purpose, context, plan of work, concrete steps, decisions, validation)
is what every item is told, since an ExecPlan is written to be followed whole.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..outline import Outline
from . import DraftGroup, DraftItem, Reading, document_around, lines_after, nested_boxes

NAME = "execplan"
PROGRESS = re.compile(r"^Progress\b", re.I)
SECTIONS = re.compile(r"^(?:Surprises (?:&|and) Discoveries|Decision Log|Outcomes (?:&|and) Retrospective|Plan of Work|"
                      r"Concrete Steps|Context and Orientation|Idempotence and Recovery)\b", re.I)


def _progress(outline: Outline):
    return next((h for h in outline.headings if PROGRESS.match(h.title)), None)


def cue(outline: Outline, path: Path) -> str | None:
    progress = _progress(outline)
    if progress is None:
        return None
    others = [h for h in outline.headings if SECTIONS.match(h.title)]
    if len(others) >= 2 or "execplan" in "\n".join(outline.lines[:40]).lower():
        return f'its "{progress.title}" section (line {progress.line}) among an ExecPlan\'s sections'
    return None


def read(outline: Outline, path: Path) -> Reading:
    progress = _progress(outline)
    title = next((h for h in outline.headings if h.level == 1), None)
    if progress is None:
        return Reading([])
    last = outline.section_end(progress)
    group = DraftGroup(progress, ordered=True, headings={progress.index})
    for box in outline.items():
        if progress.line < box.line <= last and not box.star:
            group.items.append(DraftItem(
                text=box.text, body=lines_after(outline, box, box.end), done=box.mark != " ", line=box.line,
                source_line=box.source, also_ticks=nested_boxes(outline, box.line, box.end),
            ))
    return Reading([group], preamble=document_around(outline, progress, title))
