"""Repairing what a killed run left behind, before the next run starts.

A run killed between an item's result and its tick leaves the tick unwritten:
it is written now, and the paid-for result is kept. A run killed while agents
ran leaves them running in their own sessions: they are stopped now, and their
items run again.
"""

from __future__ import annotations

from . import checkbox, process
from .batch import Batch
from .staleness import KILLED_MID_RUN, TICK_PENDING
from .state import read_json, write_json_atomic


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
            elif reason == KILLED_MID_RUN:
                running = read_json(folder.running) or {}
                pid, create_time = running.get("pid"), running.get("create_time")
                if isinstance(pid, int) and isinstance(create_time, float) and process.is_same_process(pid, create_time):
                    process.stop_tree(pid)
                    notes.append(f"stopped the agent of {item.key} (pid {pid}) left running by a killed run")
    return notes
