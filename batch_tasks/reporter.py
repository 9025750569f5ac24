"""The doit reporter of `run-batch`: feeds the board from doit and from the item runs,
and shows it (a live panel in a terminal, plain lines elsewhere), then the summary.

doit calls it from its main thread; item runs publish to it from worker threads.
"""

from __future__ import annotations

from doit.cmd_base import tasks_and_deps_iter
from doit.exceptions import UnmetDependency

from collections import Counter

from . import events
from .board import Board
from .budget import Budget
from .item_run import NOT_STARTED
from .scheduler import SCHEDULER
from .live_view import PlainView, TerminalView, summary


def _is_item(task) -> bool:
    return task.subtask_of is not None


def _will_run(task) -> bool:
    verdict = task.uptodate[0][0] if task.uptodate else None
    return bool(getattr(verdict, "runs", True))


def _announce_the_ready(tasks, running) -> None:
    """Before doit hands out anything: the items that can start at once, so that the
    first to reach the scheduler does not take a turn that belongs to a better one."""
    will_run = {task.name for task in running}
    for task in running:
        waits_for = {member for name in task.task_dep for member in (tasks[name].task_dep if tasks[name].has_subtask else [name])}
        if not waits_for & will_run:
            SCHEDULER.announce(task.name)


class BatchReporter:
    desc = "a live panel in a terminal, one line per item elsewhere; then a summary with costs"

    def __init__(self, outstream, options, workers: int = 1, budget: Budget | None = None):
        self.out = outstream
        self.workers = workers
        self.budget = budget
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
        _announce_the_ready(tasks, running)
        is_terminal = getattr(self.out, "isatty", lambda: False)()
        self.view = TerminalView(self.out, self.board) if is_terminal else PlainView(self.out)
        events.subscribe(self)

    # From item runs (worker threads).
    def item_started(self, key, attempt, log):
        self.board.started(key, attempt, log)
        self.view.started(self.board.items[key])

    def item_event(self, key, event):
        self.board.event(key, event)

    def item_finished(self, key, record):
        self.records[key] = record

    # From doit (main thread).
    def get_status(self, task):
        # doit calls this in its main thread as it hands a task out: the scheduler can
        # then keep the turn of an item that is on its way.
        if _is_item(task) and _will_run(task):
            SCHEDULER.announce(task.name)

    def execute_task(self, task):
        pass  # an item shows as running once its agent has started (see item_started)

    def add_success(self, task):
        if _is_item(task):
            self.board.finished(task.name, True, self.records.get(task.name))
            self.view.finished(self.board.items[task.name])

    def add_failure(self, task, fail):
        if not _is_item(task):
            return
        reason = "not run: an item it depends on failed" if isinstance(fail, UnmetDependency) else fail.message
        if isinstance(fail, UnmetDependency):
            events.publish("item_outcome", task.name, "not started", None, reason)
        if reason.startswith(NOT_STARTED):
            self.not_started[reason.removeprefix(NOT_STARTED)] += 1
            return
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
        events.unsubscribe(self)
        if self.view is not None:
            notes = [f"{count} not started: {why}" for why, count in self.not_started.items()]
            if self.budget and self.budget.note():
                notes.append(self.budget.note())
            self.view.close(summary(self.board, notes))
