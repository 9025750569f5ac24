"""An item's lifecycle: its steps, in order, fed one by one.

    prepare   untick it if it changed; set its old result aside; note what it is made from
    attempt   one attempt (see attempt.py); after a failure the runner is told whether, and
              when, to come back for another (see retry.py): the slot is free meanwhile
    record    on success, its result record, durably, before anything else
    tick      then its checkbox

A failed or interrupted item leaves a failure record and its checkbox open. Touches the
item's state folder and its checkbox in task.md; tells the run's listeners.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from . import checkbox, prompt, retry
from .agents import Outcome
from .attempt import run_attempt
from .item_status import DONE, read_status
from .plan import Group, Item
from .records import Attempt, failure_record, record_failure, record_success, success_record
from .run import Run
from .state import BatchState


@dataclass(slots=True)
class ItemJob:
    """Everything one item's run needs, and nothing of the rest of the plan: plain data."""

    taskfile: Path
    batch_title: str
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
        self.state = BatchState(job.taskfile)
        self.folder = self.state.item(job.item.group, job.item.module)
        self.attempts: list[Attempt] = []
        self.counts = retry.Counts()
        self.facts: dict[str, Any] | None = None  # set by prepare: what the result is made from

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
        os.makedirs(self.folder.folder, exist_ok=True)
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
        attempt = run_attempt(job, self.run, self.folder, number, self.prompt_context(), running)
        self.attempts.append(attempt)
        outcome = attempt.outcome
        if outcome is not None and not outcome.ok:
            outcome.failure_class = retry.failure_class(outcome, attempt.exit_status, job.settings)
        record = attempt.record()
        self.run.budget.spend(record["cost_usd"])
        self.run.hub.publish("attempt_ended", job.item.key, record)
        if outcome is None:
            return self.interrupted()
        if outcome.ok:
            return self.succeed(outcome)
        failure = outcome.failure_class
        decision = retry.decide(failure, outcome.retry_at, self.counts, job.settings, time.time())
        if not decision.retry:
            return self.fail(outcome.reason + (f" ({decision.why})" if decision.why else ""))
        self.counts = decision.counted(self.counts)
        cause = f"{outcome.reason}: {decision.why}"
        with open(self.folder.log, "ab") as log:
            log.write(f"=== {job.item.key} attempt {number} failed ({failure}): {cause} ===\n".encode())
        self.run.hub.publish("item_retrying", job.item.key, number, cause, decision.at)
        return Again(decision)

    def prompt_context(self) -> dict[str, Any]:
        job, item = self.job, self.job.item
        context: dict[str, Any] = {
            "batch": {"title": job.batch_title, "path": str(job.taskfile)},
            "group": {"slug": job.group.slug, "title": job.group.title, "index": job.group_index},
            "item": {"key": item.key, "module": item.module, "text": item.text, "body": item.body,
                     "instruction": item.instruction, "line": item.line},
            "previous": None,
            "previous_attempt": None,
        }
        if job.previous is not None:
            status = read_status(self.state.item(job.previous.group, job.previous.module))
            record = status.result if status.kind == DONE else {}
            context["previous"] = {
                "group": job.previous.group,
                "group_title": job.previous_group_title,
                "module": job.previous.module,
                "instruction": job.previous.instruction,
                "result_text": record.get("result_text", ""),
                "result": record,
            }
        if self.attempts:
            last = self.attempts[-1].record()
            context["previous_attempt"] = {
                "number": last["attempt"], "class": last["failure_class"], "reason": last["reason"],
                "session_id": last["session_id"], **{k: v for k, v in last.items() if k.startswith("check")},
            }
        return context

    def succeed(self, outcome: Outcome) -> Finished:
        job = self.job
        record = success_record(self.facts, job.settings, [a.record() for a in self.attempts], outcome, job.item.key)
        return finish_success(self.run, job.taskfile, job.group, job.item, self.state, record)

    def fail(self, reason: str) -> Finished:
        record = failure_record(self.job.item.key, reason, self.attempts)
        record_failure(self.folder, record)
        self.run.hub.publish("item_finished", self.job.item.key, {**record, "failed": True})
        return Finished(reason)

    def interrupted(self) -> Finished:
        record = failure_record(self.job.item.key, "the run was stopped", self.attempts, interrupted=True)
        record_failure(self.folder, record)
        self.run.hub.publish("item_finished", self.job.item.key, record)
        return Finished("interrupted: the run was stopped", interrupted=True)


def finish_success(run: Run | None, taskfile: Path, group: Group, item: Item, state: BatchState,
                   record: dict[str, Any]) -> Finished:
    """The record and tick steps, shared with recovery: a paid-for success is written first."""
    ticked = record_success(taskfile, group, item, state, record)
    if run is not None:
        run.hub.publish("item_finished", item.key, {**record, "ticked": ticked})
    if ticked:
        return Finished()
    return Finished(f"{item.key} succeeded, but its line in {taskfile.name} changed while it ran, so it was not "
                    "ticked; the next run ticks it, or runs it again if its instruction changed")

