"""An item's lifecycle: its steps, in order, fed one by one.

    prepare   untick it if it changed; set its old result aside; note what it is made from
    attempt   one attempt (see attempt.py), here or on a remote worker (the run's executor, see
              executors), in its own git worktree with `isolation: worktree`;
              after a failure the runner is told whether, and when, to come back for another
              (see retry.py): the slot is free meanwhile
    land      after the agent succeeded: its work committed (isolated), its `check` run, its
              branch merged through the run's one merge queue; any of these can fail the attempt
    record    on success, its result record with the evidence, durably, before anything else
    tick      then its checkbox

A failed or interrupted item leaves a failure record and its checkbox open. Touches the
item's state folder and its checkbox in task.md; tells the run's listeners.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from . import checkbox, prompt, retry
from .agents import PERMANENT, TRANSIENT, WAIT, Outcome
from .check import Check
from .errors import BatchError
from .events import CHECK, SETUP, STEP
from .git import environment_for_worktrees
from .item_status import DONE, read_status
from .plan import Group, Item
from .records import Attempt, failure_record, record_failure, record_success, success_record
from .run import Run
from .state import BatchState, state_of


@dataclass(slots=True)
class ItemJob:
    """Everything one item's run needs, and nothing of the rest of the plan: plain data."""

    taskfile: Path
    workdir: Path  # where its agent and its check run (see workdir.py)
    batch_title: str
    plan_context: Mapping[str, Any]  # the plan's preamble, its design documents, the workdir (see plan_context)
    group: Group  # its items are not carried along: see doit_tasks.build_tasks
    group_index: int
    item: Item
    settings: Mapping[str, Any]
    template: prompt.Template
    fingerprint: Mapping[str, str]
    upstream: tuple[Item, ...]
    previous: Item | None
    previous_group_title: str | None
    untick_first: bool  # it is ticked but stale: open its checkbox while it runs


@dataclass(frozen=True)
class Finished:
    """The item is over: `failure` is None on success, else why it failed."""

    failure: str | None = None
    interrupted: bool = False


@dataclass(frozen=True)
class Again:
    """Come back for another attempt: at `decision.at`, after a pause of its agent if WAIT."""

    decision: retry.Decision


