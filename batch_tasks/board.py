"""The state of a run, item by item, as people want to see it: what runs and what it
does, what waits to retry and until when, which agent is paused for a usage limit, and
how each item ended (done, failed with its cause, interrupted, not started and why,
skipped), with what it cost. Filled either live, by the runner in this process, or from
the items' state folders, by another process (`doit batch-status`).

It keeps counts as it goes, so that reading the totals and the items in flight costs
the same with 10 or 10,000 items waiting. It reads state folders (board_from_state, a
failed attempt's output tail) and never writes.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

from . import tool_counts
from .tails import said_last
from .events import STEP, AgentEvent
from .item_status import ABSENT, UNREADABLE, read_status
from .review import review_command
from .state import BatchState, open_to_read

WAITING, RUNNING, RETRYING = "waiting", "running", "retrying"
DONE, FAILED, INTERRUPTED, NOT_STARTED, SKIPPED = "done", "failed", "interrupted", "not started", "skipped"
AWAITING_REVIEW = "awaiting review"  # checked, waiting for a person's decision: neither in flight nor ended
IN_FLIGHT = (RUNNING, RETRYING)
ENDED = (DONE, FAILED, INTERRUPTED, NOT_STARTED, SKIPPED)
STATES = (WAITING, *IN_FLIGHT, AWAITING_REVIEW, *ENDED)
EXIT_STOPPED = {"Ctrl-C": 130, "SIGTERM": 143}


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
            view.last_activity = time.time()
            data = event.data or {}
            if event.kind == "usage" and data.get("tokens"):
                view.tokens = dict(data["tokens"])
            if event.kind == "result" and data.get("cost_usd") is not None:
                view.cost_usd = (view.cost_usd or 0) + data["cost_usd"]  # one result per attempt
            if event.kind == "worker":
                view.worker = str(data.get("worker") or "")
            if event.kind == "tool_use":
                view.tools = view.tools + Counter([str(data.get("name") or "?")])  # a new one: copies share it
            if event.kind == "started":
                view.model = data.get("model") or view.model
                view.session_id = data.get("session_id") or view.session_id
                view.activity = f"started ({view.model})" if view.model else "started"
            elif event.text:
                view.activity = event.text

    def step(self, key: str, attempt: int, step: str, text: str = "") -> None:
        """An item that lands its work is at `step` (events.py) of `attempt`, doing `text`; one whose
        worktree is being set up runs already, though its agent has not started."""
        with self.lock:
            view = self._view(key)
            view.attempt, view.step, view.last_activity = attempt, step, time.time()
            view.activity = text  # what it did at the step before is over
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
                view.session_id = _last_session(record) or view.session_id
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
            view.attempt, view.reason, view.retry_at = attempt, cause, at
            view.activity, view.step = f"waiting to retry: {cause}", ""
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

    def exit_status(self, stopped_by: str | None = None) -> int:
        """0 all done; 1 an item failed; 4 none failed but not all started; 130/143 stopped."""
        with self.lock:
            counts = dict(self.counts)
        if stopped_by:
            return EXIT_STOPPED.get(stopped_by, 130)
        if counts.get(FAILED):
            return 1
        return 4 if any(counts.get(state) for state in (WAITING, *IN_FLIGHT, INTERRUPTED, NOT_STARTED)) else 0


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


def _last_run(record: dict[str, Any]) -> str | None:
    """The run of a record's last attempt: its tool calls are that run's."""
    attempts = record.get("attempts") or []
    last = attempts[-1] if attempts and isinstance(attempts[-1], dict) else {}
    return last.get("run_id") if isinstance(last.get("run_id"), str) else None


def _last_session(record: dict[str, Any]) -> str:
    attempts = record.get("attempts") or []
    last = attempts[-1] if attempts and isinstance(attempts[-1], dict) else {}
    return str(last.get("session_id") or record.get("session_id") or "")


def board_from_state(plan, state: BatchState, run_started: float | None, workers: int | None = None) -> Board:
    """Rebuild the board from the items' state folders, for a run in another process or past."""
    board = Board([(item.key, item.group) for item in plan.items()], workers=workers or 1, root=str(plan.path.parent))
    for item in plan.items():
        folder = state.item(item.group, item.module)
        view = board.items[item.key]
        status = read_status(folder)  # the one reader of an item's records
        result, failure, running = status.result, status.failure, status.running
        if status.kind == UNREADABLE:
            view.reason = status.problem
            board._move(view, FAILED)
        elif running and run_started:
            view.attempt, view.started = running.get("attempt", 1), running.get("started")
            view.log = folder.log
            _read_activity(view, folder.events)
            view.tools = tool_counts.count(folder.events, running.get("run_id"))
            board._move(view, RETRYING if view.retry_at else RUNNING)
        elif status.kind == ABSENT and run_started and _read_activity(view, folder.events, since=run_started):
            # Its first attempt's worktree is being made and set up: no agent has started yet.
            view.log = folder.log
            board._move(view, RUNNING)
        elif result:
            view.started, view.finished = result.get("started"), result.get("finished")
            view.cost_usd, view.tokens = result.get("cost_usd"), result.get("tokens") or {}
            view.landing = landing_of(result)
            view.tools = tool_counts.count(folder.events, _last_run(result))
            board._move(view, DONE)
        elif failure:
            view.reason, view.log = failure.get("reason", ""), folder.log
            view.finished, view.cost_usd = failure.get("finished"), failure.get("cost_usd")
            view.agent, view.session_id = failure.get("agent") or "", _last_session(failure)
            view.landing = landing_of(failure)
            view.tools = tool_counts.count(folder.events, _last_run(failure))
            if failure.get("awaiting_review"):
                said = failure["awaiting_review"]
                pull = isinstance(said, dict) and said.get("pull_request") is not None
                view.reason = f"review it: {said.get('waits_for') if pull else review_command(item.key)}"
                board._move(view, AWAITING_REVIEW)
            elif failure.get("interrupted"):
                board._move(view, INTERRUPTED)
            else:
                view.output_tail = tuple(said_last(folder.log))
                board._move(view, FAILED)
        elif item.done:
            view.activity = "done by hand"
            board._move(view, DONE)
    board.at_rest = not run_started
    if run_started:
        board.begun = run_started
    if run_started:  # the ETA's mean, like the runner's: the items done in this run
        board._done_seconds = [0.0, 0]
        for view in board.items.values():
            if view.state == DONE and view.finished and view.finished >= run_started and view.duration is not None:
                board._done_seconds[0] += view.duration
                board._done_seconds[1] += 1
    return board


