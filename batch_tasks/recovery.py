"""Repairing what a killed run left behind, before the next run starts.

- A run killed between an item's result and its tick left the tick unwritten:
  it is written now, and the paid-for result is kept.
- A run killed while an agent ran: its agent died with it (see process), but
  what the agent started may still run in its process group: it is stopped, and
  half-written records are removed. If the attempt had in fact succeeded (its
  exit, or its final result event, is in its log), the item is finished from
  that log rather than paid for again. Otherwise it runs again.
"""

from __future__ import annotations

import json
import time

from . import checkbox
from .attempt_processes import stop_leftovers
from .agents import AGENTS
from .batch import Batch
from .item_run import Attempt, record_success, success_record
from .plan import Group, Item
from .staleness import KILLED_MID_RUN, TICK_PENDING
from .state import ItemState, read_json, write_json_atomic


def recover(batch: Batch) -> list[str]:
    """Repair leftovers; return one line per repair, for the user."""
    notes = []
    for group in batch.plan.groups:
        for item in group.items:
            reason = batch.verdicts[item.key].reason
            if reason not in (TICK_PENDING, KILLED_MID_RUN):
                continue
            folder = batch.state.item(item.group, item.module)
            if reason == TICK_PENDING:
                if checkbox.set_checkbox(batch.plan.path, group, item, True, batch.state.tick_lock):
                    record = read_json(folder.result) or {}
                    write_json_atomic(folder.result, {**record, "ticked": True})
                    notes.append(f"ticked {item.key}: it succeeded in a run that was killed before ticking it")
                continue
            folder.remove_temporary_files()
            running = read_json(folder.running) or {}
            if stop_leftovers(running):
                notes.append(f"stopped what the agent of {item.key} (pid {running['pid']}) left running when its run was killed")
            if _salvage(batch, group, item, folder, running):
                notes.append(f"finished {item.key} from its log: its agent had succeeded just before its run was killed")
    return notes


def _salvage(batch: Batch, group: Group, item: Item, folder: ItemState, running: dict) -> bool:
    number = running.get("attempt")
    if not isinstance(number, int) or "run_id" not in running:
        return False
    exit_event = _exit_event(folder.events, number)
    reader = AGENTS[group.settings["agent"]].reader()
    saw_result = False
    for line in _attempt_lines(folder.log, item.key, number):
        saw_result |= any(event.kind == "result" for event in reader.feed(line))
    if exit_event is None and not saw_result:
        return False  # it was still working: it runs again
    status = exit_event["status"] if exit_event else 0
    if saw_result and (exit_event is None or exit_event.get("stopped_for")):
        status = 0  # it had said how it ended: its word counts, not how it was stopped
    outcome = reader.outcome(status)
    if not outcome.ok:
        return False
    attempt = Attempt(number, running.get("session_id", ""), running.get("attempt_started", 0.0), time.time(), status, outcome)
    record = success_record(running, group.settings, [*running.get("earlier", []), attempt.record()], outcome, item.key)
    record["salvaged"] = True
    return record_success(batch.plan.path, group, item, batch.state, record)


def _attempt_lines(log: str, key: str, number: int) -> list[str]:
    """The lines the attempt printed: after its header, up to the next header of the item."""
    header, next_header = f"=== {key} attempt {number} at ".encode(), f"=== {key} attempt ".encode()
    try:
        with open(log, "rb") as stream:
            raw = stream.read().split(b"\n")
    except OSError:
        return []
    lines, inside = [], False
    for line in raw:
        if line.startswith(header):
            lines, inside = [], True
        elif inside and line.startswith(next_header):
            break
        elif inside:
            lines.append(line.decode("utf-8", "replace").rstrip("\r"))
    return lines


def _exit_event(events: str, number: int) -> dict | None:
    try:
        with open(events, "rb") as stream:
            lines = stream.read().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            event = json.loads(line)
        except ValueError:
            continue  # the line a kill cut short
        if event.get("attempt") == number and event.get("kind") == "exit":
            return event["data"]
    return None
