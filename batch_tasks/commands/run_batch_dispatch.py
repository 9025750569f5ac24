"""The run itself, run-batch's steps once the items are selected (commands.py lists them,
run_batch_steps.py holds those before): prepare the run's state, isolation, executor,
runner and listeners; dispatch until no item is left or the run is stopped; close up
(what is open closed, pr-batch's pull request, notify: and the history told the end).
Each a function of what the step before handed over. Builds the run's parts and wires
them; what each writes is its own (the runner, the merge queue, history, notify).
"""

from __future__ import annotations

import gc
import os
import sys
from typing import TYPE_CHECKING, NamedTuple

from ..main import typed
from ..views.board import AWAITING_REVIEW, DONE
from .cli import EXIT_AWAITING_REVIEW, EXIT_FAILED, EXIT_NOT_ALL_STARTED
from .run_batch_steps import Ended, Selected

if TYPE_CHECKING:
    from ..isolation.worktree import Isolation
    from ..landing.merge_queue import MergeQueue
    from ..landing.notify import Notifier
    from ..processes import process
    from ..processes.stopping import GuardedOutput, Stop
    from ..repository import repository_guard
    from ..run import history
    from ..run.run import Run
    from ..run.runner import BatchRunner
    from ..views.reporter import BatchReporter


class Prepared(NamedTuple):
    selected: Selected
    run: Run
    stop: Stop
    out: GuardedOutput  # what the run writes goes through it: a closed output stops the run
    reporter: BatchReporter
    runner: BatchRunner
    recorders: history.Recorders | None
    notifier: Notifier | None


class Dispatched(NamedTuple):
    prepared: Prepared
    code: int



def prepare(chosen: Selected) -> Prepared:
    """The run's state, its isolation and merge queue, its executor, the runner and
    dispatcher, and who listens to its events (the history, the joblog, notify:)."""
    # The run's machinery is imported here, where a run starts: a dry run, -q or a no-op
    # never gets this far, and importing it cost each of them a tenth of their time.
    from .. import executors
    from ..executors.local import LocalExecutor
    from ..executors.seam import RunTools
    from ..landing.notify import Notifier
    from ..landing.review import review_command
    from ..processes import process
    from ..processes.stopping import GuardedOutput, Stop
    from ..redaction import Redactor
    from ..run import forecast, history
    from ..run.dispatcher import Dispatcher, candidates
    from ..run.run import Run
    from ..run.runner import BatchRunner
    from ..state import touches
    from ..state.joblog import JobLog
    from ..views import dry_run
    from ..views.reporter import BatchReporter

    # What was loaded stays out of the collector's walks (run-batch loads without it); it
    # collects again from here, on what the run makes.
    gc.freeze()
    gc.enable()
    given, batch, will_run = chosen.loaded.given, chosen.loaded.batch, chosen.will_run
    supervisor = process.Supervisor.for_run()
    redactor = Redactor(os.environ, also=[os.environ[name] for name in batch.plan.settings.get("pass_env", ())
                                          if name in os.environ])
    stop = Stop(supervisor)
    out = GuardedOutput(given.out, stop)
    estimates = forecast.of_batch(batch, will_run) if will_run else {}
    if estimates:
        out.write(forecast.total(estimates) + "\n")
    isolation = repository = merge_queue = None
    if any(g.settings["isolation"] == "worktree" and any(i.key in will_run for i in g.items) for g in batch.plan.groups):
        isolation, repository, merge_queue = _isolate(batch, supervisor)
    # The executor's notices go to the run's hub: the run is made after its executor, and the hub with it.
    tools = RunTools(supervisor, redactor, isolation, lambda who, text: run.hub.publish("notice", who, text))
    executor = (executors.choose(batch, given.option("executor") or "", given.option("scheduler") or "", tools)
                if will_run else LocalExecutor(supervisor, redactor))
    run = Run(budget=batch.budget, state=batch.state,
              report_error=lambda message: sys.stderr.write(f"batch-tasks: {message}\n"),
              executor=executor, supervisor=supervisor, redactor=redactor, isolation=isolation,
              merge_queue=merge_queue, repository=repository,
              forecast={key: estimate.usd for key, estimate in estimates.items()},
              waits_for_reviews=not given.option("no_wait_review"))
    reporter = BatchReporter(out, {}, workers=chosen.workers, run=run, forced=chosen.forced, rerun=given.rerun)
    durations = {key: verdict.duration_s for key, verdict in batch.verdicts.items()}
    runner = BatchRunner(
        chosen.dep_manager, reporter, run,
        Dispatcher(chosen.workers, batch.plan.settings.get("max_concurrent"), run.budget),
        candidates(batch.plan, durations, estimates) if will_run else {},
        continue_=bool(given.option("continue")),
        forced=chosen.forced,
        predict=touches.Predictor(batch.plan, batch.state) if dry_run.keeps_apart(batch, chosen.workers) else None,
    )
    recorders = None
    if will_run:
        joblog = given.option("joblog")
        recorders = history.Recorders(history.History(batch.state.root, run.run_id), JobLog(joblog) if joblog else None)
        recorders.run_started({**history.run_meta(batch, ["doit", *sys.argv[1:]], chosen.workers, will_run),
                               "forecast": run.forecast})
        run.hub.subscribe(recorders)
    notifier = None
    if batch.plan.settings.get("notify"):
        notifier = Notifier(batch.plan.settings["notify"], str(batch.plan.path), run.run_id, run.redactor,
                            run.report_error, lambda key: review_command(key, given.bin_name))
        run.hub.subscribe(notifier)
    return Prepared(chosen, run, stop, out, reporter, runner, recorders, notifier)


