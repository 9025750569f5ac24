"""The doit commands batch-tasks adds: `run-batch`, `batch-status`, and a `forget`
that also forgets results.

`doit run-batch` is doit's `run` with the batch loader, the thread runner, the
batch reporter, one run at a time per task file, and a clean stop on Ctrl-C or
SIGTERM. Its steps: lock → recover (after a killed run) → load → check the agents → run (or, with
--dry-run, explain).
"""

from __future__ import annotations

import shutil
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from doit.cmd_base import DoitCmdBase, tasks_and_deps_iter
from doit.cmd_forget import Forget as DoitForget
from doit.cmd_run import Run
from doit.control import TaskControl
from doit.exceptions import InvalidCommand

from rich.console import Group
from rich.live import Live
from rich.text import Text

from . import batch as batch_mod
from . import graph, process
from .agents import AGENTS
from .board import board_from_state
from .cli import MAKE_SPELLINGS, RUN_BATCH_HELP, FriendlyArgs, TaskMdHint
from .errors import BatchError
from .live_view import console_for, panel, print_lines, summary
from .loader import BatchLoader
from .recovery import recover
from .reporter import BatchReporter
from .scheduler import SCHEDULER
from .state import BatchState, lock_holder

CONFIG_HINT = (
    "hint: for `doit list`, `doit info` and `doit forget` to read task.md here, "
    "add to doit.cfg (once):  [GLOBAL] loader = batch   (see the README)"
)

opt_dry_run = {
    "name": "dry_run",
    "long": "dry-run",
    "type": bool,
    "default": False,
    "help": "print every item that would run, and why; run nothing",
}


def _with_default(options, **defaults):
    return tuple({**option, "default": defaults[option["name"]]} if option["name"] in defaults else option for option in options)


class _ReadsTaskFile:
    """A command that reads task.md whatever the folder's doit configuration says."""

    def __init__(self, task_loader=None, **kwargs):
        loader = task_loader if isinstance(task_loader, BatchLoader) else BatchLoader()
        if task_loader is not None:
            loader.cmd_names, loader.config = task_loader.cmd_names, task_loader.config
        super().__init__(task_loader=loader, **kwargs)


class RunBatch(FriendlyArgs, _ReadsTaskFile, Run):
    name = "run-batch"
    aliases, help_text = MAKE_SPELLINGS, RUN_BATCH_HELP
    doc_purpose = "run the open items of task.md, group after group"
    doc_usage = "[GROUP | GROUP:MODULE ...]"
    doc_description = (
        "Runs every item whose checkbox is open, and every item that is stale, in\n"
        "order of its groups, up to -n items at once; ticks each item that succeeds."
    )
    cmd_options = _with_default(Run.cmd_options, par_type="thread", reporter="batch", num_process=None) + (
        opt_dry_run,
    )

    def execute(self, params, args):
        try:
            if params.get("dry_run"):
                return super().execute(params, args)
            path = Path(params["taskfile"]).absolute()
            with BatchState(path).run_lock() as killed_before:
                if killed_before:
                    # Repaired before loading, so that the run sees what the killed one did.
                    for note in recover(batch_mod.load(path)):
                        self.outstream.write(f"recovered: {note}\n")
                return super().execute(params, args)
        except BatchError as error:
            sys.stderr.write(f"ERROR: {error}\n")
            return 3

    def _execute(
        self,
        outfile,
        verbosity=None,
        always=False,
        continue_=False,
        reporter="batch",
        num_process=None,
        par_type="thread",
        single=False,
        auto_delayed_regex=False,
        force_verbosity=False,
        failure_verbosity=0,
        pdb=False,
        dry_run=False,
    ):
        batch = self.loader.batch
        if dry_run:
            return self._dry_run(batch)
        if self.config.get("GLOBAL", {}).get("loader") != "batch":
            sys.stderr.write(CONFIG_HINT + "\n")
        if par_type != "thread":
            raise InvalidCommand("run-batch runs its agents in threads (-P thread): they wait on subprocesses")
        selected = self._selected_items(batch)
        will_run = {key for key, verdict in batch.verdicts.items() if verdict.runs and key in selected}
        _check_agents(batch, will_run)
        workers = num_process or batch.plan.settings.get("parallel") or 1
        waiting_room = self._configure_scheduler(batch, will_run, workers, halt_on_failure=not continue_)
        if reporter == "batch":
            reporter = BatchReporter(outfile, {}, workers=workers, budget=batch.budget)
        with _stop_on_signals() as received:
            result = super()._execute(
                outfile,
                verbosity=verbosity,
                always=always,
                continue_=continue_,
                reporter=reporter,
                num_process=waiting_room,
                par_type="thread",
                single=single,
                auto_delayed_regex=auto_delayed_regex,
                force_verbosity=force_verbosity,
                failure_verbosity=failure_verbosity,
                pdb=pdb,
            )
        if received:
            outfile.write(
                f"\nStopped by {received[0]}. Completed items are recorded; "
                "run `doit run-batch` again to do the rest.\n"
            )
            return 128 + (signal.SIGINT if received[0] == "Ctrl-C" else signal.SIGTERM)
        return result

    @staticmethod
    def _configure_scheduler(batch, will_run: set[str], workers: int, halt_on_failure: bool) -> int:
        """Give the scheduler the run's limits and priorities; return how many threads doit
        gets: twice -n, so that the scheduler has ready items to choose from (doit wakes
        every idle thread of its pool at each step, so a much wider pool costs more than
        it gains)."""
        if not will_run:
            return 1  # nothing to schedule: a run with nothing left to do stays quick
        SCHEDULER.configure(
            batch.plan,
            will_run,
            durations={key: verdict.duration_s for key, verdict in batch.verdicts.items()},
            capacity=workers,
            agent_limits=batch.plan.settings.get("max_concurrent"),
            halt_on_failure=halt_on_failure,
        )
        return min(len(will_run), 2 * workers) or 1

    def _selected_items(self, batch) -> set[str]:
        """The items this run may run: the selection and what it depends on."""
        control = TaskControl(self.task_list)
        control.process(self.sel_tasks)
        return {task.name for task in tasks_and_deps_iter(control.tasks, control.selected_tasks)}

    def _dry_run(self, batch) -> int:
        selected = self._selected_items(batch)
        stale = [item for item in batch.plan.items() if item.key in selected and batch.verdicts[item.key].runs]
        width = max((len(item.key) for item in stale), default=0)
        for item in stale:
            self.outstream.write(f"{item.key:<{width}}  {batch.verdicts[item.key].reason}\n")
            self.outstream.write(f"{'':<{width}}    after: {graph.waits_for(batch.plan, item)}\n")
        current = sum(1 for item in batch.plan.items() if item.key in selected) - len(stale)
        self.outstream.write(f"{len(stale)} would run, {current} up to date\n")
        return 0


