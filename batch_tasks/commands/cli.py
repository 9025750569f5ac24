"""First contact on the command line: run-batch's own help, make's spellings of its
options (`-j N`, `-k`, `--keep-going`), options and item names in any order, and one
line with a suggestion for an unknown option or name, never doit's reprs.

It reads arguments, the plan's names and whether files exist; it writes nothing.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Callable

from doit.cmd_base import DodoTaskLoader
from doit.cmd_ignore import Ignore as DoitIgnore
from doit.cmd_info import Info as DoitInfo
from doit.cmd_list import List as DoitList
from doit.cmd_run import Run as DoitRun
from doit.exceptions import InvalidDodoFile

from ..errors import BatchError
from ..formats import closest
from ..redaction import MaskedText, Redactor

# Exit statuses of `doit run-batch` (the README lists them).
EXIT_DONE, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_NOT_ALL_STARTED = 0, 1, 3, 4
EXIT_AWAITING_REVIEW = 5  # --no-wait-review: none failed, but some wait for their review

# make's and GNU parallel's spellings, as people type them.
MAKE_SPELLINGS = {"-j": "-n", "--jobs": "--parallel", "-k": "--continue", "--keep-going": "--continue",
                  "-B": "-a", "--always-make": "--always-execute"}
# Options people bring from other tools that mean something here under another name.
ELSEWHERE = {
    "--eta": "progress and the ETA are in the live panel (in a terminal), or `doit batch-status --watch`",
    "--bar": "progress and the ETA are in the live panel (in a terminal), or `doit batch-status --watch`",
    "--progress": "progress and the ETA are in the live panel (in a terminal), or `doit batch-status --watch`",
    "--version": "`batch-tasks --version` says the version",
}
# What a number option counts (each takes 1 or more).
COUNTS = {"num_process": "how many items run at once"}

CONFIG_LINE = r"printf '[GLOBAL]\nloader = batch\n' > doit.cfg"

RUN_BATCH_HELP = """\
usage: doit run-batch [OPTIONS] [GROUP | GROUP:MODULE ...]

Runs every open or stale item of task.md, group after group, up to N items at
once, each by its agent (claude, codex, gemini, or a command); ticks each item
that succeeds. A second run does only what is left or changed, and says why.
Options and names may come in any order.

