"""Watching the items parked awaiting their review, off the runner's loop.

Whether a parked item's review is decided is a signed file to read (`review: human`) or, with
`land: pr`, GitHub to ask: HTTP, which a slow GitHub, its retries and its rate limits may hold
for a long while (see github.py, pull_request.py's `due` and `verdict`, which pace and pause
the asking as they did). One thread of its own asks for each parked item in turn, about every
second, and tells the runner only that an item was decided; the runner's loop (which starts
items and keeps the view) never waits on it. An item is watched from its parking until it is
decided or forgotten (the run ends without its decision); while watched, no other thread
touches it.

Touches nothing itself: `review.decided` reads the decision (and, for `land: pr`, keeps what
GitHub said on the item's attempt). An error in asking is kept on the item (`review_error`),
which is handed back: its step raises it, for the runner to record as the bug it is.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Callable

from ..landing.review import decided

if TYPE_CHECKING:
    from .lifecycle import ItemRun

EVERY_SECONDS = 1.0  # how often each parked item is asked about: a person's decision is taken within it


class ReviewWatch:
    def __init__(self, on_decided: Callable[[str], None], every: float = EVERY_SECONDS):
        self.on_decided, self.every = on_decided, every
        self._items: dict[str, ItemRun] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None

    def watch(self, key: str, item_run: "ItemRun") -> None:
        with self._lock:
            self._items[key] = item_run
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="review-watch", daemon=True)
                self._thread.start()
        self._wake.set()  # asked at once: a decision given between runs is taken without a wait

    def forget(self, key: str) -> None:
        """The run ends without the item's decision: not asked about again, nor told of."""
        with self._lock:
            self._items.pop(key, None)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._items.clear()
        self._wake.set()

    def _serve(self) -> None:
        while True:
            self._wake.wait(self.every)
            self._wake.clear()
            with self._lock:
                if self._closed:
                    return
                watched = list(self._items.items())
            for key, item_run in watched:
                try:
                    found = decided(item_run)
                except Exception as error:  # noqa: BLE001 - a bug: handed back, its step raises it, to be recorded
                    item_run.review_error = error
                    found = True
                if found:
                    with self._lock:
                        if self._items.pop(key, None) is None:
                            continue  # forgotten meanwhile: the run ended without it
                    self.on_decided(key)