class ItemRun:
    """One item's run, from its first attempt to its record. The runner calls `step()`
    (in a thread of its own) once per attempt, until it returns Finished."""

    def __init__(self, job: ItemJob, run: Run):
        self.job, self.run = job, run
        self.state = state_of(job.taskfile)
        self.folder = self.state.item(job.item.group, job.item.module)
        self.attempts: list[Attempt] = []
        self.counts = retry.Counts()
        self.facts: dict[str, Any] | None = None  # set by prepare: what the result is made from
        self.workspace = None  # the attempt's worktree (workspace.AttemptWorkspace), when isolated
        # An item that lands its work has steps worth showing: setup, agent, check, merge queue.
        self.lands = job.settings["isolation"] == "worktree" or bool(job.settings.get("check"))

    def step(self) -> Finished | Again:
        try:
            if self.facts is None:
                self.prepare()
            return self.attempt()
        except OSError as error:
            # A full disk or an unwritable state folder: task.md is only ever ticked after a
            # result is safely written, so it is unharmed.
            return Finished(f"cannot keep {self.job.item.key}'s state in {self.folder.folder}: {error.strerror or error}")

    def prepare(self) -> None:
        job = self.job
        self.folder.ensure()
        if job.untick_first:
            checkbox.set_checkbox(job.taskfile, job.group, job.item, False, self.state.tick_lock)
        self.folder.set_result_aside()
        self.facts = {
            "run_id": self.run.run_id,
            "started": time.time(),
            "fingerprint": dict(job.fingerprint),
            "upstream": self.run.upstream_digest(job.upstream, self.state),
        }

    def attempt(self) -> Finished | Again:
        job, number = self.job, len(self.attempts) + 1
        running = {**self.facts, "earlier": [a.record() for a in self.attempts]}
        try:  # here or on a remote worker: the run's executor (see executors)
            attempt = self.run.executor.attempt(self, number, self.prompt_context(), running,
                                                self.session_to_continue())
        except BatchError as error:  # its worktree could not be made, or its setup failed
            return self.fail(f"worktree: {error}")
        self.attempts.append(attempt)
        if attempt.outcome is not None and attempt.outcome.ok:
            self.land(attempt)
        outcome = attempt.outcome
        if outcome is not None and not outcome.ok:
            outcome.failure_class = retry.failure_class(outcome, attempt.exit_status, job.settings)
        record = attempt.record()
        self.run.budget.spend(record["cost_usd"])
        self.run.hub.publish("attempt_ended", job.item.key, record)
        if outcome is None:
            return self.interrupted()
        if outcome.ok:
            return self.succeed(attempt)
        failure = outcome.failure_class
        decision = retry.decide(failure, outcome.retry_at, self.counts, job.settings, time.time())
        if not decision.retry:
            return self.fail(outcome.reason + (f" ({decision.why})" if decision.why else ""))
        self.counts = decision.counted(self.counts)
        cause = f"{outcome.reason}: {decision.why}"
        with self.folder.open_log() as log:
            log.write(f"=== {job.item.key} attempt {number} failed ({failure}): {cause} ===\n".encode())
        self.note(number, "retry", cause, {"retry_at": decision.at})  # so that batch-status can say it waits, and why
        self.run.hub.publish("item_retrying", job.item.key, number, cause, decision.at)
        return Again(decision)

    def note(self, number: int, kind: str, text: str, data: dict[str, Any]) -> None:
        """A line of the runner's own in the item's events.jsonl, which batch-status reads."""
        with self.folder.open_events() as events:
            events.write(json.dumps({"t": round(time.time(), 3), "run_id": self.run.run_id, "attempt": number,
                                     "kind": kind, "text": text, "data": data}) + "\n")

    def tell_step(self, number: int, step: str, text: str = "") -> None:
        """The step (SETUP … MERGING, see events.py) an item that lands its work is at, and what it does there."""
        if self.lands:
            text = self.run.redactor.text(text)  # a command line in task.md may hold a secret of the environment
            self.note(number, STEP, text, {"step": step})
            self.run.hub.publish("item_step", self.job.item.key, number, step, text)

    def workplace(self, number: int) -> tuple[Path, Mapping[str, str]]:
        """Where the agent runs, and on what environment: the batch's workdir, or the same folder in its own worktree."""
        job = self.job
        if job.settings["isolation"] != "worktree":
            return job.workdir, os.environ
        if self.workspace is None:
            setup = job.settings.get("worktree_setup")
            self.tell_step(number, SETUP, shlex.join(setup) if setup else "making its worktree")
            with self.folder.open_log() as log:
                self.workspace = self.run.isolation.open_attempt(job.item.group, job.item.module, self.run.run_id,
                                                                 job.settings, log)
        return self.workspace.workdir, {**environment_for_worktrees(), "BATCH_WORKTREE": str(self.workspace.path)}

    def land(self, attempt: Attempt) -> None:
        """The agent succeeded: commit its work, check it, merge it; or fail the attempt, saying why."""
        job, workspace, said = self.job, self.workspace, attempt.outcome
        settings, item = job.settings, job.item

        def failed(reason: str, failure: str) -> None:
            attempt.outcome = Outcome(ok=False, reason=reason, failure_class=failure,
                                      result_text=said.result_text, data=said.data)

        try:
            if workspace is not None:
                committed = workspace.commit_leftovers(settings["allow_empty"])
                if not committed.changed and not settings["allow_empty"]:
                    return failed("no changes: the agent changed nothing (allow_empty: true to accept that)", PERMANENT)
            check = Check.from_settings(settings, item.group, item.module)
            if check is None and workspace is None:
                return  # nothing to land
            with self.folder.open_log() as log:
                if check is not None:
                    here = workspace.path if workspace else job.workdir
                    self.tell_step(attempt.number, CHECK, shlex.join(check.command(here)))
                    result = check.run(here, workspace.workdir if workspace else here, self.run.supervisor, log,
                                       redact=self.run.redactor)
                    attempt.extra["check"] = result.record()
                    if not result.passed:
                        return failed(result.reason, retry.CHECK)
                if workspace is not None:
                    merged = self.run.merge_queue.merge(workspace, check, log, settings,
                                                        on_step=lambda step, text: self.tell_step(attempt.number, step, text))
                    attempt.extra["merge"] = merged.record()
                    if not merged.merged:
                        self.keep(f"merge conflict: {merged.reason}")
                        return failed(f"merge conflict: {merged.reason}", retry.CONFLICT)
                    workspace.remove()
                    self.workspace = None
        except BatchError as error:  # git refused something: the work stays where it is
            failed(f"landing its work: {error}", PERMANENT)

    def session_to_continue(self) -> str | None:
        """After a failed check, the session that made the work: the next attempt goes on with it in
        the same folder (a check failure keeps the worktree). Not after a conflict: that attempt
        starts from the new tip in a fresh worktree, where the session's memory of its files is wrong."""
        told = attempt_to_tell_of(self.attempts).record() if self.attempts else None
        return told["session_id"] if told and told["failure_class"] == retry.CHECK else None

    def keep(self, why: str) -> dict[str, Any] | None:
        """Leave the attempt's worktree and branch in place (uncommitted work as WIP), to name them."""
        if self.workspace is None:
            return None
        kept, self.workspace = self.workspace.keep(why), None
        return {"worktree": str(kept.path), "branch": kept.branch, "commit": kept.commit, "wip": kept.wip}

    def prompt_context(self) -> dict[str, Any]:
        return prompt_context(self.job, self.state, self.attempts)

    def succeed(self, attempt: Attempt) -> Finished:
        job = self.job
        record = success_record(self.facts, job.settings, [a.record() for a in self.attempts], attempt.outcome,
                                job.item.key)
        record.update({name: attempt.extra[name] for name in ("check", "merge") if name in attempt.extra})
        return finish_success(self.run, job.taskfile, job.group, job.item, self.state, record)

    def fail(self, reason: str) -> Finished:
        record = failure_record(self.job.item.key, reason, self.attempts)
        record["kept"] = self.keep(reason)
        record_failure(self.folder, record)
        self.run.hub.publish("item_finished", self.job.item.key, {**record, "failed": True})
        return Finished(reason)

    def interrupted(self) -> Finished:
        record = failure_record(self.job.item.key, "the run was stopped", self.attempts, interrupted=True)
        record["kept"] = self.keep("interrupted: the run was stopped")
        record_failure(self.folder, record)
        self.run.hub.publish("item_finished", self.job.item.key, record)
        return Finished("interrupted: the run was stopped", interrupted=True)


