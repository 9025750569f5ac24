"""`doit run-batch`: the command line, and the course of a run as a list of named steps
fed one by one (run_batch_steps.py holds the steps): load (any mistake is exit 3, before
anything is written) → check → lock (one run at a time per task file) → recover what a
killed run owes → through doit, which loads the tasks → select → run, with the batch's own
runner and dispatcher (or, with --dry-run, explain) → close up → keep the no-op stamp.
"""

from __future__ import annotations

import gc
import sys
from contextlib import ExitStack
from pathlib import Path

from doit.cmd_base import DoitCmdBase

from ..errors import BatchError
from ..main import rerun_command
from ..plan import outside_settings
from ..tasks.loader import ReadsTaskFile
from .cli import EXIT_BAD_INPUT, MAKE_SPELLINGS, RUN_BATCH_HELP, FriendlyArgs, flag
from .run_batch_dispatch import close_up, dispatch, prepare
from .run_batch_steps import (DoitTasks, Ended, Given, Loaded, answer_from_the_stamp, answer_the_question,
                              check_before_the_lock, check_the_selection, explain, keep_the_stamp, load, lock, recover,
                              run_steps, select)

opt_dry_run = flag("dry_run", "print every item that would run, and why; run nothing")
opt_question = flag("question", "print nothing, run nothing: exit 1 if any item would run, else 0 (make's -q)", short="q")
opt_parallel = {
    "name": "num_process",
    "short": "n",
    "long": "parallel",
    "type": int,
    "default": 0,
    "help": "run up to N items at once [default: `parallel:` in the front matter, else 1]",
}
opt_continue = flag("continue", "keep starting items after one failed (those that depend on it still wait)", short="c")
opt_failed = flag("failed", "run only the items that failed last time")
opt_optional = flag("optional", "also run the items marked optional (Kiro's `- [ ]*`)")
opt_set = {
    "name": "set",
    "long": "set",
    "type": list,
    "default": [],
    "help": "KEY=VALUE: a setting, its value as YAML, over the task file's own and every other (repeatable)",
}
opt_prompts = flag("prompts", "with --dry-run: print each item's prompt as its agent would get it")
opt_joblog = {
    "name": "joblog",
    "long": "joblog",
    "type": str,
    "default": "",
    "help": "append a line per attempt as it ends to FILE, in GNU parallel's joblog format",
}
opt_executor = {
    "name": "executor",
    "long": "executor",
    "type": str,
    "default": "",
    "help": "where items' agents run: local, or dask (on a Dask cluster's workers) [default: `executor:`, else local]",
}
opt_scheduler = {
    "name": "scheduler",
    "long": "scheduler",
    "type": str,
    "default": "",
    "help": "with --executor dask: the Dask scheduler's address, tcp://HOST:8786",
}
opt_always = flag("always", "run the named items even if they are up to date (not what they wait for)", short="a",
                  long="always-execute")
opt_no_wait_review = flag("no_wait_review", "end the run when nothing is left but items awaiting review "
                          "(exit status 5); the next run takes their decisions")
opt_upstream = flag("upstream", "with -a: also run again everything the named items wait for")


class RunBatch(FriendlyArgs, ReadsTaskFile, DoitCmdBase):
    name = "run-batch"
    aliases, help_text = MAKE_SPELLINGS, RUN_BATCH_HELP
    doc_purpose = "run the open items of task.md, group after group"
    doc_usage = "[GROUP | GROUP:MODULE ...]"
    doc_description = (
        "Runs every item whose checkbox is open, and every item that is stale, in\n"
        "order of its groups, up to -n items at once; ticks each item that succeeds."
    )
    cmd_options = (opt_parallel, opt_continue, opt_always, opt_upstream, opt_dry_run, opt_prompts, opt_question, opt_set,
                   opt_failed, opt_optional, opt_joblog, opt_executor, opt_scheduler, opt_no_wait_review)

    # The course of a run; a step that returns an exit status ends it there.
    BEFORE_DOIT = (answer_from_the_stamp, load, check_before_the_lock, lock, recover)
    IN_DOIT = (select, answer_the_question, explain, check_the_selection, prepare, dispatch, close_up)
    AFTER_DOIT = (keep_the_stamp,)

    def parse_execute(self, in_args):
        return super().parse_execute(outside_settings.given_back(list(in_args)))

    def execute(self, params, args):
        self.loader.optional = params.get("optional", False)
        self.loader.jobs = not (params.get("dry_run") or params.get("question"))  # they make the few they need
        # Loading 10,000 items makes a million objects and no cycle worth collecting: Python's
        # collector would walk them all, again and again, for a fifth of a dry run's time. It
        # runs again once a run starts, on what the run makes alone (see prepare).
        gc.disable()
        try:
            with ExitStack() as held:
                given = Given(Path(params["taskfile"]).absolute(), params, tuple(args), self.config, self.bin_name,
                              rerun_command(params["taskfile"], self.bin_name), self.outstream, held)
                return run_steps((*self.BEFORE_DOIT, self.through_doit, *self.AFTER_DOIT), given)
        except BatchError as error:
            sys.stderr.write(f"ERROR: {error}\n")
            return EXIT_BAD_INPUT
        finally:
            gc.unfreeze()
            gc.enable()

    def through_doit(self, loaded: Loaded) -> Ended | int:
        """doit loads the batch's tasks and its records, then calls `_execute` with its options
        alone: what the steps before handed over crosses it here."""
        self.loader.batch, self._loaded = loaded.batch, loaded
        return super().execute(loaded.given.params, list(loaded.given.args))

    def _execute(self, pos_args):
        tasks = DoitTasks(self._loaded, self.task_list, self.sel_tasks, self.dep_manager)
        return run_steps(self.IN_DOIT, tasks)
