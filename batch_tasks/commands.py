"""The doit commands batch-tasks adds: `run-batch`, `batch-status`, `batch-graph`, and a
`forget` that also forgets results.

`doit run-batch`, in steps: load (any mistake is exit 3, before anything is written)
→ lock (one run at a time per task file) → recover what a killed run owes → check the
agents → run, with the batch's own runner and dispatcher (or, with --dry-run, explain).
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import textwrap
from pathlib import Path

from doit.cmd_base import DoitCmdBase, tasks_and_deps_iter
from doit.cmd_forget import Forget as DoitForget
from doit.control import TaskControl

from . import agent_sandbox
from . import batch as batch_mod
from . import (executors, forecast, graph, history, nothing_to_do, outside_settings, process, recovery,
               repository_guard, retry, touches)
from .agents import AGENTS
from .board import AWAITING_REVIEW, DONE, Board
from .cli import EXIT_AWAITING_REVIEW, EXIT_BAD_INPUT, EXIT_FAILED, EXIT_NOT_ALL_STARTED, MAKE_SPELLINGS, RUN_BATCH_HELP, FriendlyArgs, TaskMdHint, flag
from .dispatcher import Dispatcher, candidates
from .doit_bridge import ForgetsToo
from .doit_tasks import item_job
from .errors import BatchError
from .executors.local import LocalExecutor
from .executors.seam import RunTools
from .item_status import UNREADABLE, ItemStatus, unreadable_error
from .joblog import JobLog
from .prompt_context import check_prompts, prompt_context
from .live_view import view_for
from .loader import BatchLoader
from .main import typed
from .merge_queue import MergeQueue
from .notify import Notifier
from .settings import FIELDS
from .prompt import render as render_prompt
from .redaction import Redactor
from .reporter import BatchReporter
from .review import review_command
from .run import Run
from .run_summary import summary
from .runner import BatchRunner
from .state import BatchState
from .stopping import GuardedOutput, Stop
from .worktree import Isolation

CONFIG_HINT = (
    "hint: for `doit list`, `doit info` and `doit forget` to read task.md here, "
    "add to doit.cfg (once):  [GLOBAL] loader = batch   (see the README)"
)

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


class _ReadsTaskFile:
    """A command that reads task.md whatever the folder's doit configuration says."""

    def __init__(self, task_loader=None, **kwargs):
        loader = task_loader if isinstance(task_loader, BatchLoader) else BatchLoader()
        if task_loader is not None:
            loader.cmd_names, loader.config = task_loader.cmd_names, task_loader.config
        super().__init__(task_loader=loader, **kwargs)


