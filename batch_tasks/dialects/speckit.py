"""The spec-kit dialect (`tasks.md` from spec-kit's /tasks): phases are groups,
`T001` task IDs are the modules, and within a group the tasks run in order but for
runs of `[P]` tasks, which run together. Story labels and file paths stay in the text.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..outline import Outline
from . import Reading, by_heading

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


def read(outline: Outline, path: Path) -> Reading:
    return by_heading(outline, split, ordered=True)
