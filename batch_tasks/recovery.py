"""Repairing what a killed run left behind, before the next run starts.

Repairs are owed until they are done: they follow from the items' records (see
staleness: TICK_PENDING, KILLED_MID_RUN), not from how the last run ended, so a
run that stopped at a typo in task.md leaves them owed to the next.

- A run killed between an item's result and its tick left the tick unwritten:
  it is written now (on the item's line as task.md has it now), and the paid-for
  result is kept.
- A run killed while an agent ran: its agent died with it (see process), but what
  the agent started may still run: it is stopped, and half-written records are
  removed. If that very attempt (its run id and number) had in fact succeeded (its
  exit, or its final result event, is in its log), the item is finished from that
  log through the lifecycle's own record and tick steps rather than paid for again.
  Otherwise it runs again.
- With `isolation: worktree`, git says how far the killed attempt got: a merge that
  landed is ticked; the attempt's success (committed, or still uncommitted in its
  worktree, or pushed by the Dask worker that ran it: found with `git ls-remote`, once
  that attempt has ended) goes straight to check and merge; a half-done merge is aborted first. A
  success an earlier attempt committed (its check failed) is not landed: the item runs again.
"""

from __future__ import annotations

import json
import time

from . import process
from .agents import AGENTS, Outcome
from .attempt_processes import stop_leftovers
from .attempt import outcome_of
from .batch import Batch
from .item_status import RUNNING_NOW, read_status
from .lifecycle import finish_success
from .plan import Group, Item
from .records import Attempt, success_record, tick
from .staleness import KILLED_MID_RUN, TICK_PENDING
from .state import ItemState, read_bytes


def owed(batch: Batch) -> bool:
    return any(v.reason in (TICK_PENDING, KILLED_MID_RUN) for v in batch.verdicts.values())


def recover(batch: Batch) -> list[str]:
    """Repair leftovers; return one line per repair, for the user."""
    notes = []
    landing = _Landing(batch)
    for group in batch.plan.groups:
        for item in group.items:
            reason = batch.verdicts[item.key].reason
            folder = batch.state.item(item.group, item.module)
            if reason == TICK_PENDING:
                status = read_status(folder)
                if status.result is not None and tick(batch.plan.path, group, item, batch.state, status.result):
                    notes.append(f"ticked {item.key}: it succeeded in a run that ended before ticking it")
                else:
                    notes.append(f"could not tick {item.key} in {batch.plan.path.name} (is it writable?); "
                                 "its result is kept, and the next run tries again")
            elif reason == KILLED_MID_RUN:
                folder.remove_temporary_files()
                status = read_status(folder)
                running = status.running if status.kind == RUNNING_NOW else {}
                if stop_leftovers(running):
                    pid = running.get("pid")
                    notes.append(f"stopped what the agent of {item.key} (pid {pid}) left running when its run was killed")
                record = _salvage(group, item, folder, running)
                if group.settings["isolation"] == "worktree":
                    record = landing.land(group, item, running, record)
                if record is not None:
                    finish_success(None, batch.plan.path, group, item, batch.state, record)
                    notes.append(f"finished {item.key} from its log: its agent had succeeded just before its run was killed")
    landing.close()
    return notes


