"""The ExecPlan dialect (OpenAI's PLANS.md convention: `ExecPlan`s, living documents): the
`## Progress` section's checkboxes are the work, in order, one at a time; everything else
in the document (purpose, context, plan of work, concrete steps, decisions, validation)
is what every item is told, since an ExecPlan is written to be followed whole.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..outline import Outline
from .drafts import Reading, one_list

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
    return one_list(outline, _progress(outline))
