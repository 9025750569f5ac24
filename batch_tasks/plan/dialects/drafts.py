"""What a dialect reads an outline into (draft groups of draft items), the dialects' names,
and the ways of reading an outline they share. Touches nothing."""

from __future__ import annotations

import hashlib
import re
import textwrap
from dataclasses import dataclass, field

from ..outline import Box, Heading, Outline

NAMES = {
    "batch": "a batch task list",
    "speckit": "a spec-kit task list",
    "kiro": "a Kiro task list",
    "superpowers": "a superpowers plan",
    "checklist": "a plain checklist",
    "phases": "a phased implementation plan",
    "execplan": "an ExecPlan (PLANS.md)",
    "bmad": "a BMAD story",
    "todo-headings": "a list of TODO headings",
    "cursor": "a Cursor plan",
    "taskmaster": "Taskmaster's tasks.json",
}


@dataclass
class DraftItem:
    text: str
    body: str
    done: bool
    line: int
    source_line: str
    module: str | None = None  # written by the user, or a task ID; else made from the text
    parallel_mark: bool = False  # spec-kit's [P], Kiro's (P): runs with the marked ones beside it
    new_run: bool = False  # marked, but waits for the marked ones before it (spec-kit: the same file)
    optional: bool = False
    also_ticks: tuple[tuple[int, str], ...] = ()
    parent_box: tuple[int, str] | None = None
    parent_needs: tuple[tuple[int, str], ...] = ()
    parent: str = ""  # the task it is part of, as written
    gate_box: bool = False  # its own box is a success criterion (the phases dialect): kept, not a gate's
    boxless: bool = False  # it has no checkbox: its state is kept in the state folder only
    status_at: tuple[str, ...] = ()  # its state is a status field of the file instead (status_field)


@dataclass
class DraftGroup:
    heading: Heading | None  # None: the tasks stand under no heading
    items: list[DraftItem] = field(default_factory=list)
    body: str = ""
    ordered: bool = False  # its items run in document order (but for parallel marks)
    headings: set[int] = field(default_factory=set)  # the headings whose hints apply to it


@dataclass
class Reading:
    groups: list[DraftGroup]
    warnings: list[tuple[int, str]] = field(default_factory=list)
    notes: list[tuple[int, str]] = field(default_factory=list)
    # What every item is told of the plan, where the dialect says (a document around one
    # list: the whole of it but the list); else what comes before the first group.
    preamble: str | None = None
    documents: tuple[str, ...] = ()  # design documents the plan names, as written (superpowers' **Spec:**)


def slugify(text: str) -> str:
    """`Extract interfaces` → `extract-interfaces`; keeps letters of any script."""
    return re.sub(r"[\W_]+", "-", text.lower()).strip("-")


def made_module(text: str, *, keep_short: bool) -> str:
    """A module for an item that names none: its text's slug, with a short hash of the
    text so that it is unique however long the text (never a bare cut). With
    `keep_short` (the batch dialect, as it always was), a slug of up to 48 characters
    stands alone."""
    slug = slugify(text)
    if keep_short and len(slug) <= 48:
        return slug
    cut = slug[:40].rsplit("-", 1)[0] if len(slug) > 40 and "-" in slug[:40] else slug[:40]
    return f"{cut}-{hashlib.sha256(text.encode()).hexdigest()[:6]}".strip("-") if slug else ""


def lines_after(outline: Outline, box: Box, last: int) -> str:
    """The lines after a list item's first, up to line `last`, dedented."""
    lines = outline.lines[box.line : last]
    while lines and not lines[-1].strip():
        lines.pop()
    return textwrap.dedent("\n".join(lines)).strip("\n")


def nested_boxes(outline: Outline, first: int, last: int) -> tuple[tuple[int, str], ...]:
    """The checkboxes strictly after line `first` up to `last`: ticked along with the item."""
    if last <= first:
        return ()
    boxes = outline.boxes[outline.box_after(first) : outline.box_after(last)]
    return tuple((box.line, box.source) for box in boxes if not box.star)


def prose(outline: Outline, first: int, last: int) -> str:
    """Lines first..last without comments (hints among them): a group's description."""
    hidden = {line for c in outline.comments if first <= c.line <= last for line in range(c.line, c.end + 1)}
    return "\n".join(outline.lines[n - 1] for n in range(first, last + 1) if n not in hidden).strip()


def section_prose(outline: Outline, heading: Heading) -> str:
    """A heading's own prose: up to the next heading, without comments."""
    later = outline.headings[heading.index + 1].line - 1 if heading.index + 1 < len(outline.headings) else len(outline.lines)
    return prose(outline, heading.line + 1, later)


def document_around(outline: Outline, heading: Heading, title: Heading | None) -> str:
    """The whole document but its title's line and one section (the list the items are read
    from): what a plan of one list tells each of its items."""
    last = outline.section_end(heading)
    parts = [prose(outline, outline.body_start + 1, heading.line - 1), prose(outline, last + 1, len(outline.lines))]
    text = "\n\n".join(part for part in parts if part)
    if title is not None:
        text = "\n".join(line for line in text.split("\n") if line != title.source)
    return text.strip()


def one_list(outline: Outline, heading: Heading | None) -> Reading:
    """A document of one list (an ExecPlan's Progress, a BMAD story's Tasks): the boxes of the
    section under `heading` (not optional ones) as one group, in order, their nested boxes
    ticked along; the rest of the document, but its title, is what every item is told."""
    if heading is None:
        return Reading([])
    title = next((h for h in outline.headings if h.level == 1), None)
    last = outline.section_end(heading)
    group = DraftGroup(heading, ordered=True, headings={heading.index})
    for box in outline.items():
        if heading.line < box.line <= last and not box.star:
            group.items.append(DraftItem(
                text=box.text, body=lines_after(outline, box, box.end), done=box.mark != " ", line=box.line,
                source_line=box.source, also_ticks=nested_boxes(outline, box.line, box.end),
            ))
    return Reading([group], preamble=document_around(outline, heading, title))


def group_body(outline: Outline, heading: Heading, first_item_line: int) -> str:
    return prose(outline, heading.line + 1, first_item_line - 1)


def group_of(groups: dict[int | None, DraftGroup], outline: Outline, box: Box, ordered: bool) -> DraftGroup:
    """The group of the heading a box is under, made when its first item is found."""
    group = groups.get(box.heading)
    if group is None:
        heading = outline.headings[box.heading] if box.heading is not None else None
        described = group_body(outline, heading, box.line) if heading else ""
        group = groups[box.heading] = DraftGroup(heading, body=described, ordered=ordered, headings={box.heading})
    return group


def own_extent(outline: Outline, box: Box) -> int:
    """The last line of a list item as CommonMark reads it: what is indented under it."""
    return box.end


def by_heading(outline: Outline, split, *, ordered: bool, extent=own_extent) -> Reading:
    """Groups of the top-level checkbox items under each heading. `split(text)` gives an
    item's (module or None, text, parallel mark); `extent(outline, box)` the last line
    of its instruction."""
    groups: dict[int | None, DraftGroup] = {}
    for box in outline.items():
        if box.star:
            continue  # not an item in this dialect: the lint says so
        module, text, parallel = split(box.text)
        last = extent(outline, box)
        group_of(groups, outline, box, ordered).items.append(
            DraftItem(
                text=text,
                body=lines_after(outline, box, last),
                done=box.mark != " ",
                line=box.line,
                source_line=box.source,
                module=module,
                parallel_mark=parallel,
                also_ticks=nested_boxes(outline, box.line, last),
            )
        )
    return Reading(list(groups.values()))
