"""A bug met in an item's steps reaches one place, the runner's, which records it: the item
fails with a record saying so, its log holds the traceback (masked), and the run goes on."""

from __future__ import annotations

import time

from local_run import local_run

from batch_tasks.agents import Outcome
from batch_tasks.redaction import Redactor
from batch_tasks.run.dispatcher import Dispatcher, candidates
from batch_tasks.run.lifecycle import ItemRun
from batch_tasks.run.runner import BatchRunner
from batch_tasks.state import item_machine as machine
from batch_tasks.state.item_status import FAILED, read_status
from batch_tasks.state.records import Attempt
from batch_tasks.tasks import batch as batch_mod
from batch_tasks.tasks.doit_tasks import item_job


class Heard:
    def __init__(self):
        self.finished = {}

    def item_finished(self, key, record):
        self.finished[key] = record


def test_a_bug_in_an_items_step_fails_it_with_a_record_and_its_traceback_in_its_log(batch, monkeypatch, local_run):
    batch.write("# T\n## G\n- [ ] a: x\n")
    loaded = batch_mod.load(batch.taskfile)
    group = loaded.plan.groups[0]
    said, heard = [], Heard()
    run = local_run(loaded, report_error=said.append, redactor=Redactor({"API_KEY": "sk-secret-123456"}))
    run.hub.subscribe(heard)
    item_run = ItemRun(item_job(loaded, 0, group, group.items[0]), run)

    def broken() -> None:
        raise KeyError("a bug, near sk-secret-123456")

    monkeypatch.setattr(item_run, "prepare", broken)
    runner = BatchRunner(None, None, run, Dispatcher(1, None, run.budget), candidates(loaded.plan, {}))
    runner._work(runner.candidates["g:a"], item_run)

    _, step = runner._results.get_nowait()
    assert step.failure.startswith("internal error: KeyError")
    assert said == [f"g:a: internal error: {KeyError('a bug, near sk-secret-123456')!r} (its traceback is in its log)"]
    folder = loaded.state.item("g", "a")
    status = read_status(folder)
    assert status.kind == FAILED and status.failure["reason"] == step.failure
    assert heard.finished["g:a"]["failed"]
    log = open(folder.log, encoding="utf-8").read()
    assert "=== g:a: internal error, a bug of batch-tasks (its traceback follows) ===" in log
    assert "Traceback (most recent call last)" in log and "in broken" in log and "KeyError" in log
    assert "sk-secret-123456" not in log


def test_a_bug_met_while_landing_a_success_leaves_it_to_be_gone_on_with_not_paid_for_again(batch, local_run):
    batch.write("# T\n## G\n- [ ] a: x\n")
    loaded = batch_mod.load(batch.taskfile)
    group = loaded.plan.groups[0]
    run = local_run(loaded)
    item_run = ItemRun(item_job(loaded, 0, group, group.items[0]), run)
    item_run.prepare()
    item_run.current = Attempt(1, "session-1", time.time(), run.run_id, time.time(), 0, Outcome(ok=True))
    item_run.attempts.append(item_run.current)
    item_run.machine.fire(machine.START)
    item_run.machine.fire(machine.AGENT_SUCCEEDED)

    step = item_run.internal_error(RuntimeError("a bug in the check's step"))

    status = read_status(loaded.state.item("g", "a"))
    assert status.kind == FAILED and status.failure["reason"] == step.failure
    assert status.failure["resume"]["state"] == machine.AGENT_DONE
    assert status.failure["resume"]["session_id"] == "session-1"


def test_a_bug_met_asking_whether_a_parked_items_review_was_decided_is_recorded_by_its_next_step(batch, local_run):
    batch.write("# T\n## G\n- [ ] a: x\n")
    loaded = batch_mod.load(batch.taskfile)
    group = loaded.plan.groups[0]
    said = []
    run = local_run(loaded, report_error=said.append)
    item_run = ItemRun(item_job(loaded, 0, group, group.items[0]), run)
    item_run.prepare()
    item_run.parked, item_run.review_error = True, KeyError("the pull request's head")  # as the review watch left it
    runner = BatchRunner(None, None, run, Dispatcher(1, None, run.budget), candidates(loaded.plan, {}))
    runner._work(runner.candidates["g:a"], item_run)

    _, step = runner._results.get_nowait()
    assert step.failure.startswith("internal error: KeyError")
    assert said and said[0].startswith("g:a: internal error: KeyError")
    log = open(loaded.state.item("g", "a").log, encoding="utf-8").read()
    assert "Traceback (most recent call last)" in log and "the pull request's head" in log
