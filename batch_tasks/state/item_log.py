"""The one writer and reader of an item's own log lines: each events.jsonl line (the agent's
events, the runner's steps and states), and the `=== … ===` headers of output.log that open
an attempt. Recovery finds where a killed run stopped by what is written here, so the shape
is decided in one place. Touches only the item's state folder.

    append(folder, run_id, attempt, kind, text, data)    # one events.jsonl line
    log.write(attempt_header(key, number, run_id))       # opens an attempt in output.log
    log.write(internal_error(key, error))                # a bug met in its steps, with its traceback
    states_reached(folder.events, run_id, number)        # the item machine's states, in order
    recent_events(folder.events, since)                  # its latest events, for batch-status
    exit_of(folder.events, run_id, number)               # the agent's exit, if it was written
    attempt_output(folder.log, key, number, run_id)      # the lines that attempt printed
"""

from __future__ import annotations

import json
import os
import re
import time
import traceback
from typing import Any, Iterator

from .state import ItemState, open_to_read, read_bytes

STATE = "state"  # the kind of the line that says the item machine moved (see item_machine)
PROCESSES = "processes"  # what identifies a check's or setup's processes, for the next run to stop
EXIT = "exit"
_HEADER = re.compile(r"^=== (?P<key>.+) attempt (?P<number>\d+) of run (?P<run>\S+) at [^=]+ ===$")


def line(run_id: str, attempt: int, kind: str, text: str = "", data: dict[str, Any] | None = None) -> str:
    return json.dumps({"t": round(time.time(), 3), "run_id": run_id, "attempt": attempt, "kind": kind,
                       "text": text, "data": data or {}}) + "\n"


def append(folder: ItemState, run_id: str, attempt: int, kind: str, text: str = "",
           data: dict[str, Any] | None = None) -> None:
    with folder.open_events() as events:
        events.write(line(run_id, attempt, kind, text, data))


def attempt_header(key: str, number: int, run_id: str) -> bytes:
    return f"=== {key} attempt {number} of run {run_id} at {time.strftime('%Y-%m-%d %H:%M:%S')} ===\n".encode()


def failed_header(key: str, number: int, failure: str, cause: str) -> bytes:
    return f"=== {key} attempt {number} failed ({failure}): {cause} ===\n".encode()


def note_header(text: str) -> bytes:
    """A line of the runner's own in output.log, never taken for an attempt's header."""
    return f"=== {text} ===\n".encode()


def internal_error(key: str, error: BaseException) -> bytes:
    """A bug met in one of the item's steps, with its traceback: what a report of it needs."""
    trace = "".join(traceback.format_exception(error))
    return note_header(f"{key}: internal error, a bug of batch-tasks (its traceback follows)") + trace.encode()


def is_attempt_header(text: str) -> bool:
    return _HEADER.match(text) is not None


def run_of_header(text: str, key: str) -> str | None:
    """The run of an attempt header of item KEY's, else None."""
    found = _HEADER.match(text)
    return found["run"] if found and found["key"] == key else None


def _parsed(raw: bytes) -> dict[str, Any] | None:
    try:
        event = json.loads(raw)
    except ValueError:
        return None  # the line a kill cut short
    return event if isinstance(event, dict) else None


def _events(path: str, run_id: str, number: int) -> Iterator[dict[str, Any]]:
    for raw in (read_bytes(path) or b"").splitlines():
        event = _parsed(raw)
        if event is not None and event.get("run_id") == run_id and event.get("attempt") == number:
            yield event


def recent_events(path: str, since: float | None = None, tail_bytes: int = 16384) -> list[dict[str, Any]]:
    """The item's latest events, oldest first: those in the last TAIL_BYTES of its events.jsonl
    (with SINCE, only those written since then), each a dict whose `data` is a dict."""
    try:
        with open_to_read(path) as stream:
            start = max(0, os.fstat(stream.fileno()).st_size - tail_bytes)
            stream.seek(start)
            lines = stream.read().splitlines()[1 if start else 0 :]  # a cut first line is no event
    except OSError:
        return []
    found = []
    for raw in lines:
        event = _parsed(raw)
        if event is None:
            continue
        stamp = event.get("t")
        if since is not None and not (isinstance(stamp, (int, float)) and stamp >= since):
            continue
        found.append({**event, "data": event["data"] if isinstance(event.get("data"), dict) else {}})
    return found


def states_reached(path: str, run_id: str, number: int) -> list[str]:
    return [event["data"].get("state") for event in _events(path, run_id, number)
            if event.get("kind") == STATE and isinstance(event.get("data"), dict)]


def processes_of(path: str, run_id: str) -> list[dict[str, Any]]:
    """What identifies the processes of the checks and setups the run started for the item."""
    found = []
    for raw in (read_bytes(path) or b"").splitlines():
        event = _parsed(raw)
        if (event is not None and event.get("run_id") == run_id and event.get("kind") == PROCESSES
                and isinstance(event.get("data"), dict)):
            found.append(event["data"])
    return found


def exit_of(path: str, run_id: str, number: int) -> dict[str, Any] | None:
    found = None
    for event in _events(path, run_id, number):
        if event.get("kind") == EXIT and isinstance(event.get("data"), dict):
            found = event["data"]
    return found


def attempt_output(log: str, key: str, number: int, run_id: str) -> list[str]:
    """The lines the attempt printed: after its own header, up to the next header of the item."""
    lines, inside = [], False
    for raw in (read_bytes(log) or b"").split(b"\n"):
        text = raw.decode("utf-8", "replace").rstrip("\r")
        found = _HEADER.match(text)
        if found and found["key"] == key and int(found["number"]) == number and found["run"] == run_id:
            lines, inside = [], True
        elif inside and (found and found["key"] == key or text.startswith(f"=== {key} attempt ")):
            break
        elif inside:
            lines.append(text)
    return lines
