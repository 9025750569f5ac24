"""An item's landing, after its agent succeeded: the steps of its route (see item_machine) from
the one after the state it reached: its work committed (isolated), its `check` run, with
`review:` its decision waited for (see review), its branch merged through the run's one merge
queue (with `land: pr`, a pull request instead: see pull_request). Each step that passes moves
the item's machine; one that fails fails the attempt, saying why (a rejection in review is
one); a stop during any of them leaves the attempt without an outcome (interrupted, at the step reached). What a check leaves is put back, and what it
starts is recorded, for the run after a kill to stop. Touches the attempt's worktree (see
workspace), through the merge queue the integration branch, and the item's events.jsonl.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Mapping

from ..agents import PERMANENT, Outcome, retry
from ..errors import BatchError
from ..events import CHECK
from ..isolation.workspace import WorkspaceError
from ..isolation.worktree import BranchLocked
from ..plan import protected_paths
from ..processes import agent_sandbox
from ..processes.check import Check
from ..processes.process import StoppedError
from ..repository.git import changed_paths, present_at
from ..state import item_log
from ..state import item_machine as machine
from ..state.records import Attempt
from . import pull_request, review

if TYPE_CHECKING:
    from .landing_item import LandingItem

CLAIM_CHARACTERS = 2000  # of the agent's final message, kept in its attempt's record beside the check's verdict


def land(item_run: "LandingItem", attempt: Attempt) -> None:
    """The agent succeeded: the route's landing steps (commit its work, check it, merge it) from
    the one after the state its item reached; or fail the attempt, saying why. A stop during
    any of them leaves the attempt without an outcome: interrupted, at the step reached."""
    said = attempt.outcome

    def failed(reason: str, failure: str) -> None:
        attempt.outcome = Outcome(ok=False, reason=reason, failure_class=failure,
                                  result_text=said.result_text, data=said.data)

    if item_run.lands:  # what the agent says it did, kept beside what the gate finds
        attempt.extra["claim"] = item_run.run.redactor.text(said.result_text[-CLAIM_CHARACTERS:])
    if item_run.workspace is None and item_run.machine.next_step() in (machine.RECORD_STEP, None):
        return  # nothing to land (not isolated, nothing to check): its log need not be opened
    try:
        with item_run.folder.open_log() as log:
            if item_run.machine.state in (machine.COMMITTED, machine.CHECKED, machine.QUEUED) \
                    and item_run.workspace is not None:
                # Resumed after its commit: the check sees what lands (nothing left uncommitted since,
                # by a killed check or by anyone), and the gate as it is set now decides, not as it was.
                item_run.workspace.discard_leftovers()
                why = _protected(item_run, attempt, item_run.workspace.tip())
                if why is not None:
                    return failed(*why)
            if item_run.machine.state == machine.APPROVED and not review.approved(item_run):
                item_run.machine.state = machine.AWAITING_REVIEW  # its log says approved; no signed decision does
            while (step := item_run.machine.next_step()) not in (machine.RECORD_STEP, None):
                why = _step(item_run, step, attempt, log)
                if why is not None:
                    return failed(*why)
                item_run.machine.fire(step)
    except review.NotYet:
        pass  # it waits at AWAITING_REVIEW: the lifecycle parks it
    except StoppedError:
        attempt.outcome = None
    except BranchLocked as error:  # checked, and kept: the next run merges it, its agent not run again
        item_run.resumable = True
        failed(str(error), PERMANENT)
    except BatchError as error:  # git refused something: the work stays where it is
        failed(f"landing its work: {error}", PERMANENT)


def _step(item_run: "LandingItem", step: str, attempt: Attempt, log) -> tuple[str, str] | None:
    """One landing step; None if it passed, else why it failed and its failure class."""
    settings, item, workspace = item_run.job.settings, item_run.job.item, item_run.workspace
    if step == machine.COMMITTED_STEP:
        committed = workspace.commit_leftovers(settings["allow_empty"])
        if not committed.changed and not settings["allow_empty"]:
            return "no changes: the agent changed nothing (allow_empty: true to accept that)", PERMANENT
        return _protected(item_run, attempt, committed.commit)
    if step == machine.ASK_REVIEW_STEP:
        if settings.get("land") == "pr":
            pull_request.ask(item_run, attempt, workspace.tip())
        return None  # the item waits from here: its record and its step say so (see review.park)
    if step == machine.APPROVE_STEP:
        why = review.approve_step(item_run, attempt)
        if why is None and settings.get("land") == "pr":
            remove_merged(item_run, attempt)  # merged on GitHub: its worktree's work is there
        return why
    check = Check.from_settings(settings, item.group, item.module)
    if step == machine.CHECK_STEP:
        here = workspace.path if workspace else item_run.job.workdir
        item_run.tell_step(attempt.number, CHECK, shlex.join(check.command(here)))
        result = check.run(here, workspace.workdir if workspace else here, item_run.run.supervisor, log,
                           env=item_run.item_environment(), redact=item_run.run.redactor,
                           on_start=noting_processes(item_run, attempt),
                           sandbox=agent_sandbox.for_workspace(workspace, settings) if workspace else None)
        if workspace is not None:
            workspace.discard_leftovers()  # what a check leaves is never the item's work
        if not result.passed and item_run.run.supervisor.stopping.is_set():
            raise StoppedError()  # stopped with the run: its work was not judged
        attempt.extra["check"] = result.record()
        return None if result.passed else (result.reason, retry.CHECK)
    def queued() -> None:  # its slot is for another agent while it waits for its landing
        item_run.machine.fire(machine.ENQUEUE)
        item_run.park("in the merge queue")

    own_checked = item_run.machine.route.checks
    merged = item_run.run.merge_queue.merge(workspace, check, log, settings,
                                            on_step=lambda step, text: item_run.tell_step(attempt.number, step, text),
                                            on_start=noting_processes(item_run, attempt), on_queued=queued,
                                            checked=own_checked)
    attempt.extra["merge"] = merged.record()
    if merged.check is not None and not own_checked:
        attempt.extra["check"] = merged.check.record()  # its only check: the verdict beside its claim
    if not merged.merged and merged.check is not None:
        # Its work failed the check on the state it would land in: back to its own session, with
        # the check's output, as a failed check of its own is (its worktree stays for it).
        attempt.extra["check"] = merged.check.record()
        return f"{merged.reason} (checked with what landed before it)", retry.CHECK
    if not merged.merged:
        why = merged.reason if merged.reason.startswith("merge conflict") else f"merge conflict: {merged.reason}"
        item_run.keep(why)
        return why, retry.CONFLICT
    remove_merged(item_run, attempt)
    review.forget_decision(item_run.folder)  # taken: its work landed
    return None


def _protected(item_run: "LandingItem", attempt: Attempt, tip: str) -> tuple[str, str] | None:
    """The paths the work changed (what the item's next attempts are predicted to touch, see
    touches) and the protected ones among them, kept in the attempt's record beside its claim
    and its check's verdict; a failure naming each protected one, if any."""
    workspace = item_run.workspace
    changed = changed_paths(workspace.base, tip, workspace.isolation.top)
    touched = protected_touched(item_run.job.settings, item_run.job.item, workspace, changed)
    attempt.extra["changed"] = item_run.run.redactor.value(changed)
    attempt.extra["protected"] = {"touched": item_run.run.redactor.value(touched)}
    if touched:
        return ", ".join(f"touched protected path {path}" for path in touched), PERMANENT
    return None


