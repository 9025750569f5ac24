"""The run's watchdog: a small process that kills each running agent if its runner dies,
writes down how each agent the runner could no longer record ended, and removes each
finished attempt's cgroup, so that none of this costs the runner anything per item.

An agent must not outlive a runner killed with SIGKILL (it would go on working, and
paying, for a run that is gone). The parent-death signal would do it, but it can only
be set in the child between fork and exec, and a `preexec_fn` makes Python fork the
whole runner (several milliseconds at 100 MB) where it could vfork. So one watchdog per
run holds the read end of a pipe that the runner never writes to; the kernel closes it
when the runner dies, however it dies, which wakes the watchdog at once, and then it
sends SIGKILL to every agent the runner told it of and did not see end: through the
agent's pidfd once it is known, else by its attempt's marker in the environment (the
runner tells it of an attempt before it starts its agent, so none is missed). Then to
everything those agents started (a subagent of theirs would go on paying too): all that
is in their cgroups, and every process that carries one of their markers (one walk of
/proc). What escaped both (out of its cgroup and its marker dropped), or outlived a
watchdog killed with its runner, the next run stops (see recovery). And it removes each
ended attempt's cgroup, which the kernel frees a moment after its last process exits.

An agent that ends just as its runner is killed (in the moment between its exit and the
runner's record of it) would have succeeded where no record says so, and be paid for
again. So the runner hands the watchdog each agent's pidfd as it starts it: with it the
kernel keeps the agent's exit status for the watchdog (in the zombie, or, once reaped, in
the pidfd itself: Linux 6.15), whoever reaps it. Once the runner is gone, the watchdog
writes the status of each agent that ended by itself (not by its SIGKILL) to the file the
runner named for it (`exit.json` in the item's state folder), which recovery reads; then
it takes the name WRITTEN (its `comm`), which the next run's recovery waits for.

Run as `python -S watchdog.py FD RUNNER`, FD that pipe's read end, RUNNER the runner's
pid (by which recovery finds it); it imports nothing of the
package. On its standard input, a socket of packets, it reads: `start ID [EXIT_FILE]`,
`pid ID PID` (with the agent's pidfd), `cgroup ID CGROUP` (the one it joined), `end ID
[CGROUP]`; and, if it replaces another, `replaces` (with that one's pidfd: see below) then
`replaced` once that one is gone; every GATHER seconds, not as each comes (three an item,
each a wake-up that competes with the runner for the machine), and all that is left once
the runner is gone.

A replacement is told all of that before it starts (watchdog_channel), and the one it
replaces is killed only then: a runner killed in between leaves two. So this one, not
told `replaced`, first kills that one (stopped by an agent, it might stay so; running,
it may be killing agents too) and waits for its end, and only then kills its agents;
and it writes down no agent's SIGKILL as its own end (the other one's would look so).
That one, dead before any agent is killed here, took none of these kills for an end.

It may touch: signals to the agents it was told of, to all in their cgroups and all that
carries their markers, and to the watchdog it replaces; their exit files, and the cgroups
it was told to remove.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import socket
import sys
import time

MARKER = "BATCH_ATTEMPT_ID"  # attempt_processes.ATTEMPT_VARIABLE
CGROUP_WAIT = 2.0  # seconds a cgroup may take to be freed once its last process has exited
GATHER = 0.05  # seconds between two readings of what the runner said
EXIT_WAIT = 5.0  # seconds agents may take to end once killed, for their exit status to be read
# ioctl PIDFD_GET_INFO (_IOWR(0xFF, 11, struct pidfd_info) of the struct's first 64 bytes),
# asking for PIDFD_INFO_EXIT: a reaped process's wait status, at byte 60 (Linux 6.15).
PIDFD_GET_INFO = (3 << 30) | (64 << 16) | (0xFF << 8) | 11
PIDFD_INFO_EXIT = 1 << 3
EXIT_CODE_AT = 60
EXIT_CODE_FIELD = 49  # of /proc/PID/stat after the command's ")": a zombie's wait status
WRITTEN = "exits-written"  # its name once the exits are written down (watchdog_channel.exits_written)


class Attempt:
    """What the runner said of one attempt."""

    __slots__ = ("exit_file", "pid", "started", "pidfd", "cgroup")

    def __init__(self, exit_file: str | None) -> None:
        self.exit_file = exit_file
        self.pid: int | None = None
        self.started: str | None = None
        self.pidfd: int | None = None
        self.cgroup: str | None = None


def start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stream:
            return stream.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


def marked(*attempt_ids: str) -> list[int]:
    """Every process whose environment carries one of the attempts' markers."""
    needles = {f"{MARKER}={attempt_id}".encode() for attempt_id in attempt_ids}
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/environ", "rb") as stream:
                    if not needles.isdisjoint(stream.read().split(b"\0")):
                        found.append(int(name))
            except OSError:
                continue
    return found


