"""What an item's agent is told about the plan around it, besides its own instruction.

Real plans keep their goal outside any item: superpowers' `**Goal:**`/`**Architecture:**`
header, spec-kit's `**Input**: Design documents from …` line and a phase's `**Goal**`
above its `### Tests` section, a Kiro sub-task's parent task, the design documents beside
the task list. In the prompt they come in this order, what is shared by most items first
(so that a prompt cache can reuse it): the plan's title and preamble, its design documents
(as paths to read, not pasted), the sections its group is inside of, the group's own
description, the parent task, then the item.

Reads the outline (preamble, sections) and, for the documents, only whether they exist.
A named document that is not there is left out: the agent is told only of what it can read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a plan from the cache is given without its outline: nothing here is parsed
    from .outline import Heading, Outline

# The documents each dialect's own tools write beside the task list, which its agents are
# told to read first (spec-kit's /implement reads these; Kiro and cc-sdd keep requirements
# and design beside tasks.md).
DOCUMENTS = {
    "speckit": ("spec.md", "plan.md", "data-model.md", "research.md", "quickstart.md", "contracts"),
    "kiro": ("requirements.md", "design.md", "research.md"),
    "taskmaster": ("../docs/prd.txt", "../docs/prd.md"),  # .taskmaster/docs/, beside tasks/
}


def preamble(outline: Outline, first_group: Heading | None, title: Heading | None) -> str:
    """Everything between the front matter and the first group's heading, but the title's line
    and comments (hints among them)."""
    from .dialects import prose

    first = outline.body_start + 1
    last = first_group.line - 1 if first_group is not None else len(outline.lines)
    if title is None or not first <= title.line <= last:
        return prose(outline, first, last)
    parts = (prose(outline, first, title.line - 1), prose(outline, title.line + 1, last))
    return "\n\n".join(part for part in parts if part)


def sections_above(outline: Outline, heading: Heading | None, first_group: Heading | None) -> str:
    """The headings a group's heading is under, each with its own prose, outermost first: those
    that come after the preamble (the ones before it are in it)."""
    from .dialects import section_prose

    if heading is None or first_group is None:
        return ""
    chain = []
    parent = heading.parent
    while parent is not None:
        above = outline.headings[parent]
        if above.line >= first_group.line:
            chain.append(above)
        parent = above.parent
    parts = []
    for above in reversed(chain):
        own = section_prose(outline, above)
        parts.append(above.source.strip() + (f"\n{own}" if own else ""))
    return "\n\n".join(parts)


def documents(plan, workdir: Path) -> tuple[str, ...]:
    """The design documents that exist, as paths from the workdir: those the dialect's tools
    write beside the plan, those the plan names (from the repository's top, where its paths
    start, or from its folder), and a superpowers plan's spec of the same name
    (`docs/superpowers/specs/2025-01-03-slug-design.md` for `plans/2025-01-03-slug.md`, or
    beside it)."""
    folder = plan.path.parent
    candidates = [folder / name for name in DOCUMENTS.get(plan.dialect, ())]
    for named in plan.documents_named:
        candidates += [base / named for base in (workdir, folder)]
    if plan.dialect == "superpowers":  # beside the plan in older ones (docs/plans/)
        candidates += [folder.parent / "specs" / f"{plan.path.stem}-design.md", folder / f"{plan.path.stem}-design.md"]
    found = []
    for path in candidates:
        if path.exists():
            found.append(os.path.relpath(path, workdir) + ("/" if path.is_dir() else ""))
    return tuple(dict.fromkeys(found))
