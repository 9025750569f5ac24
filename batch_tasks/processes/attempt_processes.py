"""Every process one attempt starts: finding them, now or after the runner died, and stopping them.

An attempt's processes are found three ways, so that none is left behind:
- its cgroup (v2), where the system lets us: made for it, or one an attempt of its run
  before it left empty; the agent joins it as it starts, and every process it starts
  is born in it, daemons too;
- its marker: the agent gets BATCH_ATTEMPT_ID in its environment, and so does
  everything it starts unless that clears its environment; psutil reads it in
  /proc, so a daemon that left the agent's session is still found, and one that left
  its cgroup too, by one walk of /proc for all of a run's attempts as it ends
  (`stop_marked`) and for each of a killed run's as the next recovers;
- its session and process group (the agent leads both) and its process tree.
What `record()` returns is all a later run needs to do the same (see recovery).
It may touch: processes (signals), and cgroup folders it made itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache

import psutil

from ..state.process_identity import is_alive, is_same_process

ATTEMPT_VARIABLE = "BATCH_ATTEMPT_ID"
CGROUP_PREFIX = "batch-tasks-"
GRACE_SECONDS = 3.0  # between SIGTERM and SIGKILL
KILL_ROUNDS = 20  # a process that forks while being killed is looked for again, this often


@lru_cache(maxsize=1)
def cgroup_parent() -> str | None:
    """The cgroup v2 folder of this process, if it is writable: attempts' cgroups go under it."""
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as stream:
            own = next((line[3:].strip() for line in stream if line.startswith("0::")), None)
        with open("/proc/self/mountinfo", encoding="utf-8") as stream:
            mounts = [line.split() for line in stream]
    except OSError:
        return None
    for fields in mounts:
        separator = fields.index("-") if "-" in fields else len(fields) - 1
        if own is not None and fields[separator + 1 : separator + 2] == ["cgroup2"] and fields[3] == "/":
            folder = os.path.join(fields[4], own.lstrip("/"))
            if os.access(os.path.join(folder, "cgroup.procs"), os.W_OK) and os.access(folder, os.W_OK):
                return folder
    return None


def new_cgroup(attempt_id: str) -> str | None:
    """A cgroup for one attempt, or None where the system does not let us make one (or
    BATCH_TASKS_NO_CGROUP is set: for systems whose cgroups are managed by someone else)."""
    parent = cgroup_parent()
    if parent is None or os.environ.get("BATCH_TASKS_NO_CGROUP"):
        return None
    folder = os.path.join(parent, CGROUP_PREFIX + attempt_id)
    try:
        os.mkdir(folder)
    except OSError:
        return None
    return folder


class Cgroups:
    """The cgroups of one run's attempts: one an attempt at a time, and, with `reuse`, one an
    attempt left empty (its agent and all it started gone) is the next attempt's, rather than
    removed and another made (each a walk of the kernel's cgroup tree, per item): then whoever
    made it must `close` it. Thread-safe."""

    def __init__(self, reuse: bool = False) -> None:
        self.reuse = reuse
        self._empty: list[str] = []
        self._lock = threading.Lock()

    def take(self, attempt_id: str) -> str | None:
        with self._lock:
            if self._empty:
                return self._empty.pop()
        return new_cgroup(attempt_id)

    def give_back(self, folder: str) -> bool:
        """An attempt's cgroup that it left empty: kept for the next, if these are reused."""
        if self.reuse:
            with self._lock:
                self._empty.append(folder)
        return self.reuse

    def close(self) -> None:
        """The run is over: its empty cgroups are removed."""
        with self._lock:
            empty, self._empty = self._empty, []
        for folder in empty:
            AttemptProcesses(0, 0.0, "", folder).remove_cgroup()


STALE_AFTER = 60.0  # seconds an attempt's cgroup may stand empty: it never is, but for a killed run's


