"""Promises kept by the run core, each tried the way it once broke (issue "Nothing lost"):
a salvage belongs to its very attempt, limits that keep coming end, repairs stay owed,
refused ticks are written later, and --continue's exit status says "an item failed"."""

import json
import signal
import time

from conftest import FRONT_MATTER, wait_for


def test_a_killed_rerun_is_not_finished_from_the_previous_runs_exit(batch):
    batch.write("# T\n## G\n- [ ] a: first wording\n")
    assert batch.run("run-batch").returncode == 0
    batch.taskfile.write_text(batch.taskfile.read_text().replace("first wording", "second wording"))
    batch.behave(a={"sleep": 30})
    runner = batch.start("run-batch")
    wait_for(lambda: batch.runs("start")["g:a"] == 2)
    runner.send_signal(signal.SIGKILL)
    runner.wait(timeout=10)
    batch.behave()
    resumed = batch.run("run-batch")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "from its log" not in resumed.stdout
    assert batch.runs("start")["g:a"] == 3 and batch.runs("done")["g:a"] == 2  # really run again
    assert "- [x] a: second wording" in batch.taskfile.read_text()


def test_a_limit_that_keeps_coming_fails_the_item_after_a_bounded_number_of_pauses(batch):
    batch.write("# T\n## G\n- [ ] a: always limited\n")
    batch.behave(a={"limit_in": 0.3})
    started = time.monotonic()
    result = batch.run("run-batch", timeout=120)
    assert result.returncode == 1
    attempts = json.loads((batch.state("g", "a") / "failure.json").read_text())["attempts"]
    assert len(attempts) == 6  # the first, then five pauses (retry.MAX_WAITS)
    assert time.monotonic() - started < 60


def test_a_reset_time_already_past_is_retried_with_backoff_then_given_up(batch):
    batch.write("# T\n## G\n- [ ] a: limit in the past\n", FRONT_MATTER.replace("agent: command\n", "agent: command\nretry_base: 0.4s\n"))
    batch.behave(a={"limit_in": -60})
    result = batch.run("run-batch", timeout=120)
    assert result.returncode == 1
    attempts = json.loads((batch.state("g", "a") / "failure.json").read_text())["attempts"]
    assert len(attempts) == 3  # retries: 2
    gaps = [later["started"] - earlier["finished"] for earlier, later in zip(attempts, attempts[1:])]
    assert all(gap >= 0.2 for gap in gaps), gaps  # a backoff each time, no busy loop


def test_with_continue_a_failed_item_exits_1_and_the_rest_go_on(batch):
    batch.write("# T\n## One\n- [ ] a: breaks\n- [ ] b: fine\n## Two\n- [ ] a: needs one\n")
    batch.behave(**{"one:a": {"exit": 2}})
    result = batch.run("run-batch", "--continue")
    assert result.returncode == 1, result.stdout + result.stderr
    assert batch.runs() == {"one:b": 1}
    assert "not started: 1 item, an item it depends on failed: two:a" in result.stdout


def test_repairs_stay_owed_through_a_run_that_stopped_at_a_typo(batch):
    """A success whose tick a killed run never wrote: the record says ticked: false."""
    batch.write("# T\n## G\n- [ ] a: one\n")
    assert batch.run("run-batch").returncode == 0
    result = batch.state("g", "a") / "result.json"
    result.write_text(json.dumps({**json.loads(result.read_text()), "ticked": False}))
    batch.taskfile.write_text(batch.taskfile.read_text().replace("- [x] a: one", "- [ ] a: one"))
    good = batch.taskfile.read_text()
    batch.taskfile.write_text(good.replace("agent: command", "agent: comand"))
    assert batch.run("run-batch").returncode == 3
    batch.taskfile.write_text(good)
    fixed = batch.run("run-batch")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "recovered: ticked g:a" in fixed.stdout
    assert "- [x] a: one" in batch.taskfile.read_text() and batch.runs()["g:a"] == 1


def test_a_tick_refused_mid_run_is_written_by_the_next_run_on_the_line_as_it_now_is(batch):
    batch.write("# T\n## G\n- [ ] a: slow one\n")
    edited = batch.path / "edited"  # the agent ends once the user has edited its line
    batch.behave(a={"until": str(edited)})
    runner = batch.start("run-batch")
    wait_for(lambda: batch.runs("start")["g:a"] == 1)
    batch.taskfile.write_text(batch.taskfile.read_text().replace("- [ ] a: slow one", "* [ ] a: slow one"))
    edited.touch()
    runner.communicate(timeout=60)
    assert "* [ ] a: slow one" in batch.taskfile.read_text()
    again = batch.run("run-batch")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "recovered: ticked g:a" in again.stdout
    assert "* [x] a: slow one" in batch.taskfile.read_text() and batch.runs()["g:a"] == 1
    third = batch.run("run-batch")
    assert "recovered" not in third.stdout and batch.runs()["g:a"] == 1


def test_a_run_that_stops_before_it_starts_writes_no_lock_and_no_database(batch):
    batch.write("# T\n## G\n- [ ] a: one\n", "---\nagent: command\ncommand: [no-such-program-here]\n---\n")
    result = batch.run("run-batch")
    assert result.returncode == 3 and "'no-such-program-here' is not a program on PATH" in result.stderr
    state = batch.path / ".batch" / "task"
    assert not (state / "run.lock").exists() and not (state / "doit.sqlite").exists() and not (state / "items").exists()
