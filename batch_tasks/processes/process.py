"""Process control: start an agent without a shell, watch it to its exit, stop all it started.

A `Supervisor` is made per run: it starts each attempt's agent, knows which run,
and stops them all when the run stops (`stop_all`); after that, none starts
(`stopping`). Nothing here is kept between runs.

Each agent runs in its own session, so a Ctrl-C at the terminal reaches the
runner only; in its own cgroup where the system allows, and with a marker in its
environment (see attempt_processes), so that everything it starts is found. It
is started with nothing to run between fork and exec, so that Python can vfork
(a fork of a 100 MB runner costs milliseconds per item), and is moved into its
cgroup by the runner right after, with anything it started already (found from its
children; a process that it starts and that leaves it in the microseconds before
the move is outside the cgroup, as is one that moves itself out, and is found by its
marker as the run ends, or as the next run recovers, as everything is without cgroups). It dies with
its runner: the run's watchdog (watchdog.py) kills it, and what it started (by its cgroup and
its marker), when the runner is gone, however it went, writes down how it ended if it had ended by itself (it holds its
pidfd), and removes an attempt's cgroup once it is freed, so that no item waits
for that; in a run's Supervisor (`for_run`), a cgroup its attempt left empty (nothing it
started outlived its agent) is the next attempt's instead, and the run removes those it
still has as it closes (`close`).
What the agent started itself the next run stops (see recovery).

The agent's own exit decides: it is reported (`on_exit`) the moment it happens,
even while a helper it started still holds its output open; then its helpers
are stopped. Timeouts watch the process, not its output, so they hold after it
closes stdout and stderr.
"""

from __future__ import annotations

import math
import os
import select
import shutil
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import psutil

from ..redaction import Redactor
from ..state import item_log
from .attempt_processes import (ATTEMPT_VARIABLE, GRACE_SECONDS, AttemptProcesses, Cgroups, new_cgroup, read_pids,
                                remove_stale_cgroups, stop_marked)
from .output_stream import OutputStream
from .prompt_feed import feed
from .started import CLOCK_TICKS
from .watchdog_channel import WatchdogChannel

if TYPE_CHECKING:
    from .agent_sandbox import Sandbox

RESULT_GRACE = 5.0  # for an agent to exit by itself after its final result
START_ALLOWANCE = 30.0  # silence allowed before an agent's first output, on top of idle_timeout
AFTER_EXIT = 0.5  # how long the output of a finished attempt is read on, once its helpers are gone
WAIT_MS = 250  # between two looks at a running agent's limits
# Threads that may start an agent, or record a success, at once (see Supervisor.bookkeeping).
BOOKKEEPERS = 2


class StoppedError(Exception):
    """The run is stopping; the agent was not started."""


@dataclass
class Exit:
    status: int  # negative: the signal that ended it
    stopped_for: str | None = None  # why we stopped it, if we did
    helpers_stopped: bool = False  # it had left processes running, and they were stopped


@dataclass
class Limits:
    timeout: float | None
    idle_timeout: float | None
    finished: Callable[[], bool]

    def exceeded(self, started: float, last_output: float | None, result_at: float | None, now: float) -> str | None:
        """Why the attempt must stop at `now` (time.monotonic), if it must. Before its first output
        an agent may be silent for idle_timeout plus START_ALLOWANCE: CLIs take a while to start."""
        if self.timeout is not None and now - started > self.timeout:
            return f"timed out after {self.timeout:g}s"
        if self.idle_timeout is not None:
            if last_output is not None and now - last_output > self.idle_timeout:
                return f"no output for {self.idle_timeout:g}s"
            if last_output is None and now - started > self.idle_timeout + START_ALLOWANCE:
                return f"no output in its first {self.idle_timeout + START_ALLOWANCE:g}s"
        if result_at is not None and now - result_at > RESULT_GRACE:
            return "still running after its final result"
        return None


def _resolve(argv: Sequence[str], cwd: Path, env: Mapping[str, str]) -> list[str]:
    program = _on_path(argv[0], env.get("PATH")) if "/" not in argv[0] else str(Path(cwd, argv[0]))
    runnable = program is not None and os.access(program, os.X_OK)
    if not runnable and program is not None and "/" not in argv[0]:
        _on_path.cache_clear()  # gone from where it was: it may be elsewhere on PATH now
        program = _on_path(argv[0], env.get("PATH"))
        runnable = program is not None and os.access(program, os.X_OK)
    if not runnable:
        raise FileNotFoundError(2, "no such program", argv[0])
    return [program, *argv[1:]]


@lru_cache(maxsize=64)
def _on_path(name: str, path: str | None) -> str | None:
    """Where NAME is on PATH: looked for once (a stat per folder), and checked at every start."""
    return shutil.which(name, path=path)


