"""Ticking (or unticking) exactly one item's checkbox in task.md.

The file is never rewritten: the one byte between the brackets is written in
place, so every other byte stays as it was, parallel ticks cannot lose each
other, and edits the user makes while the batch runs are kept. The item is found
again by its own line under its own heading, wherever edits have moved it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .plan import Group, Item
from .state import file_lock
from .taskfile import CHECKBOX

ATTEMPTS = 5  # re-reads when the file changes under us; each is a fresh look


def set_checkbox(taskfile: Path, group: Group, item: Item, done: bool, lock: Path) -> bool:
    """Set the item's checkbox; False when the item is no longer in the file as it was."""
    mark = b"x" if done else b" "
    with file_lock(lock):
        for _ in range(ATTEMPTS):
            try:
                fd = os.open(taskfile, os.O_RDWR)
            except OSError:
                return False
            try:
                before = os.fstat(fd)
                data = _read_all(fd, before.st_size)
                offset = find_checkbox(data, group, item)
                if offset is None:
                    return False
                if data[offset : offset + 1].lower() == mark:
                    return True
                # Write only if the file is still the one we read and the brackets are still there.
                now = os.fstat(fd)
                if (now.st_mtime_ns, now.st_size) == (before.st_mtime_ns, before.st_size) and os.pread(
                    fd, 3, offset - 1
                ) in (b"[ ]", b"[x]", b"[X]"):
                    # No fsync: a tick lost to a machine crash is written again by the next
                    # run, from the result record (see recovery).
                    os.pwrite(fd, mark, offset)
                    # Landed, unless an editor put a new file in its place meanwhile: then
                    # look again, in the new file.
                    if _same_file(taskfile, before) and os.pread(fd, 1, offset) == mark:
                        return True
            finally:
                os.close(fd)
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


def _lines(data: bytes):
    """(offset, text) of each line, whatever its line end; a BOM is no part of the first."""
    start = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    for match in LINE.finditer(data, start):
        if match.start() == len(data) and match.start() > start:
            return
        yield match.start(), match.group(1)


def find_checkbox(data: bytes, group: Group, item: Item) -> int | None:
    """The byte offset of the item's checkbox mark, or None if it is gone.

    A candidate is a line equal to the item's own line but for the mark. Of
    several, those under the item's heading win, then the nearest to its old line.
    """
    match = CHECKBOX.match(item.source_line)
    if match is None:
        return None
    mark_at = match.start(1)
    source = item.source_line.encode("utf-8")
    before, after = source[:mark_at], source[mark_at + 1 :]
    heading = group.source_line.encode("utf-8").rstrip()

    candidates = []  # (under its heading, distance from its old line, offset)
    current_heading, fence = None, None
    for number, (line_start, text) in enumerate(_lines(data)):
        stripped = text.lstrip(b" ")
        if fence is not None:  # inside a code block nothing is a heading or an item
            if stripped.startswith(fence):
                fence = None
            continue
        if len(text) - len(stripped) <= 3 and stripped[:3] in (b"```", b"~~~"):
            fence = stripped[:3]
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
