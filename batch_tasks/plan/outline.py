"""The shape of a markdown task list, whatever its dialect: headings, checkbox list items
at any depth, comments, and the other blocks, each with its line.

Only reads: markdown-it parses, this module keeps what the dialects need, in document
order. Line numbers are 1-based and the file's own (front matter included).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from functools import cached_property

# A checkbox list item's first line; `- [ ]*` is Kiro's optional task (in other
# dialects it is a line that only looks like an item).
BOX = re.compile(r"^[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+\[([ xX])\](\*?)(?:[ \t]+|$)(.*)$")
CONTAINERS = {"bullet_list_open": "list", "ordered_list_open": "list", "blockquote_open": "quote"}
CLOSERS = {"bullet_list_close", "ordered_list_close", "blockquote_close"}
# Top-level blocks that are content (a thematic break `---` between tasks is not).
CONTENT = {"paragraph_open", "fence", "code_block", "table_open", "blockquote_open"}


# A line that is part of a list: an item, or its continuation (indented).
LIST_LINE = re.compile(r"^(?:[ \t]+\S|[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t])")


@dataclass(frozen=True)
class Heading:
    index: int  # its place among the headings
    line: int
    level: int
    title: str
    source: str  # the line as written
    parent: int | None  # the index of the heading it is under


@dataclass(frozen=True)
class Box:
    """A list item whose first line is a checkbox, at any depth."""

    line: int
    end: int  # its last line
    depth: int  # 1 for the top list level
    quoted: bool  # inside a block quote
    mark: str  # " ", "x" or "X"
    star: bool  # `- [ ]*`
    text: str  # after the checkbox, stripped
    source: str
    heading: int | None  # the index of the heading it is under


@dataclass(frozen=True)
class Comment:
    """A top-level HTML block: a comment, perhaps a hint."""

    line: int
    end: int
    content: str
    heading: int | None


@dataclass(frozen=True)
class Block:
    """A top-level block of content that is no heading, list or comment: a paragraph, code, a table, a quote."""

    line: int
    heading: int | None


@dataclass
class Outline:
    lines: list[str]
    headings: list[Heading]
    boxes: list[Box]
    comments: list[Comment]
    blocks: list[Block]
    opaque: list[tuple[int, int]]  # (first, last) lines of code and HTML blocks
    body_start: int  # the first line after the front matter

    def items(self) -> list[Box]:
        """The checkbox items at the top list level, outside block quotes."""
        return [box for box in self.boxes if box.depth == 1 and not box.quoted]

    def box_after(self, line: int) -> int:
        """The index in `boxes` of the first box after the line."""
        return bisect.bisect_right(self.boxes, line, key=lambda box: box.line)

    def in_opaque(self, line: int) -> bool:
        return any(first <= line <= last for first, last in self.opaque)

    @cached_property
    def lead_ins(self) -> list[int | None]:
        """By line: the line that leads the list it is in, the first above it that is prose, not
        part of a list and not blank; None where a heading comes first. In one pass down the file:
        asked of each box, a walk up from it read its whole list (10,000 items, 50 million lines)."""
        leads: list[int | None] = [None] * (self.body_start + 2)  # nothing above the body leads
        lead = None  # what leads a box on the next line
        for number in range(self.body_start + 1, len(self.lines) + 1):
            text = self.lines[number - 1]
            if text.strip() and not LIST_LINE.match(text):
                lead = None if text.lstrip().startswith("#") or self.in_opaque(number) else number
            leads.append(lead)
        return leads

    def section_end(self, heading: Heading) -> int:
        """The last line of a heading's section: before the next heading of its level or above."""
        for later in self.headings[heading.index + 1 :]:
            if later.level <= heading.level:
                return later.line - 1
        return len(self.lines)

    def text(self, first: int, last: int) -> str:
        """Lines first..last (1-based, inclusive), without the blank ones at either end."""
        return "\n".join(self.lines[first - 1 : last]).strip("\n")


def read(lines: list[str], body_start: int) -> Outline:
    """The outline of the lines from `body_start` (0-based) on; those before are blanked."""
    from markdown_it import MarkdownIt

    # Blank lines keep markdown-it's line numbers the file's own. markdown-it stops
    # descending at its nesting limit (20) and reads on, so any file parses in bounded
    # time and depth.
    tokens = MarkdownIt("commonmark").parse("\n".join([""] * body_start + lines[body_start:]))
    outline = Outline(lines, [], [], [], [], [], body_start)
    containers: list[str] = []
    parents: list[Heading] = []  # the headings enclosing the current one, by level
    heading: int | None = None
    for index, token in enumerate(tokens):
        kind = token.type
        if kind in CLOSERS:
            containers.pop()
            continue
        if kind == "heading_open":
            level = int(token.tag[1])
            while parents and parents[-1].level >= level:
                parents.pop()
            line = token.map[0]
            new = Heading(
                len(outline.headings), line + 1, level, tokens[index + 1].content.strip(), lines[line],
                parents[-1].index if parents else None,
            )
            outline.headings.append(new)
            parents.append(new)
            heading = new.index
        elif kind == "list_item_open":
            start, end = token.map
            match = BOX.match(lines[start])
            depth = containers.count("list")
            if match:
                mark, star, text = match.groups()
                outline.boxes.append(
                    Box(start + 1, end, depth, "quote" in containers, mark, bool(star), text.strip(), lines[start], heading)
                )
        elif kind in ("fence", "code_block", "html_block"):
            outline.opaque.append((token.map[0] + 1, token.map[1]))
            if kind == "html_block" and token.level == 0:
                outline.comments.append(Comment(token.map[0] + 1, token.map[1], token.content.strip(), heading))
            elif token.level == 0:
                outline.blocks.append(Block(token.map[0] + 1, heading))
        elif token.level == 0 and kind in CONTENT:
            outline.blocks.append(Block(token.map[0] + 1, heading))
        if kind in CONTAINERS:
            containers.append(CONTAINERS[kind])
    return outline
