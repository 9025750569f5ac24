"""Ticking (or unticking) exactly one item's checkbox in task.md, and the boxes that tick along with it
(an item whose state is a status field instead, of a tasks.json or a Cursor plan: status_field).

It touches task.md (and the tick lock), and only the bytes between brackets, written in place:
every other byte stays as it was, parallel ticks cannot lose each other (one lock),
and edits the user makes while the batch runs are kept.

Finding the item costs the same at item 10,000 as at item 1: it is looked for where
the plan saw its mark (`Item.mark_offset`), or where a search last found it, or
shifted as far as the last search found an item shifted. If its own line is there,
byte for byte but for the mark and between two line ends, it is ticked there, and
the rest of the file is not read. Otherwise the file changed under it, and it is
searched for as it always was: by its own line under its own heading, nearest to
where it was. Its sub-task boxes (`Item.also_ticks`) are found from its line, as
many lines below it as they were, else the nearest copy of their line in its block;
a box whose line changed is left as it is.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..plan.plan import Group, Item, mark_column
from .state import file_lock

ATTEMPTS = 5  # re-reads when the file changes under us; each is a fresh look
MARKS = (b" ", b"x", b"X")
BOM = b"\xef\xbb\xbf"


@dataclass
class Moves:
    """What searches in one task file found, so that the next ticks need not search again:
    one a run, read and written under the tick lock only."""

    found: dict[str, int] = field(default_factory=dict)  # item key → where its mark was found
    shift: int = 0  # how far from its recorded place the last search found an item


def set_checkbox(taskfile: Path, group: Group, item: Item, done: bool, lock: Path, moves: Moves | None = None) -> bool:
    """Set the item's checkbox (and those that tick along); False when the item is no longer
    in the file as it was. `moves`: what earlier ticks of the run found (none: it is searched for)."""
    if item.boxless:
        return True  # nothing in the file to tick: its record is its state
    if item.status_at:
        from .status_field import set_status

        return set_status(taskfile, item, done, lock)
    mark = group.tick.encode() if done else b" "
    with file_lock(lock):
        for _ in range(ATTEMPTS):
            try:
                fd = os.open(taskfile, os.O_RDWR)
            except OSError:
                return False
            try:
                before = os.fstat(fd)
                own = _locate(fd, before.st_size, group, item, moves if moves is not None else Moves())
                if own is None:
                    return False
                offsets = [own, *_sub_boxes(fd, before.st_size, own, item)]
                if done and item.parent_box is not None:
                    offsets += _parent_box(fd, before.st_size, item, offsets)
                stale = [offset for offset in offsets if os.pread(fd, 1, offset).lower() != mark.lower()]
                if not stale:
                    return True
                # Write only if the file is still the one we read and the brackets are still there.
                now = os.fstat(fd)
                if (now.st_mtime_ns, now.st_size) == (before.st_mtime_ns, before.st_size) and all(
                    os.pread(fd, 3, offset - 1) in (b"[ ]", b"[x]", b"[X]") for offset in stale
                ):
                    # No fsync: a tick lost to a machine crash is written again by the next
                    # run, from the result record (see recovery).
                    for offset in stale:
                        os.pwrite(fd, mark, offset)
                    # Landed, unless an editor put a new file in its place meanwhile: then
                    # look again, in the new file.
                    if _same_file(taskfile, before) and all(os.pread(fd, 1, offset) == mark for offset in stale):
                        return True
            finally:
                os.close(fd)
    return False


def _locate(fd: int, size: int, group: Group, item: Item, moves: Moves) -> int | None:
    """The offset of the item's mark in the open task file: where it was, if its line is
    still there, else wherever a search of the file finds it."""
    column = mark_column(item.source_line)
    if column is None:
        return None
    source = item.source_line.encode("utf-8")
    at = len(item.source_line[:column].encode("utf-8"))
    guesses = [moves.found.get(item.key, -1), item.mark_offset]
    if item.mark_offset >= 0 and moves.shift:
        guesses.append(item.mark_offset + moves.shift)
    for guess in dict.fromkeys(guesses):
        if guess >= 0 and _is_line_at(fd, guess - at, source, at):
            return guess
    offset = find_checkbox(_read_all(fd, size), group, item)
    if offset is not None:
        moves.found[item.key] = offset
        if item.mark_offset >= 0:
            moves.shift = offset - item.mark_offset
    return offset


def _is_line_at(fd: int, start: int, source: bytes, at: int) -> bool:
    """Whether the line that starts at byte START is SOURCE, but for its mark at AT."""
    if start < 0:
        return False
    lead = 3 if start == 3 else min(start, 1)  # a BOM before the first line, or the line end before
    window = os.pread(fd, lead + len(source) + 1, start - lead)
    line, tail = window[lead : lead + len(source)], window[lead + len(source) :]
    return (
        (lead == 0 or window[:lead] == BOM or window[lead - 1 : lead] in (b"\n", b"\r"))
        and tail in (b"", b"\n", b"\r")
        and len(line) == len(source)
        and line[at : at + 1] in MARKS
        and line[:at] == source[:at]
        and line[at + 1 :] == source[at + 1 :]
    )


def _parent_box(fd: int, size: int, item: Item, ticking: list[int]) -> list[int]:
    """A Kiro parent's box, once this, its last sub-task, and all the others are ticked."""
    data = _read_all(fd, size)
    needs = [_nearest(data, line, source) for line, source in item.parent_needs]
    if any(offset is None or (offset not in ticking and data[offset : offset + 1] not in (b"x", b"X"))
           for offset in needs):
        return []
    parent = _nearest(data, *item.parent_box)
    return [] if parent is None else [parent]


