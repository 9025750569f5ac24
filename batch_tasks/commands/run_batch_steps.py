"""The steps of `doit run-batch` (commands.py lists them in order): each a function of what
the step before handed over, returning what the next takes, or an exit status that ends
the run there. Before doit loads its tasks: look for a no-op's stamp, load, check, lock,
recover; once doit has: select, answer -q, explain --dry-run, check a selection (the run
itself, prepare, dispatch and close up, is run_batch_dispatch.py's); at the end, keep the
no-op stamp. The modules that load, check and explain a batch are imported by the steps
that use them: a run answered by its stamp imports none of them.

Owns the course of one run-batch, not its parts: loading is tasks/batch.py's, recovery is
recovery.py's, the stamp nothing_to_do.py's. Writes only through them, and nothing
before the lock; doit's internals stay behind doit_bridge.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TextIO

from doit.cmd_base import tasks_and_deps_iter
from doit.control import TaskControl

from ..state.state import BatchState
from ..tasks import nothing_to_do
from .cli import EXIT_FAILED

if TYPE_CHECKING:
    from ..tasks.batch import Batch

CONFIG_HINT = (
    "hint: for `doit list`, `doit info` and `doit forget` to read task.md here, "
    "add to doit.cfg (once):  [GLOBAL] loader = batch   (see the README)"
)


def run_steps(steps, given):
    """Feeds GIVEN to the first step, what it returns to the next, and so on; an exit status
    (an int) ends the course there."""
    for step in steps:
        given = step(given)
        if isinstance(given, int):
            return given
    return given


class Given(NamedTuple):
    """What the command line says, where to write, and what the run holds until it ends."""
    path: Path
    params: Any  # doit's parsed options
    args: tuple[str, ...]
    config: Any  # doit's configuration
    bin_name: str
    rerun: str  # how to run this batch again, as typed
    out: TextIO
    held: ExitStack  # the lock, once taken

    def option(self, name: str):
        return self.params.get(name)

    @property
    def looks_only(self) -> bool:
        return bool(self.option("dry_run") or self.option("question"))

    @property
    def how(self) -> dict:
        return {"optional": self.option("optional") or False, "sets": tuple(self.option("set") or ())}


class Looked(NamedTuple):
    given: Given
    seen: Any  # nothing_to_do's look at the state folder, or None


class Loaded(NamedTuple):
    given: Given
    seen: Any
    batch: Batch
    told: list  # how task.md was read, as said on standard error
    checked: frozenset = frozenset()  # the items checked before the lock
    recovered: bool = False
    killed_before: bool = False  # run.lock said the run before was killed


class DoitTasks(NamedTuple):
    """What doit hands back once it has loaded the batch's tasks."""
    loaded: Loaded
    task_list: list
    names: Any  # the tasks named on the command line (doit's sel_tasks)
    dep_manager: Any


class Selected(NamedTuple):
    loaded: Loaded
    control: TaskControl
    selected: frozenset  # the named items and all they wait for
    forced: frozenset  # -a (with --upstream, all they wait for too)
    will_run: frozenset
    workers: int
    dep_manager: Any


class Ended(NamedTuple):
    loaded: Loaded
    code: int
    found_nothing_to_do: dict | None = None  # what a run with nothing to do said
    ran_to_the_end: tuple | None = None  # the items a run ran, all done, and what a full load would say next


def answer_from_the_stamp(given: Given) -> Looked | int:
    """A plain run whose batch has not changed since a run that left nothing to do says
    that run's answer without loading it (see nothing_to_do)."""
    state = BatchState(given.path)
    seen = nothing_to_do.look(state, given.config) if nothing_to_do.may_answer(given.params, list(given.args)) else None
    if seen is not None and (said := nothing_to_do.answer(state, seen)) is not None:
        if said["told"]:
            sys.stderr.write("\n".join(said["told"]) + "\n")
        hint_at_config(given)
        from ..processes.started import process_started
        from ..views.board import Board
        from ..views.live_view import view_for
        from ..views.run_summary import summary

        board = Board([], already_done=said["already_done"], begun=process_started())
        view_for(given.out, board).close(summary(board, said["notes"], rerun=given.rerun))
        return 0
    return Looked(given, seen)