def _isolate(batch, supervisor: process.Supervisor) -> tuple[Isolation, repository_guard.AdminFiles, MergeQueue]:
    """Worktrees for the items, the repository's guard, and the merge queue that lands them."""
    from ..isolation.worktree import Isolation
    from ..landing.merge_queue import MergeQueue
    from ..plan.settings import FIELDS
    from ..repository import repository_guard

    isolation = Isolation(batch.plan.path, batch.plan.settings, supervisor, workdir=batch.workdir, state=batch.state)
    isolation.prepare()
    said = {name: batch.plan.settings.get(name, FIELDS[name].default)
            for name in ("check_parallel", "merge_batch", "check_flaky_retries")}
    merge_queue = MergeQueue(isolation, said["check_parallel"] or os.cpu_count() or 1,
                             said["merge_batch"], said["check_flaky_retries"])
    return isolation, repository_guard.note(isolation.top), merge_queue


def dispatch(prepared: Prepared) -> Dispatched:
    """The items run, up to the workers at once, until none is left or the run is stopped;
    then the exit status says how it went."""
    stop, runner = prepared.stop, prepared.runner
    with stop.on_signals():
        result = runner.run_all(prepared.selected.control.task_dispatcher())
    if stop.causes:
        prepared.out.write(f"\nStopped by {stop.causes[0]}. Completed items are recorded; "
                           f"run `{prepared.selected.loaded.given.rerun}` again to do the rest.\n")
        code = stop.exit_status
    elif result and runner.left_awaiting_review and not prepared.reporter.board.totals()["failed"]:
        code = EXIT_AWAITING_REVIEW
    elif result:
        code = EXIT_FAILED
    else:
        code = EXIT_NOT_ALL_STARTED if runner.not_started else 0
    return Dispatched(prepared, code)


def close_up(dispatched: Dispatched) -> Ended:
    """The executor, merge queue and worktrees closed; pr-batch's pull request; what the run
    leaves for the no-op stamp; notify: and the history told the run's end."""
    prepared, code = dispatched.prepared, dispatched.code
    run, out, board, batch = prepared.run, prepared.out, prepared.reporter.board, prepared.selected.loaded.batch
    given, will_run = prepared.selected.loaded.given, prepared.selected.will_run
    run.executor.close()
    run.ports.close()
    run.supervisor.close()
    ended = Ended(prepared.selected.loaded, code)
    if code == 0 and not will_run and run.isolation is None and not board.snapshot():
        ended = ended._replace(found_nothing_to_do={"already_done": board.already_done,
                                                    "notes": [run.budget.note()] if run.budget.note() else []})
    elif code == 0 and run.isolation is None and not run.budget.note() and board.items.keys() == will_run \
            and all(view.state == DONE for view in board.snapshot()):
        # What a full load would say next: every item it selects is done.
        ended = ended._replace(ran_to_the_end=([item for item in batch.plan.items() if item.key in will_run],
                                               {"already_done": board.already_done + len(will_run), "notes": []}))
    if run.merge_queue is not None:
        run.merge_queue.close()
    if run.isolation is not None:  # its spare worktrees stay for the next run (batch-clean removes them)
        out.write(run.isolation.how_to_take() + "\n")
        landed = {key: record for key, record in prepared.reporter.records.items()
                  if (record.get("merge") or {}).get("status") == "merged" and not record.get("failed")}
        if batch.plan.settings.get("land") == "pr-batch" and landed:
            from ..landing.pull_request import open_for_batch

            out.write(open_for_batch(run.isolation, batch.plan.settings, batch.plan.title, landed,
                                     run.redactor, run.run_id) + "\n")
    if prepared.notifier is not None:
        totals = board.totals()
        prepared.notifier.run_ended(code, {"done": totals["done"], "failed": totals["failed"],
                                           "awaiting_review": totals[AWAITING_REVIEW],
                                           "interrupted": totals["interrupted"]})
    if prepared.recorders is not None:
        run.hub.unsubscribe(prepared.recorders)
        prepared.recorders.run_ended({"exit_status": code, "stopped_by": prepared.stop.causes[0] if prepared.stop.causes else None})
        out.write(f"report: {typed(given.bin_name, 'batch-report')} --run {run.run_id}  (writes report.html)\n")
    return ended