def _nearest(data: bytes, line_number: int, source_line: str) -> int | None:
    """The mark's offset of the line that is `source_line` but for its mark, nearest to its old line."""
    column = mark_column(source_line)
    if column is None:
        return None
    source, at = source_line.encode("utf-8"), len(source_line[:column].encode("utf-8"))
    before, after = source[:at], source[at + 1 :]
    candidates = [
        (abs(number + 1 - line_number), start + at)
        for number, (start, text) in enumerate(_lines(data))
        if len(text) == len(source) and text.startswith(before) and text.endswith(after) and text[at : at + 1] in MARKS
    ]
    return min(candidates)[1] if candidates else None


def _sub_boxes(fd: int, size: int, own: int, item: Item) -> list[int]:
    """The offsets of the marks of the item's sub-task boxes that are still as they were:
    in its block, or (a superpowers task's steps are its siblings) anywhere in the file."""
    if not item.also_ticks:
        return []
    start = own - len(item.source_line[: mark_column(item.source_line)].encode("utf-8"))
    indent = len(item.source_line) - len(item.source_line.lstrip(" \t"))
    block = _block(fd, start, indent)
    offsets = []
    for line_number, source_line in item.also_ticks:
        column = mark_column(source_line)
        if column is None:
            continue
        source, at = source_line.encode("utf-8"), len(source_line[:column].encode("utf-8"))
        before, after, wanted = source[:at], source[at + 1 :], line_number - item.line
        # The same line, nearest to as many lines below the item as it was.
        candidates = [
            (abs(number - wanted), line_start + at)
            for number, (line_start, text) in enumerate(block)
            if number
            and len(text) == len(source)
            and text.startswith(before)
            and text.endswith(after)
            and text[at : at + 1] in MARKS
        ]
        if candidates:
            offsets.append(start + min(candidates)[1])
        elif (found := _sibling(fd, size, start, indent, source, at, wanted)) is not None:
            offsets.append(found)
    return offsets


