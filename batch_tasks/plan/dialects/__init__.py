"""The task-list dialects task.md may be written in, and which one a file is.

Each dialect is one module here: its `cue` says what in an outline marks a file as
its own (or None), its `read` turns the outline into groups of draft items. They
only read the outline (what they read it into, and the ways of reading they share, are
drafts.py's); taskfile turns drafts into the plan.
"""

from __future__ import annotations

from pathlib import Path

from ..outline import Outline
from .drafts import NAMES, made_module, prose, section_prose, slugify  # noqa: F401 - what the rest of batch_tasks reads of the dialects


def detect(outline: Outline, path: Path, chosen: str | None, chosen_where: str | None) -> tuple[str, str]:
    """The dialect to read the file as, and why, in words (`chosen_where`: where `format:` was given)."""
    from . import batch, bmad, checklist, cursor, execplan, kiro, phases, speckit, superpowers, todo_headings

    if chosen is not None:
        where = f"in the {chosen_where}" if str(chosen_where).startswith("front matter") else f"from {chosen_where}"
        return chosen, f"read as {NAMES[chosen]}: `format: {chosen}` {where}"
    for module in (cursor, speckit, superpowers, kiro, phases, execplan, bmad, todo_headings, checklist):
        cue = module.cue(outline, path)
        if cue:
            return module.NAME, f"read as {NAMES[module.NAME]}: {cue}"
    return "batch", f"read as {NAMES['batch']}: {batch.cue(outline, path)}"


def reader(name: str):
    from . import batch, bmad, checklist, cursor, execplan, kiro, phases, speckit, superpowers, todo_headings

    dialects = (batch, speckit, kiro, superpowers, checklist, phases, execplan, bmad, todo_headings, cursor)
    return {m.NAME: m for m in dialects}[name].read
