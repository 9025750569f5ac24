"""The state of a run, item by item, as people want to see it: what runs and what it
does, what waits to retry and until when, which agent is paused for a usage limit, and
how each item ended (done, failed with its cause, interrupted, not started and why,
skipped), with what it cost. Filled either live, by the runner in this process, or from
the items' state folders, by another process (`doit batch-status`, see board_on_disk):
both read an item's events through the same note_* functions.

It keeps counts as it goes, so that reading the totals and the items in flight costs
the same with 10 or 10,000 items waiting. It reads a failed attempt's output tail, and
never writes.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..events import AgentEvent
from ..state.item_machine import AWAITING_REVIEW, FAILED, INTERRUPTED
from ..state.item_status import DONE
from ..state.tails import said_last

# An item on the board: its outcomes are the item machine's and the records' own names; AWAITING_REVIEW
# (checked, waiting for a decision) is neither in flight nor ended.
WAITING, RUNNING, RETRYING = "waiting", "running", "retrying"
NOT_STARTED, SKIPPED = "not started", "skipped"  # as history.py names them
IN_FLIGHT = (RUNNING, RETRYING)
ENDED = (DONE, FAILED, INTERRUPTED, NOT_STARTED, SKIPPED)
STATES = (WAITING, *IN_FLIGHT, AWAITING_REVIEW, *ENDED)


@dataclass
class ItemView:
    key: str
    group: str
    state: str = WAITING
    attempt: int = 0
    started: float | None = None
    finished: float | None = None
    activity: str = ""
    step: str = ""  # where an item that lands its work is: setup, agent, check, waiting to merge, merging
    last_activity: float | None = None  # when it last showed a sign of life
    tokens: dict[str, int] = field(default_factory=dict)
    cost_usd: float | None = None
    log: str = ""
    reason: str = ""  # why it failed, waits to retry, was not started or skipped
    output_tail: tuple[str, ...] = ()  # the failing attempt's last lines
    retry_at: float | None = None
    agent: str = ""
    model: str = ""
    session_id: str = ""
    landing: dict[str, Any] = field(default_factory=dict)  # an isolated item's evidence: merge, check, kept
    worker: str = ""  # the Dask worker that runs it, for a remote item (see executors)
    adjusted: tuple[dict[str, Any], ...] = ()  # its attempts adjusted to a cause (retry.py): attempt, text, cost_usd
    tools: Counter[str] = field(default_factory=Counter)  # its tool calls in this run, by tool

    @property
    def tool_calls(self) -> int:
        return sum(self.tools.values())

    def copy(self) -> "ItemView":
        """A copy to hand to the views, as dataclasses.replace makes, in a fifth of its time."""
        twin = object.__new__(ItemView)
        twin.__dict__.update(self.__dict__)
        return twin

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        return (self.finished or time.time()) - self.started


class Board:
    """Thread-safe: the runner writes to it from its threads, views read it. Views
    given to watch() hear of every change: started(view), stepped(view), retrying(view),
    finished(view) (any end: done, failed, interrupted, not started, skipped) and
    paused(agent, until)."""

    def __init__(
        self,
        items: Iterable[tuple[str, str]],
        already_done: int = 0,
        workers: int = 1,
        root: str | None = None,
        agents: dict[str, str] | None = None,
        begun: float | None = None,  # when the run began: for run-batch, when its process did
    ):
        self.items = {key: ItemView(key, group, agent=(agents or {}).get(key, "")) for key, group in items}
        self.already_done = already_done
        self.workers = workers
        self.root = root or os.getcwd()  # paths are shown relative to it: task.md's folder
        self.begun = time.time() if begun is None else begun
        self.at_rest = False  # no run in progress: a picture of the batch, not of a run
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter({WAITING: len(self.items)})
        self.in_flight: dict[str, ItemView] = {}  # running or waiting to retry, in order of start
        self.pauses: dict[str, float] = {}  # agent → when its usage limit resets
        self._done_seconds = [0.0, 0]  # sum and count of the durations of items done
        self._ended_cost = 0.0
        self._watchers: list[Any] = []

    def watch(self, view) -> None:
        self._watchers.append(view)

    # Changes, from the runner.
    def started(self, key: str, attempt: int, log: str) -> None:
        with self.lock:
            view = self._view(key)
            now = time.time()
            view.attempt, view.log, view.retry_at, view.reason = attempt, log, None, ""
            view.started = view.started or now
            view.activity, view.last_activity = "started", now
            self._move(view, RUNNING)
            seen = view.copy()
        self._tell("started", seen)

    def event(self, key: str, event: AgentEvent) -> None:
        with self.lock:
            view = self._view(key)
            data = event.data or {}
            note_event(view, event.kind, event.text, data, time.time())
            # A run's own cost and tool calls; from the state folders, the records and tool_counts say them.
            if event.kind == "result" and data.get("cost_usd") is not None:
                view.cost_usd = (view.cost_usd or 0) + data["cost_usd"]  # one result per attempt
            if event.kind == "tool_use":
                view.tools = view.tools + Counter([str(data.get("name") or "?")])  # a new one: copies share it

    def step(self, key: str, attempt: int, step: str, text: str = "") -> None:
        """An item that lands its work is at `step` (events.py) of `attempt`, doing `text`; one whose
        worktree is being set up runs already, though its agent has not started."""
        with self.lock:
            view = self._view(key)
            note_step(view, attempt, step, text, time.time())
            if view.state in (WAITING, RETRYING, AWAITING_REVIEW):
                view.started, view.retry_at = view.started or view.last_activity, None
                self._move(view, RUNNING)
            seen = view.copy()
        self._tell("stepped", seen)

    def finished(
        self,
        key: str,
        ok: bool,
        record: dict[str, Any] | None = None,
        reason: str = "",
        output_tail: Iterable[str] = (),
    ) -> None:
        """An item's end: done, or failed for `reason` with its attempt's last lines."""
        tail = tuple(output_tail)
        if not ok and not tail:
            tail = tuple(said_last(self.items[key].log)) if key in self.items else ()
        with self.lock:
            view = self._view(key)
            view.finished, view.reason, view.output_tail = time.time(), reason, tail
            view.retry_at = None
            if record:
                view.cost_usd = record.get("cost_usd", view.cost_usd)
                view.tokens = record.get("tokens") or view.tokens
                view.agent = record.get("agent") or view.agent
                view.session_id = last_session(record) or view.session_id
                view.landing = landing_of(record)
                view.adjusted = tuple({"attempt": a["attempt"], "text": a["adjusted"]["text"], "cost_usd": a["cost_usd"]}
                                      for a in record.get("attempts") or () if a.get("adjusted"))
            self._move(view, DONE if ok else FAILED)
            seen = view.copy()
        self._tell("finished", seen)

    def retrying(self, key: str, attempt: int, cause: str, at: float) -> None:
        """Attempt `attempt` failed for `cause`; the next one starts at `at`."""
        with self.lock:
            view = self._view(key)
            note_retry(view, attempt, cause, at)
            self._move(view, RETRYING)
            seen = view.copy()
        self._tell("retrying", seen)

    def paused(self, agent: str, until: float) -> None:
        """No attempt of `agent` starts before `until`: a usage limit."""
        with self.lock:
            self.pauses[agent] = max(until, self.pauses.get(agent, 0.0))
        for watcher in self._watchers:
            watcher.paused(agent, until)

    def notice(self, text: str) -> None:
        """A line about the run as a whole: its Dask cluster waited for, a worker set aside."""
        for watcher in self._watchers:
            watcher.notice(text)

    def not_started(self, key: str, why: str) -> None:
        self._end(key, NOT_STARTED, why)

    def interrupted(self, key: str, record: dict[str, Any] | None = None) -> None:
        if record:
            with self.lock:
                self._view(key).landing = landing_of(record)  # where its work is kept
        self._end(key, INTERRUPTED, "the run was stopped")

    def awaiting_review(self, key: str, command: str) -> None:
        """It waits for its review, holding no slot: who waits, and the command that reviews it."""
        with self.lock:
            view = self._view(key)
            view.reason, view.retry_at = f"review it: {command}", None
            if view.state != AWAITING_REVIEW:
                self._move(view, AWAITING_REVIEW)
            seen = view.copy()
        self._tell("finished", seen)

    def skipped(self, key: str, why: str) -> None:
        self._end(key, SKIPPED, why)

    def _end(self, key: str, state: str, why: str) -> None:
        with self.lock:
            view = self._view(key)
            view.reason, view.retry_at = why, None
            if view.started is not None:
                view.finished = time.time()
            self._move(view, state)
            seen = view.copy()
        self._tell("finished", seen)

    def settle(self, view: ItemView, state: str) -> None:
        """Put an item read from the state folders in its state, before anyone watches."""
        with self.lock:
            self._move(view, state)

    def count_done_since(self, since: float) -> None:
        """The ETA's mean from the items done since SINCE alone, as the runner's counts them: those of the run."""
        with self.lock:
            done = [view.duration for view in self.items.values()
                    if view.state == DONE and view.finished and view.finished >= since and view.duration is not None]
            self._done_seconds = [sum(done), len(done)]

    def _view(self, key: str) -> ItemView:
        if key not in self.items:  # an item the run did not plan on (run again by hand)
            self.items[key] = ItemView(key, key.split(":", 1)[0])
            self.counts[WAITING] += 1
        return self.items[key]

    def _move(self, view: ItemView, state: str) -> None:
        """Change its state, keeping the counts, the items in flight and the sums."""
        if view.state in ENDED:
            self._ended_cost -= view.cost_usd or 0
        if view.state == DONE and view.duration is not None:
            self._done_seconds[0] -= view.duration
            self._done_seconds[1] -= 1
        self.counts[view.state] -= 1
        self.counts[state] += 1
        view.state = state
        if state in IN_FLIGHT:
            self.in_flight.setdefault(view.key, view)
        else:
            self.in_flight.pop(view.key, None)
        if state in ENDED:
            self._ended_cost += view.cost_usd or 0
        if state == DONE and view.duration is not None:
            self._done_seconds[0] += view.duration
            self._done_seconds[1] += 1

    def _tell(self, change: str, view: ItemView) -> None:
        for watcher in self._watchers:
            getattr(watcher, change)(view)

    # Reading, for views.
    def snapshot(self) -> list[ItemView]:
        """Every item; for the summary, once. The panel reads flying() and totals()."""
        with self.lock:
            return [view.copy() for view in self.items.values()]

    def flying(self) -> list[ItemView]:
        """The items running or waiting to retry, in the order they started."""
        with self.lock:
            return [view.copy() for view in self.in_flight.values()]

    def pauses_now(self, now: float | None = None) -> dict[str, float]:
        now = now or time.time()
        with self.lock:
            return {agent: until for agent, until in self.pauses.items() if until > now}

    def totals(self, now: float | None = None) -> dict[str, Any]:
        now = now or time.time()
        with self.lock:
            count = {state: self.counts[state] for state in STATES}
            flying = [(view.started, view.cost_usd) for view in self.in_flight.values()]
            done_sum, done_count = self._done_seconds
            cost = self._ended_cost + sum(spent or 0 for _, spent in flying)
        return {
            **count,
            "total": len(self.items),
            "already_done": self.already_done,
            "elapsed": None if self.at_rest else now - self.begun,
            "eta": None if self.at_rest else _eta(done_sum / done_count if done_count else None, count[WAITING], flying,
                                                  self.workers, now),
            "cost_usd": cost,
        }

    def ended_count(self) -> tuple[int, int]:
        """How many items have ended, of how many: a plain line's counter. Not those never
        started: a run stopped (or an item failed) would make it jump to its end."""
        with self.lock:
            return sum(self.counts[state] for state in ENDED if state != NOT_STARTED), len(self.items)


# What an item's events say of it, live (from the run's hub) or read back from its events.jsonl.


def note_event(view: ItemView, kind: str, text: str, data: dict[str, Any], at: float) -> None:
    """An agent's event: its sign of life, its model, tokens, worker and latest activity."""
    view.last_activity = at
    if kind == "usage" and isinstance(data.get("tokens"), dict) and data["tokens"]:
        view.tokens = dict(data["tokens"])
    if kind == "worker":
        view.worker = str(data.get("worker") or "")
    if kind == "started":
        view.retry_at = None
        view.model = str(data.get("model") or view.model)
        view.session_id = str(data.get("session_id") or view.session_id)
        view.activity = f"started ({view.model})" if view.model else "started"
    elif text:
        view.activity = str(text)


