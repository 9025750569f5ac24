"""What the landing steps need of an item's run (lifecycle.ItemRun, which has it) and of the
whole run (run.Run, which has it), written down as protocols, so that they are below the run
and the lifecycle that call them, not beside them. Split where the steps need different
things: the review steps (review.py, reviewer.py, pull_request.py) a `ReviewedItem`, the
steps that commit, check and merge (landing.py) a `LandingItem`, which is one and more.
tests/test_landing_protocol.py holds each to what its steps use. Touches nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..events import Hub
    from ..isolation.workspace import AttemptWorkspace
    from ..isolation.worktree import Isolation
    from ..plan.item_job import ItemJob
    from ..processes.process import Supervisor
    from ..redaction import Redactor
    from ..state.budget import Budget
    from ..state.item_machine import ItemMachine
    from ..state.records import Attempt
    from ..state.state import ItemState
    from .merge_queue import MergeQueue


class ReviewRun(Protocol):
    run_id: str
    redactor: Redactor
    supervisor: Supervisor  # an agent reviewer runs under it, and a stop ends a wait for a review
    hub: Hub  # what a landing tells the views
    budget: Budget  # an agent reviewer's cost is the batch's


class LandingRun(ReviewRun, Protocol):
    isolation: Isolation | None  # its other refs, which an attempt may not move
    merge_queue: MergeQueue | None


class ReviewedItem(Protocol):
    job: ItemJob
    run: ReviewRun
    folder: ItemState
    machine: ItemMachine
    workspace: AttemptWorkspace | None  # its worktree, when isolated (a remote executor's own kind too)
    attempts: list[Attempt]
    current: Attempt | None  # the attempt the machine's states are of
    review_poll_at: float  # `land: pr`: when its pull request is next asked about
    review_verdict: tuple[str, str] | None  # `land: pr`: what GitHub said, found by the review watch

    def tell_step(self, number: int, step: str, text: str = "") -> None: ...

    def resume_record(self, reached: str) -> dict[str, Any]: ...


class LandingItem(ReviewedItem, Protocol):
    run: LandingRun
    lands: bool  # it has landing steps worth showing
    resumable: bool  # a failure the next run goes on from, its agent not run again

    def park(self, why: str) -> None: ...

    def keep(self, why: str) -> dict[str, Any] | None: ...

    def item_environment(self) -> dict[str, str]: ...
