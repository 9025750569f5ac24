"""The "nothing to do" fast path: a batch unchanged since a run that found nothing to do is
answered from that run's stamp, with the same answer; after any change, it is loaded in full.

That the fast path was taken is seen from what it does not do: it loads no plan, so a
plan cache removed before it stays removed (a full load writes it again).

A stamp is left only once the state folder's times are older than the file system's clock
can tell apart: the run meant to leave one reads a clock that far ahead rather than waiting
for it (LATER).
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FRONT_MATTER

from batch_tasks.state.state import BatchState
from batch_tasks.tasks import nothing_to_do

TASK = """\
# T
## Inventory
- [ ] auth: list the functions
- [ ] billing: list the functions
## Extract interfaces
- [ ] auth: extract a protocol
"""
RACY_SECONDS = nothing_to_do.RACY_SECONDS  # records younger than this leave no stamp
# `doit ARGS` on a clock SECONDS ahead (the first argument): a run as it would go that much later.
LATER = """\
import runpy, sys, time
ahead, now = float(sys.argv.pop(1)), time.time
time.time = lambda: now() + ahead
runpy.run_module("doit", run_name="__main__", alter_sys=True)
"""


def answer(result) -> tuple:
    """What a command said, but for the time it took."""
    return result.returncode, re.sub(r" in [0-9.]+s\b", " in Ts", result.stdout), result.stderr


def stamped(batch) -> bool:
    return (BatchState(batch.taskfile).root / "nothing-to-do.json").exists()


def fast(batch, *args, later: float = 0.0):
    """A run-batch (`later` seconds from now, as its clock reads), and whether it answered from
    the stamp (it loaded no plan)."""
    cache = BatchState(batch.taskfile).root / "plan.json"
    cache.unlink(missing_ok=True)
    if later:
        result = subprocess.run([sys.executable, "-c", LATER, str(later), "run-batch", *args], cwd=batch.path,
                                capture_output=True, text=True, timeout=60)
    else:
        result = batch.run("run-batch", *args)
    return result, not cache.exists()


@pytest.fixture
def settled(batch):
    """A batch run to its end, whose records are old enough, then a run that found nothing
    to do and so left its stamp."""
    batch.write(TASK)
    (batch.path / "doit.cfg").write_text("[GLOBAL]\nloader = batch\n")
    assert batch.run("run-batch").returncode == 0
    (BatchState(batch.taskfile).root / "nothing-to-do.json").unlink()  # the run's own: this one is a full load's
    slow, was_fast = fast(batch, later=RACY_SECONDS)
    assert not was_fast and stamped(batch), slow.stdout + slow.stderr
    batch.slow_answer = answer(slow)
    return batch


def test_the_fast_path_gives_the_answer_of_a_full_load(settled):
    for _ in range(2):
        result, was_fast = fast(settled)
        assert was_fast
        assert answer(result) == settled.slow_answer
    assert "0 done, 0 failed, 3 already done in" in result.stdout
    assert settled.runs() == {"inventory:auth": 1, "inventory:billing": 1, "extract-interfaces:auth": 1}


def test_the_fast_path_imports_nothing_that_loads_checks_or_runs_a_batch(settled):
    """Its answer needs the stamp, the state folder's walk and the summary's line: a no-op is
    mostly doit's own start, and what batch-tasks imports beside it is kept to that."""
    result = settled.run("run-batch", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert answer(result)[:2] == settled.slow_answer[:2]
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "batch_tasks.tasks.nothing_to_do" in imported
    loading = {"batch_tasks.tasks.batch", "batch_tasks.plan.plan", "batch_tasks.plan.settings", "batch_tasks.executors",
               "batch_tasks.processes.process", "batch_tasks.run.prompt_context", "psutil", "yaml", "jinja2",
               "markdown_it"}
    assert not imported & loading


def test_options_that_change_what_runs_load_in_full(settled):
    result, was_fast = fast(settled, "-n", "4")  # nothing runs: how many at once changes nothing
    assert was_fast and answer(result) == settled.slow_answer
    for args in (["--dry-run"], ["inventory"], ["--failed"], ["--optional"], ["-a"]):  # -a last: it runs them all
        _, was_fast = fast(settled, *args)
        assert not was_fast, args


def edit_task_md(batch):
    batch.taskfile.write_text(batch.taskfile.read_text() + "- [ ] billing: extract a protocol\n")
    return "1 done, 0 failed, 3 already done"


def forget(batch):
    assert batch.run("forget", "extract-interfaces:auth").returncode == 0
    return "1 done, 0 failed, 2 already done"


def ignore(batch):
    assert batch.run("ignore", "extract-interfaces:auth").returncode == 0
    return "1 skipped"


def damage_a_record(batch):
    (batch.state("inventory", "billing") / "result.json").write_text("{ damaged")
    return "cannot be read"


def rewrite_a_record(batch):
    # The same bytes, written anew as every record is (a new file renamed over it).
    record = batch.state("inventory", "billing") / "result.json"
    copy = record.with_name("copy.json")
    copy.write_bytes(record.read_bytes())
    copy.replace(record)
    return "0 done, 0 failed, 3 already done"


def forge_the_stamp(batch):
    stamp = BatchState(batch.taskfile).root / "nothing-to-do.json"
    outer = json.loads(stamp.read_text())
    body = json.loads(outer["body"])
    body["said"]["already_done"] = 99
    stamp.write_text(json.dumps({"body": json.dumps(body, sort_keys=True), "signature": outer["signature"]}))
    return "3 already done"


def run_in_progress(batch):
    BatchState(batch.taskfile).lock_file.write_text('{"pid": 1, "create_time": 0, "started": 0}')
    return "3 already done"


@pytest.mark.parametrize("change", [edit_task_md, forget, ignore, damage_a_record, rewrite_a_record, forge_the_stamp,
                                    run_in_progress])
def test_after_any_change_the_batch_is_loaded_in_full(settled, change):
    expected = change(settled)
    result, was_fast = fast(settled)
    assert not was_fast
    assert expected in result.stdout + result.stderr


def test_a_template_touched_or_edited_loads_in_full(batch):
    (batch.path / "prompt.j2").write_text("Do {{ item.instruction }}.\n")
    batch.write(TASK, front_matter=FRONT_MATTER.replace("\n---\n", "\ntemplate: prompt.j2\n---\n", 1))
    assert batch.run("run-batch").returncode == 0
    fast(batch, later=RACY_SECONDS)
    assert stamped(batch)
    template = batch.path / "prompt.j2"
    template.touch()
    result, was_fast = fast(batch)
    assert not was_fast and result.returncode == 0
    template.write_text("Do {{ item.instruction }} now.\n")
    result, was_fast = fast(batch)
    assert not was_fast
    assert "3 done" in result.stdout  # a changed template makes its items stale


def test_a_run_that_failed_an_item_leaves_no_stamp(settled):
    edit_task_md(settled)
    settled.behave(billing={"exit": 2})
    result = settled.run("run-batch")
    assert "1 failed" in result.stdout
    assert not stamped(settled)


@pytest.mark.parametrize("age, stamps", [(RACY_SECONDS - 0.01, False), (RACY_SECONDS + 0.01, True)])
def test_a_stamp_is_left_only_once_the_state_folders_times_are_older_than_the_clock_can_tell(tmp_path, monkeypatch,
                                                                                             age, stamps):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the signing key's folder
    taskfile = tmp_path / "task.md"
    taskfile.write_text("# T\n## G\n- [x] a: done\n")
    state = BatchState(taskfile)
    state.ensure()
    item = state.item("g", "a")
    item.ensure()
    (Path(item.folder) / "result.json").write_text("{}")
    seen = nothing_to_do.look(state, {})
    monkeypatch.setattr(nothing_to_do.time, "time", lambda: seen.newest_ns / 1e9 + age)
    nothing_to_do.write(state, {}, seen, [], {"already_done": 1})
    assert (nothing_to_do.answer(state, seen) == {"already_done": 1}) is stamps


@pytest.fixture
def just_run(batch):
    """A batch run to its end a moment ago: no time for its records to age."""
    batch.write(TASK)
    (batch.path / "doit.cfg").write_text("[GLOBAL]\nloader = batch\n")
    assert batch.run("run-batch").returncode == 0
    return batch


def test_the_first_no_op_right_after_a_run_answers_from_its_stamp(just_run):
    result, was_fast = fast(just_run)
    assert was_fast, result.stdout + result.stderr
    (BatchState(just_run.taskfile).root / "nothing-to-do.json").unlink()
    full, was_fast = fast(just_run)
    assert not was_fast
    assert answer(result) == answer(full)
    assert "0 done, 0 failed, 3 already done in" in result.stdout


@pytest.mark.parametrize("change", [edit_task_md, forget, ignore, damage_a_record, rewrite_a_record, forge_the_stamp,
                                    run_in_progress])
def test_any_change_right_after_a_run_loads_in_full(just_run, change):
    assert stamped(just_run)
    expected = change(just_run)
    result, was_fast = fast(just_run)
    assert not was_fast
    assert expected in result.stdout + result.stderr


def test_a_young_record_changed_where_lstat_cannot_tell_loads_in_full(just_run):
    """A change within the clock's granularity leaves a record's lstat as it was: its bytes tell."""
    from batch_tasks.tasks import nothing_to_do

    seen = nothing_to_do.look(BatchState(just_run.taskfile), {"GLOBAL": {"loader": "batch"}})
    assert seen is not None and nothing_to_do.answer(BatchState(just_run.taskfile), seen) is not None
    record = just_run.state("inventory", "billing") / "result.json"
    data = record.read_bytes()
    record.write_bytes(data.replace(b"{", b" ", 1)[:len(data)])  # the same size, in place
    assert nothing_to_do.answer(BatchState(just_run.taskfile), seen) is None  # the lstat seen before it, and yet


def test_doit_records_changed_where_lstat_cannot_tell_load_in_full(just_run):
    """A run closes doit's records a moment before its stamp: a change to them within the clock's
    granularity leaves their lstat as it was, and their bytes tell."""
    import sqlite3

    state = BatchState(just_run.taskfile)
    seen = nothing_to_do.look(state, {"GLOBAL": {"loader": "batch"}})
    assert seen is not None and nothing_to_do.answer(state, seen) is not None
    connection = sqlite3.connect(state.db)
    connection.execute("DELETE FROM doit WHERE task_id = 'extract-interfaces:auth'")  # `doit forget`'s write
    connection.commit()
    connection.close()
    assert nothing_to_do.answer(state, seen) is None  # the lstat seen before it, and yet


def test_doit_records_in_a_mode_whose_writes_sqlite_does_not_count_load_in_full(settled):
    import sqlite3

    state = BatchState(settled.taskfile)
    assert nothing_to_do.look(state, {}) is not None
    connection = sqlite3.connect(state.db)
    assert connection.execute("PRAGMA journal_mode=WAL").fetchone() == ("wal",)
    connection.close()
    assert nothing_to_do.look(state, {}) is None
    result, was_fast = fast(settled)
    assert not was_fast and answer(result) == settled.slow_answer


def test_a_stamp_with_young_files_is_stamped_again_without_them_once_they_are_old(just_run):
    """The run's own records and doit's, just written, are compared by their bytes until their
    times can tell a change; then the next answer stamps again without them."""
    def young() -> dict:
        stamp = json.loads((BatchState(just_run.taskfile).root / "nothing-to-do.json").read_text())
        return json.loads(stamp["body"])["young"]

    assert str(BatchState(just_run.taskfile).db) in young()
    result, was_fast = fast(just_run)
    assert was_fast and young()
    result, was_fast = fast(just_run, later=RACY_SECONDS + 0.5)
    assert was_fast and young() == {}
    again, was_fast = fast(just_run)
    assert was_fast and answer(again) == answer(result)
    assert forget(just_run) in fast(just_run)[0].stdout  # and any change still loads in full