def _join_cgroup(cgroup: str | None, pid: int) -> str | None:
    """Move the agent just started into its cgroup, with what it started already; None if it
    cannot be (then its processes are found by their marker and session)."""
    if cgroup is None:
        return None
    try:
        fd = os.open(os.path.join(cgroup, "cgroup.procs"), os.O_WRONLY)
    except OSError:
        _remove(cgroup, "")
        return None
    try:
        waiting = [pid]
        while waiting:
            member = waiting.pop()
            try:
                os.write(fd, str(member).encode())  # one process per write
            except ProcessLookupError:
                continue  # it has exited already
            waiting += read_pids(f"/proc/{member}/task/{member}/children")
    except OSError:
        _remove(cgroup, "")
        return None
    finally:
        os.close(fd)
    return cgroup


class Supervisor:
    """The agents of one run."""

    def __init__(self, reuse_cgroups: bool = False) -> None:
        self.stopping = threading.Event()  # set once the run is being stopped
        self._running: dict[int, AttemptProcesses] = {}
        self._started: set[str] = set()  # every attempt's marker, for what leaves its cgroup (see close)
        self._lock = threading.Lock()
        self._watchdog = WatchdogChannel()
        self._cgroups = Cgroups(reuse_cgroups)  # reused only by a run's, which closes them (see close)
        # An item's bookkeeping (starting its agent, recording its success: files, a program
        # start, an fsync, a hundred system calls) is done by a few threads at a time. Eight
        # at once queue for the interpreter lock at every call and spend more in handing it
        # on than in the calls: 1,000 `true` items at -n 8 took 4.4-4.7 s so, 3.5-3.9 s in
        # turns of one or two. No turn is held while waiting: for an agent, a check, another item.
        self.bookkeeping = threading.BoundedSemaphore(BOOKKEEPERS)
        self._boot_time = psutil.boot_time()

    @classmethod
    def for_run(cls) -> "Supervisor":
        """A run's: made as the run starts, after what runs killed before left is removed."""
        remove_stale_cgroups()
        return cls(reuse_cgroups=True)

    def close(self) -> None:
        """The run is over: what any of its attempts started and is still running outside their
        cgroups is stopped (found by its marker), and the cgroups they left empty are removed."""
        with self._lock:
            started = set(self._started)
        stop_marked(started)
        self._cgroups.close()

    def keep_watch(self) -> None:
        """Often: a watchdog killed or stopped between two agents' starts is replaced (see WatchdogChannel.look)."""
        self._watchdog.look()

    def _created(self, pid: int) -> float:
        """psutil's create_time of a child not yet reaped, from one read of its stat (psutil
        makes three, its boot time among them: that is read once per run here)."""
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)  # no file object: three calls, not seven
        try:
            ticks = int(os.read(fd, 4096).rsplit(b")", 1)[1].split()[19])
        finally:
            os.close(fd)
        return ticks / CLOCK_TICKS + self._boot_time

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        stdin: bytes,
        log,
        on_line: Callable[[str], None],
        on_start: Callable[[AttemptProcesses], None] = lambda processes: None,
        on_exit: Callable[[Exit], None] = lambda ended: None,
        timeout: float | None = None,
        idle_timeout: float | None = None,
        finished: Callable[[], bool] = lambda: False,
        redact: Redactor | None = None,
        exit_file: str | None = None,
        sandbox: Sandbox | None = None,
    ) -> Exit:
        """Run one agent to its exit, or stop it: after `timeout` in all, after `idle_timeout`
        without output, or RESULT_GRACE after `finished()` (its final result) if it lingers.

        What it prints (stdout and stderr, in order, masked by `redact`) goes to `log` as it
        arrives, and line by line to `on_line`. `on_start` gets what identifies its processes
        (record it: a later run stops them with `stop_leftovers`), `on_exit` how it ended,
        the moment it exits. Should this run die first, the watchdog writes how it ended to
        `exit_file` (see watchdog.py). In a `sandbox` (see agent_sandbox), what it was refused
        is noted in `log` after its exit. Raises OSError when the program cannot start.
        """
        if sandbox is not None:
            from .agent_sandbox import Refusals

            refused = Refusals()
            on_line = refused.listening(on_line)
        with _Turn(self.bookkeeping) as turn:
            ended = self._run(turn, argv, cwd, env, stdin, log, on_line, on_start, on_exit,
                              Limits(timeout, idle_timeout, finished), redact, exit_file, sandbox)
        if sandbox is not None and refused.lines:
            log.write(item_log.note_header("the sandbox refused: " + " | ".join(refused.lines)))
        return ended

    def _run(self, turn: "_Turn", argv, cwd, env, stdin, log, on_line, on_start, on_exit, limits, redact,
             exit_file, sandbox) -> Exit:
        command = _resolve(argv, cwd, env)
        if sandbox is not None:
            command = sandbox.argv(command, cwd)
        attempt_id = uuid.uuid4().hex
        with self._lock:
            self._started.add(attempt_id)
        cgroup = self._cgroups.take(attempt_id)
        if self.stopping.is_set():
            _remove(cgroup, attempt_id)
            raise StoppedError()
        self._watchdog.started(attempt_id, exit_file)  # before it starts: it is never missed
        try:
            # Not under the lock: starts from several threads at once do not wait for each other.
            child = subprocess.Popen(
                command,
                cwd=cwd,
                env={**env, ATTEMPT_VARIABLE: attempt_id},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                bufsize=0,  # its pipes are read and written by descriptor: no buffers, no terminal's test for them
            )
        except BaseException:
            self._watchdog.ended(attempt_id, None)
            _remove(cgroup, attempt_id)
            raise
        # Its pidfd, before anyone could reap it: through it the watchdog can learn how it ended.
        exited = _exit_watch(child.pid)
        self._watchdog.agent(attempt_id, child.pid, exited)
        joined = _join_cgroup(cgroup, child.pid)
        if joined is None and cgroup is not None:  # an empty one, removed meanwhile by another run as stale
            joined = _join_cgroup(new_cgroup(attempt_id), child.pid)
        cgroup = joined
        if cgroup is not None:
            self._watchdog.cgroup(attempt_id, cgroup)
        processes = AttemptProcesses(child.pid, self._created(child.pid), attempt_id, cgroup, child)
        ended: Exit | None = None
        with self._lock:
            self._running[child.pid] = processes
            stopped_meanwhile = self.stopping.is_set()
        try:
            on_start(processes)
            if stopped_meanwhile:
                # A stop_all that began while it started did not see it: it is stopped here as
                # stop_all would have, and its end told as any stopped agent's (a quick one may
                # have done its work and be told to stop only now: that work is not paid twice).
                processes.stop()
            feed(child.stdin, stdin)
            # Unless told otherwise, this process's own secrets: a setup or a check prints them too.
            output = OutputStream(child.stdout.fileno(), log, on_line, redact if redact is not None else Redactor(os.environ))
            turn.end()
            ended = self._watch(child, processes, output, on_exit, limits, exited)
            return ended
        finally:
            turn.end()  # stopping what it left may wait
            with self._lock:
                self._running.pop(child.pid, None)
            if child.poll() is None:  # we are leaving early: leave nothing behind
                processes.stop()
            # Its agent gone and nothing it started found in its cgroup, the cgroup is the next
            # attempt's; else the watchdog removes it, freed a moment after its last process.
            kept = cgroup is not None and ended is not None and not ended.helpers_stopped \
                and self._cgroups.give_back(cgroup)
            self._watchdog.ended(attempt_id, None if kept else cgroup)
            if exited is not None:
                os.close(exited)
            child.stdout.close()

    def _watch(self, child, processes: AttemptProcesses, output: OutputStream, on_exit, limits: Limits,
               exited: int | None) -> Exit:
        started = time.monotonic()
        last_output = result_at = None
        stopped_for = None
        # poll, not a selector: one system call a wait, where an epoll selector makes, fills and
        # closes its own descriptor around the one wait a quick agent needs.
        watch = select.poll()
        watch.register(output.fd, select.POLLIN)
        if exited is not None:
            watch.register(exited, select.POLLIN)
        while child.poll() is None:
            if result_at is None and limits.finished():
                result_at = time.monotonic()
            stopped_for = limits.exceeded(started, last_output, result_at, time.monotonic())
            if stopped_for is not None:
                processes.stop(include_agent=True)
                child.wait()
                break
            for fd, _ in watch.poll(WAIT_MS):
                if fd == output.fd:
                    if output.read_available():
                        last_output = time.monotonic()
                    if output.closed:  # it closed its output: watch the process alone
                        watch.unregister(output.fd)
        output.read_available(chunks=64)  # what it wrote before it exited is in the pipe
        ended = Exit(child.returncode, stopped_for)
        on_exit(ended)
        ended.helpers_stopped = processes.stop(include_agent=False)
        _read_until_closed(output, AFTER_EXIT)
        output.finish()
        return ended

    def stop_all(self, grace: float = GRACE_SECONDS) -> None:
        """Stop every running agent and all it started (and keep new ones from starting);
        returns when all are gone."""
        self.stopping.set()
        with self._lock:
            running = list(self._running.values())
        threads = [threading.Thread(target=processes.stop, args=(grace,)) for processes in running]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


class _Turn:
    """A turn at the bookkeeping, given back early by `end()` or when its block ends."""

    def __init__(self, turns: threading.BoundedSemaphore):
        self._turns, self._held = turns, False

    def __enter__(self) -> "_Turn":
        self._turns.acquire()
        self._held = True
        return self

    def end(self) -> None:
        if self._held:
            self._held = False
            self._turns.release()

    def __exit__(self, *exc) -> None:
        self.end()


def _exit_watch(pid: int) -> int | None:
    """A file descriptor that becomes readable when `pid` exits (Linux 5.3), or None."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _read_until_closed(output: OutputStream, seconds: float) -> None:
    if output.closed:  # as it is once the agent and its helpers are gone: no selector to make
        return
    deadline = time.monotonic() + seconds
    watch = select.poll()
    watch.register(output.fd, select.POLLIN)
    while not output.closed and (left := deadline - time.monotonic()) > 0:
        if watch.poll(math.ceil(left * 1000)):
            output.read_available()


def _remove(cgroup: str | None, attempt_id: str) -> None:
    if cgroup is not None:
        AttemptProcesses(0, 0.0, attempt_id, cgroup).remove_cgroup()
