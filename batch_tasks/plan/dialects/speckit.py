"""The spec-kit dialect (`tasks.md` from spec-kit's /tasks): phases are groups,
`T001` task IDs are the modules, and within a group the tasks run in order but for
runs of `[P]` tasks, which run together. Story labels and file paths stay in the text.

spec-kit's own rules on top: `[P]` tasks that name the same file run in order (a run
of them is cut there); a `## Dependencies` section's lines that name task IDs
(`T006 depends on T003, T004`, `T008 blocks T009`, `(T004-T007) before (T008-T014)`)
and a task's own `(depends on T006)` cut a run the same way, and one that asks a task
to wait for a later one is a warning at its line: tasks run in the file's order.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..named_files import named
from ..outline import Outline
from .drafts import DraftItem, Reading, by_heading

NAME = "speckit"
TASK_ID = re.compile(r"^(T\d{3,})\b[ \t]*(.*)$", re.S)
PARALLEL = re.compile(r"\[P\][ \t]*")
FORMAT_LINE = re.compile(r"^Format:.*\[ID\]")


def cue(outline: Outline, path: Path) -> str | None:
    for heading in outline.headings:
        if FORMAT_LINE.match(heading.title.replace("`", "")):
            labels = " ".join(re.findall(r"\[[^\]]*\]", heading.title))
            return f'the "{"#" * heading.level} Format: {labels}" line {heading.line}'
    items = outline.items()
    with_ids = [box for box in items if TASK_ID.match(box.text)]
    if items and len(with_ids) * 2 > len(items):
        return f'its items have task IDs ("- [ ] {TASK_ID.match(with_ids[0].text).group(1)}" line {with_ids[0].line})'
    return None


def split(text: str) -> tuple[str | None, str, bool]:
    match = TASK_ID.match(text)
    module, text = (match.group(1), match.group(2)) if match else (None, text)
    # `[P]` says how the task runs, so it leaves the text; the rest stays as written.
    parallel = bool(PARALLEL.match(text))
    return module, (PARALLEL.sub("", text, count=1) if parallel else text).strip(), parallel


ID = re.compile(r"\bT(\d{3,})\b(?:[ \t]*[-\u2013][ \t]*T(\d{3,})\b)?")
DEPENDENCIES = re.compile(r"^Dependenc", re.I)
# "A before B", "A blocks B": B waits for A; "B depends on A", "B after A": the other way.
FIRST_BEFORE = re.compile(r"\b(?:before|blocks?|→|->|then)\b|→|->", re.I)
FIRST_AFTER = re.compile(r"\b(?:depends on|requires?|after|needs|blocked by)\b", re.I)


def read(outline: Outline, path: Path) -> Reading:
    reading = by_heading(outline, split, ordered=True)
    waits = _dependencies(outline)
    position = {item.module: (g, n) for g, group in enumerate(reading.groups) for n, item in enumerate(group.items)}
    for line, later, earlier in waits:
        if later in position and earlier in position and position[earlier] > position[later]:
            reading.warnings.append((line, f"{later} is to wait for {earlier}, which comes after it in the file: "
                                     "tasks run in the file's order, so move one of them"))
    for group in reading.groups:
        _cut_runs(group.items, {(later, earlier) for _, later, earlier in waits})
    return reading


def _ids(text: str) -> list[str]:
    """The task IDs a text names, ranges (`T004-T007`) expanded."""
    found = []
    for match in ID.finditer(text):
        first, last = match.group(1), match.group(2)
        if last and int(last) >= int(first) and int(last) - int(first) < 1000:
            found += [f"T{n:0{len(first)}d}" for n in range(int(first), int(last) + 1)]
        else:
            found.append(f"T{first}")
    return found


def _dependencies(outline: Outline) -> list[tuple[int, str, str]]:
    """(line, task, the task it waits for) from a Dependencies section and from each task's own text."""
    waits = []
    for heading in outline.headings:
        if not DEPENDENCIES.match(heading.title):
            continue
        for number in range(heading.line + 1, outline.section_end(heading) + 1):
            line = outline.lines[number - 1]
            if outline.in_opaque(number):
                continue
            for pattern, first_waits in ((FIRST_BEFORE, False), (FIRST_AFTER, True)):
                parts = pattern.split(line, maxsplit=1)
                if len(parts) == 2:
                    before, after = _ids(parts[0]), _ids(parts[1])
                    earlier, later = (after, before) if first_waits else (before, after)
                    waits += [(number, b, a) for a in earlier for b in later if a != b]
                    break
    for box in outline.items():
        own = TASK_ID.match(box.text)
        said = FIRST_AFTER.split(box.text, maxsplit=1)
        if own and len(said) == 2:
            waits += [(box.line, own.group(1), earlier) for earlier in _ids(said[1]) if earlier != own.group(1)]
    return waits


def _cut_runs(items: list[DraftItem], waits: set[tuple[str, str]]) -> None:
    """A `[P]` task that names a file a task of its run names, or waits for one of them,
    starts a new run: spec-kit runs tasks on the same file in order (the files a task names,
    as touches reads them; the dispatcher keeps apart what this leaves together)."""
    run: list[DraftItem] = []
    files: set[str] = set()
    for item in items:
        if not item.parallel_mark:
            run, files = [item], set(named(item.text))
            continue
        names = set(named(item.text))
        if names & files or any((item.module, other.module) in waits for other in run):
            item.new_run, run, files = True, [], set()
        run.append(item)
        files |= names
