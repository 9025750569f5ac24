"""Scheduling: which ready item starts next, and how many run at once.

doit hands every ready item to a worker thread at once (run-batch gives it
enough of them); here each waits for its turn. An item starts when the run's
limits all allow it: `-n` in all, its group's `parallel`, its agent's
`max_concurrent`. Among the items that could start, the one with the longest
remaining chain goes first (the critical path, from each item's last recorded
duration), ties in document order.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Mapping

from . import process
from .plan import Plan


@dataclass(frozen=True)
class Turn:
    """What the scheduler needs to know of an item."""

    key: str
    group: str
    group_limit: int | None
    agent: str


class Scheduler:
    def __init__(self):
        self._ready = threading.Condition()
        self.capacity: int | None = None
        self.agent_limits: Mapping[str, int] = {}
        self.priorities: Mapping[str, float] = {}  # an item's remaining chain, in expected seconds
        self.order: Mapping[str, int] = {}  # its place in task.md
        self.halt_on_failure = True
        self.halted = False
        self._waiting: dict[str, Turn] = {}
        self._running = 0
        self._by_group: Counter[str] = Counter()
        self._by_agent: Counter[str] = Counter()

    def configure(self, capacity, agent_limits, priorities, order, halt_on_failure: bool) -> None:
        with self._ready:
            self.capacity, self.agent_limits = capacity, dict(agent_limits or {})
            self.priorities, self.order, self.halt_on_failure = priorities, order, halt_on_failure
            self.halted = False

    def item_failed(self) -> None:
        """Without --continue, items still waiting for their turn do not start after a failure."""
        with self._ready:
            self.halted = self.halted or self.halt_on_failure
            self._ready.notify_all()

    def _allows(self, turn: Turn) -> bool:
        agent_limit = self.agent_limits.get(turn.agent)
        return (
            (self.capacity is None or self._running < self.capacity)
            and (turn.group_limit is None or self._by_group[turn.group] < turn.group_limit)
            and (agent_limit is None or self._by_agent[turn.agent] < agent_limit)
        )

    def _next(self) -> Turn | None:
        startable = [turn for turn in self._waiting.values() if self._allows(turn)]
        return min(
            startable, key=lambda turn: (-self.priorities.get(turn.key, 0.0), self.order.get(turn.key, 0)), default=None
        )

    @contextmanager
    def turn(self, turn: Turn):
        """Hold the item's place while it runs; yields False if it is not to start at all."""
        arrived = time.monotonic()
        with self._ready:
            self._waiting[turn.key] = turn
            while True:
                if self.halted or process.stopping.is_set():
                    del self._waiting[turn.key]
                    self._ready.notify_all()
                    yield False
                    return
                unsettled = SETTLE - (time.monotonic() - arrived)
                if self._next() is turn and unsettled <= 0:
                    break
                self._ready.wait(unsettled if unsettled > 0 else 0.5)
            del self._waiting[turn.key]
            self._running += 1
            self._by_group[turn.group] += 1
            self._by_agent[turn.agent] += 1
            self._ready.notify_all()  # the next in line may start too
        try:
            yield True
        finally:
            with self._ready:
                self._running -= 1
                self._by_group[turn.group] -= 1
                self._by_agent[turn.agent] -= 1
                self._ready.notify_all()


# doit hands out the items that became ready together within a few milliseconds;
# each waits this long before it may start, so that the right one goes first.
SETTLE = 0.003

SCHEDULER = Scheduler()


def critical_paths(plan: Plan, durations: Mapping[str, float | None]) -> dict[str, float]:
    """Each item's remaining chain: its expected duration plus the longest chain after it.

    An item's expected duration is its last recorded one, else its group's median,
    else 1 second. Items sharing an upstream share its tuple, so each tuple's best
    chain is found once (a whole group behind a whole group costs one pass)."""
    expected: dict[str, float] = {}
    for group in plan.groups:
        known = [durations[item.key] for item in group.items if durations.get(item.key)]
        default = statistics.median(known) if known else 1.0
        for item in group.items:
            expected[item.key] = durations.get(item.key) or default

    tuples: dict[int, tuple] = {}
    holders: dict[str, list[int]] = {}  # item → ids of the upstream tuples it is in
    for item in plan.items():
        upstream = plan.upstream(item)
        if upstream and id(upstream) not in tuples:
            tuples[id(upstream)] = upstream
            for member in upstream:
                holders.setdefault(member.key, []).append(id(upstream))

    chain: dict[str, float] = {}
    best_after: dict[int, float] = {}  # tuple id → longest chain among the items waiting on it
    for item in reversed(list(plan.items())):
        after = max((best_after.get(t, 0.0) for t in holders.get(item.key, ())), default=0.0)
        chain[item.key] = expected[item.key] + after
        upstream = plan.upstream(item)
        if upstream:
            best_after[id(upstream)] = max(best_after.get(id(upstream), 0.0), chain[item.key])
    return chain
