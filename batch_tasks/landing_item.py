"""What the landing steps (landing.py, review.py, reviewer.py, pull_request.py) need of an
item's run (lifecycle.ItemRun, which has it): written down as a protocol, so that they are
below the lifecycle that calls them, not beside it. Touches nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .item_job import ItemJob
    from .item_machine import ItemMachine
    from .records import Attempt
    from .run import Run
    from .state import ItemState
    from .workspace import AttemptWorkspace


class LandingItem(Protocol):
    job: ItemJob
    run: Run
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
