"""One run's state, in one object that `run-batch` creates and hands to every item:
its id, its state folder, its agents (process control), where they run (its executor),
its listeners, its secrets mask, its budget, where its ticks found items in task.md, and
what its items have in common. Nothing of a run lives in module globals, so a second run
in the same process starts clean."""

from __future__ import annotations

import os
import secrets
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Mapping

from ..events import Hub
from ..plan.plan import Item
from ..processes.ports import Ports
from ..processes.process import Supervisor
from ..redaction import Redactor
from ..state.budget import Budget
from ..state.checkbox import Moves
from ..state.item_status import DONE, read_status
from ..state.staleness import stamp, upstream_digest
from ..state.state import BatchState

if TYPE_CHECKING:
    from ..executors.seam import Executor
    from ..isolation.worktree import Isolation
    from ..landing.merge_queue import MergeQueue
    from ..repository.repository_guard import AdminFiles


def new_run_id(now: float | None = None) -> str:
    """A run's id: when it started, and enough chance to tell two runs of one second apart."""
    when = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    return f"{when}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Run:
    budget: Budget
    report_error: Callable[[str], None]  # for what goes wrong beside the items (a listener)
    state: BatchState  # the batch's state folder, as loading found it
    executor: Executor  # where attempts run (see executors)
    supervisor: Supervisor  # its agents' process control: the executor's, the isolation's and the merge queue's too
    run_id: str = field(default_factory=lambda: new_run_id())
    started: float = field(default_factory=time.time)
    redactor: Redactor = field(default_factory=lambda: Redactor(os.environ))
    # This process's environment, read once: what its items run under. A copy of os.environ
    # decodes every name and value again (tens of microseconds an item).
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    isolation: Isolation | None = None  # when any item runs isolated
    merge_queue: MergeQueue | None = None  # with it
    repository: AdminFiles | None = None  # the repository's git settings as the run found them (repository_guard)
    ports: Ports = field(default_factory=Ports)  # its items' BATCH_PORT and BATCH_SLOT leases
    forecast: Mapping[str, float | None] = field(default_factory=dict)  # what each item should cost (see forecast)
    ticks: Moves = field(default_factory=Moves)  # where its ticks found items in task.md (see checkbox)
    waits_for_reviews: bool = True  # False: the run ends when nothing is left but items awaiting review
    hub: Hub = field(init=False)
    _digests: dict[int, Future] = field(default_factory=dict, repr=False)  # each upstream's, by the tuple's id
    _digests_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "hub", Hub(self.report_error))

    def upstream_digest(self, upstream: tuple[Item, ...], state: BatchState) -> str:
        """What an item was made from, upstream. Items that wait for the same things share
        one tuple, all of it finished before any of them starts: one reading serves them all
        (a group of 100 behind a group of 100 reads 100 records, not 10,000), the first to
        ask reads while the others, starting with it, wait for its answer (each reading it
        again made every barrier between groups cost a tenth of a run)."""
        with self._digests_lock:
            reading = self._digests.get(id(upstream))
            first = reading is None
            if first:
                reading = self._digests[id(upstream)] = Future()
        if not first:
            return reading.result()
        try:
            stamps = []
            for member in upstream:
                status = read_status(state.item(member.group, member.module))
                stamps.append((member.key, stamp(status.result if status.kind == DONE else None, member)))
            reading.set_result(upstream_digest(stamps))
        except BaseException as error:
            with self._digests_lock:
                del self._digests[id(upstream)]  # the next to ask reads again
            reading.set_exception(error)
        return reading.result()
