"""`doit run-batch --joblog FILE`: one line per attempt as it ends, in GNU parallel's
joblog format, so that scripts written for parallel's joblog read it (and
`parallel --retry-failed --joblog FILE` names the failed items).

It may touch only FILE, which it appends to (parallel writes its header once, on a new
or empty file; so does this). The columns, tab-separated, as parallel writes them:

    Seq  Host  Starttime  JobRuntime  Send  Receive  Exitval  Signal  Command

Seq numbers attempts in the order they started, on from the file's last (as parallel's,
unique in a file that runs append to), Host is `:` (this machine),
Starttime is Unix time and JobRuntime seconds (`%10.3f`), Send and Receive are 0
(nothing is transferred), Exitval is the exit status and Signal the signal that
stopped it (0 when none), Command is the item's key (`GROUP:MODULE`).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

HEADER = "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n"
INTERRUPTED_SIGNAL = 15  # an attempt stopped with the run ended by SIGTERM (or SIGKILL after it)


class JobLog:
    """Has every method of history.History, so that the runner feeds both alike; only
    the start and the end of attempts matter here."""

    def __init__(self, path: Path | str):
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._lock = threading.Lock()
        self._seq: dict[tuple[str, int], int] = {}
        if os.fstat(self._fd).st_size == 0:
            os.write(self._fd, HEADER.encode())
        self._first = _last_seq(Path(path)) + 1

    def attempt_started(self, key: str, attempt: int, started: float) -> None:
        with self._lock:
            self._seq.setdefault((key, attempt), self._first + len(self._seq))

    def attempt_ended(self, key: str, record: dict[str, Any]) -> None:
        with self._lock:
            seq = self._seq.setdefault((key, record["attempt"]), self._first + len(self._seq))
        status = record.get("exit_status")
        exitval, signal = _exit_and_signal(status, stopped=record.get("reason") == "interrupted")
        started = record.get("started") or 0.0
        runtime = max(0.0, (record.get("finished") or started) - started)
        command = key.replace("\t", " ").replace("\n", " ")  # one line, its columns whole
        line = f"{seq}\t:\t{started:10.3f}\t{runtime:10.3f}\t0\t0\t{exitval}\t{signal}\t{command}\n"
        with self._lock:
            os.write(self._fd, line.encode("utf-8"))

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def run_ended(self, totals: dict[str, Any]) -> None:
        self.close()

    def run_started(self, meta) -> None: ...

    def retry_scheduled(self, key, attempt, cause, at) -> None: ...

    def step(self, key, attempt, step, text) -> None: ...

    def paused(self, agent, until) -> None: ...

    def item_finished(self, key, outcome, record, why="") -> None: ...


def _last_seq(path: Path) -> int:
    """The highest Seq of the lines the file holds (0 for none)."""
    with open(path, encoding="utf-8", errors="replace") as lines:
        numbers = [int(first) for line in lines if (first := line.partition("\t")[0]).isdigit()]
    return max(numbers, default=0)


def _exit_and_signal(status: int | None, stopped: bool) -> tuple[int, int]:
    """parallel's pair: a process killed by a signal has Exitval 0 and that Signal."""
    if status is None:
        return (0, INTERRUPTED_SIGNAL) if stopped else (-1, 0)  # -1: it never ran, as parallel says
    if status < 0:
        return 0, -status
    return status, 0
