"""The state of a run, item by item, as people want to see it: what runs, what it does,
what is done, what it cost. Filled either live, from item runs in this process, or
from the items' state folders, by another process (`doit batch-status`)."""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .events import AgentEvent
from .state import BatchState, read_json

WAITING, RUNNING, DONE, FAILED = "waiting", "running", "done", "failed"


@dataclass
class ItemView:
    key: str
    group: str
    state: str = WAITING
    attempt: int = 0
    started: float | None = None
    finished: float | None = None
    activity: str = ""
    tokens: dict[str, int] = field(default_factory=dict)
    cost_usd: float | None = None
    log: str = ""
    reason: str = ""

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        return (self.finished or time.time()) - self.started


class Board:
    """Thread-safe: item runs write to it from their threads, the view reads it."""

    def __init__(self, items: list[tuple[str, str]], already_done: int = 0, workers: int = 1):
        self.items = {key: ItemView(key, group) for key, group in items}
        self.already_done = already_done
        self.workers = workers
        self.begun = time.time()
        self.ended: float | None = None  # set for a run that is over
        self.lock = threading.Lock()

    # Changes, from item runs.
    def started(self, key: str, attempt: int, log: str) -> None:
        with self.lock:
            view = self._view(key)
            view.state, view.attempt, view.log = RUNNING, attempt, log
            view.started = view.started or time.time()
            view.activity = f"attempt {attempt}: started"

    def event(self, key: str, event: AgentEvent) -> None:
        with self.lock:
            view = self._view(key)
            if event.kind == "usage" and event.data.get("tokens"):
                view.tokens = dict(event.data["tokens"])
            if event.kind == "result" and event.data.get("cost_usd") is not None:
                view.cost_usd = event.data["cost_usd"]
            if event.text:
                view.activity = event.text

    def finished(self, key: str, ok: bool, record: dict[str, Any] | None = None, reason: str = "") -> None:
        with self.lock:
            view = self._view(key)
            view.state = DONE if ok else FAILED
            view.finished = time.time()
            view.reason = reason
            if record:
                view.cost_usd = record.get("cost_usd", view.cost_usd)
                view.tokens = record.get("tokens") or view.tokens

    def _view(self, key: str) -> ItemView:
        if key not in self.items:  # an item the run did not plan on (run again by hand)
            self.items[key] = ItemView(key, key.split(":", 1)[0])
        return self.items[key]

    # Reading, for views.
    def snapshot(self) -> list[ItemView]:
        with self.lock:
            return [ItemView(**vars(view)) for view in self.items.values()]

    def totals(self, views: list[ItemView]) -> dict[str, Any]:
        count = {state: 0 for state in (WAITING, RUNNING, DONE, FAILED)}
        for view in views:
            count[view.state] += 1
        durations = [view.duration for view in views if view.state == DONE and view.duration is not None]
        left = count[WAITING] + count[RUNNING]
        eta = statistics.mean(durations) * left / max(1, self.workers) if durations and left else None
        return {
            **count,
            "total": len(views),
            "already_done": self.already_done,
            "elapsed": (self.ended or time.time()) - self.begun,
            "eta": eta,
            "cost_usd": sum(view.cost_usd or 0 for view in views),
        }


def board_from_state(plan, state: BatchState, run_started: float | None) -> Board:
    """Rebuild the board from the items' state folders, for a run in another process or past."""
    board = Board([(item.key, item.group) for item in plan.items()])
    for item in plan.items():
        folder = state.item(item.group, item.module)
        view = board.items[item.key]
        result, failure, running = read_json(folder.result), read_json(folder.failure), read_json(folder.running)
        if running and run_started:
            view.state, view.attempt, view.started = RUNNING, running.get("attempt", 1), running.get("started")
            view.log = folder.log
            _read_activity(view, folder.events)
        elif result:
            view.state, view.started, view.finished = DONE, result.get("started"), result.get("finished")
            view.cost_usd, view.tokens = result.get("cost_usd"), result.get("tokens") or {}
        elif failure:
            view.state, view.reason, view.log = FAILED, failure.get("reason", ""), folder.log
            view.finished, view.cost_usd = failure.get("finished"), failure.get("cost_usd")
        elif item.done:
            view.state, view.activity = DONE, "done by hand"
    started = [v.started for v in board.items.values() if v.started]
    if run_started:
        board.begun = run_started
    elif started:  # the span of what was run, for a run that is over
        board.begun = min(started)
        board.ended = max((v.finished for v in board.items.values() if v.finished), default=board.begun)
    return board


def _read_activity(view: ItemView, events_path: str, tail_bytes: int = 16384) -> None:
    """The latest activity and token count of a running item, from the end of its events."""
    try:
        with open(events_path, "rb") as stream:
            start = max(0, os.fstat(stream.fileno()).st_size - tail_bytes)
            stream.seek(start)
            lines = stream.read().splitlines()[1 if start else 0 :]  # a cut first line is no event
    except OSError:
        return
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("text"):
            view.activity = event["text"]
        tokens = (event.get("data") or {}).get("tokens")
        if event.get("kind") == "usage" and tokens:
            view.tokens = tokens
