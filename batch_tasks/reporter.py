"""The doit reporter of `run-batch`: feeds the board from doit and from the run's hub,
and shows it (a live panel in a terminal, plain lines elsewhere), then the summary.
It renders what happens and decides nothing.

doit calls it from its main thread; item runs publish to it from their threads.
"""

from __future__ import annotations

from doit.cmd_base import tasks_and_deps_iter
from doit.exceptions import UnmetDependency

from collections import Counter

from .board import WAITING, Board
from .events import AgentEvent
from .live_view import PlainView, TerminalView, summary
from .run import Run


def _is_item(task) -> bool:
    return task.subtask_of is not None


def _will_run(task) -> bool:
    verdict = task.uptodate[0][0] if task.uptodate else None
    return bool(getattr(verdict, "runs", True))


class BatchReporter:
    desc = "a live panel in a terminal, one line per item elsewhere; then a summary with costs"

    def __init__(self, outstream, options, workers: int = 1, run: Run | None = None):
        self.out = outstream
        self.workers = workers
        self.run = run
        self.board = Board([])
        self.view = None
        self.records: dict[str, dict] = {}
        self.not_started: Counter[str] = Counter()  # by why

    def initialize(self, tasks, selected_tasks):
        selected = [t for t in tasks_and_deps_iter(tasks, selected_tasks) if _is_item(t)]
        running = [t for t in selected if _will_run(t)]
        self.board = Board(
            [(t.name, t.subtask_of) for t in running], already_done=len(selected) - len(running), workers=self.workers
        )
        is_terminal = getattr(self.out, "isatty", lambda: False)()
        self.view = TerminalView(self.out, self.board) if is_terminal else PlainView(self.out)
        if self.run is not None:
            self.run.hub.subscribe(self)

    # From the run's hub (item threads, and the runner).
    def item_started(self, key, attempt, log):
        self.board.started(key, attempt, log)
        self.view.started(self.board.items[key])

    def item_event(self, key, event):
        self.board.event(key, event)

    def item_finished(self, key, record):
        self.records[key] = record

    def item_retrying(self, key, attempt, cause, at):
        self.board.event(key, AgentEvent("retry", cause))

    def item_not_started(self, key, why):
        self.not_started[why] += 1

    # From doit (main thread).
    def get_status(self, task):
        pass

    def execute_task(self, task):
        pass  # an item shows as running once its agent has started (see item_started)

    def add_success(self, task):
        if _is_item(task):
            self.board.finished(task.name, True, self.records.get(task.name))
            self.view.finished(self.board.items[task.name])

    def add_failure(self, task, fail):
        if not _is_item(task):
            return
        if isinstance(fail, UnmetDependency):
            return  # not started: the hub says so (item_not_started)
        reason = fail.message
        self.board.finished(task.name, False, self.records.get(task.name), reason)
        self.view.finished(self.board.items[task.name])

    def skip_uptodate(self, task):
        pass

    def skip_ignore(self, task):
        pass

    def cleanup_error(self, exception):
        self.out.write(f"error: {exception.get_msg()}\n")

    def runtime_error(self, msg):
        self.out.write(f"error: {msg}\n")

    def teardown_task(self, task):
        pass

    def complete_run(self):
        if self.run is not None:
            self.run.hub.unsubscribe(self)
        if self.view is not None:
            # Items doit never handed out: what held back the others held them back too.
            never = sum(1 for view in self.board.snapshot() if view.state == WAITING) - sum(self.not_started.values())
            if never > 0:
                self.not_started[next(iter(self.not_started), "an item it depends on failed")] += never
            notes = [f"{count} not started: {why}" for why, count in self.not_started.items()]
            if self.run is not None and self.run.budget.note():
                notes.append(self.run.budget.note())
            self.view.close(summary(self.board, notes))