class RunBatch(FriendlyArgs, _ReadsTaskFile, DoitCmdBase):
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

    def parse_execute(self, in_args):
        return super().parse_execute(outside_settings.given_back(list(in_args)))

    def execute(self, params, args):
        path = Path(params["taskfile"]).absolute()
        self.loader.optional = params.get("optional", False)
        try:
            self._rerun = rerun_command(params["taskfile"], self.bin_name)
            state = BatchState(path)  # before loading: a no-op is answered without it
            seen = nothing_to_do.look(state, self.config) if nothing_to_do.may_answer(params, args) else None
            if seen is not None and (said := nothing_to_do.answer(state, seen)) is not None:
                return self._say_nothing_to_do(said)
            # Every mistake is found before anything is written.
            looks_only = params.get("dry_run") or params.get("question")
            how = {"optional": params.get("optional", False), "sets": tuple(params.get("set") or ())}
            batch = batch_mod.load(path, for_dry_run=looks_only, **how)
            told = [] if params.get("question") else _tell_how_it_was_read(batch, dry_run=params.get("dry_run"))
            executors.check(batch, params.get("executor", ""), params.get("scheduler", ""),
                            {item.key for item in batch.plan.items() if batch.verdicts[item.key].runs or params.get("always")})
            if looks_only:
                self.loader.batch = batch
                return super().execute(params, args)
            if args or params.get("always") or params.get("failed") or any(v.runs for v in batch.verdicts.values()):
                # What runs comes from task.md as it is: an agent can write (and sign) the plan cache.
                batch = batch_mod.load(path, trust_cache=False, **how)
            if not args and not params.get("failed") and not params.get("always"):
                self._check(batch, {item.key for item in batch.plan.items()
                                    if batch.verdicts[item.key].runs and (params.get("optional") or not item.optional)})
            with batch.state.run_lock(workers=_workers(params.get("num_process"), batch)):
                recovered = recovery.owed(batch)
                if recovered:
                    for note in recovery.recover(batch, waiting=self._say_waiting):
                        self.outstream.write(f"recovered: {note}\n")
                    batch = batch_mod.load(path, trust_cache=False, **how)  # as the repairs left it
                self.loader.batch = batch
                code = super().execute(params, args)
                if seen is not None and not recovered:
                    self._keep_nothing_to_do(seen, batch, told)
                return code
        except BatchError as error:
            sys.stderr.write(f"ERROR: {error}\n")
            return EXIT_BAD_INPUT

    _found_nothing_to_do: dict | None = None  # set by _execute: what a run with nothing to do said
    _ran_to_the_end: tuple[list, dict] | None = None  # set by _execute: the items a run ran, all done, and what next

    def _keep_nothing_to_do(self, seen, batch, told: list[str]) -> None:
        """A stamp for the next run (see nothing_to_do), if this one found nothing to do, or
        left nothing to do."""
        # An isolated batch's load also asks git whether its repository is fit: never skipped.
        if (self._found_nothing_to_do is None and self._ran_to_the_end is None
                or any(g.settings["isolation"] == "worktree" for g in batch.plan.groups)):
            nothing_to_do.forget(batch.state)
            return
        templates = {group.settings["template"]: batch.templates[group.slug].source for group in batch.plan.groups}
        if self._ran_to_the_end is not None:
            ran, said = self._ran_to_the_end
            nothing_to_do.write_after_run(batch.state, self.config, seen, ran, templates.items(), {**said, "told": told})
            return
        nothing_to_do.write(batch.state, self.config, seen, templates.items(), {**self._found_nothing_to_do, "told": told})

    def _say_nothing_to_do(self, said: dict) -> int:
        """What a full load would say of a batch with nothing to do (see nothing_to_do)."""
        if said["told"]:
            sys.stderr.write("\n".join(said["told"]) + "\n")
        self._hint_at_config()
        board = Board([], already_done=said["already_done"], begun=process.process_started())
        view_for(self.outstream, board).close(summary(board, said["notes"], rerun=self._rerun))
        return 0

    def _hint_at_config(self) -> None:
        if self.config.get("GLOBAL", {}).get("loader") != "batch":
            sys.stderr.write(CONFIG_HINT + "\n")

    def _say_waiting(self, text: str) -> None:
        """Recovery waits for a remote agent a killed run left running: said at once, not after."""
        self.outstream.write(f"recovering: {text}\n")
        self.outstream.flush()

    def _check(self, batch, will_run: set[str]) -> None:
        """What would stop the run, found before it starts: a template asking for what is not
        there, a damaged record, an agent CLI that is not installed. Without a selection this
        runs before the lock and doit's database are touched, so such a run writes nothing."""
        check_prompts((item_job(batch, index, group, item) for index, group in enumerate(batch.plan.groups)
                       for item in group.items if item.key in will_run), batch.state)
        _check_readable(batch, will_run)
        _check_agents(batch, will_run)
        self._checked = frozenset(will_run)

    _checked: frozenset = frozenset()
    _rerun = "doit run-batch"

    def _execute(self, num_process=0, continue_=False, always=False, upstream=False, dry_run=False, question=False,
                 joblog="", failed=False, optional=False, executor="", scheduler="", prompts=False, set=(),
                 no_wait_review=False):
        batch = self.loader.batch
        control = TaskControl(self.task_list)
        control.process(_failed_last_time(batch) if failed else self.sel_tasks)
        selected = {task.name for task in tasks_and_deps_iter(control.tasks, control.selected_tasks)}
        forced = _forced(control, selected) if upstream else _forced(control, control.selected_tasks) if always else frozenset()
        will_run = {key for key, verdict in batch.verdicts.items() if key in selected and (verdict.runs or key in forced)}
        if question:
            return EXIT_FAILED if self._would_run(batch, control, selected, forced)[1] else 0
        if dry_run:
            check_prompts((control.tasks[key].meta["job"] for key in sorted(will_run)), batch.state)
            return self._dry_run(batch, control, selected, forced, prompts, _workers(num_process, batch))
        if not will_run <= self._checked:  # a selection: checked now, under the lock
            self._check(batch, will_run)
        self._hint_at_config()
        workers = _workers(num_process, batch)
        supervisor = process.Supervisor.for_run()
        redactor = Redactor(os.environ, also=[os.environ[name] for name in batch.plan.settings.get("pass_env", ())
                                              if name in os.environ])
        stop = Stop(supervisor)
        self.outstream = GuardedOutput(self.outstream, stop)
        durations = {key: verdict.duration_s for key, verdict in batch.verdicts.items()}
        estimates = forecast.of_batch(batch, will_run) if will_run else {}
        if estimates:
            self.outstream.write(forecast.total(estimates) + "\n")
        isolation = repository = merge_queue = None
        if any(g.settings["isolation"] == "worktree" and any(i.key in will_run for i in g.items) for g in batch.plan.groups):
            isolation = Isolation(batch.plan.path, batch.plan.settings, supervisor, workdir=batch.workdir,
                                  state=batch.state)
            isolation.prepare()
            repository = repository_guard.note(isolation.top)
            said = {name: batch.plan.settings.get(name, FIELDS[name].default)
                    for name in ("check_parallel", "merge_batch", "check_flaky_retries")}
            merge_queue = MergeQueue(isolation, said["check_parallel"] or os.cpu_count() or 1,
                                     said["merge_batch"], said["check_flaky_retries"])
        tools = RunTools(supervisor, redactor, isolation, lambda who, text: run.hub.publish("notice", who, text))
        run = Run(budget=batch.budget, state=batch.state,
                  report_error=lambda message: sys.stderr.write(f"batch-tasks: {message}\n"),
                  executor=executors.choose(batch, executor, scheduler, tools) if will_run else LocalExecutor(supervisor, redactor),
                  supervisor=supervisor, redactor=redactor, isolation=isolation, merge_queue=merge_queue,
                  repository=repository, forecast={key: estimate.usd for key, estimate in estimates.items()},
                  waits_for_reviews=not no_wait_review)
        dispatcher = Dispatcher(workers, batch.plan.settings.get("max_concurrent"), run.budget)
        reporter = BatchReporter(self.outstream, {}, workers=workers, run=run, forced=forced, rerun=self._rerun)
        runner = BatchRunner(
            self.dep_manager,
            reporter,
            run,
            dispatcher,
            candidates(batch.plan, durations, estimates) if will_run else {},
            continue_=continue_,
            forced=forced,
            predict=touches.Predictor(batch.plan, batch.state) if _keeps_apart(batch, workers) else None,
        )
        recorders = None
        if will_run:
            recorders = history.Recorders(history.History(batch.state.root, run.run_id), JobLog(joblog) if joblog else None)
            recorders.run_started({**history.run_meta(batch, ["doit", *sys.argv[1:]], workers, will_run),
                                   "forecast": run.forecast})
            run.hub.subscribe(recorders)
        notifier = None
        if batch.plan.settings.get("notify"):
            notifier = Notifier(batch.plan.settings["notify"], str(batch.plan.path), run.run_id, run.redactor,
                                run.report_error, lambda key: review_command(key, self.bin_name))
            run.hub.subscribe(notifier)
        with stop.on_signals():
            result = runner.run_all(control.task_dispatcher())
        if stop.causes:
            self.outstream.write(
                f"\nStopped by {stop.causes[0]}. Completed items are recorded; "
                f"run `{self._rerun}` again to do the rest.\n"
            )
            code = stop.exit_status
        elif result and runner.left_awaiting_review and not reporter.board.totals()["failed"]:
            code = EXIT_AWAITING_REVIEW
        elif result:
            code = EXIT_FAILED
        else:
            code = EXIT_NOT_ALL_STARTED if runner.not_started else 0
        run.executor.close()
        board = reporter.board
        if code == 0 and not will_run and run.isolation is None and not board.snapshot():
            self._found_nothing_to_do = {"already_done": board.already_done,
                                         "notes": [run.budget.note()] if run.budget.note() else []}
        elif code == 0 and run.isolation is None and not run.budget.note() and board.items.keys() == will_run \
                and all(view.state == DONE for view in board.snapshot()):
            # What a full load would say next: every item it selects is done.
            self._ran_to_the_end = ([item for item in batch.plan.items() if item.key in will_run],
                                    {"already_done": board.already_done + len(will_run), "notes": []})
        if run.merge_queue is not None:
            run.merge_queue.close()
        if run.isolation is not None:
            run.isolation.close()
            self.outstream.write(run.isolation.how_to_take() + "\n")
            landed = {key: record for key, record in reporter.records.items()
                      if (record.get("merge") or {}).get("status") == "merged" and not record.get("failed")}
            if batch.plan.settings.get("land") == "pr-batch" and landed:
                from .pull_request import open_for_batch

                self.outstream.write(open_for_batch(run.isolation, batch.plan.settings, batch.plan.title, landed,
                                                    run.redactor, run.run_id) + "\n")
        if notifier is not None:
            totals = reporter.board.totals()
            notifier.run_ended(code, {"done": totals["done"], "failed": totals["failed"],
                                      "awaiting_review": totals[AWAITING_REVIEW], "interrupted": totals["interrupted"]})
        if recorders is not None:
            run.hub.unsubscribe(recorders)
            recorders.run_ended({"exit_status": code, "stopped_by": stop.causes[0] if stop.causes else None})
            self.outstream.write(f"report: {typed(self.bin_name, 'batch-report')} --run {run.run_id}  (writes report.html)\n")
        return code

    def _would_run(self, batch, control, selected: set[str], forced: frozenset[str]) -> tuple[list, list, list]:
        """The selected items; those of them that would run, with why; and those `doit ignore` left out."""
        chosen = [item for item in batch.plan.items() if item.key in selected]
        ignored = [item for item in chosen if self.dep_manager.status_is_ignore(control.tasks[item.key])]

        def reason(item):
            verdict = batch.verdicts[item.key]
            return verdict.reason if verdict.runs else ("forced (-a)" if item.key in forced else None)

        return chosen, [(item, why) for item in chosen if item not in ignored and (why := reason(item)) is not None], ignored

    def _dry_run(self, batch, control, selected: set[str], forced: frozenset[str], prompts: bool = False,
                 workers: int = 1) -> int:
        chosen, stale, ignored = self._would_run(batch, control, selected, forced)
        width = max((len(item.key) for item, _ in stale), default=0)
        estimates = forecast.of_batch(batch, (item.key for item, _ in stale))
        apart = _kept_apart(batch, [item.key for item, _ in stale], workers)
        for item, why in stale:
            self.outstream.write(f"{item.key:<{width}}  {why}\n")
            self.outstream.write(f"{'':<{width}}    after: {graph.waits_for(batch.plan, item)}\n")
            if item.key in apart:
                self.outstream.write(f"{'':<{width}}    kept apart from: {graph.apart_from(apart[item.key])}\n")
            if item.key in estimates:
                self.outstream.write(f"{'':<{width}}    cost: {forecast.line(estimates[item.key])}\n")
            if prompts:
                job = control.tasks[item.key].meta["job"]
                text = render_prompt(job.template, prompt_context(job, batch.state, []))
                self.outstream.write(textwrap.indent(text, "    | ", lambda line: True))
        self._tell_adjustments(batch.plan, {item.group for item, _ in stale})
        left_out = [item for item in batch.plan.items() if item.optional and item.key not in control.tasks]
        for item in left_out:
            self.outstream.write(f"{item.key}  skipped (optional: run with --optional)\n")
        self.outstream.write(f"{len(stale)} would run, {len(chosen) - len(stale) - len(ignored)} up to date"
                             + (f", {len(ignored)} ignored (`doit forget` it to run it)" if ignored else "")
                             + (f", {len(left_out)} optional left out" if left_out else "") + "\n")
        if estimates:
            self.outstream.write(forecast.total(estimates) + "\n")
        return 0


    def _tell_adjustments(self, plan, groups: set[str]) -> None:
        """How a failed attempt's next one would be adjusted, by cause (retry.py): once, or per
        group where hints differ. Indented, as all but the items' own lines are."""
        policies: dict[str, list[str]] = {}
        for group in plan.groups:
            if group.slug in groups:
                lines = retry.describe_adjust(group.settings["adjust"], group.settings.get("escalate"))
                policies.setdefault("\n".join(lines), []).append(group.slug)
        for lines, slugs in policies.items():
            where = f" in {', '.join(slugs)}" if len(policies) > 1 else ""
            self.outstream.write(f"  a failed attempt's next one{where}, by cause (adjust:, escalate:):\n")
            self.outstream.write("".join(f"    {line}\n" for line in lines.splitlines()))


