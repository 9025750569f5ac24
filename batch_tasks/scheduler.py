"""Scheduling: which ready item starts next, and how many run at once.

doit hands every ready item to a worker thread at once (run-batch gives it
enough of them); here each waits for its turn. An item starts when the run's
limits all allow it: `-n` in all, its group's `parallel`, its agent's
`max_concurrent`. Among the items that could start, the one with the longest
remaining chain goes first (the critical path, from each item's last recorded
duration), ties in document order. doit announces each item as it hands it
out, so an item that is on its way still gets its turn before lesser ones.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Mapping

from .process import Supervisor
from .plan import Plan


@dataclass(frozen=True)
class Turn:
    """What the scheduler needs to know of an item."""

    key: str
    group: str
    group_limit: int | None
    agent: str


class Scheduler:
    """Each waiting item has its own event; on every change the scheduler picks the items
    that may start and wakes just those (waking every waiter to look would cost each start
    a pass over all of them, per waiter)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.capacity: int | None = None
        self.agent_limits: Mapping[str, int] = {}
        self.priorities: Mapping[str, float] = {}  # an item's remaining chain, in expected seconds
        self.order: Mapping[str, int] = {}  # its place in task.md
        self.halt_on_failure = True
        self.halted = False
        self._waiting: dict[str, tuple[Turn, threading.Event]] = {}
        self._started: set[str] = set()
        self._announced: dict[str, float] = {}  # handed out by doit, not here yet: key → when
        self._held_back: str | None = None  # the waiter that gave way to an announced item
        self._waits: Waits | None = None
        self._will_run: set[str] = set()
        self._done: set[str] = set()
        self._running = 0
        self._by_group: Counter[str] = Counter()
        self._by_agent: Counter[str] = Counter()

    def configure(self, plan: Plan, will_run: set[str], durations, capacity, agent_limits, halt_on_failure: bool):
        waits = Waits(plan)
        with self._lock:
            self.capacity, self.agent_limits = capacity, dict(agent_limits or {})
            self.priorities = critical_paths(plan, durations, waits)
            self.order = {item.key: place for place, item in enumerate(plan.items())}
            self.halt_on_failure, self.halted = halt_on_failure, False
            self._waits, self._will_run = waits, will_run
            self._done = {item.key for item in plan.items() if item.key not in will_run}

    def announce(self, key: str) -> None:
        """doit is handing this item to a worker: it will ask for its turn in a moment."""
        with self._lock:
            self._announced[key] = time.monotonic()

    def item_failed(self) -> None:
        """Without --continue, items still waiting for their turn do not start after a failure."""
        with self._lock:
            self.halted = self.halted or self.halt_on_failure
            if self.halted:
                for _, woken in self._waiting.values():
                    woken.set()

    def _allows(self, turn: Turn) -> bool:
        agent_limit = self.agent_limits.get(turn.agent)
        return (
            (self.capacity is None or self._running < self.capacity)
            and (turn.group_limit is None or self._by_group[turn.group] < turn.group_limit)
            and (agent_limit is None or self._by_agent[turn.agent] < agent_limit)
        )

    def _rank(self, key: str) -> tuple[float, int]:
        return -self.priorities.get(key, 0.0), self.order.get(key, 0)

    def _dispatch(self) -> None:
        """Start, best first, every waiting item the limits allow, unless a better one is on
        its way. Called with the lock held, after every change."""
        now = time.monotonic()
        for key, when in list(self._announced.items()):
            if now - when > ON_ITS_WAY:
                del self._announced[key]  # doit handed it out but did not run it (ignored, say)
        best_coming = min((self._rank(key) for key in self._announced), default=None)
        self._held_back = None
        for key in sorted(self._waiting, key=self._rank):
            turn, woken = self._waiting[key]
            if best_coming is not None and best_coming < self._rank(key):
                self._held_back = key  # it looks again when the announced one is overdue
                return
            if self._allows(turn):
                del self._waiting[key]
                self._started.add(key)
                self._running += 1
                self._by_group[turn.group] += 1
                self._by_agent[turn.agent] += 1
                woken.set()

    @contextmanager
    def turn(self, turn: Turn):
        """Hold the item's place while it runs; yields False if it is not to start at all."""
        woken = threading.Event()
        with self._lock:
            self._waiting[turn.key] = (turn, woken)
            self._announced.pop(turn.key, None)
            self._dispatch()
        while True:
            # Woken when it starts (or the run halts); otherwise it looks in now and then:
            # for a stop, or, if it gave way to an announced item, for that item being overdue.
            woken.wait(ON_ITS_WAY if self._held_back == turn.key else 1.0)
            with self._lock:
                if turn.key in self._started:
                    break
                if self.halted or SUPERVISOR.stopping.is_set():
                    self._waiting.pop(turn.key, None)
                    self._dispatch()
                    yield False
                    return
                if self._held_back == turn.key:
                    self._dispatch()
        try:
            yield True
        finally:
            with self._lock:
                self._started.discard(turn.key)
                self._running -= 1
                self._by_group[turn.group] -= 1
                self._by_agent[turn.agent] -= 1
                self._done.add(turn.key)
                # What this completes can start now: announce it before its turn is taken by a lesser item.
                for waiting in self._waits.ready_after(turn.key, self._done) if self._waits else ():
                    if waiting in self._will_run:
                        self._announced[waiting] = time.monotonic()
                self._dispatch()


