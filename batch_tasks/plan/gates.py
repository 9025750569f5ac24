"""Lists in a plan that are not work: verification lists are gates, and sections that
say not to do their items are skipped.

- A verification section (`Success Criteria`, `Automated Verification`, `Acceptance
  Criteria`, `Verification`, `Definition of Done`) holds no work: its commands (in
  backticks, under an automated heading, or any where the heading says nothing) become
  the check of the section it is in, the phase, over every other `check` (the plan's
  own criteria decide what lands); its manual items are listed for a person, never run.
- A section that says not to do its items (`Deferred — DO NOT pick`, `Out of scope`,
  `Won't do`, `What we're NOT doing`, `❌ CANCELLED`) is skipped, with a note at its heading.
- Maestro's Auto Run documents hold boxes that are no work either: a list led in by
  `Before implementing, verify:` (conditions the work's agent checks, listed for a person),
  and the reset boxes of a progress gate (`- [ ] **Reset 1_ANALYZE.md**: Uncheck all
  tasks in …`, Maestro's loop control, which a batch does not loop); each has a note at its line.

Only reads the outline; taskfile drops the items and sets the checks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .outline import Heading, Outline

VERIFICATION = re.compile(r"\b(?:verification|success criteria|acceptance criteria|definition of done|"
                          r"needs? manual review)\b", re.I)
AUTOMATED = re.compile(r"\bautomated\b", re.I)
MANUAL = re.compile(r"\b(?:manual|manually|by hand|human)\b", re.I)
NOT_TO_DO = re.compile(
    r"\b(?:deferred|out of scope|won'?t do|will not do|not doing|cancell?ed|do not (?:pick|do|implement|start|touch)|"
    r"don'?t (?:pick|do))\b",
    re.I,
)
# A section of what waits or was let go (Maestro's `### Blocked / Waiting`, `### Accepted Risks`).
HELD = re.compile(r"^(?:blocked|waiting|accepted risks?)\b", re.I)
# The line leading a list of conditions to check first: `Before implementing, verify:`.
VERIFY_FIRST = re.compile(r"\bbefore\b[^.]*\b(?:verify|check|confirm|ensure|make sure)\b[^.]*:$|"
                          r"\b(?:verify|check|confirm|ensure|make sure)\b[^.]*\bbefore\b[^.]*:$", re.I)
# Maestro's reset box: `**Reset 1_ANALYZE.md**: Uncheck all tasks in …`.
RESET_BOX = re.compile(r"^(?:\*\*)?reset\b.*\b(?:uncheck|reset)\b", re.I)
CODE = re.compile(r"`([^`\n]+)`")
# A command's first word names a program as one is typed (`make`, `./run.sh`, `go`): a span that
# starts with a capital is a name or a file (`Meeting - Project Review.md`), not a command.
PROGRAM = re.compile(r"^[a-z0-9_.~/-][\w.+~/-]*$")
# A backtick span that is a command: words with a space (`make test`), or one of these alone.
RUNNERS = {"make", "pytest", "tox", "nox", "ruff", "mypy", "cargo", "npm", "pnpm", "yarn", "bun", "just", "go", "mvn", "gradle"}


@dataclass
class Gates:
    not_work: set[int] = field(default_factory=set)  # lines of checkboxes that are not items
    notes: list[tuple[int, str]] = field(default_factory=list)
    checks: dict[int, list[str]] = field(default_factory=dict)  # by heading index: the commands its groups must pass

    def check_for(self, outline: Outline, heading: Heading | None) -> tuple[str, ...] | None:
        """The check of a group under this heading: the commands of the nearest section above that has some."""
        while heading is not None:
            if heading.index in self.checks:
                return ("sh", "-ec", "\n".join(self.checks[heading.index]))
            heading = outline.headings[heading.parent] if heading.parent is not None else None
        return None


def command_in(text: str) -> str | None:
    for span in CODE.findall(text):
        span = span.strip()
        words = span.split()
        if (words and (len(words) > 1 or words[0] in RUNNERS) and not span.startswith(("/", "<"))
                and PROGRAM.match(words[0])):
            return span
    return None


def read(outline: Outline) -> Gates:
    gates = Gates()
    done: set[int] = set()
    for heading in outline.headings:
        if heading.index in done:
            continue
        skipped = NOT_TO_DO.search(heading.title) or HELD.match(heading.title)
        gate = VERIFICATION.search(heading.title)
        if not skipped and not gate:
            continue
        last = outline.section_end(heading)
        inside = [h.index for h in outline.headings if heading.line < h.line <= last]
        boxes = [box for box in outline.boxes[outline.box_after(heading.line) : outline.box_after(last)] if not box.quoted]
        if skipped:
            done.update(inside)
            gates.not_work.update(box.line for box in boxes)
            if boxes:
                gates.notes.append((heading.line, f'"{heading.title}": its {len(boxes)} items are not run '
                                    "(the section says not to do them)"))
        else:
            done.update(inside)
            owner = outline.headings[heading.parent] if heading.parent is not None else None
            _gate(outline, heading.title, heading.line, owner, boxes, gates)
    _not_work_boxes(outline, gates)
    return gates


def _not_work_boxes(outline: Outline, gates: Gates) -> None:
    """Lists led in by a line rather than a heading that are no work: verification lists
    (`**Acceptance Criteria**:`), gates of the section they are in; Maestro's conditions to
    verify first, and its loop's resets."""
    criteria: dict[int, list] = {}  # by the line leading them
    for box in outline.items():
        lead = lead_in(outline, box.line)
        if box.line not in gates.not_work and lead is not None and leads_criteria(outline.lines[lead - 1]):
            criteria.setdefault(lead, []).append(box)
    for lead, boxes in criteria.items():
        section = outline.headings[boxes[0].heading] if boxes[0].heading is not None else None
        _gate(outline, outline.lines[lead - 1].strip().strip("*:").strip(), lead, section, boxes, gates)
    for box in outline.items():
        if box.line in gates.not_work:
            continue
        if RESET_BOX.search(box.text):
            gates.not_work.add(box.line)
            gates.notes.append((box.line, "a reset box (Maestro's loop control: it unchecks other documents' tasks) "
                                "is not work: not run, never ticked"))
            continue
        lead = lead_in(outline, box.line)
        if lead is not None and VERIFY_FIRST.search(outline.lines[lead - 1].strip()):
            gates.not_work.add(box.line)
            gates.notes.append((box.line, f"for a person to verify before the work (line {lead} says so; not run, "
                                f"never ticked): {box.text}"))