def _tell_how_it_was_read(batch, dry_run: bool) -> list[str]:
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


def _forced(control, names) -> frozenset[str]:
    """What -a runs even if it is current: the named items, and every item of a named group."""
    tasks = control.tasks
    return frozenset(name for named in names for name in [named, *(tasks[named].task_dep if tasks[named].has_subtask else ())])


def _failed_last_time(batch) -> list[str]:
    """The items whose last attempt failed (GNU parallel's --resume-failed)."""
    return [key for key, verdict in batch.verdicts.items() if verdict.reason.startswith("failed last time")]


def _check_readable(batch, will_run: set[str]) -> None:
    """A finished item whose records are damaged is not run (and paid for) again unasked."""
    for key in sorted(will_run):
        verdict = batch.verdicts[key]
        if verdict.problem:
            raise unreadable_error(key, ItemStatus(UNREADABLE, problem=verdict.problem))


def _check_agents(batch, will_run: set[str]) -> None:
    """Every agent CLI the run will need is there, or one error before anything runs."""
    for group in batch.plan.groups:
        if not any(item.key in will_run for item in group.items):
            continue
        name = group.settings["agent"]
        program = AGENTS[name].executable or group.settings["command"][0]
        found = shutil.which(program) if "/" not in program else shutil.which(batch.workdir / program)
        if found is None:
            what = f"agent {name!r} needs the {program} command on PATH"
            raise BatchError(what if name != "command" else f"group {group.slug!r}: {program!r} is not a program on PATH")
    agent_sandbox.preflight(group for group in batch.plan.groups if any(item.key in will_run for item in group.items))


