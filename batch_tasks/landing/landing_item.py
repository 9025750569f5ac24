"""What the landing steps (landing.py, review.py, reviewer.py, pull_request.py) need of an
item's run (lifecycle.ItemRun, which has it) and of the whole run (run.Run, which has it):
written down as protocols, so that they are below the run and the lifecycle that call them,
not beside them. Touches nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..events import Hub
    from ..isolation.workspace import AttemptWorkspace
    from ..isolation.worktree import Isolation
    from ..plan.item_job import ItemJob
    from ..processes.process import Supervisor
    from ..redaction import Redactor
    from ..state.item_machine import ItemMachine
    from ..state.records import Attempt
    from ..state.state import ItemState
    from .merge_queue import MergeQueue


class LandingRun(Protocol):
    run_id: str
    redactor: Redactor
    supervisor: Supervisor  # an agent reviewer runs under it, and a stop ends a wait for a review
    hub: Hub  # what a landing tells the views
    isolation: Isolation | None
    merge_queue: MergeQueue | None


class LandingItem(Protocol):
    job: ItemJob
    run: LandingRun
    folder: ItemState
    machine: ItemMachine
    workspace: AttemptWorkspace | None  # its worktree, when isolated (a remote executor's own kind too)
    attempts: list[Attempt]
    current: Attempt | None  # the attempt the machine's states are of
    lands: bool  # it has landing steps worth showing
    resumable: bool  # a failure the next run goes on from, its agent not run again
    review_poll_at: float  # `land: pr`: when its pull request is next asked about

    def tell_step(self, number: int, step: str, text: str = "") -> None: ...

    def park(self, why: str) -> None: ...

    def keep(self, why: str) -> dict[str, Any] | None: ...

    def item_environment(self) -> dict[str, str]: ...

    def resume_record(self, reached: str) -> dict[str, Any]: ...
