"""The batch dialect, this project's own (README "The task.md format"): every heading
is a group; a checkbox at the top list level is an item; `module: text` names its
module; the lines indented under it are its instruction; a group's items run at once.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..outline import Outline
from .drafts import Reading, by_heading

NAME = "batch"
MODULE = re.compile(r"^(`?)([^\s`]+?)\1:(?:\s+|$)(.*)$", re.S)


def module_like(text: str) -> str | None:
    """The module an item's text names, when it looks like one (`auth:`, `src/auth:`,
    `` `x`: ``), not like a word of prose (`Run:`, `Note:`)."""
    match = MODULE.match(text)
    if not match:
        return None
    token = match.group(2)
    prose_word = token.isalpha() and token != token.lower()
    return token if match.group(1) or not prose_word else None


def cue(outline: Outline, path: Path) -> str:
    for box in outline.items():
        module = module_like(box.text)
        if module:
            return f'its items name their modules ("{module}:" line {box.line})'
    return "the default, as nothing marks another format"


def split(text: str) -> tuple[str | None, str, bool]:
    """`auth: text` names module auth; `Run: pytest` names none (its module is made)."""
    module = module_like(text)
    return (module, MODULE.match(text).group(3).strip(), False) if module else (None, text, False)


def read(outline: Outline, path: Path) -> Reading:
    return by_heading(outline, split, ordered=False)