def protected_touched(settings: Mapping, item, workspace, changed: list[str]) -> list[str]:
    """The paths of CHANGED (by the item's work, from its worktree's base) that `protect`
    covers and its text does not name (see protected_paths)."""
    check = Check.from_settings(settings, item.group, item.module)
    # The check's own files: those it names that the repository held before the item's work
    # (one it names that the work makes, such as its output, is the work's to make).
    named_by_check = present_at(workspace.base, protected_paths.check_paths(
        check.command(workspace.path) if check else (), str(workspace.isolation.relative_workdir),
        str(workspace.path)), workspace.isolation.top)
    protect = protected_paths.globs(settings["protect"], named_by_check)
    return protected_paths.violations(changed, f"{item.text}\n{item.body}", protect)


def remove_merged(item_run: "LandingItem", attempt: Attempt) -> None:
    workspace, item_run.workspace = item_run.workspace, None
    try:
        workspace.remove()
    except WorkspaceError as error:  # landed all the same: what is left is named, never merged again
        attempt.extra["kept"] = {"worktree": str(workspace.path), "branch": workspace.branch, "why": str(error)}


def refuse_moved_refs(item_run: "LandingItem", attempt: Attempt, before: Mapping[str, str]) -> None:
    """An attempt may move its own branch only: one that moved any other fails, naming it (left
    as it is: the user decides), and nothing of it lands."""
    after = item_run.run.isolation.other_refs()
    moved = sorted(ref for ref in before.keys() | after.keys() if before.get(ref) != after.get(ref))
    if moved:
        said = ", ".join(f"{ref} ({(before.get(ref) or 'none')[:12]} → {(after.get(ref) or 'deleted')[:12]})"
                         for ref in moved)
        attempt.outcome = Outcome(ok=False, reason=f"the attempt moved {said}: only its own branch may move",
                                  failure_class=PERMANENT, data=attempt.outcome.data)


def noting_processes(item_run: "LandingItem", attempt: Attempt):
    """What records a check's or a setup's processes, under the attempt's own run: a run killed
    while they run leaves them for the next to stop (see recovery)."""
    return lambda processes: item_log.append(item_run.folder, attempt.run_id, attempt.number, item_log.PROCESSES,
                                             data=processes.record())