options:
  -n N, -j N, --parallel N, --jobs N
                      run up to N items at once (default: `parallel:` in
                      task.md, else 1)
  -c, -k, --continue, --keep-going
                      keep going past a failed item: items that do not depend
                      on it still run
  -a, -B, --always-execute
                      run the named items (or a named group's) even if they
                      are current; what they wait for runs only if it is not
  --upstream          with -a: also run again everything they wait for
  --dry-run           print every item that would run, and why; run nothing
  -q, --question      print nothing, run nothing: exit 1 if any item would
                      run, else 0 (make's -q)
  --prompts           with --dry-run: print each item's prompt as its agent gets it
  --set KEY=VALUE     a setting, its value as YAML, over all others (repeatable;
                      also: batch-tasks.toml, pyproject.toml [tool.batch-tasks])
  --failed            run only the items that failed last time
  --optional          also run the items marked optional (Kiro's `- [ ]*`)
  --joblog FILE       append a line per attempt as it ends to FILE, in GNU
                      parallel's joblog format
  --executor local|dask, --scheduler tcp://HOST:8786
                      where the agents run: here (default), or on the workers
                      of that Dask scheduler (see the README: "Beyond one
                      machine")
  --no-wait-review    end when nothing is left but items awaiting review
                      (exit 5); the next run takes their decisions
  -T FILE, --taskfile FILE
                      the task file (default: task.md; or $BATCH_TASKFILE)
  -h, --help          this help

examples:
  doit run-batch                    every open or stale item
  doit run-batch -j 4 -k            4 at once, past failures
  doit run-batch review             the group `## Review`, and what it needs first
  doit run-batch review:auth -a     one item, even if it is current
  doit run-batch --dry-run          what would run, and why
  doit batch-status --watch         the picture, from another terminal
  doit batch-log review:auth -f     one item's attempts, tool calls and errors, live
  doit batch-report                 the last run as a page: timeline, costs, failures

exit status: 0 all done; 1 an item failed; 3 task.md, a setting, an option or
a name is wrong (nothing ran); 4 nothing failed, but not every item started
(the budget was spent); 5 nothing failed, but items await review
(--no-wait-review); 130 stopped by Ctrl-C, 143 by SIGTERM, 129 by SIGHUP,
141 by its output closing (`| head`).
"""


def flag(name: str, help: str, short: str = "", long: str = "") -> dict:
    """A yes-or-no option, in doit's terms: `--long` (and `-short`) set it."""
    option = {"name": name, "long": long or name.replace("_", "-"), "type": bool, "default": False, "help": help}
    return {**option, "short": short} if short else option


class UsageError(Exception):
    """A mistake on the command line, shown as one line."""


class _Spellings:
    """Every spelling of a command's options, in the order its help gives them."""

    def __init__(self, options, aliases: dict[str, str]):
        self.aliases = aliases
        self.by_spelling: dict[str, tuple[object, bool]] = {}  # spelling → (option, is its inverse)
        for option in options:
            if option.short:
                self.by_spelling["-" + option.short] = (option, False)
            if option.long:
                self.by_spelling["--" + option.long] = (option, False)
            if option.inverse:
                self.by_spelling["--" + option.inverse] = (option, True)
        self.shown = [*aliases, *self.by_spelling]

    def find(self, spelled: str):
        spelled = self.aliases.get(spelled, spelled)
        if spelled in self.by_spelling:
            return spelled, *self.by_spelling[spelled]
        if spelled.startswith("--"):  # getopt takes a long option's unique beginning
            matches = [s for s in self.by_spelling if s.startswith(spelled) and s.startswith("--")]
            if len(matches) == 1:
                return matches[0], *self.by_spelling[matches[0]]
        if spelled in ELSEWHERE:
            raise UsageError(f"unknown option {spelled}; {ELSEWHERE[spelled]}")
        hint = None
        if spelled.startswith("--"):  # a letter is no misspelling: only a long name is compared
            longs = sorted((s for s in self.shown if s.startswith("--")), key=self._order)
            bare = closest(spelled[2:], [s[2:] for s in longs], 0.6)
            hint = f"--{bare}" if bare else None
        raise UsageError(f"unknown option {spelled}" + (f"; did you mean {hint}?" if hint else ""))

    def _order(self, spelling: str) -> int:
        # The options in the order of the help: the most used first.
        preferred = ["--parallel", "--jobs", "--continue", "--keep-going", "--always-execute", "--dry-run", "--taskfile"]
        return preferred.index(spelling) if spelling in preferred else len(preferred)


def normalise(args: list[str], options, aliases: dict[str, str]) -> tuple[list[str], bool]:
    """`args` as doit parses them: options first, each in its canonical spelling, then
    the names; and whether help was asked for. Raises UsageError."""
    spellings = _Spellings(options, aliases)
    out: list[str] = []
    names: list[str] = []
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if arg in ("-h", "--help"):
            return [], True
        if arg == "--":
            names.extend(rest)
            break
        if arg.startswith("--"):
            spelled, _, value = arg.partition("=")
            canonical, option, _inverse = spellings.find(spelled)
            if option.type is bool:
                if value:
                    raise UsageError(f"option {spelled} takes no value")
                out.append(canonical)
            else:
                out += [canonical, _checked(option, spelled, value if "=" in arg else _value(spelled, rest))]
        elif arg.startswith("-") and arg != "-":
            letters = arg[1:]
            while letters:
                spelled, letters = "-" + letters[0], letters[1:]
                canonical, option, _inverse = spellings.find(spelled)
                if option.type is bool:
                    out.append(canonical)
                else:
                    out += [canonical, _checked(option, spelled, letters or _value(spelled, rest))]
                    letters = ""
        else:
            names.append(arg)
    return out + names, False


def _value(spelled: str, rest: list[str]) -> str:
    if not rest:
        raise UsageError(f"option {spelled} needs a value")
    return rest.pop(0)


def _checked(option, spelled: str, value: str) -> str:
    """A number option's value, refused unless it is a whole number of 1 or more."""
    if option.type is int and not (value.isdigit() and int(value) >= 1):
        raise UsageError(f"option {spelled} takes {COUNTS.get(option.name, 'a number')}, 1 or more, not {value}")
    return value


class FriendlyArgs:
    """A doit command whose arguments get make's spellings, any order, `-h`, and one-line
    errors. Mixed in before the doit command class; `aliases` and `help_text` may be set."""

    aliases: dict[str, str] = {}
    help_text: str | None = None

    def parse_execute(self, in_args):
        try:
            args, wants_help = normalise(list(in_args), self.cmdparser.options, self.aliases)
        except UsageError as error:
            sys.stderr.write(f"ERROR: {error} (`doit {self.name} --help` lists them)\n")
            return EXIT_BAD_INPUT
        if wants_help:
            sys.stdout.write(self.help() + ("" if self.help().endswith("\n") else "\n"))
            return 0
        try:
            return super().parse_execute(args)
        except BrokenPipeError:  # `doit info X | head`: the reader has what it wanted
            from ..processes.stopping import EXIT_CLOSED_OUTPUT, drop_output  # psutil's with it: not for every listing

            drop_output(sys.stdout)
            return EXIT_CLOSED_OUTPUT
        except KeyboardInterrupt:  # before a run's own handler is in place, or a command without one
            from ..processes.stopping import EXIT_CTRL_C

            sys.stderr.write("Stopped by Ctrl-C.\n")
            return EXIT_CTRL_C

    def help(self):
        return self.help_text if self.help_text is not None else super().help()


class TaskMdHint:
    """A doit command that, in a folder with a task.md but no dodo.py and no doit.cfg
    naming the batch loader, says how to set it up instead of `Could not find dodo file`."""

    instead = f"for doit's own commands to read it, tell doit once, here:  {CONFIG_LINE}"

    def execute(self, params, args):
        try:
            return super().execute(params, args)
        except InvalidDodoFile:
            dodo = Path(params.get("dodoFile") or "dodo.py")
            if not isinstance(self.loader, DodoTaskLoader) or dodo.exists() or not Path("task.md").exists():
                raise
            raise InvalidDodoFile(f"no dodo.py here, but a task.md: {self.instead}") from None


class OutsideRuns:
    """A doit command that writes a batch's records (`forget`, `ignore`): it holds the run lock
    while it does, and is refused while a run holds it. A run reads those records as it starts
    and writes doit's as it goes: it would run an item ignored meanwhile, and a forget would be
    half done, the result set aside and doit's record written back."""

    def outside_runs(self, write: Callable[[], int]) -> int:
        batch = getattr(self.loader, "batch", None)
        if batch is None:  # a dodo.py's tasks: doit's own
            return write()
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(batch.state.run_lock(by=self.name))
            except BatchError as error:
                sys.stderr.write(f"ERROR: {error}\n")
                return EXIT_BAD_INPUT
            return write()


class List(FriendlyArgs, TaskMdHint, DoitList):
    pass


class Info(FriendlyArgs, TaskMdHint, DoitInfo):
    """doit's `info`; for a batch's item, what a person asks of it (item_info), not doit's internals.
    Its output is masked: task.md's commands may name a secret."""

    def _execute(self, pos_args, hide_status=False):  # doit passes options by these names
        self.outstream = MaskedText(self.outstream, Redactor(os.environ))
        task = next((t for t in self.task_list if len(pos_args) == 1 and t.name == pos_args[0]), None)
        batch = getattr(self.loader, "batch", None)
        if task is None or batch is None or "job" not in (task.meta or {}):
            return super()._execute(pos_args, hide_status=hide_status)
        from ..views.item_info import describe

        self.outstream.write("\n".join(describe(batch, task.meta["job"])) + "\n")
        return 1 if batch.verdicts[task.name].runs else 0


class Ignore(FriendlyArgs, TaskMdHint, OutsideRuns, DoitIgnore):
    def _execute(self, pos_args):  # doit passes options by these names
        return self.outside_runs(lambda: super(Ignore, self)._execute(pos_args))


class Run(TaskMdHint, DoitRun):
    # No FriendlyArgs: in a dodo.py, options after a task name are that task's own.
    instead = "run its items with `doit run-batch`"
