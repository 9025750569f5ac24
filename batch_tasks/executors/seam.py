"""The seam between an item's lifecycle and whatever runs its attempts: all an executor is
given, all it may say, what it returns, and what it needs of a run.

An executor gets an `AttemptSpec` (a read-only description of the attempt: its job and
prompt context, where and on what environment its agent runs, its worktree, its sandbox)
and a `Reporter` (the one way back to the run while it runs: its steps, its agent's events,
its start); it returns an `AttemptResult`. What it needs of a run (`Needs`: isolated groups,
a git remote, `pass_env`) is data, checked by `check_needs` before anything is written. It
never sees the item's run, its state machine or the run's other items.

Touches nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

from ..errors import BatchError

if TYPE_CHECKING:
    from ..events import AgentEvent
    from ..isolation.worktree import Isolation
    from ..plan.item_job import ItemJob
    from ..processes.agent_sandbox import Sandbox
    from ..processes.process import Supervisor
    from ..redaction import Redactor
    from ..state.records import Attempt
    from ..state.state import ItemState


class Workspace(Protocol):
    """An attempt's own worktree, as far as an executor reaches it."""

    path: Path  # the worktree
    workdir: Path  # the folder in it where its agent runs (task.md's workdir, there)
    branch: str


@dataclass(frozen=True)
class AttemptSpec:
    """One attempt, described: the executor reads it, and changes nothing of it."""

    job: ItemJob
    number: int
    run_id: str
    folder: ItemState  # the item's state folder: its output.log, events.jsonl, running.json
    context: Mapping[str, Any]  # the prompt template's
    running: Mapping[str, Any]  # what running.json is to hold besides the attempt's own facts
    continues: str | None  # the session to go on with, where the executor can
    where: Path | None  # where its agent runs, when the lifecycle made its workplace here (Needs.workplace_here)
    environment: Mapping[str, str]  # under the batch's own variables
    workspace: Workspace | None  # its worktree so far, when isolated
    sandbox: Sandbox | None = None


@dataclass(frozen=True)
class AttemptResult:
    """The attempt, its agent run to its end, and the worktree its work is in now (when isolated)."""

    attempt: Attempt
    workspace: Workspace | None = None  # a workspace.AttemptWorkspace, or an executor's own (fetched.py's)


class Reporter(Protocol):
    """How an attempt tells the run what happens to it, as it happens."""

    def step(self, step: str, text: str = "") -> None:
        """The step it is at (events.SETUP, AGENT …), and what it does there."""

    def event(self, event: AgentEvent) -> None:
        """One of its agent's events, already in its events.jsonl, for the run's listeners."""

    def started(self, started: float) -> None:
        """Its agent started (running.json is written)."""


@dataclass(frozen=True)
class RunTools:
    """What a run lends the executor it makes: its process control, its secrets mask, its
    isolation (None when no item that runs is isolated), and a way to say a notice."""

    supervisor: Supervisor
    redactor: Redactor
    isolation: Isolation | None
    notice: Callable[[str, str], None]  # (who, what): a line on the panel and in the run's history


@dataclass(frozen=True)
class Needs:
    """What an executor needs of a run, checked in one place (check_needs)."""

    isolation: bool = False  # every group that runs is isolated (`isolation: worktree`)
    remote: bool = False  # a git remote its workers reach (`remote:`, or `origin`)
    pass_env: bool = False  # `pass_env`'s variables set here, to be sent along
    workplace_here: bool = True  # the lifecycle makes the attempt's worktree and starts its services here


class Executor(Protocol):
    needs: Needs

    def attempt(self, spec: AttemptSpec, reporter: Reporter) -> AttemptResult:
        """One attempt, its agent run to its end. Raises BatchError when the attempt could not
        be set up (its worktree, its setup): the item fails, saying so."""
        ...

    def close(self) -> None: ...


def check_needs(needs: Needs, name: str, batch, will_run: set[str]) -> None:
    """What would stop executor `name` in this batch, as one BatchError before anything is written."""
    from ..repository.git import git

    taskfile = batch.plan.path.name
    if needs.isolation:
        for group in batch.plan.groups:
            if group.settings["isolation"] != "worktree" and any(item.key in will_run for item in group.items):
                raise BatchError(f"{taskfile}: group {group.slug!r}: --executor {name} runs items on other machines, "
                                 "so it needs isolation: worktree (and a git remote the workers reach: remote:)")
    if needs.pass_env:
        missing = [variable for variable in batch.plan.settings.get("pass_env", ()) if variable not in os.environ]
        if missing:
            raise BatchError(f"{taskfile}: pass_env: {', '.join(missing)} not set in this environment")
    if needs.remote and not batch.plan.settings.get("remote"):
        found = git("remote", "get-url", "origin", cwd=batch.plan.path.parent, allowed=(0, 2, 128))
        if found.status != 0 or not found.text:
            raise BatchError(f"--executor {name} needs a git remote the workers can reach: remote: URL in the front "
                             "matter, or an `origin` remote")