def note_step(view: ItemView, attempt: int, step: str, text: str, at: float) -> None:
    """The runner's: an item that lands its work is at STEP of ATTEMPT, doing TEXT."""
    view.attempt, view.step, view.retry_at, view.last_activity = attempt or view.attempt, step, None, at
    view.activity = text  # what it did at the step before is over


def note_retry(view: ItemView, attempt: int, cause: str, retry_at: float) -> None:
    """The runner's: ATTEMPT failed for CAUSE, and the next starts at RETRY_AT."""
    view.attempt, view.reason, view.retry_at = attempt or view.attempt, cause, retry_at
    view.activity, view.step = f"waiting to retry: {cause}", ""


def _eta(mean: float | None, waiting: int, flying: list, workers: int, now: float) -> float | None:
    """The work left, at the mean duration of the items done, over the items that can run
    at once: it counts down as the running ones age, not only when one ends."""
    left = waiting + len(flying)
    if mean is None or not left:
        return None
    work = waiting * mean + sum(max(0.0, mean - (now - (started or now))) for started, _ in flying)
    if work <= 0:
        return None  # only items running past the mean are left: no figure, rather than a 0.0s that stays
    return work / max(1, min(max(workers, len(flying)), left))


def landing_of(record: dict[str, Any]) -> dict[str, Any]:
    """What a record says of the item's work landing: its merge and check, or where it is kept."""
    landing = {name: record[name] for name in ("merge", "check", "kept") if isinstance(record.get(name), dict)}
    earlier = record.get("kept_attempts")
    if isinstance(earlier, list) and earlier:
        landing["kept_attempts"] = [kept for kept in earlier if isinstance(kept, dict)]
    attempts = record.get("attempts") if isinstance(record.get("attempts"), list) else []
    reviews = [a["review"] for a in attempts if isinstance(a, dict) and isinstance(a.get("review"), dict)]
    if reviews:  # the last decision, and what every reviewer agent's review cost
        costs = [r["cost_usd"] for r in reviews if isinstance(r.get("cost_usd"), (int, float))]
        landing["review"] = {**reviews[-1], "cost_usd": sum(costs) if costs else None}
    return landing


def last_session(record: dict[str, Any]) -> str:
    attempts = record.get("attempts") or []
    last = attempts[-1] if attempts and isinstance(attempts[-1], dict) else {}
    return str(last.get("session_id") or record.get("session_id") or "")