class _Landing:
    """Check and merge, for isolated items a killed run left between their agent's success and
    their tick: through the same worktree, check and merge queue as a run's."""

    def __init__(self, batch: Batch):
        self.batch, self.isolation, self.queue = batch, None, None

    def land(self, group: Group, item: Item, running: dict, salvaged: dict | None) -> dict | None:
        from .check import Check
        from .merge_queue import MergeQueue
        from .worktree import Isolation

        run_id = running.get("run_id")
        if not isinstance(run_id, str):
            return None
        if self.isolation is None:
            self.isolation = Isolation(self.batch.plan.path, self.batch.plan.settings, process.Supervisor(),
                                       workdir=self.batch.workdir)
            self.isolation.prepare()  # aborts a half-done merge
            self.queue = MergeQueue(self.isolation)
        isolation = self.isolation
        merged = isolation.merged_commit(item.group, item.module, run_id)
        if merged is not None:
            record = salvaged or _salvaged_record(group, item, running)
            return {**record, "merge": {"status": "merged", "merge_commit": merged, "recovered": True}}
        folder = self.batch.state.item(item.group, item.module)
        workspace = isolation.pending_success(item.group, item.module, run_id) if salvaged is not None else None
        if workspace is None:  # a remote attempt (executors/dask_cluster) may have pushed its success
            from .executors.fetched import fetch_pushed_success

            with folder.open_log() as log:
                workspace = fetch_pushed_success(isolation, group, item, running, log)
            if workspace is not None:
                salvaged = salvaged or _salvaged_record(group, item, running)
        if salvaged is None:
            # Its agent had not succeeded. A success committed on its branch is an earlier attempt's,
            # whose check failed: not to land. It runs again; the new attempt keeps this one's work aside.
            return None
        if workspace is None or workspace.leftovers():
            # Killed before its success was (all) committed, maybe over an earlier attempt's commit.
            workspace = workspace or isolation.reopen(item.group, item.module)
            if workspace is None or not workspace.commit_leftovers(group.settings["allow_empty"]).changed:
                return None
        check = Check.from_settings(group.settings, item.group, item.module)
        with folder.open_log() as log:
            if check is not None and not check.run(workspace.path, workspace.folder, isolation.supervisor, log).passed:
                return None  # it runs again, in its kept worktree's place
            result = self.queue.merge(workspace, check, log, group.settings)
        if not result.merged:
            return None
        workspace.remove()
        return {**salvaged, "merge": result.record()}

    def close(self) -> None:
        if self.isolation is not None:
            self.isolation.close()


def _salvaged_record(group: Group, item: Item, running: dict) -> dict:
    """The success record of an attempt whose work git holds, when its log said nothing more."""
    outcome = Outcome(ok=True)
    attempt = Attempt(running.get("attempt", 0), running.get("session_id", ""), running.get("attempt_started", 0.0),
                      running["run_id"], time.time(), None, outcome)
    attempts = [*running.get("earlier", []), attempt.record()]
    return success_record(running, group.settings, attempts, outcome, item.key)


def _salvage(group: Group, item: Item, folder: ItemState, running: dict) -> dict | None:
    """The success record of the killed attempt, if its log shows that very attempt succeeded."""
    number, run_id = running.get("attempt"), running.get("run_id")
    if not isinstance(number, int) or not isinstance(run_id, str):
        return None
    exit_event = _exit_event(folder.events, run_id, number)
    reader = AGENTS[group.settings["agent"]].reader(group.settings)
    saw_result = False
    for line in _attempt_lines(folder.log, item.key, number, run_id):
        saw_result |= any(event.kind == "result" for event in reader.feed(line))
    if exit_event is None and not saw_result:
        return None  # it was still working: it runs again
    if exit_event is None:  # killed after its result, before its exit: its word counts
        outcome = outcome_of(reader, -9, "its run was killed", True)
    else:
        outcome = outcome_of(reader, exit_event["status"], exit_event.get("stopped_for"), saw_result)
    if not outcome.ok:
        return None
    attempt = Attempt(number, running.get("session_id", ""), running.get("attempt_started", 0.0), run_id,
                      time.time(), exit_event["status"] if exit_event else None, outcome)
    record = success_record(running, group.settings, [*running.get("earlier", []), attempt.record()], outcome, item.key)
    record["salvaged"] = True
    return record


def _attempt_lines(log: str, key: str, number: int, run_id: str) -> list[str]:
    """The lines the attempt printed: after its own header, up to the next header of the item."""
    header, next_header = f"=== {key} attempt {number} of run {run_id} at ".encode(), f"=== {key} attempt ".encode()
    raw = (read_bytes(log) or b"").split(b"\n")
    lines, inside = [], False
    for line in raw:
        if line.startswith(header):
            lines, inside = [], True
        elif inside and line.startswith(next_header):
            break
        elif inside:
            lines.append(line.decode("utf-8", "replace").rstrip("\r"))
    return lines


def _exit_event(events: str, run_id: str, number: int) -> dict | None:
    lines = (read_bytes(events) or b"").splitlines()
    for line in reversed(lines):
        try:
            event = json.loads(line)
        except ValueError:
            continue  # the line a kill cut short
        if event.get("run_id") == run_id and event.get("attempt") == number and event.get("kind") == "exit":
            return event["data"]
    return None
