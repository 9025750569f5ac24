"""Every use of doit's internals, in one place: what batch-tasks relies on that doit does
not promise. doit's public ways in (DoitCmdBase and `_execute`, Task, TaskLoader2, the
loader's configuration) are used where they are needed; what is here is not public, and
tests/test_doit_bridge.py has a test per internal, named for it, so that a doit upgrade
is this file and the tests that fail (pyproject.toml pins doit for this reason).

Relied on (doit 0.37):
- the task dispatcher's generator (`TaskDispatcher.generator`): sent the last node
  done, it yields a ready node, or `"hold on"` while every task left waits for one
  handed out; `TaskDispatcher.tasks`
- `Runner._handle_task_error` (every failure passes there), `Runner.final_result`,
  `Runner._stop_running`; `Runner.select_task` reads `Runner.always_execute`
- a Task's `uptodate` kept as `(value, args, kwargs)`, a value that is not callable taken by its truth
- `CmdParse`'s params: `_non_default_keys`, the options given on the command line
- `doit_cmd._CMDLINE_VARS`: the `NAME=VALUE` arguments doit took for itself, in order
- `Forget._execute` forgets through `dep_manager.remove` and `remove_all`
- the SQLite backend's schema: one table `doit (task_id, task_data)`; `doit ignore` kept
  as the key `ignore:` of a task's data; the backend's `_conn` (rows as dicts, `task_data`
  decoded) and `_cache` (what this process set, not yet written)

It reads and writes nothing of its own.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from doit import doit_cmd
from doit.exceptions import UnmetDependency
from doit.runner import Runner as DoitRunner

HOLD = object()  # no task is ready until one handed out is done
EXHAUSTED = object()  # no task is left to hand out


class ReadyTasks:
    """doit's task dispatcher, pulled one ready task at a time."""

    def __init__(self, task_dispatcher):
        self._generator = task_dispatcher.generator
        self.tasks = task_dispatcher.tasks  # every task by name, as select_task wants them

    def next(self, done=None):
        """The next ready node, after telling doit of DONE (a node it handed out that is
        over, or None): a node, HOLD or EXHAUSTED."""
        try:
            node = self._generator.send(done)
        except StopIteration:
            return EXHAUSTED
        return HOLD if node == "hold on" else node


class Runner(DoitRunner):
    """doit's Runner, with what run-batch changes of it: `-a` for some tasks only, and a
    task that did not start because one it depends on failed is not a failure of its own."""

    def __init__(self, dep_manager, reporter, continue_: bool = False, forced: frozenset[str] = frozenset()):
        super().__init__(dep_manager, reporter, continue_=continue_)
        self.forced = forced  # -a: these run even if they are up to date

    def select_task(self, node, tasks_dict):
        # doit's -a is one switch for every task it meets; here it holds for the forced ones alone.
        self.always_execute = node.task.name in self.forced
        return super().select_task(node, tasks_dict)

    @property
    def stops(self) -> bool:
        """Whether doit hands out no more tasks (a failure without --continue)."""
        return self._stop_running

    def _handle_task_error(self, node, base_fail):
        before = self.final_result
        super()._handle_task_error(node, base_fail)
        unmet = isinstance(base_fail, UnmetDependency)
        if unmet:
            # Not a failure of its own: the task it depends on is counted already.
            self.final_result = before
            self._stop_running = False
        self.task_failed(node, unmet)

    def task_failed(self, node, unmet_dependency: bool) -> None:
        """Told of every task that failed, or (UNMET_DEPENDENCY) was not started for one that did."""


def as_uptodate(value: Any) -> list:
    """A task's `uptodate` holding VALUE itself (doit takes its truth; `doit info` prints it)."""
    return [(value,)]


def uptodate_value(task) -> Any:
    """The value `as_uptodate` gave a task, or None."""
    return task.uptodate[0][0] if task.uptodate else None


def changed_options(params) -> set[str] | None:
    """The options given on the command line (not left at their default); None if unknown."""
    return getattr(params, "_non_default_keys", None)


def command_line_variables() -> list[tuple[str, str]]:
    """The `NAME=VALUE` arguments doit took as variables of its own, in order."""
    return list((getattr(doit_cmd, "_CMDLINE_VARS", None) or {}).items())


class ForgetsToo:
    """doit's dependency records, seen through `forget`: forgetting a task also calls ALSO
    with its name (`forget --all`: with every name of EVERY)."""

    def __init__(self, records, also: Callable[[str], None], every: Iterable[str]):
        self._records, self._also, self._every = records, also, list(every)

    def __getattr__(self, name):
        return getattr(self._records, name)

    def remove(self, task_id):
        self._records.remove(task_id)
        self._also(task_id)

    def remove_all(self):
        self._records.remove_all()
        for task_id in self._every:
            self._also(task_id)


def ignored(dep_manager, tasks) -> set[str]:
    """The names, of TASKS, that `doit ignore` marked: one query where the records are doit's
    SQLite (a query per task, as `status_is_ignore` asks, costs 10,000 of them for 10,000 items)."""
    backend = getattr(dep_manager, "backend", None)
    connection, unsaved = getattr(backend, "_conn", None), getattr(backend, "_cache", None)
    if connection is None or not isinstance(unsaved, dict):
        return {task.name for task in tasks if dep_manager.status_is_ignore(task)}
    rows = connection.execute("SELECT task_id, task_data FROM doit WHERE task_data LIKE '%ignore:%'").fetchall()
    marked = {row["task_id"]: row["task_data"] for row in rows}
    marked.update(unsaved)
    if not marked:  # the usual answer: nothing ignored, and no task to look up
        return set()
    return {task.name for task in tasks if (marked.get(task.name) or {}).get("ignore:")}


def dependency_records_hold_an_ignore(database: str) -> bool:
    """Whether any row of doit's SQLite records, read-only, holds a `doit ignore` mark. Raises sqlite3.Error."""
    import sqlite3  # here: only a run that may leave the no-op's stamp needs it
    from pathlib import Path

    connection = sqlite3.connect(f"{Path(database).as_uri()}?mode=ro", uri=True)
    try:
        return connection.execute("SELECT 1 FROM doit WHERE task_data LIKE '%ignore:%' LIMIT 1").fetchone() is not None
    finally:
        connection.close()