def _read_activity(view: ItemView, events_path: str, tail_bytes: int = 16384, since: float | None = None) -> bool:
    """The latest activity, step and token count of a running item, and whether it waits to
    retry, from the end of its events (with `since`, only of those written since then);
    True if it read any."""
    try:
        with open_to_read(events_path) as stream:
            start = max(0, os.fstat(stream.fileno()).st_size - tail_bytes)
            stream.seek(start)
            lines = stream.read().splitlines()[1 if start else 0 :]  # a cut first line is no event
    except OSError:
        return False
    seen = False
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict):
            continue
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        stamp = event.get("t") if isinstance(event.get("t"), (int, float)) else None
        if since is not None and (stamp is None or stamp < since):
            continue
        seen = True
        if stamp is not None:
            view.last_activity = stamp
            view.started = view.started or stamp
        if event.get("kind") == "retry" and isinstance(data.get("retry_at"), (int, float)):
            # The runner's own notice (an agent's retries within an attempt carry no retry_at).
            view.retry_at, view.reason = data["retry_at"], str(event.get("text") or "")
            view.attempt = event.get("attempt") or view.attempt
            view.activity, view.step = f"waiting to retry: {view.reason}", ""
            continue
        if event.get("kind") == STEP:  # the runner's too: where an item that lands its work is
            view.step, view.retry_at = str(data.get("step") or ""), None
            view.attempt = event.get("attempt") or view.attempt
            view.activity = str(event.get("text") or "")
            continue
        if event.get("kind") == "worker":
            view.worker = str(data.get("worker") or "")
        if event.get("kind") == "started":
            view.retry_at = None
            view.model = str(data.get("model") or "")
            view.activity = f"started ({view.model})" if view.model else "started"
        elif event.get("text"):
            view.activity = str(event["text"])
        if event.get("kind") == "usage" and isinstance(data.get("tokens"), dict):
            view.tokens = data["tokens"]
    return seen