def kill_the_rest(running: dict[str, "Attempt"]) -> None:
    """SIGKILL to all the agents started: what is in their cgroups, then what carries their markers."""
    for attempt in running.values():
        if attempt.cgroup is None:
            continue
        try:
            with open(os.path.join(attempt.cgroup, "cgroup.kill"), "w", encoding="ascii") as stream:
                stream.write("1")
        except OSError:  # before Linux 5.14 (or the cgroup is gone): its processes one by one
            try:
                with open(os.path.join(attempt.cgroup, "cgroup.procs"), "rb") as stream:
                    pids = [int(line) for line in stream.read().split()]
            except (OSError, ValueError):
                pids = []
            _signal_all(pids)
    if running:
        _signal_all(marked(*running))


def _signal_all(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


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
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # with SIGCONT, as the runner dies: see watchdog_channel
    death = int(sys.argv[1])
    channel = socket.socket(fileno=0)
    channel.setblocking(False)
    running: dict[str, Attempt] = {}
    cgroups: dict[str, float] = {}  # to remove → until when to keep trying
    replaced: list[int] = []  # the pidfd of the watchdog this one replaces, until the runner says it is gone
    while True:
        gone = bool(select.select([death], [], [], GATHER)[0])
        _hear(channel, running, cgroups, replaced)
        if gone:
            break
        if cgroups:
            cgroups = {folder: until for folder, until in cgroups.items() if remove(folder, until)}
    # The runner is gone (its end of the pipe closed): its agents go with it, and how those
    # that ended by themselves ended is written down, for no runner is left to. A watchdog the
    # runner died replacing with this one ends first (see the module's docstring).
    for pidfd in replaced:
        _end(pidfd)
    by_itself = {attempt_id: _kill(attempt_id, attempt) for attempt_id, attempt in running.items()}
    kill_the_rest(running)
    deadline = time.monotonic() + EXIT_WAIT
    for attempt_id, attempt in running.items():
        if attempt.pidfd is not None and attempt.exit_file:
            status = exit_status(attempt.pidfd, attempt.pid, deadline)
            if status is not None and (status != -signal.SIGKILL or by_itself[attempt_id] and not replaced):
                _write_exit(attempt.exit_file, attempt_id, status)
    try:
        with open("/proc/self/comm", "w", encoding="ascii") as stream:
            stream.write(WRITTEN)
    except OSError:
        pass  # then recovery waits for it to end
    deadline = time.monotonic() + CGROUP_WAIT
    while cgroups := {folder: until for folder, until in cgroups.items() if remove(folder, max(until, deadline))}:
        time.sleep(0.05)


def _end(pidfd: int) -> None:
    """SIGKILL to the watchdog this one replaces, and wait for its end."""
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except OSError:
        return  # gone already
    select.select([pidfd], [], [], EXIT_WAIT)


def _kill(attempt_id: str, attempt: Attempt) -> bool:
    """SIGKILL to the attempt's agent; True if it had already ended by itself."""
    if attempt.pidfd is not None:
        ended = bool(select.select([attempt.pidfd], [], [], 0)[0])
        try:
            signal.pidfd_send_signal(attempt.pidfd, signal.SIGKILL)
        except OSError:
            pass
        return ended
    known = attempt.pid is not None and start_time(attempt.pid) == attempt.started
    _signal_all([attempt.pid] if known else marked(attempt_id))
    return False


def exit_status(pidfd: int, pid: int, deadline: float) -> int | None:
    """How the process ended (as Popen.returncode says it), once it has; None if it is still
    running at the deadline, or if it was reaped before that could be read (before Linux 6.15)."""
    if not select.select([pidfd], [], [], max(0.0, deadline - time.monotonic()))[0]:
        return None
    for _ in range(2):
        status = _reaped_status(pidfd)
        if status is None:
            status = _zombie_status(pid)
            try:
                signal.pidfd_send_signal(pidfd, 0)  # fails once it is reaped: then its pid may be another's
            except OSError:
                continue  # reaped meanwhile: the pidfd has it now, where the kernel keeps it
        return None if status is None else os.waitstatus_to_exitcode(status)
    return None


def _reaped_status(pidfd: int) -> int | None:
    info = bytearray(PIDFD_INFO_EXIT.to_bytes(8, sys.byteorder) + bytes(56))
    try:
        fcntl.ioctl(pidfd, PIDFD_GET_INFO, info)
    except OSError:  # before Linux 6.13, no such call
        return None
    if not int.from_bytes(info[:8], sys.byteorder) & PIDFD_INFO_EXIT:
        return None  # not reaped yet, or before Linux 6.15
    return int.from_bytes(info[EXIT_CODE_AT : EXIT_CODE_AT + 4], sys.byteorder, signed=True)


def _zombie_status(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stream:
            fields = stream.read().rsplit(b")", 1)[1].split()
        return int(fields[EXIT_CODE_FIELD]) if fields[0] == b"Z" else None
    except (OSError, IndexError, ValueError):
        return None


def _write_exit(path: str, attempt_id: str, status: int) -> None:
    """The exit file, whole or not at all; never through a link planted in the state folder."""
    folder, name = os.path.split(path)
    temporary = os.path.join(folder, f".{name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, json.dumps({"attempt_id": attempt_id, "status": status}).encode() + b"\n")
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except OSError:
        pass


def _hear(channel: socket.socket, running: dict[str, Attempt], cgroups: dict[str, float],
          replaced: list[int]) -> None:
    """All the runner said since the last time: one packet a message."""
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(channel, 65536, 1)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        if not data and not fds:
            return  # the runner's end is closed
        pidfd = fds[0] if fds else None
        if not _heard(data, pidfd, running, cgroups, replaced) and pidfd is not None:
            os.close(pidfd)


def _heard(data: bytes, pidfd: int | None, running: dict[str, Attempt], cgroups: dict[str, float],
           replaced: list[int]) -> bool:
    """Note one message; True if it kept its pidfd."""
    words = data.decode("utf-8", "replace").split(" ", 2)  # a path may hold spaces
    if len(words) in (2, 3) and words[0] == "start":
        running[words[1]] = Attempt(words[2] if len(words) == 3 else None)
    elif len(words) == 3 and words[0] == "pid" and words[2].isdigit():
        attempt = running.setdefault(words[1], Attempt(None))
        attempt.pid = int(words[2])
        attempt.started = start_time(attempt.pid) if pidfd is None else None  # a pidfd is never another's
        if attempt.pidfd is not None:
            os.close(attempt.pidfd)
        attempt.pidfd = pidfd
        return True
    elif len(words) == 3 and words[0] == "cgroup":
        if (attempt := running.get(words[1])) is not None:
            attempt.cgroup = words[2]
    elif len(words) in (2, 3) and words[0] == "end":
        attempt = running.pop(words[1], None)
        if attempt is not None and attempt.pidfd is not None:
            os.close(attempt.pidfd)
        if len(words) == 3:
            cgroups[words[2]] = time.monotonic() + CGROUP_WAIT
    elif words == ["replaces"] and pidfd is not None:
        replaced.append(pidfd)
        return True
    elif words == ["replaced"]:
        while replaced:
            os.close(replaced.pop())
    return False


if __name__ == "__main__":
    main()