def load(looked: Looked) -> Loaded:
    """Every mistake is found here, before anything is written."""
    from .. import executors
    from ..tasks import batch as batch_mod

    given = looked.given
    batch = batch_mod.load(given.path, for_dry_run=given.looks_only, **given.how)
    told = [] if given.option("question") else tell_how_it_was_read(batch, dry_run=given.option("dry_run"))
    executors.check(batch, given.option("executor") or "", given.option("scheduler") or "",
                    {item.key for item in batch.plan.items() if batch.verdicts[item.key].runs or given.option("always")})
    if not given.looks_only and not batch.parsed and (given.args or given.option("always") or given.option("failed")
                                                      or any(v.runs for v in batch.verdicts.values())):
        # What runs comes from task.md as it is: an agent can write (and sign) the plan cache. A
        # batch without a cache (a first run) was parsed from it already.
        batch = batch_mod.load(given.path, trust_cache=False, **given.how)
    return Loaded(given, looked.seen, batch, told)


def check_before_the_lock(loaded: Loaded) -> Loaded:
    """Without a selection, a run that would stop at once writes nothing: checked before
    the lock and doit's records are touched (a selection is checked once doit selects)."""
    given, batch = loaded.given, loaded.batch
    if given.looks_only or given.args or given.option("failed") or given.option("always"):
        return loaded
    from . import preflight  # only for a run about to start: a dry run and -q never get here

    will_run = {item.key for item in batch.plan.items()
                if batch.verdicts[item.key].runs and (given.option("optional") or not item.optional)}
    return loaded._replace(checked=preflight.check(batch, will_run))


def lock(loaded: Loaded) -> Loaded:
    """One run at a time per task file, held until the run ends."""
    if loaded.given.looks_only:
        return loaded
    held = loaded.batch.state.run_lock(workers=workers(loaded.given, loaded.batch))
    killed_before = loaded.given.held.enter_context(held)
    return loaded._replace(killed_before=killed_before)


def recover(loaded: Loaded) -> Loaded:
    """What a killed run owes (see recovery), then the batch as the repairs left it."""
    given = loaded.given
    if given.looks_only:
        return loaded
    from ..run import recovery  # a dry run or -q recovers nothing: it reads the records as they are
    from ..tasks import batch as batch_mod

    if not recovery.owed(loaded.batch, loaded.killed_before):
        return loaded

    def say_waiting(text: str) -> None:  # recovery may wait for a remote agent: said at once, not after
        given.out.write(f"recovering: {text}\n")
        given.out.flush()

    for note in recovery.recover(loaded.batch, waiting=say_waiting, killed_before=loaded.killed_before):
        given.out.write(f"recovered: {note}\n")
    return loaded._replace(batch=batch_mod.load(given.path, trust_cache=False, **given.how), recovered=True)


def select(tasks: DoitTasks) -> Selected:
    """The items named (or those that failed last time, with --failed), all they wait for,
    which of them -a forces, and which will run."""
    given, batch = tasks.loaded.given, tasks.loaded.batch
    control = TaskControl(tasks.task_list)
    control.process([key for key, verdict in batch.verdicts.items() if verdict.reason.startswith("failed last time")]
                    if given.option("failed") else tasks.names)
    selected = frozenset(task.name for task in tasks_and_deps_iter(control.tasks, control.selected_tasks))
    forced = (_forced(control, selected) if given.option("upstream")
              else _forced(control, control.selected_tasks) if given.option("always") else frozenset())
    will_run = frozenset(key for key, verdict in batch.verdicts.items()
                         if key in selected and (verdict.runs or key in forced))
    return Selected(tasks.loaded, control, selected, forced, will_run, workers(given, batch), tasks.dep_manager)


