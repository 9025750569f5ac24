"""Ports and slots of an item's own: `BATCH_PORT`, the first of a block of `ports_per_item`
ports no other item of any run on this machine holds meanwhile, and `BATCH_SLOT`, the
smallest whole number from 1 that no other running item of this run holds (for database
names, compose project names and the like).

Ports are handed out in units of UNIT, from FIRST_PORT to LAST_PORT (below Linux's
ephemeral range, where the system picks the ports of outgoing connections). Each unit is
held by an exclusive `flock` on its lock file, in one folder all runs on the machine share
(`<temp>/batch-tasks-ports/`): a lease is its open files, and the kernel frees them with its
process, however that ends (kill -9 included). A block given back stays locked by its run for
the run's next lease of the same size (items come and go by the thousand: no lock file opened
and locked again for each), until a lease of another size needs it or the run closes it
(`close`). Touches only that folder.

    lease = run.ports.lease(settings["ports_per_item"])
    lease.environment()       # {"BATCH_PORT": "20010", "BATCH_SLOT": "2"}
    lease.release()           # once all it started is stopped
    run.ports.hold(20010, 10, 2)  # that very block (recovery), or None if another run holds it
    run.ports.close()         # the run is over: its blocks are free for other runs
"""

from __future__ import annotations

import fcntl
import math
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BatchError

UNIT = 10
FIRST_PORT, LAST_PORT = 20000, 29999


class NoPortsLeft(BatchError):
    """Every block of ports in the range is held."""


@dataclass
class Lease:
    port: int
    count: int
    slot: int
    _files: list[int] = field(default_factory=list, repr=False)
    _ports: "Ports | None" = field(default=None, repr=False)

    def environment(self) -> dict[str, str]:
        return {"BATCH_PORT": str(self.port), "BATCH_SLOT": str(self.slot)}

    def release(self) -> None:
        """Give the ports and the slot back to the run (once: a second call does nothing)."""
        files, self._files = self._files, []
        if self._ports is not None:
            self._ports.free_slot(self.slot)
            self._ports.keep(self.port, files)
            self._ports = None


class Ports:
    """The leases of one run (its slots), taken from the machine's one range of ports."""

    def __init__(self, folder: Path | None = None, first: int = FIRST_PORT, last: int = LAST_PORT):
        self.folder = folder or Path(tempfile.gettempdir()) / "batch-tasks-ports"
        self.first, self.last = first, last
        self._slots: set[int] = set()
        self._held: set[int] = set()  # the units this run holds (leased or kept), by their first port
        self._kept: dict[int, list[int]] = {}  # blocks given back and still locked: first port → its lock files
        self._lock = threading.Lock()

    def lease(self, count: int) -> Lease:
        units = math.ceil(count / UNIT)
        with self._lock:
            slot = min(set(range(1, len(self._slots) + 2)) - self._slots)
            self._slots.add(slot)
            kept = next((start for start, files in self._kept.items() if len(files) == units), None)
            if kept is not None:
                return Lease(kept, count, slot, self._kept.pop(kept), self)
            others, self._kept = self._kept, {}  # of another size: let go, for this lease to find room
            for start, files in others.items():
                self._let_go(start, files)
        try:
            for start in range(self.first, self.last - units * UNIT + 2, UNIT):
                block = range(start, start + units * UNIT, UNIT)
                with self._lock:  # the run's own are not tried: at -n 8, eight lock files opened per lease
                    if not self._held.isdisjoint(block):
                        continue
                files = self._hold(start, units)
                if files is not None:
                    with self._lock:
                        self._held.update(block)
                    return Lease(start, count, slot, files, self)
        except BaseException:
            self.free_slot(slot)
            raise
        self.free_slot(slot)
        raise NoPortsLeft(f"no block of {count} ports is free from {self.first} to {self.last}: "
                          "other runs hold them all; lower ports_per_item or wait")

    def hold(self, port: int, count: int, slot: int) -> Lease | None:
        """The very block from `port` on (and `slot`), as a killed run leased it, for stopping what
        it left there; None if another run (or this one) holds any of it now."""
        units = math.ceil(count / UNIT)
        block = range(port, port + units * UNIT, UNIT)
        with self._lock:
            if not self._held.isdisjoint(block) or slot in self._slots:
                return None
            files = self._hold(port, units)
            if files is None:
                return None
            self._held.update(block)
            self._slots.add(slot)
        return Lease(port, count, slot, files, self)

    def free_slot(self, slot: int) -> None:
        with self._lock:
            self._slots.discard(slot)

    def keep(self, port: int, files: list[int]) -> None:
        """A block given back: still locked, for the next lease of its size."""
        with self._lock:
            self._kept[port] = files

    def close(self) -> None:
        """The run is over: every block it kept is free for other runs."""
        with self._lock:
            kept, self._kept = self._kept, {}
            for start, files in kept.items():
                self._let_go(start, files)

    def _let_go(self, port: int, files: list[int]) -> None:
        for fd in files:
            os.close(fd)  # closing the last descriptor of the lock file frees its lock
        self._held.difference_update(range(port, port + len(files) * UNIT, UNIT))

    def _hold(self, start: int, units: int) -> list[int] | None:
        """Lock the units from `start` on, all or none."""
        held: list[int] = []
        for unit in range(units):
            fd = _open_lock(self.folder, start + unit * UNIT)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                for other in held:
                    os.close(other)
                return None
            held.append(fd)
        return held


def _open_lock(folder: Path, port: int) -> int:
    """A unit's lock file, readable by every user: a lock needs no write access, and the folder is
    everyone's (sticky, as /tmp is)."""
    path = folder / f"{port}.lock"
    try:
        return os.open(path, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o444)
    except FileNotFoundError:
        folder.mkdir(exist_ok=True)
        try:
            os.chmod(folder, 0o1777)
        except PermissionError:
            pass  # another user made it
        return os.open(path, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o444)