class Forget(FriendlyArgs, TaskMdHint, DoitForget):
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
        return super()._execute(forget_sub, forget_disable_default, forget_all)


def _workers(num_process: int | None, batch) -> int:
    return num_process or batch.plan.settings.get("parallel") or 1


def _keeps_apart(batch, workers: int) -> bool:
    """Whether items predicted to touch one file are kept apart: not with `keep_apart: false`,
    nor where one item runs at a time anyway."""
    return workers >= 2 and batch.plan.settings.get("keep_apart") is not False


def _kept_apart(batch, will_run=None, workers: int = 2) -> dict[str, list[tuple[str, str]]]:
    """Which items the dispatcher keeps apart, and why: `--dry-run` and `batch-graph` say so."""
    predicted = touches.predict(batch.plan, batch.state, will_run) if _keeps_apart(batch, workers) else {}
    return graph.kept_apart(batch.plan, predicted) if predicted else {}


def rerun_command(taskfile: str, bin_name: str = "doit") -> str:
    """How to run this batch again, as typed: `-T FILE` unless it is the task.md found by default."""
    if Path(taskfile).absolute() == Path("task.md").absolute():
        return typed(bin_name, "run-batch")
    return f"{typed(bin_name, 'run-batch')} -T {shlex.quote(taskfile)}"


opt_dot = flag("dot", "print Graphviz dot (doit batch-graph --dot | dot -Tsvg > batch.svg)")


class BatchGraph(FriendlyArgs, _ReadsTaskFile, DoitCmdBase):
    name = "batch-graph"
    doc_purpose = "show what each item waits for (text, or Graphviz dot)"
    doc_usage = "[--dot]"
    doc_description = ("Groups in order; under each, every item, what it waits for, and which items it is kept "
                       "apart from (both predicted to touch one file).")
    cmd_options = (opt_dot,)

    def _execute(self, dot=False):
        plan = self.loader.batch.plan
        apart = _kept_apart(self.loader.batch)
        self.outstream.write(graph.as_dot(plan, apart) if dot else graph.as_text(plan, apart))
        return 0
