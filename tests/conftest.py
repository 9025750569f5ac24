"""Helpers shared by the tests: a batch folder, and real `doit run-batch` processes in it."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

SCRIPTED_AGENT = Path(__file__).parent / "agents" / "scripted.py"
FRONT_MATTER = f"""---
agent: command
command: [{json.dumps(sys.executable)}, {json.dumps(str(SCRIPTED_AGENT))}, "{{module}}", "{{group}}"]
---
"""


class BatchFolder:
    """A temporary folder holding a task.md whose items run the scripted agent."""

    def __init__(self, path: Path):
        self.path = path

    @property
    def taskfile(self) -> Path:
        return self.path / "task.md"

    def write(self, body: str, front_matter: str = FRONT_MATTER, name: str = "task.md") -> Path:
        target = self.path / name
        target.write_text(front_matter + textwrap.dedent(body), encoding="utf-8")
        return target

    def behave(self, **behaviours) -> None:
        """Set what the scripted agent does, by item key or module (`*` for all)."""
        (self.path / "behaviour.json").write_text(json.dumps(behaviours))

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "doit", *args]

    def run(self, *args: str, timeout: float = 60, **options) -> subprocess.CompletedProcess:
        """`doit ARGS` in this folder, to its end."""
        return subprocess.run(
            self.command(*args),
            cwd=self.path,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **options.pop("env", {})},
            **options,
        )

    def start(self, *args: str, env: dict | None = None) -> subprocess.Popen:
        return subprocess.Popen(
            self.command(*args),
            cwd=self.path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )

    def runs(self, event: str = "done") -> Counter:
        """How many times each item's agent started (`start`) or succeeded (`done`)."""
        try:
            lines = (self.path / "runs.log").read_text().splitlines()
        except FileNotFoundError:
            return Counter()
        return Counter(line.split()[1] for line in lines if line.split()[0] == event)

    def state(self, group: str, module: str) -> Path:
        from batch_tasks.state.state import BatchState

        return Path(BatchState(self.taskfile).item(group, module).folder)

    def record(self, group: str, module: str, name: str = "result") -> dict:
        """An item's result.json (or failure.json: name="failure")."""
        return json.loads((self.state(group, module) / f"{name}.json").read_text())

    def events(self, group: str, module: str) -> list[dict]:
        lines = (self.state(group, module) / "events.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def watchdogs(runner) -> list[psutil.Process]:
    """The runner's watchdogs (see batch_tasks/processes/watchdog.py)."""
    found = []
    try:
        children = psutil.Process(runner.pid).children()
    except psutil.Error:
        return found
    for child in children:
        try:
            if any(part.endswith("watchdog.py") for part in child.cmdline()):
                found.append(child)
        except psutil.Error:  # the killed one, until the runner reaps it
            continue
    return found


def wait_for(condition, timeout: float = 60.0):
    """`condition()`'s first true value, or fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


@pytest.fixture
def batch(tmp_path) -> BatchFolder:
    return BatchFolder(tmp_path)


def pytest_configure(config):
    config.addinivalue_line("markers", "alone: runs with no other test beside it, even under pytest-xdist")
    # A script's background job (`pytest &`) starts with Ctrl-C ignored, and the runs the tests
    # start would inherit that: those told to stop by Ctrl-C would run on until their timeouts.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Tests run two or more at a time (pytest-xdist), each holding this lock shared from its
    setup to its teardown, the module fixtures it sets up included (one runs a batch, one
    starts a Dask cluster); a test marked `alone` holds it exclusively, so that no other test
    loads the machine meanwhile. The landing soak is: its stops measure how a run fares
    against unlucky timing, and a sibling test's load could trip its 4 s timeout or widen the
    moment around a stop that it excuses. An alone test waits until every other worker has
    run out of tests (flock lets shared holders in ahead of it): it is that much of the
    suite's tail, with the other workers idle. A test whose kills load can only move runs
    beside the others."""
    checkout = hashlib.sha256(str(item.config.rootpath).encode()).hexdigest()[:12]  # every worker's, one file
    with open(Path(tempfile.gettempdir()) / f"batch-tasks-tests-{checkout}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if item.get_closest_marker("alone") else fcntl.LOCK_SH)
        yield
