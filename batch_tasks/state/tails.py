"""What a failed item said last, shown under its cause: the last lines of its last
attempt, in words. An agent's are the texts of its events (its messages, tool calls,
errors), never the raw JSON stream of its output.log; a command's are the lines it
printed. It only reads the item's folder.
"""

from __future__ import annotations

import json
import os

from . import item_log
from .state import open_to_read

TAIL_LINES = 10  # of a failed attempt's output, shown with its cause
TAIL_BYTES = 65536  # read from the end of a file, at most
SAID = ("assistant", "tool_use", "tool_result", "error", "output", "result")  # events whose text is words


def said_last(log: str, lines: int = TAIL_LINES) -> list[str]:
    """The last lines the item's last attempt said. Its output.log's, unless its agent spoke
    JSON there: then its words from its events.jsonl (beside output.log, see state.py),
    and what was printed after its last JSON line (a check's output, an error on stderr)."""
    printed = output_tail_of(log, lines=TAIL_BYTES)
    spoke_json = [i for i, line in enumerate(printed) if _is_json_object(line)]
    if not spoke_json:
        return printed[-lines:]
    words = _events_tail(os.path.join(os.path.dirname(log), "events.jsonl"), lines) or []
    return (words + printed[spoke_json[-1] + 1 :])[-lines:]


def _is_json_object(line: str) -> bool:
    if not line.startswith("{"):
        return False
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _events_tail(path: str, lines: int) -> list[str] | None:
    """The texts of the last attempt's events, a line each; None when there are no events."""
    events = []
    for line in _end_of(path):
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    if not events:
        return None
    last = (events[-1].get("run_id"), events[-1].get("attempt"))
    said = [text for event in events if (event.get("run_id"), event.get("attempt")) == last and event.get("kind") in SAID
            for text in str(event.get("text") or "").splitlines() if text.strip()]
    return said[-lines:]


def output_tail_of(log: str, lines: int = TAIL_LINES) -> list[str]:
    """The last lines the item's last attempt printed, from its output.log (whose
    `=== … ===` lines are the runner's own headers)."""
    text = _end_of(log)
    headers = [i for i, line in enumerate(text) if item_log.is_attempt_header(line)]
    after = text[headers[-1] + 1 :] if headers else text
    printed = [line for line in after if line.strip() and not line.startswith("=== ")]
    return printed[-lines:]


def _end_of(path: str) -> list[str]:
    """The whole lines of the end of a file of the item's folder ([] if there is none)."""
    try:
        with open_to_read(path) as stream:  # planted there, a link could show a file from elsewhere
            start = max(0, os.fstat(stream.fileno()).st_size - TAIL_BYTES)
            stream.seek(start)
            return stream.read().decode("utf-8", "replace").splitlines()[1 if start else 0 :]
    except OSError:
        return []