def _sibling(fd: int, size: int, start: int, indent: int, source: bytes, at: int, wanted: int) -> int | None:
    """A box beside the item rather than under it (a superpowers task's steps): at the item's
    own indent, in its section (up to the next heading), nearest to where it was."""
    data = os.pread(fd, size - start, start)
    before, after = source[:at], source[at + 1 :]
    candidates = []
    fence = Fence()
    for number, (line_start, text) in enumerate(_lines(data, 0)):
        if fence.inside(text):
            continue  # code: a `# comment` or `#[test]` in it is no heading
        if number and text.startswith(b"#"):
            break
        if (number and len(text) - len(text.lstrip(b" \t")) == indent and len(text) == len(source)
                and text.startswith(before) and text.endswith(after) and text[at : at + 1] in MARKS):
            candidates.append((abs(number - wanted), start + line_start + at))
    return min(candidates)[1] if candidates else None


def _block(fd: int, start: int, indent: int) -> list[tuple[int, bytes]]:
    """The item's line and the lines of its block below it (until a line indented no more
    than the item's), as (offset from START, text)."""
    chunk = 16384
    while True:
        data = os.pread(fd, chunk, start)
        lines = list(_lines(data, 0))
        complete = len(data) < chunk
        for number, (_, text) in enumerate(lines):
            stripped = text.lstrip(b" \t")
            if number and stripped and len(text) - len(stripped) <= indent:
                return lines[:number]
        if complete:
            return lines
        chunk *= 4


class Fence:
    """Whether a line, read in order, is part of a fenced code block (its fences included)."""

    def __init__(self):
        self.open: bytes | None = None  # the fence that opened the block we are in

    def inside(self, text: bytes) -> bool:
        stripped = text.lstrip(b" ")
        if self.open is not None:
            if stripped.startswith(self.open) and not stripped.lstrip(self.open[:1]).strip():
                self.open = None
            return True
        if len(text) - len(stripped) <= 3 and stripped[:3] in (b"```", b"~~~"):
            self.open = stripped[: len(stripped) - len(stripped.lstrip(stripped[:1]))]
            return True
        return False


def _same_file(path: Path, opened: os.stat_result) -> bool:
    try:
        current = os.stat(path)
    except OSError:
        return False
    return (current.st_ino, current.st_dev) == (opened.st_ino, opened.st_dev)


def _read_all(fd: int, size: int) -> bytes:
    chunks, offset = [], 0
    while True:
        chunk = os.pread(fd, max(size - offset, 65536), offset)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        offset += len(chunk)


LINE = re.compile(rb"([^\r\n]*)(?:\r\n|\r|\n|$)")


def _lines(data: bytes, start: int | None = None):
    """(offset, text) of each line, whatever its line end; a BOM is no part of the first."""
    if start is None:
        start = 3 if data.startswith(BOM) else 0
    for match in LINE.finditer(data, start):
        if match.start() == len(data) and match.start() > start:
            return
        yield match.start(), match.group(1)


def find_checkbox(data: bytes, group: Group, item: Item) -> int | None:
    """The byte offset of the item's checkbox mark, or None if it is gone.

    A candidate is a line equal to the item's own line but for the mark. Of
    several, those under the item's heading win, then the nearest to its old line.
    """
    column = mark_column(item.source_line)  # a list item's box, or a TODO heading's (`### [ ] …`)
    if column is None:
        return None
    mark_at = len(item.source_line[:column].encode("utf-8"))
    source = item.source_line.encode("utf-8")
    before, after = source[:mark_at], source[mark_at + 1 :]
    heading = group.source_line.encode("utf-8").rstrip()

    candidates = []  # (under its heading, distance from its old line, offset)
    current_heading, fence = None, Fence()
    for number, (line_start, text) in enumerate(_lines(data)):
        if fence.inside(text):  # inside a code block nothing is a heading or an item
            continue
        if text.rstrip() == heading:
            current_heading = True
        elif text.startswith(b"#"):
            current_heading = False
        if (
            len(text) == len(source)
            and text.startswith(before)
            and text.endswith(after)
            and text[mark_at : mark_at + 1] in (b" ", b"x", b"X")
        ):
            candidates.append((not current_heading, abs(number + 1 - item.line), line_start + mark_at))
    return min(candidates)[2] if candidates else None