def _check_agents(batch, will_run: set[str]) -> None:
    """Every agent CLI the run will need is there, or one error before anything runs."""
    for group in batch.plan.groups:
        if not any(item.key in will_run for item in group.items):
            continue
        name = group.settings["agent"]
        program = AGENTS[name].executable or group.settings["command"][0]
        found = shutil.which(program) if "/" not in program else shutil.which(batch.plan.path.parent / program)
        if found is None:
            what = f"agent {name!r} needs the {program} command on PATH"
            raise BatchError(what if name != "command" else f"group {group.slug!r}: {program!r} is not a program on PATH")


@contextmanager
def _stop_on_signals():
    """Ctrl-C: stop the agents gently (SIGTERM, grace, SIGKILL). Again, or SIGTERM: at once."""
    received: list[str] = []

    def stop(signum, frame):
        at_once = signum == signal.SIGTERM or bool(received)
        received.append("Ctrl-C" if signum == signal.SIGINT else "SIGTERM")
        grace = 0.0 if at_once else process.GRACE_SECONDS
        threading.Thread(target=process.stop_all, args=(grace,), daemon=True).start()

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class Forget(FriendlyArgs, TaskMdHint, DoitForget):
    """doit's `forget`; for a batch's items it also sets their results aside, so they run again."""

    def _execute(self, forget_sub, forget_disable_default, forget_all):
        batch = getattr(self.loader, "batch", None)
        if batch is not None:
            items = {item.key: item for item in batch.plan.items()}
            remove, remove_all = self.dep_manager.remove, self.dep_manager.remove_all

            def remove_and_set_aside(task_id):
                remove(task_id)
                if task_id in items:
                    batch.state.item(items[task_id].group, items[task_id].module).forget()

            def remove_all_and_set_aside():
                remove_all()
                for item in items.values():
                    batch.state.item(item.group, item.module).forget()

            self.dep_manager.remove, self.dep_manager.remove_all = remove_and_set_aside, remove_all_and_set_aside
        return super()._execute(forget_sub, forget_disable_default, forget_all)


opt_watch = {
    "name": "watch",
    "long": "watch",
    "type": bool,
    "default": False,
    "help": "keep showing it, refreshed, until Ctrl-C",
}
opt_interval = {
    "name": "interval",
    "long": "interval",
    "type": float,
    "default": 1.0,
    "help": "seconds between refreshes with --watch [default: %(default)s]",
}


class BatchStatus(FriendlyArgs, _ReadsTaskFile, DoitCmdBase):
    name = "batch-status"
    doc_purpose = "show a batch's progress, from another terminal, or after it ran"
    doc_usage = "[--watch]"
    doc_description = (
        "Reads the items' state folders: what runs now and what it does, what is done\n"
        "or failed, and what it cost. Needs no server: the running batch is not asked."
    )
    cmd_options = (opt_watch, opt_interval)

    def _execute(self, watch=False, interval=1.0):
        batch = self.loader.batch
        console = console_for(self.outstream)
        if not watch:
            board, picture = _status(batch)
            console.print(picture)
            print_lines(console, summary(board))
            return 0
        try:
            with Live(console=console, refresh_per_second=4) as live:
                while True:
                    live.update(_status(batch)[1])
                    time.sleep(interval)
        except KeyboardInterrupt:
            return 0


def _status(batch):
    """The board as the state folders tell it, and its picture under a line about the run."""
    holder = lock_holder(batch.state)
    board = board_from_state(batch.plan, batch.state, holder["started"] if holder else None)
    header = f"running: {holder['text']}" if holder else "no run in progress"
    return board, Group(Text(header), panel(board))


opt_dot = {
    "name": "dot",
    "long": "dot",
    "type": bool,
    "default": False,
    "help": "print Graphviz dot (doit batch-graph --dot | dot -Tsvg > batch.svg)",
}


class BatchGraph(FriendlyArgs, _ReadsTaskFile, DoitCmdBase):
    name = "batch-graph"
    doc_purpose = "show what each item waits for (text, or Graphviz dot)"
    doc_usage = "[--dot]"
    doc_description = "Groups in order; under each, every item and what it waits for."
    cmd_options = (opt_dot,)

    def _execute(self, dot=False):
        plan = self.loader.batch.plan
        self.outstream.write(graph.as_dot(plan) if dot else graph.as_text(plan))
        return 0
