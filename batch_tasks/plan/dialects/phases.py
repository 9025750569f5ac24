"""The phases dialect (HumanLayer-style implementation plans, `thoughts/shared/plans/*.md`):
each `## Phase N:` section is one item, run by one agent session with the whole section
(its changes, code, criteria) as its instruction, its own group, in order. Its boxes
are its success criteria (see gates): the automated ones' commands are its check and
their boxes are ticked when it lands; the manual ones are for a person, never ticked.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..gates import AUTOMATED, MANUAL, VERIFICATION, command_in, lead_in, leads_criteria
from ..outline import Outline
from .drafts import DraftGroup, DraftItem, Reading, slugify

NAME = "phases"
PHASE = re.compile(r"^(Phase[ \t]+\d+(?:\.\d+)*)\b[ \t]*[:.\u2013\u2014-]?[ \t]*(.*)$", re.I)


def cue(outline: Outline, path: Path) -> str | None:
    phases = [h for h in outline.headings if PHASE.match(h.title)]
    if phases and _ticks(outline, phases[0]):
        box = _ticks(outline, phases[0])[0]
        named = _named_by(outline, box, phases[0])
        return f'"{phases[0].source.strip()[:60]}" sections with "{named[0]}" (line {named[1]})'
    return None


def _named_by(outline: Outline, box, phase) -> tuple[str, int]:
    """What makes a box a criterion: the verification heading it is under, or the line leading its list."""
    heading = next(h for h in _chain(outline, outline.headings[box.heading], phase) if VERIFICATION.search(h.title)) \
        if box.heading is not None and box.heading != phase.index and any(
            VERIFICATION.search(h.title) for h in _chain(outline, outline.headings[box.heading], phase)) else None
    if heading is not None:
        return heading.title, heading.line
    lead = lead_in(outline, box.line)
    return outline.lines[lead - 1].strip().strip("*_:"), lead


def _ticks(outline: Outline, heading) -> list:
    """The phase's automated criteria boxes: the ones its success ticks. A criterion is under a
    verification heading (`#### Automated Verification:`) or in a list led in by a line naming
    one (`**Verification:**`); automated, by its heading, its lead, its `Automated:`, or a command."""
    last = outline.section_end(heading)
    found = []
    for box in outline.boxes[outline.box_after(heading.line) : outline.box_after(last)]:
        under = outline.headings[box.heading] if box.heading is not None else None
        if box.quoted or under is None or MANUAL.search(under.title) or MANUAL.match(box.text.lstrip("*_ ")):
            continue
        lead = lead_in(outline, box.line)
        led = lead is not None and leads_criteria(outline.lines[lead - 1])
        headed = any(VERIFICATION.search(h.title) for h in _chain(outline, under, heading))
        if (headed or led) and (AUTOMATED.search(under.title) or AUTOMATED.match(box.text.lstrip("*_ "))
                                or (led and AUTOMATED.search(outline.lines[lead - 1])) or command_in(box.text)):
            found.append(box)
    return found


def _chain(outline: Outline, heading, top):
    while heading is not None and heading.index != top.index:
        yield heading
        heading = outline.headings[heading.parent] if heading.parent is not None else None


def read(outline: Outline, path: Path) -> Reading:
    reading = Reading([])
    for heading in outline.headings:
        match = PHASE.match(heading.title)
        if not match:
            continue
        boxes = _ticks(outline, heading)
        if not boxes:
            reading.warnings.append((heading.line, f'"{heading.title}" has no automated success criterion '
                                     "(a \"- [ ]\" with a command) to tick: it is not an item"))
            continue
        last = outline.section_end(heading)
        first = boxes[0]
        group = DraftGroup(heading, ordered=True, headings={h.index for h in outline.headings if heading.line <= h.line <= last})
        group.items.append(DraftItem(
            text=match.group(2).strip() or match.group(1),
            body=outline.text(heading.line + 1, last),
            done=all(box.mark != " " for box in boxes),
            line=first.line,
            source_line=first.source,
            module=slugify(match.group(1)),
            also_ticks=tuple((box.line, box.source) for box in boxes[1:]),
            gate_box=True,
        ))
        reading.groups.append(group)
    return reading
