"""The TODO-headings dialect (AGENTS.md and similar files that keep their TODOs as headings:
`### [ ] Add rate limiting`): each such heading is one item, its section its instruction,
in document order, one at a time; the heading above them is their group. The box in
the heading is ticked.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..outline import Outline
from .drafts import DraftGroup, DraftItem, Reading, prose

NAME = "todo-headings"
BOXED = re.compile(r"^\[([ xX])\][ \t]+(.+)$")


def cue(outline: Outline, path: Path) -> str | None:
    boxed = [h for h in outline.headings if BOXED.match(h.title)]
    if boxed and len(boxed) >= len(outline.items()):
        return f'its TODO headings ("{boxed[0].source.strip()[:50]}" line {boxed[0].line})'
    return None


def read(outline: Outline, path: Path) -> Reading:
    groups: dict[int | None, DraftGroup] = {}
    for heading in outline.headings:
        match = BOXED.match(heading.title)
        if not match:
            continue
        group = groups.get(heading.parent)
        if group is None:
            parent = outline.headings[heading.parent] if heading.parent is not None else None
            body = prose(outline, parent.line + 1, heading.line - 1) if parent else ""
            group = groups[heading.parent] = DraftGroup(parent, body=body, ordered=True, headings={heading.parent})
        last = outline.section_end(heading)
        group.headings.update(h.index for h in outline.headings if heading.line <= h.line <= last)
        group.items.append(DraftItem(
            text=match.group(2).strip(), body=outline.text(heading.line + 1, last), done=match.group(1) != " ",
            line=heading.line, source_line=heading.source,
        ))
    return Reading(list(groups.values()))