def answer_the_question(chosen: Selected) -> Selected | int:
    """-q: exit 1 if any item would run, else 0; nothing printed."""
    if not chosen.loaded.given.option("question"):
        return chosen
    from ..views import dry_run

    _, stale, _ = dry_run.would_run(chosen.loaded.batch, chosen.control.tasks, chosen.dep_manager, chosen.selected,
                                    chosen.forced)
    return EXIT_FAILED if stale else 0


def explain(chosen: Selected) -> Selected | int:
    """--dry-run: every item that would run, and why (see dry_run); nothing runs."""
    given, batch = chosen.loaded.given, chosen.loaded.batch
    if not given.option("dry_run"):
        return chosen
    from ..run import prompt_check_stamp
    from ..views import dry_run

    prompt_check_stamp.check_once(batch, sorted(chosen.will_run))
    return dry_run.explain(given.out, batch, chosen.control.tasks, chosen.dep_manager, chosen.selected, chosen.forced,
                           given.option("prompts"), chosen.workers)


def check_the_selection(chosen: Selected) -> Selected:
    """A selection (or -a, --failed) is checked now, under the lock."""
    if not chosen.will_run <= chosen.loaded.checked:
        from . import preflight

        preflight.check(chosen.loaded.batch, chosen.will_run)
    hint_at_config(chosen.loaded.given)
    return chosen


def keep_the_stamp(ended: Ended) -> int:
    """A stamp for the next run (see nothing_to_do), if this one found nothing to do, or
    left nothing to do; else the last one is forgotten."""
    loaded = ended.loaded
    batch, told = loaded.batch, loaded.told
    if loaded.seen is None or loaded.recovered:
        return ended.code
    # An isolated batch's load also asks git whether its repository is fit: never skipped.
    if (ended.found_nothing_to_do is None and ended.ran_to_the_end is None
            or any(g.settings["isolation"] == "worktree" for g in batch.plan.groups)):
        nothing_to_do.forget(batch.state)
        return ended.code
    templates = {group.settings["template"]: batch.templates[group.slug].source for group in batch.plan.groups}
    if ended.ran_to_the_end is not None:
        ran, said = ended.ran_to_the_end
        nothing_to_do.write_after_run(batch.state, loaded.given.config, loaded.seen, ran, templates.items(),
                                      {**said, "told": told})
    else:
        nothing_to_do.write(batch.state, loaded.given.config, loaded.seen, templates.items(),
                            {**ended.found_nothing_to_do, "told": told})
    return ended.code


def tell_how_it_was_read(batch, dry_run: bool) -> list[str]:
    """How task.md was read (its dialect, when not this tool's own), where its items run (when
    not in its folder), and each warning and note at its line, on standard error, before
    anything else; returns those lines."""
    plan = batch.plan
    name = plan.path.name
    lines = [plan.dialect_reason] if plan.dialect_reason and (dry_run or plan.dialect != "batch") else []
    if dry_run or batch.workdir != plan.path.parent:
        lines.append(f"items run in {batch.workdir}: {batch.workdir_reason}")
    if dry_run and plan.setting_sources:
        given = ", ".join(f"{name} ({where})" for name, where in plan.setting_sources.items())
        lines.append(f"settings given: {given}")
    lines += [f"{name}:{line}: warning: {message}" for line, message in plan.warnings]
    lines += [f"{name}:{line}: note: {message}" for line, message in plan.notes]
    if dry_run and plan.agent_problem is not None:
        lines.append(f"{plan.agent_error()} (a run would stop here)")
    if lines:
        sys.stderr.write("\n".join(lines) + "\n")
    return lines


def hint_at_config(given: Given) -> None:
    if given.config.get("GLOBAL", {}).get("loader") != "batch":
        sys.stderr.write(CONFIG_HINT + "\n")


def workers(given: Given, batch) -> int:
    return given.option("num_process") or batch.plan.settings.get("parallel") or 1


def _forced(control, names) -> frozenset[str]:
    """What -a runs even if it is current: the named items, and every item of a named group."""
    tasks = control.tasks
    return frozenset(name for named in names for name in [named, *(tasks[named].task_dep if tasks[named].has_subtask else ())])
