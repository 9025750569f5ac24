"""The `batch-tasks` command, for people who install the tool rather than work on it:
`batch-tasks [OPTIONS] [NAMES]` is `doit run-batch`, `batch-tasks status` is
`doit batch-status` (and `log`, `report`, `graph`), and doit's own `list`, `info`,
`forget`, `ignore` read task.md without a doit.cfg. `--version` says which version.

It only translates the command line for doit's own entry point; it reads and writes nothing.
"""

from __future__ import annotations

import shlex
import sys
from importlib import metadata
from pathlib import Path

from doit.doit_cmd import DoitMain

# The batch's commands by their short names; a first argument that is none of these
# (an option, a group, an item, or nothing) is run-batch's.
COMMANDS = {
    "run": "run-batch", "status": "batch-status", "log": "batch-log", "report": "batch-report", "graph": "batch-graph",
    "review": "batch-review", "list": "list", "info": "info", "forget": "forget", "ignore": "ignore", "help": "help",
}

USAGE = """\
usage: batch-tasks [OPTIONS] [GROUP | GROUP:MODULE ...]   run task.md (as `doit run-batch`)
       batch-tasks COMMAND [ARGS]

commands:
  run      run the open or stale items (the default; `batch-tasks run --help`)
  status   the board of the last run (`--watch` keeps it up to date)
  log      one item's attempts, tool calls and errors (`-f` follows it)
  report   a run as a page: timeline, costs, failures
  graph    what each item waits for (`--dot` for Graphviz)
  review   the items awaiting review; one's diff; `--approve` or `--reject WHY`
  list     the groups (`--all` the items, `--status` their state)
  info     one item: its state, and why it would run
  forget   make an item (or a group) run again
  ignore   leave an item out of runs

  --version  this tool's version; -h, --help  this help
Each command is also `doit run-batch`, `doit batch-status`, … (see the README).
"""


def typed(bin_name: str, command: str) -> str:
    """A doit command (`run-batch`, `batch-report`, …) as the user types it: with the
    program they started (`batch-tasks report`; `doit batch-report` from doit)."""
    if bin_name != "batch-tasks":
        return f"doit {command}"
    short = next((name for name, doit_command in COMMANDS.items() if doit_command == command and name != "run"), None)
    return "batch-tasks" if command == "run-batch" else f"batch-tasks {short or command}"


def rerun_command(taskfile: str, bin_name: str = "doit") -> str:
    """How to run this batch again, as typed: `-T FILE` unless it is the task.md found by default."""
    if Path(taskfile).absolute() == Path("task.md").absolute():
        return typed(bin_name, "run-batch")
    return f"{typed(bin_name, 'run-batch')} -T {shlex.quote(taskfile)}"


def version() -> str:
    return f"batch-tasks {metadata.version('batch-tasks')} (doit {metadata.version('doit')})"


def doit_args(args: list[str]) -> list[str]:
    """`args` of batch-tasks as doit's command line."""
    if args and args[0] in COMMANDS:
        return [COMMANDS[args[0]], *args[1:]]
    return ["run-batch", *args]


class _Main(DoitMain):
    BIN_NAME = "batch-tasks"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--version"]:
        print(version())
        return 0
    if args in (["-h"], ["--help"], ["help"]):
        sys.stdout.write(USAGE)
        return 0
    return _Main(extra_config={"GLOBAL": {"loader": "batch"}}).run(doit_args(args))


def run() -> None:
    sys.exit(main())