def lead_in(outline: Outline, line: int) -> int | None:
    """The line that leads the list a box is in (see Outline.lead_ins)."""
    leads = outline.lead_ins
    return leads[line] if 0 <= line < len(leads) else None


def leads_criteria(line: str) -> bool:
    """`**Acceptance Criteria**:`, `**Verification:**`: a line that only names a verification list."""
    text = line.strip().strip("*_")
    return text.endswith(":") and len(text) <= 60 and VERIFICATION.search(text) is not None


def _gate(outline: Outline, title: str, line: int, owner: Heading | None, boxes, gates: Gates) -> None:
    """A verification list (`title`, at `line`): its commands check the work of the section
    `owner`; its other boxes are for a person."""
    commands, manual = [], []
    for box in boxes:
        under = outline.headings[box.heading].title if box.heading is not None else ""
        manual_here = MANUAL.search(under) or MANUAL.search(title) or MANUAL.match(box.text.lstrip("*_ "))
        command = None if manual_here else command_in(box.text)
        if command is not None:
            commands.append(command)
        else:
            manual.append(box)
        gates.not_work.add(box.line)
    if commands:
        if owner is None:
            gates.notes.append((line, f'"{title}" names commands but is in no section: '
                                "they check nothing (put it under the heading of the work it checks)"))
        else:
            gates.checks.setdefault(owner.index, []).extend(commands)
            gates.notes.append((line, f'"{title}": {", ".join(f"`{c}`" for c in commands)} '
                                f'check the work of "{owner.title}" (not run as items)'))
    for box in manual:
        if AUTOMATED.match(box.text.lstrip("*_ ")):  # `Automated: Unit tests pass`, without the command
            gates.notes.append((box.line, f"an automated criterion that names no command: not run, nothing checks "
                                f"it: {box.text}"))
        else:
            gates.notes.append((box.line, f"for a person to verify (not run, never ticked): {box.text}"))
