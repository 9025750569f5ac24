"""The merge queue's decisions, as plain data: which items are checked together and on what,
what a failing check means, and how many items a check takes. No git, no processes, no clocks:
merge_queue builds and checks the states this plan asks for, and tells it how each check ended.

    plan = QueuePlan(batch_max=4, parallel=2, flaky_retries=1)
    plan.add("g:a"); plan.add("g:b")               # in the order they passed their own checks
    decision = plan.decide()                        # decision.check: states to build and check
    plan.passed(state_id) / plan.failed(state_id) / plan.conflicted(state_id, key)
    decision = plan.decide()                        # .land (in order), .culprits, .check, .bisected, .given_up

A state is the integration tip with the items of the states ahead of it merged in, then its own
items (Zuul's speculative chain); its own items are checked once, together (a Bors batch). Up to
`parallel` states are checked at once. First passed, first landed: a state lands only when every
state ahead of it has. A failing state is judged once nothing ahead of it is unjudged (what failed
may be an item ahead): it is checked again `flaky_retries` times on the same state before anyone
is blamed; then the states behind it are discarded (they hold its items), and it is split in two
(bisection) or, holding one item, that item is the culprit. A state given up is named once
(`given_up`): a check still running on it judges nothing, and is stopped. The batch size grows (doubles) with
each state that lands and halves with each failure; an item that conflicted with a state ahead of
it waits until nothing is ahead, and then conflicts with the tip itself or not.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Candidate:
    """A state to build and check: the tip, `ahead` merged in, then `items`; `run` 2… is a rerun."""

    id: int
    ahead: tuple[str, ...]
    items: tuple[str, ...]
    run: int = 1


@dataclass
class Decision:
    land: list[tuple[str, ...]] = field(default_factory=list)  # states that passed, in queue order
    check: list[Candidate] = field(default_factory=list)
    culprits: list[str] = field(default_factory=list)  # items that fail their landing: back to their agents
    bisected: list[tuple[str, ...]] = field(default_factory=list)  # failing states split in two
    given_up: list[int] = field(default_factory=list)  # states given up since the last decision: stop their checks


@dataclass
class _State:
    id: int
    items: tuple[str, ...]
    runs: int = 1
    result: str | None = None  # None while checked; "passed" or "failed"


@dataclass
class QueuePlan:
    batch_max: int = 1
    parallel: int = 1
    flaky_retries: int = 1
    size: int | None = None  # how many items the next state takes (from batch_max): grows on success, shrinks on failure
    waiting: list[str] = field(default_factory=list)  # items in no state, in queue order
    kinds: dict[str, object] = field(default_factory=dict)  # items checked alike may be checked together
    states: list[_State] = field(default_factory=list)  # being checked, the first on the tip
    splits: list[int] = field(default_factory=list)  # sizes the next states must take: a bisection
    held: set[str] = field(default_factory=set)  # conflicted with a state ahead: wait until none is
    confirmed: set[str] = field(default_factory=set)  # in a failure seen twice: no rerun for them
    given_up: list[int] = field(default_factory=list)  # states given up, for the next decision to name
    _next_id: int = 1

    def __post_init__(self) -> None:
        self.size = self.batch_max if self.size is None else self.size

    def add(self, key: str, kind: object = None) -> None:
        """An item enters the queue (behind all others): `kind` is its check, as a value."""
        self.kinds[key] = kind
        self.waiting.append(key)

    def passed(self, state_id: int) -> None:
        self._result(state_id, "passed")

    def failed(self, state_id: int) -> None:
        self._result(state_id, "failed")

    def conflicted(self, state_id: int, key: str) -> list[str]:
        """Building the state, `key` did not merge. Returns the culprit ([key]) if it did not merge
        on the tip itself; else the state and those behind it are given up, and `key` waits."""
        index = self._index(state_id)
        if index is None:
            return []
        state = self.states[index]
        if index == 0 and state.items[0] == key:
            self._discard_from(0)
            self._remove(key)
            return [key]
        self._discard_from(index)
        self.held.add(key)
        return []

    def restart(self, landing: dict[str, object] | None = None) -> None:
        """The tip moved under the queue as `landing` (passed, in order, with their kinds) were to
        land: they and every state are made again, on it."""
        self._discard_from(0)
        self.waiting[:0] = list(landing or ())
        self.kinds.update(landing or {})

    def clear(self) -> None:
        """The queue gives up every item (the run stops)."""
        self.__init__(self.batch_max, self.parallel, self.flaky_retries, self.size, _next_id=self._next_id)

    def decide(self) -> Decision:
        decision = Decision()
        while self.states:
            first = self.states[0]
            if first.result == "passed":
                self.states.pop(0)
                decision.land.append(first.items)
                self.confirmed.difference_update(first.items)
                for key in first.items:
                    self.kinds.pop(key, None)
                self.size = min(self.batch_max, self.size * 2)
            elif first.result == "failed":
                self._judge(first, decision)
            else:
                break
        decision.check += self._form()
        decision.given_up, self.given_up = self.given_up, []
        return decision

    @property
    def busy(self) -> bool:
        return bool(self.states or self.waiting)

    def _judge(self, state: _State, decision: Decision) -> None:
        """The first state failed: check it again, or give it up and split it or blame its item."""
        if state.runs <= self.flaky_retries and not set(state.items) <= self.confirmed:
            state.runs += 1
            state.result = None
            decision.check.append(Candidate(state.id, (), state.items, state.runs))
            return
        self._discard_from(0)
        self.size = max(1, self.size // 2)
        if len(state.items) == 1:
            self._remove(state.items[0])
            decision.culprits.append(state.items[0])
            return
        self.confirmed.update(state.items)
        half = (len(state.items) + 1) // 2
        self.splits[:0] = [half, len(state.items) - half]
        decision.bisected.append(state.items)

    def _form(self) -> list[Candidate]:
        formed = []
        while len(self.states) < self.parallel and self.waiting:
            first = self.waiting[0]
            if first in self.held and self.states:
                break  # it conflicted with what is ahead: it waits for that to land
            wanted = self.splits.pop(0) if self.splits else self.size
            items = [first]
            for key in self.waiting[1:wanted]:
                if key in self.held or self.kinds.get(key) != self.kinds.get(first):
                    break
                items.append(key)
            del self.waiting[:len(items)]
            self.held.discard(first)
            ahead = tuple(key for state in self.states for key in state.items)
            state = _State(self._next_id, tuple(items))
            self._next_id += 1
            self.states.append(state)
            formed.append(Candidate(state.id, ahead, state.items))
        return formed

    def _result(self, state_id: int, result: str) -> None:
        index = self._index(state_id)
        if index is not None:  # a state given up meanwhile: its result says nothing
            self.states[index].result = result

    def _index(self, state_id: int) -> int | None:
        return next((i for i, state in enumerate(self.states) if state.id == state_id), None)

    def _discard_from(self, index: int) -> None:
        """The states from `index` on are given up: their items wait again, in their order, first."""
        returned = [key for state in self.states[index:] for key in state.items]
        self.given_up += [state.id for state in self.states[index:]]
        del self.states[index:]
        self.waiting[:0] = returned

    def _remove(self, key: str) -> None:
        self.waiting.remove(key)
        self.kinds.pop(key, None)
        self.confirmed.discard(key)  # (never held: an item stops being held when a state takes it)
