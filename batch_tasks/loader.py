"""The doit loader: lets every doit command (list, info, forget, run-batch) read task.md.

Registered as the `doit.LOADER` plugin `batch`; a folder opts in with one line
of doit configuration (`loader = batch`, see the README). `run-batch` uses it
directly and needs no configuration.
"""

from __future__ import annotations

from pathlib import Path

from doit.cmd_base import TaskLoader2
from doit.exceptions import InvalidDodoFile

from . import batch as batch_mod
from . import cli
from .doit_tasks import build_tasks
from .errors import BatchError
from .state import BatchState

opt_taskfile = {
    "name": "taskfile",
    "short": "T",
    "long": "taskfile",
    "type": str,
    "default": "task.md",
    "env_var": "BATCH_TASKFILE",
    "help": "the task file to run [default: %(default)s]",
}


class BatchLoader(TaskLoader2):
    cmd_options = (opt_taskfile,)

    def setup(self, opt_values):
        self.path = Path(opt_values["taskfile"]).absolute()
        self.batch: batch_mod.Batch | None = None

    def load_doit_config(self):
        state = BatchState(self.path)
        try:
            state.ensure()
        except BatchError as error:
            raise InvalidDodoFile(str(error)) from None
        # `sort` is `doit list`'s: items in the order task.md gives them.
        return {"dep_file": str(state.db), "backend": "batch-sqlite", "sort": "definition"}

    def load_tasks(self, cmd, pos_args):
        try:
            if cmd.name == "run":
                cli.refuse_plain_run()
            self.batch = batch_mod.load(self.path)
            if cmd.name != "help":
                cli.check_names(self.batch.plan, pos_args or [], self._targets)
        except BatchError as error:
            # doit prints InvalidDodoFile as one line, without a traceback.
            raise InvalidDodoFile(str(error)) from None
        return build_tasks(self.batch)

    def _targets(self):
        return [self.batch.state.item(item.group, item.module).result for item in self.batch.plan.items()]