def remove_stale_cgroups() -> None:
    """Remove the empty cgroups of attempts whose runner was killed before it could say so
    (between making the cgroup and recording it). A live attempt's cgroup holds its agent."""
    parent = cgroup_parent()
    if parent is None:
        return
    try:
        names = [name for name in os.listdir(parent) if name.startswith(CGROUP_PREFIX)]
    except OSError:
        return
    for name in names:
        folder = os.path.join(parent, name)
        try:
            if time.time() - os.stat(folder).st_mtime > STALE_AFTER:
                os.rmdir(folder)  # refused while any process is in it
        except OSError:
            continue


@dataclass
class AttemptProcesses:
    """What identifies one attempt's processes: its agent, its marker, its cgroup."""

    pid: int
    create_time: float
    attempt_id: str
    cgroup: str | None = None
    child: subprocess.Popen | None = field(default=None, repr=False)  # the agent, in the run that started it

    def record(self) -> dict:
        return {"pid": self.pid, "create_time": self.create_time, "attempt_id": self.attempt_id, "cgroup": self.cgroup}

    @classmethod
    def from_record(cls, record: dict) -> "AttemptProcesses | None":
        pid, create_time = record.get("pid"), record.get("create_time")
        attempt_id, cgroup = record.get("attempt_id"), record.get("cgroup")
        if not isinstance(pid, int) or not isinstance(create_time, (int, float)):
            return None
        if not isinstance(attempt_id, str) or not attempt_id:
            attempt_id = ""
        if not isinstance(cgroup, str) or not _is_our_cgroup(cgroup):
            cgroup = None  # a record may be planted: only a cgroup we could have made is touched
        return cls(pid, float(create_time), attempt_id, cgroup)

    def processes(self, include_agent: bool = True, members: list[int] | None = None) -> list[psutil.Process]:
        """Every live process of the attempt; the agent itself only if `include_agent`
        (a reaped agent's pid may already be someone else's)."""
        found: dict[int, psutil.Process] = {}
        for pid in members if members is not None else self._cgroup_members():
            try:
                found[pid] = psutil.Process(pid)
            except psutil.Error:
                pass
        # In its own cgroup, every process the attempt starts is a member, whatever it does
        # to its session or environment: the scan of every process on the machine (tens of
        # milliseconds an attempt) is for where there is no cgroup.
        for candidate in () if self.cgroup is not None else psutil.process_iter(["create_time"]):
            if candidate.pid in found or candidate.pid == os.getpid():
                continue
            if self._belongs(candidate):
                found[candidate.pid] = candidate
        if not include_agent or self.child is not None:
            found.pop(self.pid, None)
        return [p for p in found.values() if is_alive(p)]

    def _belongs(self, candidate: psutil.Process) -> bool:
        try:
            if candidate.info["create_time"] < self.create_time - 0.01:
                return False  # older than the agent: not its own, whatever it says
            if candidate.pid == self.pid:
                return True
            if os.getpgid(candidate.pid) == self.pid or os.getsid(candidate.pid) == self.pid:
                return True
            if not self.attempt_id:
                return False
            return candidate.environ().get(ATTEMPT_VARIABLE) == self.attempt_id
        except (OSError, psutil.Error):
            return False

    def _cgroup_members(self) -> list[int]:
        if self.cgroup is None:
            return []
        return read_pids(os.path.join(self.cgroup, "cgroup.procs"))

    def stop(self, grace: float = GRACE_SECONDS, include_agent: bool = True) -> bool:
        """SIGTERM to every process of the attempt, SIGKILL to what is left after `grace`;
        returns when all are gone. True if there was anything to stop. Its cgroup is left
        for the caller to remove (the kernel frees it a moment later). The agent, when it is
        our child (`self.child`), is signalled and waited for through its Popen, which must
        be the one to reap it, or its exit status would be lost."""
        child = self.child if include_agent and self.child is not None and self.child.poll() is None else None
        members = self._cgroup_members()
        targets = self.processes(include_agent and self.child is None, members)
        if not targets and child is None and not members:
            return False
        if child is not None:
            child.send_signal(signal.SIGTERM)
        _signal(targets, signal.SIGTERM)
        alive = _wait_gone(targets, child, time.monotonic() + grace)
        for _ in range(KILL_ROUNDS):
            self._kill_cgroup()
            if child is not None:
                child.send_signal(signal.SIGKILL)
            _signal(alive, signal.SIGKILL)
            _wait_gone(alive, child, time.monotonic() + 1.0)
            alive = self.processes(include_agent and self.child is None)  # and any forked meanwhile
            if not alive:
                break
        if child is not None:
            child.wait()
        return True

    def _kill_cgroup(self) -> None:
        if self.cgroup is None:
            return
        try:
            with open(os.path.join(self.cgroup, "cgroup.kill"), "w", encoding="ascii") as stream:
                stream.write("1")
        except OSError:
            pass  # an older kernel: its members are killed one by one

    def remove_cgroup(self) -> None:
        """Remove the attempt's cgroup once its last process is gone (the kernel says so a moment later)."""
        if self.cgroup is None:
            return
        deadline = time.monotonic() + 2.0
        while True:
            try:
                os.rmdir(self.cgroup)
                return
            except FileNotFoundError:
                return
            except OSError:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.02)


