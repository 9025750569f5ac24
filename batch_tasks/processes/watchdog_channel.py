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
# Out of the terminal's signals, in a process group of its own, but in the runner's session: one
# whose only tie to the session is the runner is orphaned as the runner dies, and if it is
# stopped then (an agent sent it SIGSTOP, and killed the runner before the next look), the
# kernel sends it SIGHUP, which it ignores, and SIGCONT. Python 3.10 cannot do this without
# forking the whole runner: there it has a session of its own, and such a one stays stopped.
OWN_GROUP = {"process_group": 0} if sys.version_info >= (3, 11) else {"start_new_session": True}


class WatchdogChannel:
    """The runner's end of watchdog.py: started with the first agent, told of each attempt
    and given its agent's pidfd; if it is gone (an agent may kill it), another is started,
    told before it starts of the agents running and the cgroups still to remove (see _replace).
    The runner never waits for it: what it is told goes into a socket that is never written to
    when full, and a watchdog that does not read it (stopped: an agent may send it SIGSTOP) is
    replaced as a gone one is, when it is full or at the next look."""

    def __init__(self) -> None:
        self._child: subprocess.Popen | None = None
        self._channel: socket.socket | None = None
        self._alive: int | None = None  # the end of its pipe that closes only when this process dies
        self._told: dict[str, list] = {}  # attempt → [its exit file, its agent's pid, pidfd and cgroup], for a replacement
        self._removing: dict[str, str] = {}  # attempt → its cgroup, told to be removed, while it stands
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
            if cgroup:
                self._removing[attempt_id] = cgroup
            self._tell(("end", attempt_id, *([cgroup] if cgroup else [])))

    def _tell(self, words, pidfd: int | None = None) -> None:
        # What it says is noted first (in _told, _removing): a replacement is told it, sent or not.
        if self._child is None or not _send(self._channel, words, pidfd):
            self._replace()

    def look(self) -> None:
        """Replace it if it is gone or stopped: between two messages, only this notices."""
        now = time.monotonic()
        if now - self._looked < LOOK_EVERY:
            return
        self._looked = now
        with self._lock:
            self._removing = {attempt_id: cgroup for attempt_id, cgroup in self._removing.items()
                              if os.path.isdir(cgroup)}
            if self._child is not None and (self._child.poll() is not None or _stopped(self._child.pid)):
                self._replace()

    def _replace(self) -> None:
        """Start a watchdog, told before it runs of every agent running and every cgroup still to
        remove: what is sent into its socket waits there for it, and it reads all of it before it
        acts on the runner's death. So a runner killed at any moment of this leaves one that knows.

        The new one starts before the old one is killed: the other way, a runner killed between
        the two would leave no watchdog at all (as it would if the old one were stopped first: a
        stopped process does nothing). Meanwhile there are two, and if the runner dies
        then, the new one kills the old one it is handed (stopped by an agent, it would stay
        stopped for ever) and does not take a SIGKILL for an agent's own end (it may be the
        old one's, if that one was alive and acting too; see watchdog.py)."""
        old = self._child
        # Popen.poll has not reaped it, so its pid is still its own: a pidfd opened now is of it.
        predecessor = _pidfd(old.pid) if old is not None and old.poll() is None else None
        told = [(("replaces",), predecessor)] if predecessor is not None else []
        gone, alive = os.pipe()
        channel, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        channel.setblocking(False)
        # Room for a large run's agents, told at once: as much as the system lets (twice
        # net.core.wmem_max; at its usual 208 KiB, 555 messages: some 270 agents running).
        channel.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 30)
        rest = [(words, pidfd) for words, pidfd in told + self._briefing() if not _send(channel, words, pidfd)]
        try:
            # Its output nowhere: a caller reading the runner's to its end does not wait for it.
            child = subprocess.Popen([sys.executable, "-S", str(WATCHDOG), str(gone), str(os.getpid())],
                                     stdin=theirs, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     pass_fds=(gone,), **OWN_GROUP)
        except BaseException:
            channel.close()
            os.close(alive)
            if predecessor is not None:
                os.close(predecessor)
            raise
        finally:
            os.close(gone)
            theirs.close()
        if old is not None:
            old.kill()  # if it is only stuck, or stopped (SIGKILL ends a stopped process too)
            old.wait()
            self._channel.close()
            os.close(self._alive)
            if predecessor is not None:
                rest.append((("replaced",), None))  # gone: a SIGKILL status is again an agent's own
        self._child, self._channel, self._alive = child, channel, alive
        # What its socket did not hold (more agents than that), as it reads it: only there is a
        # moment left where a runner killed leaves agents it did not tell (to the next run's recovery).
        channel.settimeout(WRITTEN_WAIT)
        for words, pidfd in rest:
            if not _send(channel, words, pidfd):
                break
        channel.setblocking(False)
        if predecessor is not None:
            os.close(predecessor)  # its socket holds it now

    def _briefing(self) -> list[tuple[tuple[str, ...], int | None]]:
        """All a new watchdog must know: the attempts running, their agents, the cgroups to remove."""
        told = []
        for attempt_id, (exit_file, pid, pidfd, cgroup) in self._told.items():
            told.append((("start", attempt_id, *([exit_file] if exit_file else [])), None))
            if pid is not None:
                told.append((("pid", attempt_id, str(pid)), pidfd))
            if cgroup is not None:
                told.append((("cgroup", attempt_id, cgroup), None))
        return told + [(("end", attempt_id, cgroup), None) for attempt_id, cgroup in self._removing.items()]


def _send(channel: socket.socket, words, pidfd: int | None = None) -> bool:
    """False if it is gone or does not read what it is told (its socket is full)."""
    try:
        socket.send_fds(channel, [" ".join(words).encode()], [pidfd] if pidfd is not None else [])
        return True
    except OSError:  # BlockingIOError among them
        return False


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except OSError:  # before Linux 5.3
        return None


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
