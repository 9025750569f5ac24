"""`doit batch-log ITEM [-f]`: one item's story, readable: its attempts, what its agent
said, its tool calls and their results, its errors, retries and exits, read from the
item's events.jsonl (normalized events, never the raw stream-json); with `-f`,
followed as the item runs, until Ctrl-C.

It only reads: the item's events file, opened without following a symlink, each line
untrusted (a line that is not an event is skipped).
"""

from __future__ import annotations

import json
import os
import sys
import time

from doit.cmd_base import DoitCmdBase

from ..events import STEP
from ..formats import money, printable, tokens
from ..state.state import open_to_read
from ..tasks.loader import ReadsTaskFile
from .cli import EXIT_BAD_INPUT, FriendlyArgs, flag

POLL_SECONDS = 0.25

opt_follow = flag("follow", "keep printing its events as they come, until Ctrl-C", short="f")


class BatchLog(FriendlyArgs, ReadsTaskFile, DoitCmdBase):
    name = "batch-log"
    doc_purpose = "show one item's attempts, tool calls, results and errors"
    doc_usage = "GROUP:MODULE [-f]"
    doc_description = (
        "Reads the item's events.jsonl: every attempt, what its agent did and said, each\n"
        "error and retry, and how each attempt ended. With -f, follows it live (Ctrl-C ends).\n"
        "Its raw output is in output.log beside it."
    )
    cmd_options = (opt_follow,)

    def _execute(self, pos_args, follow=False):
        batch = self.loader.batch
        items = {item.key: item for item in batch.plan.items()}
        if len(pos_args) != 1 or pos_args[0] not in items:
            return _usage(pos_args, batch.plan)
        item = items[pos_args[0]]
        path = batch.state.item(item.group, item.module).events
        self.outstream.write(f"{item.key}: {item.text}\n")
        try:
            for line in _lines(path, follow):
                self.outstream.write(line + "\n")
                self.outstream.flush()
        except KeyboardInterrupt:
            return 0
        except OSError as error:
            sys.stderr.write(f"ERROR: cannot read {os.path.relpath(path)}: {error.strerror or error}\n")
            return EXIT_BAD_INPUT
        return 0


def _usage(names: list[str], plan) -> int:
    groups = {group.slug: group for group in plan.groups}
    if len(names) == 1 and names[0] in groups:
        members = ", ".join(item.key for item in groups[names[0]].items[:6]) or "none"
        sys.stderr.write(f"ERROR: {names[0]!r} is a group; name one of its items: {members}\n")
    else:
        sys.stderr.write("ERROR: name one item: doit batch-log GROUP:MODULE [-f]\n")
    return EXIT_BAD_INPUT


def _lines(path: str, follow: bool):
    """The readable lines of the events at `path`, then, following, those that come."""
    stream = _open(path, follow)
    if stream is None:
        yield "  (no events yet: it has not run)"
        return
    with stream:
        attempt, pending = None, b""
        while True:
            chunk = stream.read(65536)
            if not chunk:
                if not follow:
                    return
                time.sleep(POLL_SECONDS)
                continue
            *complete, pending = (pending + chunk).split(b"\n")
            for raw in complete:
                event = _event(raw)
                if event is None:
                    continue
                # Each run numbers its attempts from 1; an attempt's check and merge come after its exit.
                if (event.get("run_id"), event.get("attempt")) != attempt:
                    attempt = (event.get("run_id"), event.get("attempt"))
                    yield f"attempt {event.get('attempt')}, {_clock(event.get('t'))}"
                text = describe(event)
                if text is not None:
                    yield f"  {_clock(event.get('t'))}  {text}"


def _open(path: str, follow: bool):
    while True:
        try:
            return open_to_read(path)
        except FileNotFoundError:
            if not follow:
                return None
            time.sleep(POLL_SECONDS)  # it has not started yet: wait for it


def _event(raw: bytes) -> dict | None:
    try:
        event = json.loads(raw)
    except ValueError:
        return None
    return event if isinstance(event, dict) and isinstance(event.get("kind"), str) else None


def _clock(stamp) -> str:
    return time.strftime("%H:%M:%S", time.localtime(stamp)) if isinstance(stamp, (int, float)) else "--:--:--"


def describe(event: dict) -> str | None:
    """One event as one line for people, or None for one that says nothing to them."""
    kind, text = event["kind"], printable(str(event.get("text") or ""))
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    if kind == "started":
        model = f" ({printable(str(data['model']))})" if data.get("model") else ""
        session = f", session {printable(str(data['session_id']))}" if data.get("session_id") else ""
        return f"started{model}{session}"
    if kind == "tool_use":
        return f"→ {text}"
    if kind == "tool_result":
        if data.get("is_error"):
            return f"  ← error: {text}" if text else "  ← error"
        return f"  ← {text}" if text else None
    if kind == "assistant":
        return f"says: {text}"
    if kind == "retry":
        at = data.get("retry_at")
        return f"retry: {text}" + (f" (at {_clock(at)})" if isinstance(at, (int, float)) else "")
    if kind == "result":
        spent = " ".join(part for part in (money(_number(data.get("cost_usd"))), tokens(_counts(data.get("tokens")))) if part)
        return f"result: {text}" + (f" ({spent})" if spent else "")
    if kind == "error":
        return f"error: {text}"
    if kind == "exit":
        stopped = f", stopped: {printable(str(data['stopped_for']))}" if data.get("stopped_for") else ""
        return f"exit status {data.get('status')}{stopped}"
    if kind == STEP:
        step = printable(str(data.get("step") or "step"))
        return f"{step}: {text}" if text else step
    if kind == "usage":
        return None  # the totals come with the result
    return text or None  # `output`: a line the command printed; unknown kinds, as they say


def _number(value) -> float | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _counts(value) -> dict | None:
    return {k: v for k, v in value.items() if isinstance(v, int)} if isinstance(value, dict) else None
