"""`doit forget` on a batch: doit's own, which for a batch's items also sets their results
aside, so that they run again and say why. Touches doit's records (through the bridge)
and the forgotten items' results, holding the run lock (cli.OutsideRuns); nothing else."""

from __future__ import annotations

import sys

from doit.cmd_forget import Forget as DoitForget

from ..doit_bridge import ForgetsToo
from .cli import EXIT_BAD_INPUT, FriendlyArgs, OutsideRuns, TaskMdHint


class Forget(FriendlyArgs, TaskMdHint, OutsideRuns, DoitForget):
    """doit's `forget`; for a batch's items it also sets their results aside, so they run again."""

    def _execute(self, forget_sub, forget_disable_default, forget_all):
        if not self.sel_tasks and not forget_all:  # a batch has no default tasks to forget
            sys.stderr.write("ERROR: name what to forget: `doit forget GROUP:MODULE` (or a GROUP), or `doit forget --all`\n")
            return EXIT_BAD_INPUT
        batch = getattr(self.loader, "batch", None)
        if batch is not None:  # forgetting an item also sets its result aside, so that it runs again and says why
            items = {item.key: item for item in batch.plan.items()}

            def set_result_aside(key: str) -> None:
                if key in items:
                    batch.state.item(items[key].group, items[key].module).forget()

            self.dep_manager = ForgetsToo(self.dep_manager, set_result_aside, items)
        return self.outside_runs(lambda: super(Forget, self)._execute(forget_sub, forget_disable_default, forget_all))
