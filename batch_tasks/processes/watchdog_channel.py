"""The runner's end of the run's watchdog (watchdog.py): it starts it, tells it of each
attempt and hands it each agent's pidfd, and replaces it when it is gone or stopped;
and, for the next run's recovery, waits until a dead runner's watchdogs have written down
how its agents ended. It may touch: the watchdog process it started.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from functools import lru_cache
from pathlib import Path

WATCHDOG = Path(__file__).with_name("watchdog.py")
LOOK_EVERY = 0.5  # seconds between two looks at whether the watchdog is still there, and not stopped
WRITTEN = b"exits-written\n"  # watchdog.WRITTEN: a watchdog's name once it has written the exits down
WRITTEN_WAIT = 10.0  # seconds, at most, to wait for that: its agents are given 5 s to end once killed


class WatchdogChannel:
    """The runner's end of watchdog.py: started with the first agent, told of each attempt
    and given its agent's pidfd; if it is gone (an agent may kill it), another is started and
    told of the agents running. The runner never waits for it: what it is told goes into a
    socket that is never written to when full, and a watchdog that does not read it (stopped:
    an agent may send it SIGSTOP) is replaced as a gone one is, when it is full or at the next look."""

    def __init__(self) -> None:
        self._child: subprocess.Popen | None = None
        self._channel: socket.socket | None = None
        self._alive: int | None = None  # the end of its pipe that closes only when this process dies
        self._told: dict[str, list] = {}  # attempt → [its exit file, its agent's pid, pidfd and cgroup], for a replacement
        self._lock = threading.Lock()
        self._looked = 0.0

    def started(self, attempt_id: str, exit_file: str | None) -> None:
        """Before its agent starts: where to write how it ended, if the runner cannot."""
        with self._lock:
            self._told[attempt_id] = [exit_file, None, None, None]
            self._tell(("start", attempt_id, *([exit_file] if exit_file else [])))

    def agent(self, attempt_id: str, pid: int, pidfd: int | None) -> None:
        """Its agent, just started: the pidfd stays open until `ended` is told."""
        with self._lock:
            self._told[attempt_id][1:3] = [pid, pidfd]
            self._tell(("pid", attempt_id, str(pid)), pidfd)

    def cgroup(self, attempt_id: str, cgroup: str) -> None:
        """The cgroup its agent joined: all in it dies with the runner."""
        with self._lock:
            self._told[attempt_id][3] = cgroup
            self._tell(("cgroup", attempt_id, cgroup))

    def ended(self, attempt_id: str, cgroup: str | None) -> None:
        with self._lock:
            self._told.pop(attempt_id, None)
            self._tell(("end", attempt_id, *([cgroup] if cgroup else [])))

    def _tell(self, words, pidfd: int | None = None) -> None:
        if self._child is None:
            self._start()
        if not self._send(words, pidfd):
            self._replace()
            self._send(words, pidfd)

    def look(self) -> None:
        """Replace it if it is gone or stopped: between two messages, only this notices."""
        now = time.monotonic()
        if now - self._looked < LOOK_EVERY:
            return
        self._looked = now
        with self._lock:
            if self._child is not None and (self._child.poll() is not None or _stopped(self._child.pid)):
                self._replace()

    def _start(self) -> None:
        gone, self._alive = os.pipe()
        self._channel, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # Its output nowhere: a caller reading the runner's to its end does not wait for it.
        self._child = subprocess.Popen([sys.executable, "-S", str(WATCHDOG), str(gone), str(os.getpid())], stdin=theirs,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       start_new_session=True, pass_fds=(gone,))
        os.close(gone)
        theirs.close()
        self._channel.setblocking(False)

    def _replace(self) -> None:
        self._child.kill()  # if it is only stuck, or stopped (SIGKILL ends a stopped process too)
        self._child.wait()
        self._channel.close()
        os.close(self._alive)
        self._start()
        for attempt_id, (exit_file, pid, pidfd, cgroup) in self._told.items():
            self._send(("start", attempt_id, *([exit_file] if exit_file else [])))
            if pid is not None:
                self._send(("pid", attempt_id, str(pid)), pidfd)
            if cgroup is not None:
                self._send(("cgroup", attempt_id, cgroup))

    def _send(self, words, pidfd: int | None = None) -> bool:
        """False if it is gone or does not read what it is told (its socket is full)."""
        try:
            socket.send_fds(self._channel, [" ".join(words).encode()], [pidfd] if pidfd is not None else [])
            return True
        except OSError:  # BlockingIOError among them
            return False


def _stopped(pid: int) -> bool:
    """True if the process is stopped (SIGSTOP, SIGTSTP, or held by a debugger)."""
    try:
        with open(f"/proc/{pid}/stat", "rb", buffering=0) as stream:
            return stream.read().rsplit(b")", 1)[1].split()[0] in (b"T", b"t")
    except (OSError, IndexError):
        return False


@lru_cache(maxsize=None)
def exits_written(runner_pid: int) -> None:
    """Return once every watchdog of that (dead) runner has written down how its agents ended,
    or is gone: a moment after the runner's death, a few seconds at most. Once per runner."""
    deadline = time.monotonic() + WRITTEN_WAIT
    while _writing(runner_pid) and time.monotonic() < deadline:
        time.sleep(0.02)


def _writing(runner_pid: int) -> bool:
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as stream:
                    argv = stream.read().split(b"\0")
                if len(argv) > 4 and argv[2].endswith(b"watchdog.py") and argv[4] == str(runner_pid).encode():
                    with open(f"/proc/{name}/comm", "rb") as stream:
                        if stream.read() != WRITTEN:
                            return True
            except OSError:
                continue
    return False
