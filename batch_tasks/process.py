"""Process control: start an agent without a shell, stream its output, stop its whole tree.

Each agent runs in its own session (its own process group), so a Ctrl-C at the
terminal reaches the runner only, and the runner decides how agents stop: every
process of the tree gets SIGTERM, then SIGKILL after a grace period.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

import psutil

GRACE_SECONDS = 3.0

# Set once the run is being stopped: no new agent starts after it.
stopping = threading.Event()
_running: dict[int, subprocess.Popen] = {}
_running_lock = threading.Lock()


class StoppedError(Exception):
    """The run is stopping; the agent was not started."""


def run(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    stdin: bytes,
    log,
    on_line: Callable[[str], None],
    on_start: Callable[[psutil.Process], None] = lambda process: None,
) -> int:
    """Run one agent to its end; return its exit status (negative: the signal that ended it).

    Every line it prints (stdout and stderr, in order) goes to `log` as it
    arrives, then to `on_line`. Raises OSError when the program cannot start.
    """
    with _running_lock:
        if stopping.is_set():
            raise StoppedError()
        child = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _running[child.pid] = child
    try:
        on_start(psutil.Process(child.pid))
        threading.Thread(target=_feed, args=(child.stdin, stdin), daemon=True).start()
        _pump(child, log, on_line)
        return child.wait()
    finally:
        with _running_lock:
            _running.pop(child.pid, None)
        if child.poll() is None:  # we are leaving early: leave nothing behind
            stop_tree(child.pid, child)


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


def _pump(child: subprocess.Popen, log, on_line: Callable[[str], None]) -> None:
    """Copy output until the pipe closes, or until the agent has exited and gone quiet:
    a process it left behind may hold the pipe open forever, and is stopped with its group."""
    with selectors.DefaultSelector() as selector:
        selector.register(child.stdout, selectors.EVENT_READ)
        pending = b""
        while True:
            if not selector.select(timeout=0.5):
                if child.poll() is not None:
                    stop_tree(child.pid, child)
                    if not selector.select(timeout=0.5):
                        break
                continue
            chunk = os.read(child.stdout.fileno(), 65536)
            if not chunk:
                break
            log.write(chunk)
            log.flush()
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                on_line(line.decode("utf-8", "replace").rstrip("\r"))
        if pending:
            on_line(pending.decode("utf-8", "replace").rstrip("\r"))


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


def stop_all(grace: float = GRACE_SECONDS) -> None:
    """Stop every running agent (and keep new ones from starting); returns when all are gone."""
    stopping.set()
    with _running_lock:
        children = list(_running.values())
    threads = [threading.Thread(target=stop_tree, args=(c.pid, c, grace)) for c in children]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def running_count() -> int:
    with _running_lock:
        return len(_running)


def is_same_process(pid: int, create_time: float) -> bool:
    """True if `pid` is still the process that was started at `create_time` (pids get reused)."""
    try:
        return abs(psutil.Process(pid).create_time() - create_time) < 0.01 and _alive(pid)
    except psutil.Error:
        return False
