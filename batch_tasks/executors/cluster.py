"""The coordinator's hold on its Dask cluster, for one run: the client (made again when its
scheduler was lost and is back), the workers an attempt may go to, and the waits, said on
screen (the run's hub: `notice`).

- The scheduler lost (restarted, its machine rebooted; Dask then shuts its workers down too):
  each next submission waits for a scheduler with a worker, up to WAIT_SECONDS in all; past
  that the run gives up on the cluster, and its items are kept as interrupted.
- A worker whose failure is its own (it cannot fetch or push, has no agent CLI, a full disk)
  is set aside for the run and named on screen with its error: attempts go to the others
  (Dask's worker restrictions). With every worker set aside, an attempt cannot start.

Touches nothing but its client.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from ..processes.process import StoppedError

WAIT_SECONDS = 600  # for a scheduler, or a worker, before the run gives up on the cluster
RECONNECT_SECONDS = 5  # each try at a scheduler that was lost
POLL_SECONDS = 1.0


class Cluster:
    def __init__(self, client, scheduler: str, tell: Callable[[str], None]):
        self.client, self.scheduler, self.tell = client, scheduler, tell
        self.set_aside: dict[str, str] = {}  # worker address → why
        self.lock = threading.Lock()  # one attempt waits and says so; the others wait behind it
        self.aside_lock = threading.Lock()
        self.waited = 0.0  # seconds spent waiting so far, towards WAIT_SECONDS
        self.gave_up = False
        self.told_lost: set[int] = set()  # the clients whose loss was said

    def lost(self, client) -> None:
        """An attempt saw its scheduler go, through `client`: said once per loss, not per attempt."""
        with self.aside_lock:
            if id(client) in self.told_lost:
                return
            self.told_lost.add(id(client))
        self.tell(f"lost the Dask scheduler at {self.scheduler}: the items running there wait for it, and "
                  "their pushed work lands when it is back")

    def ready(self, stopping: threading.Event):
        """The client, once its scheduler is there with a worker not set aside. Raises StoppedError
        when the run stops, or the waits have come to WAIT_SECONDS (the item is kept as interrupted);
        OSError when every worker is set aside (the attempt cannot start)."""
        with self.lock:
            said, began = "", time.monotonic()
            try:
                while True:
                    if self.gave_up or stopping.is_set():
                        raise StoppedError()
                    missing = self._missing()
                    if not missing:
                        if said:
                            self.tell(f"the Dask scheduler at {self.scheduler} has a worker again: going on")
                        return self.client
                    if missing != said:
                        self.tell(missing)
                        said = missing
                    if self.waited + time.monotonic() - began > WAIT_SECONDS:
                        self.gave_up = True
                        self.tell(f"gave up on the Dask cluster at {self.scheduler} after {WAIT_SECONDS:g} s of "
                                  "waiting: its items are kept as interrupted")
                        raise StoppedError()
                    stopping.wait(POLL_SECONDS)
            finally:
                self.waited += time.monotonic() - began

    def _missing(self) -> str:
        """What the cluster lacks for an attempt to go there now, or ''."""
        from distributed import Client

        if self.client.status not in ("running", "newly-created"):
            try:
                self.client.close()
            except Exception:  # noqa: BLE001 - it is closed already, or half so
                pass
            try:
                self.client = Client(self.scheduler, timeout=RECONNECT_SECONDS, set_as_default=False)
            except (OSError, TimeoutError):
                return f"waiting for the Dask scheduler at {self.scheduler} to be back"
        try:
            workers = set(self.client.nthreads())
        except (OSError, TimeoutError):
            return f"waiting for the Dask scheduler at {self.scheduler} to be back"
        if not workers:
            return f"waiting for a Dask worker at {self.scheduler}"
        if workers <= set(self.set_aside):
            raise OSError(f"every Dask worker is set aside for this run: {self.aside_list()}")
        return ""

    def allowed(self) -> list[str] | None:
        """The workers an attempt may go to (None: any), as the scheduler knows them now."""
        if not self.set_aside:
            return None
        return [worker for worker in self.client.nthreads() if worker not in self.set_aside]

    def set_worker_aside(self, worker: str, why: str, item: str) -> None:
        with self.aside_lock:
            if worker in self.set_aside:
                return
            self.set_aside[worker] = why
        self.tell(f"set aside the Dask worker {worker} for this run ({item} goes to another): {why}")

    def aside_list(self) -> str:
        return "; ".join(f"{worker}: {why}" for worker, why in self.set_aside.items())

    def close(self) -> None:
        self.client.close()
