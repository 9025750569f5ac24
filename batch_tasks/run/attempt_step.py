"""An item's attempt step (the lifecycle's `attempt`, see lifecycle.py): where its agent runs
and on what environment (the batch's workdir, or the same folder of its own worktree, its
services started first), the attempt described to the run's executor through the seam
(executors/seam.py) and what it reports passed on, then what it did checked (the branches
it moved, the repository's git settings it changed).

Written as the part of ItemRun that makes an attempt: its methods use the item's run's own
fields. Touches the item's state folder and its worktree.
"""

from __future__ import annotations

import os
import shlex
import time
from pathlib import Path
from typing import Any, Mapping

from ..agents import PERMANENT, TRANSIENT, Outcome, retry
from ..errors import BatchError
from ..events import SETUP
from ..executors.seam import AttemptSpec
from ..landing import github, landing
from ..processes import agent_sandbox
from ..processes.process import StoppedError
from ..state import item_machine as machine
from ..state.records import Attempt
from ..state.state import write_json_atomic
from .prompt_context import attempt_to_tell_of
from .step_result import Again, Finished


class AttemptStep:
    def attempt(self) -> Finished | Again:
        job, number = self.job, len(self.attempts) + 1
        self.facts.pop("resumed_at", None)  # a new attempt's success is its own
        running = {**self.facts, "earlier": [a.record() for a in self.attempts]}
        self.current = Attempt(number, "", time.time(), self.run.run_id)
        self.machine.fire(machine.START)
        continues = self.session_to_continue()
        if continues is None and self.workspace is not None:
            # A fresh session starts from a clean worktree: what the last one left (a hung attempt's
            # half-done edit) is committed as WIP, and kept aside as the new worktree is made.
            self.workspace.keep("an earlier attempt, kept aside for a fresh session")
            self.workspace = None
        refs = self.run.isolation.other_refs() if self.job.settings["isolation"] == "worktree" else None
        guard, name = self.run.repository, f"{job.item.key} attempt {number}"
        if guard is not None:
            guard.started(name)
        try:  # here or on a remote worker: the run's executor (see executors/seam.py)
            attempt = self.run_by_executor(number, running, continues)
        except BatchError as error:  # its worktree could not be made, or its setup failed
            if self.run.supervisor.stopping.is_set():
                return self.interrupted()  # its setup was stopped with the run
            return self.fail(f"worktree: {error}")
        except StoppedError:
            return self.interrupted()
        finally:
            changed = guard.ended(name) if guard is not None else None
        if self.adjusted is not None:
            attempt.extra["adjusted"] = self.adjusted.record()
            self.adjusted = None
        self.attempts.append(attempt)
        self.current = attempt
        self.fail_for_repository_changes(attempt, changed)
        if refs is not None and attempt.outcome is not None:
            landing.refuse_moved_refs(self, attempt, refs)
        if attempt.outcome is not None and attempt.outcome.ok:
            self.machine.fire(machine.AGENT_SUCCEEDED)
        return self.conclude(attempt)

    def run_by_executor(self, number: int, running: Mapping[str, Any], continues: str | None) -> Attempt:
        """The attempt, described to the run's executor (see executors/seam.py), and its worktree taken back."""
        executor = self.run.executor
        where, environment, sandbox = None, {}, None
        if executor.needs.workplace_here:
            where, environment = self.workplace(number)
            if self.workspace is not None:
                sandbox = agent_sandbox.for_workspace(self.workspace, self.job.settings)
        spec = AttemptSpec(self.job, number, self.run.run_id, self.folder, self.prompt_context(), running, continues,
                           where, environment, self.workspace, sandbox)
        result = executor.attempt(spec, _Reporter(self, number))
        self.workspace = result.workspace
        return result.attempt

    def fail_for_repository_changes(self, attempt: Attempt, changed) -> None:
        """What changed in the repository's git settings while the attempt ran was put back (see
        repository_guard): the attempt fails, naming it; for good if it ran alone."""
        if changed is not None and attempt.outcome is not None:
            said, names = attempt.outcome, ", ".join(changed.names)
            reason = (f"changed the repository's {names} (undone)" if changed.alone else
                      f"the repository's {names} changed while it ran, by it or an attempt beside it (undone)")
            attempt.outcome = Outcome(ok=False, reason=reason, failure_class=PERMANENT if changed.alone else TRANSIENT,
                                      result_text=said.result_text, data=said.data)

    def noting_setup(self, number: int):
        """A worktree_setup's processes, recorded as an agent's are (running.json): a run killed
        during the setup leaves an attempt killed mid-run, whose processes the next run stops."""
        def record(processes) -> None:
            write_json_atomic(self.folder.running, {
                **self.facts, "earlier": [a.record() for a in self.attempts], "run_id": self.run.run_id,
                "attempt": number, "attempt_started": time.time(), "runner_pid": os.getpid(), **processes.record()})
        return record

    def workplace(self, number: int) -> tuple[Path, Mapping[str, str]]:
        """Where the agent runs, and on what environment: the batch's workdir, or the same folder in its own
        worktree; the item's services started first."""
        job = self.job
        if job.settings["isolation"] != "worktree":
            self.start_services()
            return job.workdir, self.item_environment()
        if self.workspace is None:
            setup = job.settings.get("worktree_setup")
            self.tell_step(number, SETUP, shlex.join(setup) if setup else "making its worktree")
            with self.folder.open_log() as log:
                self.workspace = self.run.isolation.open_attempt(job.item.group, job.item.module, self.run.run_id,
                                                                 job.settings, log,
                                                                 on_start=self.noting_setup(number))
            if self.workspace.replaced is not None:  # an earlier attempt's work, renamed aside: named
                self.kept_aside.append(named(self.workspace.replaced))
        elif self.workspace.run_id != self.run.run_id:
            # An earlier run's session goes on here (after a failed check, a rejection): the work is
            # this run's now, for the next run to find it (see recovery) and its commits to say so.
            self.workspace.run_id = self.run.run_id
            self.workspace.save()
        self.start_services()
        return self.workspace.workdir, self.item_environment()

    def item_environment(self) -> dict[str, str]:
        """The environment of what runs for the item (services, agent, check): see services.ItemServices;
        the token that opens pull requests is not the agent's."""
        environment = self.services.environment(self.worktree())
        if self.job.settings.get("land") in ("pr", "pr-batch"):
            environment = {name: value for name, value in environment.items() if name not in github.TOKEN_NAMES}
        return environment

    def start_services(self) -> None:
        self.services.start(self.worktree())

    def worktree(self) -> Path | None:
        return self.workspace.path if self.workspace is not None else None

    def session_to_continue(self) -> str | None:
        """After a failed check, the session that made the work: the next attempt goes on with it in
        the same folder (a check failure keeps the worktree). Not after a conflict: that attempt
        starts from the new tip in a fresh worktree, where the session's memory of its files is wrong."""
        if self.adjusted is not None and self.adjusted.session:
            # An adjustment says: the last attempt's session goes on (with more turns), or a fresh one.
            return self.attempts[-1].record()["session_id"] if self.adjusted.session == "continue" else None
        told = attempt_to_tell_of(self.attempts).record() if self.attempts else None
        return told["session_id"] if told and told["failure_class"] == retry.CHECK else None


def named(kept) -> dict[str, Any]:
    return {"worktree": str(kept.path), "branch": kept.branch, "commit": kept.commit, "wip": kept.wip}


class _Reporter:
    """The one way back from the executor to the item's run while an attempt runs (seam.Reporter)."""

    def __init__(self, item_run: AttemptStep, number: int):
        self.item_run, self.number = item_run, number

    def step(self, step: str, text: str = "") -> None:
        self.item_run.tell_step(self.number, step, text)

    def event(self, event) -> None:
        self.item_run.run.hub.publish("item_event", self.item_run.job.item.key, event)

    def started(self, started: float) -> None:
        hub, key = self.item_run.run.hub, self.item_run.job.item.key
        hub.publish("attempt_started", key, self.number, started)
        hub.publish("item_started", key, self.number, self.item_run.folder.log)
