"""Process control: start an agent without a shell, watch it to its exit, stop all it started.

A `Supervisor` is made per run: it starts each attempt's agent, knows which run,
and stops them all when the run stops (`stop_all`); after that, none starts
(`stopping`). Nothing here is kept between runs.

Each agent runs in its own session, so a Ctrl-C at the terminal reaches the
runner only; in its own cgroup where the system allows, and with a marker in its
environment (see attempt_processes), so that everything it starts is found. It
dies with its runner: the parent-death signal (SIGKILL) is set in the child
between fork and exec (prctl through ctypes, in `preexec_fn`). That function
only makes system calls: it takes no lock another thread may hold, so it is
safe in a runner with threads; posix_spawn has no way to set the signal, and a
helper program (setpriv) would cost an exec per attempt and be one more
dependency. What the agent started itself the next run stops (see recovery).

The agent's own exit decides: it is reported (`on_exit`) the moment it happens,
even while a helper it started still holds its output open; then its helpers
are stopped. Timeouts watch the process, not its output, so they hold after it
closes stdout and stderr.
"""

from __future__ import annotations

import ctypes
import os
import selectors
import shutil
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import psutil

from .attempt_processes import ATTEMPT_VARIABLE, GRACE_SECONDS, AttemptProcesses, new_cgroup, remove_stale_cgroups
from .output_stream import OutputStream
from .redaction import Redactor

RESULT_GRACE = 5.0  # for an agent to exit by itself after its final result
START_ALLOWANCE = 30.0  # silence allowed before an agent's first output, on top of idle_timeout
AFTER_EXIT = 0.5  # how long the output of a finished attempt is read on, once its helpers are gone
PR_SET_PDEATHSIG = 1

_libc = ctypes.CDLL(None, use_errno=True)


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

    def exceeded(self, started: float, last_output: float | None, result_at: float | None) -> str | None:
        """Why the attempt must stop now, if it must. Before its first output an agent may be
        silent for idle_timeout plus START_ALLOWANCE: CLIs take a while to start."""
        now = time.monotonic()
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
    program = shutil.which(argv[0], path=env.get("PATH")) if "/" not in argv[0] else str(Path(cwd, argv[0]))
    if program is None or not os.access(program, os.X_OK):
        raise FileNotFoundError(2, "no such program", argv[0])
    return [program, *argv[1:]]


def _child_setup(runner_pid: int, cgroup_procs: bytes | None) -> Callable[[], None]:
    """What the child does between fork and exec: system calls only (see the docstring above)."""
    kill = ctypes.c_ulong(signal.SIGKILL)
    option, zero = ctypes.c_int(PR_SET_PDEATHSIG), ctypes.c_ulong(0)

    def setup() -> None:
        _libc.prctl(option, kill, zero, zero, zero)
        if os.getppid() != runner_pid:
            os._exit(128 + signal.SIGKILL)  # the runner died before the signal was set
        if cgroup_procs is not None:
            try:
                fd = os.open(cgroup_procs, os.O_WRONLY)
                try:
                    os.write(fd, b"0")
                finally:
                    os.close(fd)
            except OSError:
                pass  # then the marker and the session find its processes

    return setup


class Supervisor:
    """The agents of one run."""

    def __init__(self) -> None:
        remove_stale_cgroups()
        self.stopping = threading.Event()  # set once the run is being stopped
        self._running: dict[int, AttemptProcesses] = {}
        self._lock = threading.Lock()

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
    ) -> Exit:
        """Run one agent to its exit, or stop it: after `timeout` in all, after `idle_timeout`
        without output, or RESULT_GRACE after `finished()` (its final result) if it lingers.

        What it prints (stdout and stderr, in order, masked by `redact`) goes to `log` as it
        arrives, and line by line to `on_line`. `on_start` gets what identifies its processes
        (record it: a later run stops them with `stop_leftovers`), `on_exit` how it ended,
        the moment it exits. Raises OSError when the program cannot start.
        """
        command = _resolve(argv, cwd, env)
        attempt_id = uuid.uuid4().hex
        cgroup = new_cgroup(attempt_id)
        procs = os.fsencode(os.path.join(cgroup, "cgroup.procs")) if cgroup else None
        with self._lock:
            if self.stopping.is_set():
                _remove(cgroup, attempt_id)
                raise StoppedError()
            try:
                child = subprocess.Popen(
                    command,
                    cwd=cwd,
                    env={**env, ATTEMPT_VARIABLE: attempt_id},
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_child_setup(os.getpid(), procs),
                )
            except BaseException:
                _remove(cgroup, attempt_id)
                raise
            processes = AttemptProcesses(child.pid, psutil.Process(child.pid).create_time(), attempt_id, cgroup, child)
            self._running[child.pid] = processes
        try:
            on_start(processes)
            threading.Thread(target=_feed, args=(child.stdin, stdin), daemon=True).start()
            output = OutputStream(child.stdout.fileno(), log, on_line, redact or Redactor({}))
            return self._watch(child, processes, output, on_exit, Limits(timeout, idle_timeout, finished))
        finally:
            with self._lock:
                self._running.pop(child.pid, None)
            if child.poll() is None:  # we are leaving early: leave nothing behind
                processes.stop()
            processes.remove_cgroup()
            child.stdout.close()

    def _watch(self, child, processes: AttemptProcesses, output: OutputStream, on_exit, limits: Limits) -> Exit:
        started = time.monotonic()
        last_output = result_at = None
        stopped_for = None
        with selectors.DefaultSelector() as selector:
            selector.register(output.fd, selectors.EVENT_READ)
            exited = _exit_watch(child.pid)
            if exited is not None:
                selector.register(exited, selectors.EVENT_READ)
            try:
                while child.poll() is None:
                    if result_at is None and limits.finished():
                        result_at = time.monotonic()
                    stopped_for = limits.exceeded(started, last_output, result_at)
                    if stopped_for is not None:
                        processes.stop(include_agent=True)
                        child.wait()
                        break
                    for key, _ in selector.select(timeout=0.25):
                        if key.fd == output.fd:
                            if output.read_available():
                                last_output = time.monotonic()
                            if output.closed:  # it closed its output: watch the process alone
                                selector.unregister(output.fd)
            finally:
                if exited is not None:
                    os.close(exited)
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


def process_started() -> float:
    """When this process began (epoch seconds): what a run's summary counts its time from.
    From its start in clock ticks since boot (psutil's create_time adds the boot time in
    whole seconds, so it can be a second off)."""
    with open("/proc/self/stat", "rb") as stream:
        fields = stream.read().rsplit(b")", 1)[1].split()
    age = time.clock_gettime(time.CLOCK_BOOTTIME) - int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return time.time() - age


def _exit_watch(pid: int) -> int | None:
    """A file descriptor that becomes readable when `pid` exits (Linux 5.3), or None."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _read_until_closed(output: OutputStream, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    with selectors.DefaultSelector() as selector:
        selector.register(output.fd, selectors.EVENT_READ)
        while not output.closed and (left := deadline - time.monotonic()) > 0:
            if selector.select(timeout=left):
                output.read_available()


def _feed(pipe, data: bytes) -> None:
    """Write the prompt, then close stdin; an agent that exits without reading it is fine."""
    try:
        pipe.write(data)
    except (BrokenPipeError, OSError):
        pass
    finally:
        try:
            pipe.close()
        except OSError:
            pass


def _remove(cgroup: str | None, attempt_id: str) -> None:
    if cgroup is not None:
        AttemptProcesses(0, 0.0, attempt_id, cgroup).remove_cgroup()
