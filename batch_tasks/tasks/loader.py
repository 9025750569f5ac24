"""The doit loader: lets every doit command (list, info, forget, run-batch) read task.md.

Registered as the `doit.LOADER` plugin `batch`; a folder opts in with one line
of doit configuration (`loader = batch`, see the README). `run-batch` and the batch's
other commands use it directly (`ReadsTaskFile`) and need no configuration.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from doit.cmd_base import TaskLoader2
from doit.exceptions import InvalidDodoFile

from ..errors import BatchError
from ..formats import closest
from ..state.state import BatchState

if TYPE_CHECKING:
    from .batch import Batch

opt_taskfile = {
    "name": "taskfile",
    "short": "T",
    "long": "taskfile",
    "type": str,
    "default": "task.md",
    "env_var": "BATCH_TASKFILE",
    "help": "the task file to run [default: %(default)s]",
}


# Commands that show or touch only the plan and doit's own records: they read no item's records.
PLAN_ONLY = frozenset({"batch-graph", "forget", "ignore"})


class BatchLoader(TaskLoader2):
    cmd_options = (opt_taskfile,)

    def __init__(self):
        super().__init__()
        self.batch: Batch | None = None  # run-batch loads it itself, before the lock
        self.optional = True  # Kiro's optional items are tasks (run-batch: only with --optional)
        self.jobs = True  # each item's task carries its job (run-batch: not for a dry run or -q)

    def setup(self, opt_values):
        self.path = Path(opt_values["taskfile"]).absolute()
        self.state = BatchState(self.path)  # doit's records are there, before the batch is loaded
        self._shows_status = bool(opt_values.get("status"))
        if self.batch is not None and self.batch.plan.path != self.path:
            self.batch = None

    def load_doit_config(self):
        state = self.state
        try:
            state.ensure()
        except BatchError as error:
            raise InvalidDodoFile(str(error)) from None
        # `sort` is `doit list`'s: items in the order task.md gives them. doit's records
        # decide nothing an item's own records do not (see staleness): its stock SQLite
        # backend keeps `doit ignore` and `forget`, and a kill losing them costs nothing.
        return {"dep_file": str(state.db), "backend": "sqlite3", "sort": "definition"}

    def load_tasks(self, cmd, pos_args):
        if cmd.name == "run":
            raise InvalidDodoFile("a batch runs with `doit run-batch` (it locks, checks the agents and shows "
                                  "the panel); doit's own `run` cannot run its items")
        if cmd.name == "clean":
            records = Path(os.path.relpath(self.state.root))
            raise InvalidDodoFile("a batch's items leave no files for `doit clean` to remove: `doit forget GROUP:MODULE` "
                                  f"makes an item run again; its records are kept under {records}/")
        # Here, not at the top: every doit command imports this loader, and run-batch answered
        # by its no-op stamp loads no batch.
        from . import batch as batch_mod
        from .doit_tasks import build_tasks

        try:
            needs_records = self._needs_records(cmd.name)
            if self.batch is None or (needs_records and self.batch.verdicts is None):
                self.batch = batch_mod.load(self.path, read_records=needs_records)
            if cmd.name != "help":
                check_names(self.batch.plan, pos_args or [], self._targets)
        except BatchError as error:
            # doit prints InvalidDodoFile as one line, without a traceback.
            raise InvalidDodoFile(str(error)) from None
        return build_tasks(self.batch, optional=self.optional, jobs=self.jobs)

    def _needs_records(self, command: str) -> bool:
        """Whether COMMAND says anything that the items' records decide (`list` only with --status)."""
        return command not in PLAN_ONLY and not (command == "list" and not self._shows_status)

    def _targets(self):
        return [self.batch.state.item(item.group, item.module).result for item in self.batch.plan.items()]


class ReadsTaskFile:
    """A doit command that reads task.md whatever the folder's doit configuration says."""

    def __init__(self, task_loader=None, **kwargs):
        loader = task_loader if isinstance(task_loader, BatchLoader) else BatchLoader()
        if task_loader is not None:
            loader.cmd_names, loader.config = task_loader.cmd_names, task_loader.config
        super().__init__(task_loader=loader, **kwargs)


def check_names(plan, names: list[str], targets=lambda: ()) -> None:
    """Every name given is a group or an item of the plan (or a doit wildcard or target),
    else one line naming the closest; raises BatchError."""
    groups = [group.slug for group in plan.groups]
    items = [item.key for item in plan.items()]
    known = set(groups) | set(items)
    for name in names:
        if name in known or "*" in name:
            continue
        if os.path.abspath(name) in {os.path.abspath(target) for target in targets()}:
            continue
        kind, choices = ("item", items) if ":" in name else ("group", groups)
        hint = closest(name, choices, 0.6)
        if hint:
            raise BatchError(f"no {kind} {name!r}; did you mean {hint!r}?")
        listed = ", ".join(choices[:8]) + (", …" if len(choices) > 8 else "")
        raise BatchError(f"no {kind} {name!r} in {plan.path.name}" + (f"; there are: {listed}" if listed else ""))
