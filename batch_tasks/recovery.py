"""Repairing what a killed run left behind, before the next run starts.

A run killed between an item's result and its tick leaves the tick unwritten:
it is written now, and the paid-for result is kept. A run killed while agents
ran leaves what they started running in their own sessions: it is stopped now,
half-written records are removed, and the items run again.
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
                folder.remove_temporary_files()
                running = read_json(folder.running) or {}
                pid, create_time = running.get("pid"), running.get("create_time")
                if isinstance(pid, int) and isinstance(create_time, float) and process.stop_group_left_by(pid, create_time):
                    notes.append(f"stopped what the agent of {item.key} (pid {pid}) left running when its run was killed")
    return notes