# How long an announced item is waited for; a worker picks it up in far less.
ON_ITS_WAY = 0.05

SCHEDULER = Scheduler()


class Waits:
    """Who waits for what, by the plan's shared upstream tuples: items that wait for the same
    things share one tuple, so a whole group behind a whole group is one entry, not a square."""

    def __init__(self, plan: Plan):
        self.tuples: dict[int, tuple] = {}
        self.waiters: dict[int, list[str]] = {}  # tuple id → the items waiting on it
        self.holders: dict[str, list[int]] = {}  # item → ids of the tuples it is in
        for item in plan.items():
            upstream = plan.upstream(item)
            if not upstream:
                continue
            if id(upstream) not in self.tuples:
                self.tuples[id(upstream)] = upstream
                for member in upstream:
                    self.holders.setdefault(member.key, []).append(id(upstream))
            self.waiters.setdefault(id(upstream), []).append(item.key)

    def ready_after(self, key: str, done: set[str]) -> list[str]:
        """The items that `key` finishing leaves with nothing to wait for."""
        return [
            waiting
            for t in self.holders.get(key, ())
            if all(member.key in done for member in self.tuples[t])
            for waiting in self.waiters[t]
        ]


def critical_paths(plan: Plan, durations: Mapping[str, float | None], waits: Waits) -> dict[str, float]:
    """Each item's remaining chain: its expected duration plus the longest chain after it.

    An item's expected duration is its last recorded one, else its group's median,
    else 1 second."""
    expected: dict[str, float] = {}
    for group in plan.groups:
        known = [durations[item.key] for item in group.items if durations.get(item.key)]
        default = statistics.median(known) if known else 1.0
        for item in group.items:
            expected[item.key] = durations.get(item.key) or default

    chain: dict[str, float] = {}
    best_after: dict[int, float] = {}  # tuple id → longest chain among the items waiting on it
    for item in reversed(list(plan.items())):
        after = max((best_after.get(t, 0.0) for t in waits.holders.get(item.key, ())), default=0.0)
        chain[item.key] = expected[item.key] + after
        upstream = plan.upstream(item)
        if upstream:
            best_after[id(upstream)] = max(best_after.get(id(upstream), 0.0), chain[item.key])
    return chain


# The run's agents. Made here for now, beside SCHEDULER; the run context is to own both.
SUPERVISOR = Supervisor()
