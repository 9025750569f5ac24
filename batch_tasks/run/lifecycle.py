"""An item's lifecycle: its steps, in order, fed one by one, driving the item's state machine
(see item_machine: each step is a transition it allows, noted in the item's events.jsonl).

    prepare   untick it if it changed; set its old result aside; note what it is made from;
              ask recovery where a killed or stopped run left its last attempt: one whose agent
              had succeeded resumes at the landing step after the last it reached
    attempt   one attempt (attempt_step.py; the agent's run: attempt.py), here or on a remote worker
              (the run's executor, through executors/seam.py), in its own git worktree with `isolation: worktree` (a fresh session in
              a clean one: what the last left is kept aside); an attempt that moved any branch
              but its own fails; after a failure the runner is told whether, and when, to come back for another
              (see retry.py): the slot is free meanwhile
    land      after the agent succeeded: its work committed (isolated) and refused if it touched a
              protected path (protected_paths), its `check` run, with `review:` its approval
              waited for (review.py: parked without a slot), its branch merged through the
              run's one merge queue (see landing), where it waits without its slot (`park`:
              the runner gives the slot to another item); any can fail it (and so does a change it made
              to the repository's git settings: repository_guard)
    record    on success, its result record with the evidence, durably, before anything else
    tick      then its checkbox

A failed or interrupted item leaves a failure record and its checkbox open; a stop anywhere
is one "interrupted", whose record names the step reached, for the next run to go on from.
Its prompt context is prompt_context.py's; what a step returns, step_result.py's.
Touches the item's state folder and its checkbox in task.md; tells the run's listeners.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..agents import retry
from ..events import STEP
from ..landing import landing, review
from ..plan.item_job import ItemJob
from ..plan.plan import Group, Item
from ..state import checkbox, item_log, records
from ..state import item_machine as machine
from ..state.item_status import ABSENT, ItemStatus, read_status
from ..state.records import Attempt, RecordedAttempt, failure_record, record_failure, success_record, write_result
from ..state.state import BatchState
from . import recovery, services
from .attempt_step import AttemptStep, named
from .prompt_context import prompt_context
from .run import Run
from .step_result import Again, Finished


class ItemRun(AttemptStep):
    """One item's run, from its first attempt to its record. The runner calls `step()`
    (in a thread of its own) once per attempt, until it returns Finished."""

    def __init__(self, job: ItemJob, run: Run):
        self.job, self.run = job, run
        self.state = run.state
        self.folder = self.state.item(job.item.group, job.item.module)
        self.attempts: list[Attempt] = []
        self.counts = retry.Counts()
        self.adjusted: retry.Adjustment | None = None  # how the next attempt is adjusted to the last one's failure
        self.facts: dict[str, Any] | None = None  # set by prepare: what the result is made from
        self.workspace = None  # the attempt's worktree (workspace.AttemptWorkspace), when isolated
        route = machine.Route.of(job.settings["isolation"] == "worktree", bool(job.settings.get("check")),
                                 reviewed=bool(job.settings.get("review")),
                                 pull_request=job.settings.get("land") == "pr",
                                 own_check=job.settings.get("own_check", True))
        self.machine = machine.ItemMachine(route, on_change=self._noted)
        self.current: Attempt | None = None  # the attempt the machine's states are of
        self.resumed: recovery.Resumption | None = None
        self.resumable = False  # a failure the next run goes on from, its agent not run again
        self.kept_aside: list[dict[str, Any]] = []  # earlier attempts' work, kept on branches of their own
        self.parked = False  # awaiting its review (see review.py): its next step takes the decision
        self.review_poll_at = 0.0  # `land: pr`: when its pull request is next asked about
        self.review_verdict = None  # `land: pr`: what GitHub said, found by the review watch (see pull_request.poll)
        self.review_error: Exception | None = None  # what the review watch met asking of it: its next step raises it
        self.told_ended: set[int] = set()  # attempts (by number) whose end this run counted and told
        # An item that lands its work has steps worth showing: setup, agent, check, merge queue.
        self.lands = route.lands
        self.services = services.ItemServices(job.settings, job.workdir, run, self.folder,  # its ports, slot, services
                                              services.item_names(job.item))

    def step(self) -> Finished | Again | review.AwaitingReview:
        try:
            ended = self._step()
        except BaseException:
            self.release()
            raise
        if isinstance(ended, Finished):
            self.release()
        return ended

    def release(self) -> None:
        self.services.release(self.worktree())

    def _step(self) -> Finished | Again:
        try:
            if self.facts is None:
                self.prepare()
            if self.resumed is not None:
                return self.resume()
            if self.parked:
                self.parked = False
                if self.review_error is not None:  # raised in its own step, for the runner to record
                    error, self.review_error = self.review_error, None
                    raise error
                return self.conclude(self.current)
            return self.attempt()
        except OSError as error:
            # A full disk or an unwritable state folder: task.md is only ever ticked after a
            # result is safely written, so it is unharmed.
            return Finished(f"cannot keep {self.job.item.key}'s state in {self.folder.folder}: {error.strerror or error}")

    def prepare(self) -> None:
        job = self.job
        # A folder made just now holds no record: nothing to read, resume or set aside (on a
        # first run, seven system calls an item, each a turn at the interpreter lock).
        fresh = self.folder.ensure()
        status = ItemStatus(ABSENT) if fresh else read_status(self.folder)
        if status.kind in recovery.RESUMABLE:  # only a stopped attempt can be gone on with
            with self.folder.open_log() as log:
                self.resumed = recovery.resumption(job.group, job.item, self.folder, status, self.run.isolation, log)
        if self.resumed is not None and self.resumed.fingerprint != dict(job.fingerprint):
            self.resumed = None  # made from another instruction, template or settings: not this item's work
        if job.untick_first:
            checkbox.set_checkbox(job.taskfile, job.group, job.item, False, self.state.tick_lock, self.run.ticks)
        if not fresh:
            self.folder.set_result_aside()
        self.facts = {
            "run_id": self.run.run_id,
            "started": time.time(),
            "fingerprint": dict(job.fingerprint),
            "upstream": self.run.upstream_digest(job.upstream, self.state),
        }

    def resume(self) -> Finished | Again:
        """The killed or stopped attempt's agent had succeeded: its landing goes on where it stopped."""
        found, self.resumed = self.resumed, None
        attempt = Attempt(found.number, found.session_id, found.started, found.run_id, time.time(),
                          found.exit_status, found.outcome, extra=found.extra)
        self.attempts = [*map(RecordedAttempt, found.earlier), attempt]
        self.current, self.workspace, self.machine.state = attempt, found.workspace, found.state
        self.facts["resumed_at"] = found.state  # the record says its agent's success was a killed run's
        if found.merge is not None:
            attempt.extra["merge"] = found.merge
            if self.workspace is not None:  # killed between its merge and its clean-up
                landing.remove_merged(self, attempt)
        return self.conclude(attempt)

    def resume_record(self, reached: str) -> dict[str, Any]:
        """What the next run needs to go on from `reached` with the current attempt (see recovery)."""
        attempt = self.current
        return {**self.facts, "state": reached, "attempt": attempt.number, "run_id": attempt.run_id,
                "session_id": attempt.session_id, "attempt_started": attempt.started,
                "earlier": [a.record() for a in self.attempts[:-1]], "extra": attempt.extra}

    def conclude(self, attempt: Attempt) -> Finished | Again | review.AwaitingReview:
        """Land a success from the step its item reached; then record it, or decide what comes next."""
        job, number = self.job, attempt.number
        if attempt.outcome is not None and attempt.outcome.ok:
            landing.land(self, attempt)
        outcome = attempt.outcome
        if outcome is not None and not outcome.ok:
            outcome.failure_class = retry.failure_class(outcome, attempt.exit_status, job.settings)
        if number not in self.told_ended:  # once, though a review can conclude it twice
            self.told_ended.add(number)
            record = attempt.record()
            if attempt.run_id == self.run.run_id:  # a resumed attempt was paid for, and counted, in its own run
                self.run.budget.spend(record["cost_usd"])
            self.run.hub.publish("attempt_ended", job.item.key, record)
        if outcome is None:
            return self.interrupted()
        if outcome.ok and self.machine.state == machine.AWAITING_REVIEW:
            self.parked = True
            return review.park(self, attempt)
        if outcome.ok:
            return self.succeed(attempt)
        failure = outcome.failure_class
        adjustment, refused = self.adjustment()
        decision = retry.decide(failure, outcome.retry_at, self.counts, job.settings, time.time(),
                                adjusted=adjustment is not None)
        if not decision.retry:
            why = "; ".join(filter(None, (decision.why, refused)))
            return self.fail(outcome.reason + (f" ({why})" if why else ""))
        self.counts = decision.counted(self.counts)
        cause = f"{outcome.reason}: {decision.why}" + (f"; {refused}" if refused else "")
        if adjustment is not None:
            self.adjusted = adjustment
            self.job = replace(job, settings={**job.settings, **adjustment.changes})
            cause += f"; {adjustment.text()}"
        self.machine.fire(machine.RETRY)
        with self.folder.open_log() as log:
            log.write(item_log.failed_header(job.item.key, number, failure, cause))
        self.note(number, "retry", cause, {"retry_at": decision.at})  # so that batch-status can say it waits, and why
        self.run.hub.publish("item_retrying", job.item.key, number, cause, decision.at)
        return Again(decision)

    def adjustment(self) -> tuple[retry.Adjustment | None, str]:
        """How the next attempt is adjusted to the last one's cause (see retry.py), if at all;
        and, when one that costs more is not made, why."""
        failed = [retry.Failed(a.outcome.failure_class, a.outcome.cause, a.outcome.data.get("num_turns"),
                               a.outcome.data.get("quiet_s"), (a.extra.get("check") or {}).get("tail", ""),
                               a.outcome.data.get("cost_usd"), a.outcome.data.get("tokens"))
                  for a in self.attempts if a.outcome is not None and not a.outcome.ok]
        adjustment = retry.adjust(failed, self.job.settings) if failed else None
        if adjustment is not None and adjustment.extra_usd is not None \
                and not retry.budget_holds(self.run.budget, adjustment.extra_usd):
            return None, f"not {adjustment.text()}: the batch's budget cannot hold it"
        return adjustment, ""

    def note(self, number: int, kind: str, text: str, data: dict[str, Any]) -> None:
        """A line of the runner's own in the item's events.jsonl, which batch-status reads."""
        item_log.append(self.folder, self.run.run_id, number, kind, text, data)

    def _noted(self, event: str, before: str, after: str) -> None:
        """Each move of the item's machine, under the attempt it is of (a resumed one's own run and
        number): where a run killed now stopped, for the next one to read."""
        attempt = self.current
        # Only a landing's states say more than the agent's exit does (see recovery).
        if attempt is not None and self.lands and after in machine.LANDING:
            item_log.append(self.folder, attempt.run_id, attempt.number, item_log.STATE,
                            data={"state": after, "event": event})  # no text: not an activity to show

    def tell_step(self, number: int, step: str, text: str = "") -> None:
        """The step (SETUP … MERGING, see events.py) an item that lands its work is at, and what it does there."""
        if self.lands:
            text = self.run.redactor.text(text)  # a command line in task.md may hold a secret of the environment
            self.note(number, STEP, text, {"step": step})
            self.run.hub.publish("item_step", self.job.item.key, number, step, text)

    def park(self, why: str) -> None:
        """The attempt waits on something other than its agent: its slot goes to another item
        meanwhile (see runner), and it is handed back when the attempt's step ends."""
        self.run.hub.publish("item_parked", self.job.item.key, why)

    def keep(self, why: str) -> dict[str, Any] | None:
        """Leave the attempt's worktree and branch in place (uncommitted work as WIP), to name them."""
        if self.workspace is None:
            return None
        kept, self.workspace = self.workspace.keep(why), None
        return named(kept)

    def prompt_context(self) -> dict[str, Any]:
        return prompt_context(self.job, self.state, self.attempts, self.adjusted)

    def succeed(self, attempt: Attempt) -> Finished:
        job = self.job
        record = success_record(self.facts, job.settings, [a.record() for a in self.attempts], attempt.outcome,
                                job.item.key)
        record.update({name: attempt.extra[name] for name in ("check", "merge", "kept") if name in attempt.extra})
        record["kept_attempts"] = self.kept_aside
        if "resumed_at" in self.facts:
            record.update(salvaged=True, resumed_at=self.facts["resumed_at"])
        return finish_success(self.run, job.taskfile, job.group, job.item, self.state, record, self.machine)

    def fail(self, reason: str) -> Finished:
        reached = self.machine.state
        self.machine.fire(machine.GIVE_UP)
        record = failure_record(self.job.item.key, reason, self.attempts)
        if self.resumable:
            record["resume"] = self.resume_record(reached)
        record["kept"] = self.keep(reason)
        record["kept_attempts"] = self.kept_aside
        record_failure(self.folder, record)
        self.run.hub.publish("item_finished", self.job.item.key, {**record, "failed": True})
        return Finished(reason)

    def internal_error(self, error: Exception) -> Finished:
        """A bug met in one of its steps: its traceback in the item's log, and a failure record
        saying so; the other items go on."""
        reason = f"internal error: {error!r}"
        record = failure_record(self.job.item.key, reason, self.attempts)
        if self.machine.state in machine.LANDING and self.current is not None and self.facts is not None:
            record["resume"] = self.resume_record(self.machine.state)  # its agent is not paid for again
        with contextlib.suppress(OSError):  # its state folder unwritable: the run's error line says it
            self.folder.ensure()  # the bug may have come before its first step made it
            with self.folder.open_log() as log:
                log.write(self.run.redactor(item_log.internal_error(self.job.item.key, error)))
            record_failure(self.folder, record)
        self.run.hub.publish("item_finished", self.job.item.key, {**record, "failed": True})
        return Finished(reason)

    def interrupted(self) -> Finished:
        reached, attempt = self.machine.state, self.current
        self.machine.fire(machine.STOPPED)
        record = failure_record(self.job.item.key, "the run was stopped", self.attempts, interrupted=True)
        if reached in machine.LANDING and attempt is not None:
            # Its agent had succeeded: the next run goes on from here, without paying it again.
            record["resume"] = self.resume_record(reached)
            if reached != machine.AGENT_DONE and self.workspace is not None:
                self.workspace.discard_leftovers()  # what its check left is not its work
        record["kept"] = self.keep("interrupted: the run was stopped")
        record["kept_attempts"] = self.kept_aside
        record_failure(self.folder, record)
        self.run.hub.publish("item_finished", self.job.item.key, record)
        return Finished("interrupted: the run was stopped", interrupted=True)


def finish_success(run: Run | None, taskfile: Path, group: Group, item: Item, state: BatchState,
                   record: dict[str, Any], item_machine: machine.ItemMachine | None = None) -> Finished:
    """The record and tick steps: a paid-for success is written first, then ticked."""
    item_machine = item_machine or machine.ItemMachine(machine.Route(), state=machine.AGENT_DONE)
    # Written before its turn at the bookkeeping: its fsync waits for the disk (milliseconds
    # on a busy one), and a turn held meanwhile kept the other items' starts and ticks waiting.
    write_result(state.item(item.group, item.module), record)
    # Without a run (a test of the records alone) nothing else takes turns.
    with run.supervisor.bookkeeping if run is not None else contextlib.nullcontext():
        item_machine.fire(machine.RECORD)
        ticked = records.tick(taskfile, group, item, state, record, run.ticks if run is not None else None)
        item_machine.fire(machine.TICK if ticked else machine.TICK_REFUSED)
        if run is not None:
            run.hub.publish("item_finished", item.key, {**record, "ticked": ticked})
    if ticked:
        return Finished()
    return Finished(f"{item.key} succeeded, but its line in {taskfile.name} changed while it ran, so it was not "
                    "ticked; the next run ticks it, or runs it again if its instruction changed")


