"""The run's watchdog: a small process that kills each running agent if its runner dies, and
removes each finished attempt's cgroup, so that neither costs the runner anything per item.

An agent must not outlive a runner killed with SIGKILL (it would go on working, and
paying, for a run that is gone). The parent-death signal would do it, but it can only
be set in the child between fork and exec, and a `preexec_fn` makes Python fork the
whole runner (several milliseconds at 100 MB) where it could vfork. So one watchdog per
run holds the read end of a pipe that the runner never writes to; the kernel closes it
when the runner dies, however it dies, which wakes the watchdog at once, and then it
sends SIGKILL to every agent the runner told it of and did not see end: by pid once it
is known, else by its attempt's marker in the environment (the runner tells it of an
attempt before it starts its agent, so none is missed). As the parent-death signal did,
it kills the agent only: what the agent started is stopped by the next run (see
recovery). And it removes each ended attempt's cgroup, which the kernel frees a moment
after its last process exits.

Run as `python -S watchdog.py FD`, FD that pipe's read end; it imports nothing of the
package. On its standard input it reads lines: `start ID`, `pid ID PID`, `end ID
[CGROUP]`; every GATHER seconds, not as each comes (three an item, each a wake-up that
competes with the runner for the machine), and all that is left once the runner is
gone. It may touch: signals to the agents it was told of, and the cgroups it was told
to remove.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time

MARKER = "BATCH_ATTEMPT_ID"  # attempt_processes.ATTEMPT_VARIABLE
CGROUP_WAIT = 2.0  # seconds a cgroup may take to be freed once its last process has exited
GATHER = 0.05  # seconds between two readings of what the runner said


def start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stream:
            return stream.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


def marked(attempt_id: str) -> list[int]:
    """Every process whose environment carries the attempt's marker."""
    needle = f"{MARKER}={attempt_id}".encode()
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/environ", "rb") as stream:
                    if needle in stream.read().split(b"\0"):
                        found.append(int(name))
            except OSError:
                continue
    return found


def remove(folder: str, deadline: float) -> bool:
    """Remove the cgroup if it can be now; True if it is to be tried again (until the deadline)."""
    try:
        os.rmdir(folder)
    except FileNotFoundError:
        pass
    except OSError:
        return time.monotonic() < deadline
    return False


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the runner's to handle
    death = int(sys.argv[1])
    os.set_blocking(0, False)
    running: dict[str, tuple[int, str | None] | None] = {}  # attempt → (pid, its start) once known
    cgroups: dict[str, float] = {}  # to remove → until when to keep trying
    buffered = b""
    while True:
        gone = bool(select.select([death], [], [], GATHER)[0])
        while chunk := _available():
            *lines, buffered = (buffered + chunk).split(b"\n")
            for line in lines:
                _heard(line, running, cgroups)
        if gone:
            break
        if cgroups:
            cgroups = {folder: until for folder, until in cgroups.items() if remove(folder, until)}
    # The runner is gone (its end of the pipe closed): its agents go with it.
    for attempt_id, known in running.items():
        pids = [known[0]] if known is not None and start_time(known[0]) == known[1] else marked(attempt_id)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    deadline = time.monotonic() + CGROUP_WAIT
    while cgroups := {folder: until for folder, until in cgroups.items() if remove(folder, max(until, deadline))}:
        time.sleep(0.05)


def _available() -> bytes:
    try:
        return os.read(0, 65536)
    except BlockingIOError:
        return b""


def _heard(line: bytes, running: dict, cgroups: dict[str, float]) -> None:
    words = line.decode("utf-8", "replace").split(" ", 2)  # a cgroup's path may hold spaces
    if len(words) == 2 and words[0] == "start":
        running[words[1]] = None
    elif len(words) == 3 and words[0] == "pid" and words[2].isdigit():
        running[words[1]] = (int(words[2]), start_time(int(words[2])))
    elif len(words) in (2, 3) and words[0] == "end":
        running.pop(words[1], None)
        if len(words) == 3:
            cgroups[words[2]] = time.monotonic() + CGROUP_WAIT


if __name__ == "__main__":
    main()
