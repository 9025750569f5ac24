"""The doit reporter of `run-batch`: feeds the board from doit and from the run's hub,
and shows it (a live panel in a terminal, plain lines elsewhere), then the summary.
It renders what happens and decides nothing.

doit calls it from its main thread; item runs publish to it from their threads.
"""

from __future__ import annotations

from doit.cmd_base import tasks_and_deps_iter
from doit.exceptions import UnmetDependency

from ..doit_bridge import uptodate_value
from ..landing.review import review_command
from ..processes.started import process_started
from ..run import forecast
from ..run.run import Run
from ..state.item_machine import AWAITING_REVIEW
from .board import WAITING, Board
from .live_view import view_for
from .run_summary import summary


def _is_item(task) -> bool:
    return task.subtask_of is not None


def _will_run(task) -> bool:
    return bool(getattr(uptodate_value(task), "runs", True))


class BatchReporter:
    desc = "a live panel in a terminal, one line per item elsewhere; then a summary with costs"

    def __init__(self, outstream, options, workers: int = 1, run: Run | None = None, forced: frozenset = frozenset(),
                 rerun: str = "doit run-batch"):
        self.out = outstream
        self.workers = workers
        self.run = run
        self.forced = forced  # -a: these items run, up to date or not
        self.rerun = rerun  # how to run the batch again, as the summary says
        self.bin_name = "batch-tasks" if rerun.startswith("batch-tasks") else "doit"
        self.waits_for: dict[str, str] = {}  # what each item awaiting review waits for: a command, a pull request
        self.board = Board([])
        self.view = None
        self.records: dict[str, dict] = {}
        self.held_back_by = ""  # why the first item not started was not

    def initialize(self, tasks, selected_tasks):
        selected = [t for t in tasks_and_deps_iter(tasks, selected_tasks) if _is_item(t)]
        running = [t for t in selected if t.name in self.forced or _will_run(t)]
        jobs = [t.meta["job"] for t in running]
        self.board = Board(
            [(t.name, t.subtask_of) for t in running],
            already_done=len(selected) - len(running),
            workers=self.workers,
            root=str(jobs[0].taskfile.parent) if jobs else None,  # paths are shown from task.md's folder
            agents={job.item.key: job.settings["agent"] for job in jobs},  # for `claude --resume`
            begun=process_started(),  # the summary's time is the whole command's
        )
        self.view = view_for(self.out, self.board)  # it watches the board: every change below reaches it
        if self.run is not None:
            self.run.hub.subscribe(self)

    # From the run's hub (item threads, and the runner).
    def item_started(self, key, attempt, log):
        self.board.started(key, attempt, log)

    def item_event(self, key, event):
        self.board.event(key, event)

    def item_finished(self, key, record):
        self.records[key] = record

    def item_awaiting_review(self, key, awaiting):
        pull = awaiting.get("pull_request") is not None
        self.waits_for[key] = awaiting["waits_for"] if pull else review_command(key, self.bin_name)
        self.board.awaiting_review(key, self.waits_for[key])

    def item_step(self, key, attempt, step, text):
        self.board.step(key, attempt, step, text)

    def item_retrying(self, key, attempt, cause, at):
        self.board.retrying(key, attempt, cause, at)

    def agent_paused(self, agent, until):
        self.board.paused(agent, until)

    def notice(self, source, text):
        self.board.notice(text)

    def item_not_started(self, key, why):
        self.held_back_by = self.held_back_by or why
        self.board.not_started(key, why)

    # From the runner, about once a second.
    def tick(self, now):
        if self.view is not None:
            self.view.tick(now)

    # From doit (main thread).
    def get_status(self, task):
        pass

    def execute_task(self, task):
        pass  # an item shows as running once its agent has started (see item_started)

    def add_success(self, task):
        if _is_item(task):
            self.board.finished(task.name, True, self.records.get(task.name))

    def add_failure(self, task, fail):
        if not _is_item(task):
            return
        if isinstance(fail, UnmetDependency):
            return  # not started: the hub says so (item_not_started)
        if fail.message == AWAITING_REVIEW:  # the run ended without its review: it still waits
            waits_for = self.waits_for.get(task.name) or review_command(task.name, self.bin_name)
            self.board.awaiting_review(task.name, waits_for)
        elif fail.message.startswith("interrupted"):
            self.board.interrupted(task.name, self.records.get(task.name))
        else:
            self.board.finished(task.name, False, self.records.get(task.name), fail.message)

    def skip_uptodate(self, task):
        pass

    def skip_ignore(self, task):
        if _is_item(task):
            self.board.skipped(task.name, "ignored by `doit ignore` (`doit forget` it to run it again)")

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
            for view in self.board.snapshot():
                if view.state == WAITING:
                    self.board.not_started(view.key, self.held_back_by or "an item it depends on failed")
            notes = [self.run.budget.note()] if self.run is not None and self.run.budget.note() else []
            if self.run is not None:
                notes += forecast.against_actual(self.run.forecast, self.board.snapshot())
            self.view.close(summary(self.board, notes, self.rerun))
