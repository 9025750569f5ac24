"""The doit reporter of `run-batch`: one timestamped line per item event, then a summary.

doit calls it from its worker threads (start) and from the main thread (end), so
every write holds a lock and is one whole line.
"""

from __future__ import annotations

import threading
import time

from doit.exceptions import UnmetDependency


def _is_item(task) -> bool:
    return task.subtask_of is not None


class BatchReporter:
    desc = "one line per item: started, done, failed (with its log); then a summary"

    def __init__(self, outstream, options):
        self.out = outstream
        self.lock = threading.Lock()
        self.begun = time.monotonic()
        self.started: dict[str, float] = {}
        self.succeeded: list[str] = []
        self.failed: list[tuple[str, str]] = []
        self.current = 0
        self.errors: list[str] = []

    def _line(self, text: str) -> None:
        with self.lock:
            self.out.write(f"{time.strftime('%H:%M:%S')} {text}\n")
            self.out.flush()

    def initialize(self, tasks, selected_tasks):
        pass

    def get_status(self, task):
        pass

    def execute_task(self, task):
        if _is_item(task):
            with self.lock:
                self.started[task.name] = time.monotonic()
            self._line(f"▶ {task.name}")

    def add_success(self, task):
        if _is_item(task):
            self.succeeded.append(task.name)
            self._line(f"✓ {task.name} ({self._duration(task.name)})")

    def add_failure(self, task, fail):
        if not _is_item(task):
            return
        message = "not run: an item it depends on failed" if isinstance(fail, UnmetDependency) else fail.message
        self.failed.append((task.name, message))
        self._line(f"✗ {task.name} ({self._duration(task.name)}): {message}")

    def skip_uptodate(self, task):
        if _is_item(task):
            self.current += 1

    def skip_ignore(self, task):
        pass

    def cleanup_error(self, exception):
        self.errors.append(exception.get_msg())

    def runtime_error(self, msg):
        self.errors.append(msg)

    def teardown_task(self, task):
        pass

    def _duration(self, name: str) -> str:
        started = self.started.get(name)
        return f"{time.monotonic() - started:.1f}s" if started is not None else "-"

    def complete_run(self):
        elapsed = time.monotonic() - self.begun
        parts = [f"{len(self.succeeded)} done", f"{len(self.failed)} failed", f"{self.current} already done"]
        with self.lock:
            self.out.write(f"\n{', '.join(parts)} in {elapsed:.1f}s\n")
            for name, message in self.failed:
                self.out.write(f"  ✗ {name}: {message}\n")
            for error in self.errors:
                self.out.write(f"  error: {error}\n")
            self.out.flush()
