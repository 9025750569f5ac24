"""Figures and text as people read them, in every view (the live panel, the summary,
`batch-status`, `batch-log`, `info`, the report, the runs' history): durations, money,
tokens, counts of things, times of day, paths from task.md's folder, and an agent's text
made safe for a terminal; the closest spelling of a mistyped name. Plain functions of their arguments.
"""

from __future__ import annotations

import difflib
import os
import re
import time

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Text from an agent, safe on a terminal: no escape sequences, one line."""
    return _CONTROL.sub("?", text.replace("\t", " ").replace("\n", " ").replace("\r", " "))


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    minutes, whole_seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{whole_seconds:02d}s" if minutes else f"{whole_seconds}s"


def money(amount: float | None) -> str:
    """A cost where one is known; nothing where none is."""
    if not amount:
        return ""
    return f"${amount:.4f}" if amount < 1 else f"${amount:.2f}"


def tokens(counts: dict[str, int] | None) -> str:
    if not counts:
        return ""
    fresh = (counts.get("input") or 0) + (counts.get("output") or 0)
    cached = (counts.get("cache_read") or 0) + (counts.get("cache_write") or 0)
    return f"{fresh:,} tok" + (f" (+{cached:,} cached)" if cached else "")


def clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


def relative(path: str, root: str) -> str:
    """A path as typed from task.md's folder, when it is under it."""
    if not path:
        return ""
    shown = os.path.relpath(path, root)
    return path if shown.startswith("..") else shown


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def closest(word: str, choices, cutoff: float) -> str | None:
    """The choice spelled most like `word`; ties go to the earlier choice (the more used)."""
    best, best_score = None, cutoff
    for choice in choices:
        score = difflib.SequenceMatcher(None, word, choice).ratio()
        if score > best_score or (best is None and score >= cutoff):
            best, best_score = choice, score
    return best
