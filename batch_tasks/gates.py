"""Lists in a plan that are not work: verification lists are gates, and sections that
say not to do their items are skipped.

- A verification section (`Success Criteria`, `Automated Verification`, `Acceptance
  Criteria`, `Verification`, `Definition of Done`) holds no work: its commands (in
  backticks, under an automated heading, or any where the heading says nothing) become
  the check of the section it is in, the phase, over every other `check` (the plan's
  own criteria decide what lands); its manual items are listed for a person, never run.
- A section that says not to do its items (`Deferred — DO NOT pick`, `Out of scope`,
  `Won't do`, `What we're NOT doing`, `❌ CANCELLED`) is skipped, with a note at its heading.

Only reads the outline; taskfile drops the items and sets the checks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .outline import Heading, Outline

VERIFICATION = re.compile(r"\b(?:verification|success criteria|acceptance criteria|definition of done)\b", re.I)
AUTOMATED = re.compile(r"\bautomated\b", re.I)
MANUAL = re.compile(r"\b(?:manual|manually|by hand|human)\b", re.I)
NOT_TO_DO = re.compile(
    r"\b(?:deferred|out of scope|won'?t do|will not do|not doing|cancell?ed|do not (?:pick|do|implement|start|touch)|"
    r"don'?t (?:pick|do))\b",
    re.I,
)
CODE = re.compile(r"`([^`\n]+)`")
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
        if words and (len(words) > 1 or words[0] in RUNNERS) and not span.startswith(("/", "<")):
            return span
    return None


def read(outline: Outline) -> Gates:
    gates = Gates()
    done: set[int] = set()
    for heading in outline.headings:
        if heading.index in done:
            continue
        skipped, gate = NOT_TO_DO.search(heading.title), VERIFICATION.search(heading.title)
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
            _gate(outline, heading, boxes, gates)
    return gates


def _gate(outline: Outline, heading: Heading, boxes, gates: Gates) -> None:
    owner = outline.headings[heading.parent] if heading.parent is not None else None
    commands, manual = [], []
    for box in boxes:
        under = outline.headings[box.heading].title if box.heading is not None else ""
        command = None if MANUAL.search(under) else command_in(box.text)
        if command is not None:
            commands.append(command)
        else:
            manual.append(box)
        gates.not_work.add(box.line)
    if commands:
        if owner is None:
            gates.notes.append((heading.line, f'"{heading.title}" names commands but is in no section: '
                                "they check nothing (put it under the heading of the work it checks)"))
        else:
            gates.checks.setdefault(owner.index, []).extend(commands)
            gates.notes.append((heading.line, f'"{heading.title}": {", ".join(f"`{c}`" for c in commands)} '
                                f'check the work of "{owner.title}" (not run as items)'))
    for box in manual:
        gates.notes.append((box.line, f"for a person to verify (not run, never ticked): {box.text}"))
