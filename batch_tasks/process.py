"""Process control: start an agent without a shell, stream its output, stop its whole tree.

Each agent runs in its own session (its own process group), so a Ctrl-C at the
terminal reaches the runner only, and the runner decides how agents stop: every
process of the tree gets SIGTERM, then SIGKILL after a grace period. An agent
also dies with its runner (Linux's parent-death signal, set by util-linux's
setpriv): a runner killed with -9 leaves no agent working on, unrecorded, so no
paid work is lost and done again. What such an agent started itself stays in
its process group, which the next run stops (see recovery).
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import psutil

SETPRIV = shutil.which("setpriv")
GRACE_SECONDS = 3.0  # between SIGTERM and SIGKILL
RESULT_GRACE = 5.0  # for an agent to exit by itself after its final result

class StoppedError(Exception):
    """The run is stopping; the agent was not started."""


@dataclass
class Exit:
    status: int  # negative: the signal that ended it
    stopped_for: str | None = None  # why we stopped it, if we did


class Supervisor:
    """The agents of one run: starts them, and stops them all when the run stops.
    Created per run and passed down, so that a second run in one process starts clean."""

    def __init__(self):
        self.stopping = threading.Event()  # set once the run is being stopped: no new agent starts
        self._running: dict[int, subprocess.Popen] = {}
        self._lock = threading.Lock()

    def run(self, argv: Sequence[str], **options) -> "Exit":
        return run(argv, supervisor=self, **options)

    def stop_all(self, grace: float = GRACE_SECONDS) -> None:
        """Stop every running agent (and keep new ones from starting); returns when all are gone."""
        self.stopping.set()
        with self._lock:
            children = list(self._running.values())
        threads = [threading.Thread(target=stop_tree, args=(c.pid, c, grace)) for c in children]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def run(
    argv: Sequence[str],
    *,
    supervisor: Supervisor,
    cwd: Path,
    env: Mapping[str, str],
    stdin: bytes,
    log,
    on_line: Callable[[str], None],
    on_start: Callable[[psutil.Process], None] = lambda process: None,
    timeout: float | None = None,
    idle_timeout: float | None = None,
    finished: Callable[[], bool] = lambda: False,
    redact: Callable[[bytes], bytes] = lambda data: data,
) -> Exit:
    """Run one agent to its end, or stop it: after `timeout` in all, after `idle_timeout`
    without output, or RESULT_GRACE after `finished()` (its final result) if it lingers.

    Every line it prints (stdout and stderr, in order, `redact`ed) goes to `log` as it
    arrives, then to `on_line`. Raises OSError when the program cannot start.
    """
    program = shutil.which(argv[0], path=env.get("PATH")) if "/" not in argv[0] else str(Path(cwd, argv[0]))
    if program is None or not os.access(program, os.X_OK):
        raise FileNotFoundError(2, "no such program", argv[0])
    command = [program, *argv[1:]]
    if SETPRIV:
        command = [SETPRIV, "--pdeathsig", "KILL", "--", *command]
    with supervisor._lock:
        if supervisor.stopping.is_set():
            raise StoppedError()
        child = subprocess.Popen(
            command,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        supervisor._running[child.pid] = child
    try:
        on_start(psutil.Process(child.pid))
        threading.Thread(target=_feed, args=(child.stdin, stdin), daemon=True).start()
        stopped_for = _pump(child, log, on_line, redact, Limits(timeout, idle_timeout, finished))
        return Exit(child.wait(), stopped_for)
    finally:
        with supervisor._lock:
            supervisor._running.pop(child.pid, None)
        if child.poll() is None:  # we are leaving early: leave nothing behind
            stop_tree(child.pid, child)


@dataclass
class Limits:
    timeout: float | None
    idle_timeout: float | None
    finished: Callable[[], bool]

    def exceeded(self, started: float, last_output: float, result_at: float | None) -> str | None:
        now = time.monotonic()
        if self.timeout is not None and now - started > self.timeout:
            return f"timed out after {self.timeout:g}s"
        if self.idle_timeout is not None and now - last_output > self.idle_timeout:
            return f"no output for {self.idle_timeout:g}s"
        if result_at is not None and now - result_at > RESULT_GRACE:
            return "still running after its final result"
        return None


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


def _pump(child: subprocess.Popen, log, on_line, redact, limits: Limits) -> str | None:
    """Copy output until the pipe closes; stop the agent when a limit is passed (and say
    which), or when it has exited and gone quiet: a process it left behind may hold
    the pipe open forever, and is stopped with its group."""
    started = last_output = time.monotonic()
    result_at = None
    with selectors.DefaultSelector() as selector:
        selector.register(child.stdout, selectors.EVENT_READ)
        pending = b""
        while True:
            if result_at is None and limits.finished():
                result_at = time.monotonic()
            reason = limits.exceeded(started, last_output, result_at)
            if reason is not None:
                stop_tree(child.pid, child)
                _drain(child.stdout, log, redact)
                return reason
            if not selector.select(timeout=0.25):
                if child.poll() is not None:
                    stop_tree(child.pid, child)
                    if not selector.select(timeout=0.5):
                        break
                continue
            chunk = os.read(child.stdout.fileno(), 65536)
            if not chunk:
                break
            last_output = time.monotonic()
            pending += chunk
            *lines, pending = pending.split(b"\n")
            # Whole lines are kept, so that no secret is split where it cannot be seen.
            lines = [redact(line) for line in lines]
            log.write(b"".join(line + b"\n" for line in lines))
            log.flush()
            for line in lines:
                on_line(line.decode("utf-8", "replace").rstrip("\r"))
        if pending:
            pending = redact(pending)
            log.write(pending)
            log.flush()
            on_line(pending.decode("utf-8", "replace").rstrip("\r"))
    return None


def _drain(pipe, log, redact) -> None:
    """Keep what a stopped agent had still written."""
    os.set_blocking(pipe.fileno(), False)
    try:
        while chunk := os.read(pipe.fileno(), 65536):
            log.write(redact(chunk))
    except (BlockingIOError, OSError):
        pass
    log.flush()


def stop_tree(pid: int, child: subprocess.Popen | None = None, grace: float = GRACE_SECONDS) -> None:
    """SIGTERM to the process, its group and every descendant; SIGKILL what is left after `grace`.

    `child` is our own Popen of `pid`, if it is our child: it is waited for
    through Popen, since reaping it elsewhere would lose its exit status.
    """
    try:
        root = psutil.Process(pid)
        descendants = root.children(recursive=True)
    except psutil.Error:
        descendants = []
    # A reaped child's pid may already belong to someone else: signal it only while it is ours.
    root_is_ours = child is None or child.returncode is None
    _signal_all(pid, descendants, signal.SIGTERM, root_is_ours)
    deadline = time.monotonic() + grace
    if child is not None:
        try:
            child.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    else:
        _wait_gone(pid, deadline)
    _, alive = psutil.wait_procs(descendants, timeout=max(0.0, deadline - time.monotonic()))
    # Whatever is left of the group, including what the exited agent left behind, ends now.
    _signal_all(pid, alive, signal.SIGKILL, root_is_ours and (child is None or child.poll() is None))
    if child is not None:
        child.wait()


def _signal_all(pid: int, processes, signum: int, include_root: bool) -> None:
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass
    for process in [pid] * include_root + [p.pid for p in processes]:
        try:
            os.kill(process, signum)
        except (ProcessLookupError, PermissionError):
            pass


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _wait_gone(pid: int, deadline: float) -> None:
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def stop_group_left_by(pid: int, create_time: float) -> bool:
    """Stop what remains of a dead run's agent: itself, or the processes of its group.
    Processes started before the agent are not its own, whatever their group."""
    members = []
    for candidate in psutil.process_iter(["pid", "create_time"]):
        try:
            if os.getpgid(candidate.pid) == pid and candidate.info["create_time"] >= create_time - 0.01:
                members.append(candidate)
        except (ProcessLookupError, psutil.Error):
            continue
    if not members:
        return False
    stop_tree(pid)
    return True


def is_same_process(pid: int, create_time: float) -> bool:
    """True if `pid` is still the process that was started at `create_time` (pids get reused)."""
    try:
        return abs(psutil.Process(pid).create_time() - create_time) < 0.01 and _alive(pid)
    except psutil.Error:
        return False