def finish_success(run: Run | None, taskfile: Path, group: Group, item: Item, state: BatchState,
                   record: dict[str, Any]) -> Finished:
    """The record and tick steps, shared with recovery: a paid-for success is written first."""
    # Recovery (no run) records before any item runs, so it takes no turn.
    with run.supervisor.bookkeeping if run is not None else contextlib.nullcontext():
        ticked = record_success(taskfile, group, item, state, record)
        if run is not None:
            run.hub.publish("item_finished", item.key, {**record, "ticked": ticked})
    if ticked:
        return Finished()
    return Finished(f"{item.key} succeeded, but its line in {taskfile.name} changed while it ran, so it was not "
                    "ticked; the next run ticks it, or runs it again if its instruction changed")


def prompt_context(job: ItemJob, state: BatchState, attempts: list[Attempt]) -> dict[str, Any]:
    """What the prompt template is given for an item's next attempt."""
    item = job.item
    context: dict[str, Any] = {
        "batch": {"title": job.batch_title, "path": str(job.taskfile), **job.plan_context},
        "group": {"slug": job.group.slug, "title": job.group.title, "index": job.group_index,
                  "body": job.group.body, "context": job.group.context},
        "item": {"key": item.key, "module": item.module, "text": item.text, "body": item.body,
                 "instruction": item.instruction, "line": item.line, "parent": item.parent},
        "previous": None,
        "previous_attempt": None,
    }
    if job.previous is not None:
        status = read_status(state.item(job.previous.group, job.previous.module))
        record = status.result if status.kind == DONE else {}
        context["previous"] = {
            "group": job.previous.group,
            "group_title": job.previous_group_title,
            "module": job.previous.module,
            "instruction": job.previous.instruction,
            "result_text": record.get("result_text", ""),
            "result": record,
        }
    if attempts:
        last = attempt_to_tell_of(attempts).record()
        context["previous_attempt"] = {
            "number": last["attempt"], "class": last["failure_class"], "reason": last["reason"],
            "session_id": last["session_id"], "check_output": (last.get("check") or {}).get("tail", ""),
            "conflicts": (last.get("merge") or {}).get("conflicts", []),
        }
    return context


def attempt_to_tell_of(attempts: list[Attempt]) -> Attempt:
    """The attempt the next one is told of (and may go on with): the last, unless it failed
    before its work was checked (a server error, a hang, a limit) after one whose check
    failed or whose merge conflicted: that one's work is still what there is, and its
    check's output what to fix. (A resumed session that hit a server error is so.)"""
    for attempt in reversed(attempts):
        failure = attempt.record()["failure_class"]
        if failure in (retry.CHECK, retry.CONFLICT):
            return attempt
        if failure not in (TRANSIENT, WAIT):
            break
    return attempts[-1]


def check_prompts(jobs, state: BatchState) -> None:
    """Render each item's first prompt: a template that asks for what is not there is one
    error before anything runs, not a failure of every item."""
    for job in jobs:
        try:
            prompt.render(job.template, prompt_context(job, state, []))
        except BatchError as error:
            raise BatchError(f"{error} (rendering the prompt of {job.item.key}, line {job.item.line})") from None
