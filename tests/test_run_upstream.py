"""A run's upstream digest: items that wait for the same group read its records once between
them, however many of them start at once (a group's first items all start together)."""

from __future__ import annotations

import threading
import time

from batch_tasks.plan.plan import Item
from batch_tasks.processes.process import Supervisor
from batch_tasks.run import run as run_module
from batch_tasks.state.budget import Budget
from batch_tasks.state.item_status import DONE, ItemStatus
from batch_tasks.state.state import BatchState


def test_items_starting_at_once_behind_one_group_read_its_records_once(tmp_path, monkeypatch):
    reads = []

    def read_status(item_state):
        reads.append(item_state.folder)
        time.sleep(0.002)  # a record read from disk: long enough for the others to come meanwhile
        return ItemStatus(DONE, {"run_id": "r1"})

    monkeypatch.setattr(run_module, "read_status", read_status)
    run = run_module.Run(budget=Budget(None, 0.0), report_error=print, state=BatchState(tmp_path / "task.md"),
                         executor=None, supervisor=Supervisor())
    upstream = tuple(Item("first", f"m{number}", "do it", "", True, number + 3, f"- [x] m{number}: do it")
                     for number in range(100))
    starting = threading.Barrier(8)
    digests = []

    def start() -> None:
        starting.wait()
        digests.append(run.upstream_digest(upstream, run.state))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(digests)) == 1 and len(digests) == 8
    assert len(reads) == 100