def read_pids(path: str) -> list[int]:
    """The pids a file of the kernel's lists (a cgroup's members, a process's children); none if it
    cannot be read. Through a bare descriptor: read for every agent, where a file object costs three
    more system calls."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return []
    try:
        data = b""
        while chunk := os.read(fd, 65536):
            data += chunk
        return [int(word) for word in data.split()]
    except (OSError, ValueError):
        return []
    finally:
        os.close(fd)


def _is_our_cgroup(path: str) -> bool:
    parent = cgroup_parent()
    return (
        parent is not None
        and os.path.dirname(os.path.normpath(path)) == parent
        and os.path.basename(path).startswith(CGROUP_PREFIX)
    )


def _signal(processes, signum: int) -> None:
    for process in processes:
        try:
            process.send_signal(signum)  # psutil checks the pid is still that process
        except psutil.Error:
            pass


def _wait_gone(processes, child, deadline: float) -> list[psutil.Process]:
    """Wait until each is gone (a zombie is gone: not every init reaps); return those left."""
    while True:
        alive = [process for process in processes if is_alive(process)]
        child_running = child is not None and child.poll() is None
        if (not alive and not child_running) or time.monotonic() >= deadline:
            return alive
        time.sleep(0.02)


def stop_leftovers(running_record: dict) -> bool:
    """For recovery: stop whatever a killed run's attempt left running, as its running.json
    (the record of `AttemptProcesses.record()`) describes it, its cgroup's leavers too. True if
    anything was stopped."""
    attempt = AttemptProcesses.from_record(running_record)
    if attempt is None:
        return False
    stopped = attempt.stop(grace=GRACE_SECONDS, include_agent=is_same_process(attempt.pid, attempt.create_time))
    attempt.remove_cgroup()
    # Without a cgroup, `stop` has looked for its marker already.
    left_the_cgroup = attempt.cgroup is not None and stop_marked({attempt.attempt_id} - {""})
    return left_the_cgroup or stopped


def stop_marked(attempt_ids: set[str], grace: float = GRACE_SECONDS) -> bool:
    """Stop every process that carries the marker of one of ATTEMPT_IDS, wherever it is: what
    left its attempt's cgroup (a process may move itself into a cgroup of its user's above
    it, and one started in the moment before its agent joined was never in it). One walk of
    /proc for them all: as a run ends, for all its attempts; in recovery, for each killed
    attempt that had a cgroup. True if anything was stopped."""
    if not attempt_ids:
        return False
    found = []
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        try:
            if process.environ().get(ATTEMPT_VARIABLE) in attempt_ids:
                found.append(process)
        except psutil.Error:
            continue  # gone, or another user's
    if not found:
        return False
    _signal(found, signal.SIGTERM)
    alive = _wait_gone(found, None, time.monotonic() + grace)
    _signal(alive, signal.SIGKILL)
    _wait_gone(alive, None, time.monotonic() + 1.0)
    return True
