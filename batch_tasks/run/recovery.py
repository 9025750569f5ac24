"""Repairing what a killed or stopped run left behind, and finding where its items stopped.

Repairs are owed until they are done: they follow from the items' records (see
staleness: TICK_PENDING, KILLED_MID_RUN), not from how the last run ended, so a
run that stopped at a typo in task.md leaves them owed to the next. `recover` runs
before the run:

- A run killed between an item's result and its tick left the tick unwritten:
  it is written now (on the item's line as task.md has it now), and the paid-for
  result is kept.
- A run killed while an item ran: what its agent, check or setup started may still
  run: it is stopped, and half-written records are removed.
- A run killed while an item's services were up (services.json, whether the item is run
  again or had been ticked): its `services_down:` is run, as they were started, on their
  own ports, held by this run meanwhile (see leftover_services). After the agents' leftovers
  are stopped: what an agent left may use them.

Then, in the run, the item's lifecycle asks `resumption` where its last attempt got (see
item_machine): a killed (running.json) or stopped (an interrupted failure.json that names
its step) attempt whose agent had succeeded resumes at the step after the last it reached
(commit, check, review, merge, record, tick) through the lifecycle's own code, its agent not
paid for again. An item awaiting review (a failure record marked so, or its state in
events.jsonl after a kill) resumes awaiting it: its approval is looked for again (see review). Where it got is read from the item machine's states in its events.jsonl (see
item_log), from the agent's exit or final result in its log (or the exit the run's watchdog
wrote down, when the runner died before it could), and, with `isolation:
worktree`, from git: a merge that landed this run of the item counts as merged whatever
the log says; the attempt's worktree (or the branch a Dask worker pushed) holds its work.
A success an earlier attempt committed (its check failed) is not resumed: the item runs again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..agents import AGENTS, Outcome
from ..executors.attempt import outcome_of
from ..plan.plan import Group, Item
from ..processes.attempt_processes import stop_leftovers
from ..processes.ports import Ports
from ..processes.watchdog_channel import exits_written
from ..state import item_log, item_machine
from ..state.item_status import FAILED, INTERRUPTED, RUNNING_NOW, ItemStatus, read_status
from ..state.records import tick
from ..state.staleness import KILLED_MID_RUN, TICK_PENDING
from ..state.state import ItemState, read_json
from ..tasks.batch import Batch
from . import leftover_services

if TYPE_CHECKING:
    from ..isolation.workspace import AttemptWorkspace

RESUMABLE = (RUNNING_NOW, INTERRUPTED, FAILED)  # the statuses an attempt that may be gone on with leaves


def owed(batch: Batch, killed_before: bool = False) -> bool:
    """Whether anything is to repair (`killed_before`: run.lock says the run before was killed)."""
    return (any(v.reason in (TICK_PENDING, KILLED_MID_RUN) for v in batch.verdicts.values())
            or leftover_services.left_up(batch, killed_before))


def recover(batch: Batch, waiting: Callable[[str], None] = lambda text: None, killed_before: bool = False,
            ports: Ports | None = None) -> list[str]:
    """Repair leftovers; return one line per repair, for the user (told at once, through
    `waiting`, of each wait for a remote agent a killed run left running). `ports`: where
    blocks of ports are held while leftover services are stopped (the machine's by default)."""
    notes = []
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
                checks = item_log.processes_of(folder.events, running["run_id"]) if running.get("run_id") else []
                if sum(stop_leftovers(check) for check in checks):
                    notes.append(f"stopped what a check or setup of {item.key} left running when its run was killed")
                reached = _reached(group, item, folder, running)
                if reached is not None:
                    notes.append(f"resuming {item.key} from its log after its step {reached[0]!r}: its agent had "
                                 "succeeded just before its run was killed, and is not run again")
                elif running.get("executor") == "dask":
                    from ..executors.fetched import wait_for_remote_attempt

                    with folder.open_log() as log:
                        wait_for_remote_attempt(item, running, log, waiting)
                    notes.append(f"resuming {item.key} from its remote attempt on {running.get('worker', 'a Dask worker')}"
                                 ": it ended after its run was killed; a success it pushed lands without its agent "
                                 "being run again")
    return notes + leftover_services.stop_all(batch, killed_before, ports or Ports())


@dataclass
class Resumption:
    """Where a killed or stopped attempt got: its item goes on from `state` (a landing state)."""

    state: str
    number: int
    run_id: str
    session_id: str
    started: float
    exit_status: int | None
    outcome: Outcome
    earlier: list[dict[str, Any]] = field(default_factory=list)  # the records of the attempts before it
    extra: dict[str, Any] = field(default_factory=dict)  # what its record said of its check, so far
    workspace: AttemptWorkspace | None = None  # its worktree, with isolation (fetched from a remote worker, or here)
    merge: dict[str, Any] | None = None  # with MERGED: the evidence git gave of its merge
    fingerprint: dict[str, str] = field(default_factory=dict)  # what the item was made from then


def resumption(group: Group, item: Item, folder: ItemState, status: ItemStatus, isolation=None,
               log=None) -> Resumption | None:
    """Where the item's last attempt got, if its agent had succeeded and its work is still where it
    was left; None: it runs again (`isolation`: the run's worktree.Isolation, with isolation)."""
    if status.kind == RUNNING_NOW:
        running = status.running
        found = _reached(group, item, folder, running)
    elif status.kind in (INTERRUPTED, FAILED) and isinstance(status.failure.get("resume"), dict):
        running = status.failure["resume"]
        found = _reached(group, item, folder, running, stopped_at=running.get("state"))
    else:
        return None
    workspace = merge = None
    if group.settings["isolation"] == "worktree":
        if isolation is None:
            return None
        found, workspace, merge = _in_git(group, item, running, found, isolation, log)
    if found is None:
        return None
    state, outcome, exit_status = found
    return Resumption(state, running["attempt"], running["run_id"], str(running.get("session_id", "")),
                      float(running.get("attempt_started") or 0.0), exit_status, outcome,
                      list(running.get("earlier") or []), dict(running.get("extra") or {}), workspace, merge,
                      dict(running.get("fingerprint") or {}))


def _reached(group: Group, item: Item, folder: ItemState, running: Mapping[str, Any],
             stopped_at: str | None = None) -> tuple[str, Outcome, int | None] | None:
    number, run_id = running.get("attempt"), running.get("run_id")
    if not isinstance(number, int) or not isinstance(run_id, str):
        return None
    route = item_machine.Route.of(group.settings["isolation"] == "worktree", bool(group.settings.get("check")),
                                  reviewed=bool(group.settings.get("review")),
                                  pull_request=group.settings.get("land") == "pr",
                                  own_check=group.settings.get("own_check", True))
    noted = item_log.states_reached(folder.events, run_id, number)
    state = item_machine.furthest([*noted, *([stopped_at] if stopped_at else [])], route)
    outcome, exit_status = _agent_said(group, item, folder, running)
    if state is None and outcome is None:
        return None  # it was still working: it runs again
    if state is not None and state not in item_machine.LANDING[:-1]:
        return None  # recorded already: the result, not this, says the rest
    if state in (item_machine.CHECKED, item_machine.MERGED):
        # The log is the agent's to write: a check it says passed runs again, and git alone says merged.
        state = item_machine.COMMITTED if route.commits else item_machine.AGENT_DONE
    return state or item_machine.AGENT_DONE, outcome or Outcome(ok=True), exit_status


def _in_git(group: Group, item: Item, running: Mapping[str, Any], found, isolation, log):
    """With isolation, git has the last word: merged is merged, and a landing goes on only in the
    attempt's own worktree (or from the branch its remote worker pushed). Returns what is found,
    the worktree, and the merge's evidence."""
    from ..executors.fetched import fetch_pushed_success
    from ..isolation.workspace import WorkspaceError

    run_id = running.get("run_id")
    if not isinstance(run_id, str):
        return None, None, None
    said = found or (None, Outcome(ok=True), None)
    try:
        workspace = isolation.reopen(item.group, item.module)
        if workspace is not None and workspace.run_id != run_id:
            workspace = None  # another run's attempt: not this one's work
    except WorkspaceError as error:
        workspace = None  # what is in it is not known to be this attempt's work alone
        if log is not None:
            log.write(item_log.note_header(f"its worktree is not gone on with: {error}"))
    if workspace is not None:
        workspace.run_id = run_id
    merged = isolation.merged_commit(item.group, item.module, run_id)
    if merged is not None:
        return (item_machine.MERGED, said[1], said[2]), workspace, {"status": "merged", "merge_commit": merged,
                                                                    "recovered": True}
    if workspace is None:
        workspace = fetch_pushed_success(isolation, group, item, running, log)
        if workspace is not None:  # its worker committed and pushed its success
            return (item_machine.COMMITTED, said[1], said[2]), workspace, None
    if found is None or workspace is None:
        return None, None, None
    return found, workspace, None


def _agent_said(group: Group, item: Item, folder: ItemState,
                running: Mapping[str, Any]) -> tuple[Outcome | None, int | None]:
    """The killed attempt's success (and exit status), if its log shows that very attempt succeeded."""
    run_id, number = running["run_id"], running["attempt"]
    exit_event = item_log.exit_of(folder.events, run_id, number) or exit_seen_by_watchdog(folder, running)
    reader = AGENTS[group.settings["agent"]].reader(group.settings)
    saw_result = False
    for line in item_log.attempt_output(folder.log, item.key, number, run_id):
        saw_result |= any(event.kind == "result" for event in reader.feed(line))
    if exit_event is None and not saw_result:
        return None, None
    if exit_event is None:  # killed after its result, before its exit: its word counts
        outcome = outcome_of(reader, -9, "its run was killed", True)
    else:
        outcome = outcome_of(reader, exit_event["status"], exit_event.get("stopped_for"), saw_result)
    return (outcome, exit_event and exit_event.get("status")) if outcome.ok else (None, None)



def exit_seen_by_watchdog(folder: ItemState, running: Mapping[str, Any]) -> dict | None:
    """How the killed attempt's agent ended, as its run's watchdog wrote it down when the
    runner died before it could record that (see watchdog.py): an exit event's data, or None."""
    if isinstance(running.get("runner_pid"), int):
        exits_written(running["runner_pid"])  # a moment after its runner's death
    record = read_json(folder.exit)
    attempt_id = running.get("attempt_id")
    if record is None or not attempt_id or record.get("attempt_id") != attempt_id:
        return None
    status = record.get("status")
    return {"status": status, "stopped_for": None} if type(status) is int else None
