"""The review watch (batch_tasks/run/review_watch.py) on plain data: what it tells the runner of
the parked items it asks about, from its own thread. Waits on what it was asked, not on time."""

from __future__ import annotations

import queue
import threading

from batch_tasks.run import review_watch
from batch_tasks.run.review_watch import ReviewWatch


class Parked(str):
    """A parked item's run, by its key."""


def test_it_tells_once_of_a_decided_item_of_one_it_could_not_ask_and_never_of_one_forgotten(monkeypatch):
    decisions = {"a": False, "b": False, "c": OSError("the state folder is gone"), "d": False}
    asked: list[str] = []
    passes = threading.Condition()

    def decided(key):
        with passes:
            asked.append(key)
            passes.notify_all()
        if isinstance(decisions[key], Exception):
            raise decisions[key]
        return decisions[key]

    def asked_again(key: str, times: int) -> None:
        with passes:
            before = asked.count(key)
            assert passes.wait_for(lambda: asked.count(key) >= before + times, timeout=10)

    monkeypatch.setattr(review_watch, "decided", decided)
    told: queue.Queue[str] = queue.Queue()
    watch = ReviewWatch(told.put, every=0.01)
    parked = {key: Parked(key) for key in ("a", "b", "c", "d")}
    for key in ("a", "b", "c"):
        watch.watch(key, parked[key])
    assert told.get(timeout=10) == "c"  # handed back, with the error for its own step to raise and record
    assert parked["c"].review_error is decisions["c"]
    decisions["a"] = True
    assert told.get(timeout=10) == "a"
    with passes:
        since = len(asked)
    watch.forget("b")
    decisions["b"] = True  # decided after the run ended without it: not told
    watch.watch("d", parked["d"])
    asked_again("d", 3)
    assert told.empty()
    assert "a" not in asked[since:] and "c" not in asked[since:]  # told once, then no longer asked about
    watch.close()
    watch._thread.join(timeout=10)
    assert not watch._thread.is_alive()
