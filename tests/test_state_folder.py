"""The state folder is untrusted: no link in it is followed. One run at a time, for real.

Real `doit run-batch` processes: links planted in an item's folder and in place of
run.lock, a task file run through an alias, and `.batch` removed during a run.
"""

import os
import re
import shutil
import signal

import pytest
from conftest import wait_for

SLOW = "# T\n## G\n- [ ] a: slow\n- [ ] b: slow\n"


@pytest.mark.parametrize("name", ["prompt.md", "output.log", "events.jsonl"])
def test_a_link_planted_in_an_item_folder_is_refused_and_its_target_untouched(batch, tmp_path_factory, name):
    target = tmp_path_factory.mktemp("elsewhere") / "precious.txt"
    target.write_text("precious\n")
    batch.write("# T\n## G\n- [ ] a: x\n")
    folder = batch.state("g", "a")
    folder.mkdir(parents=True)
    (folder / name).symlink_to(target)
    result = batch.run("run-batch")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{name} is a symbolic link: batch-tasks never follows links in its state folder; remove it" in result.stdout
    assert target.read_text() == "precious\n"
    assert "Traceback" not in result.stdout + result.stderr


def test_a_fifo_planted_as_a_record_is_refused_not_waited_on(batch):
    """It hung every command that reads records, waiting for a writer that never comes."""
    batch.write("# T\n## G\n- [ ] a: x\n")
    folder = batch.state("g", "a")
    folder.mkdir(parents=True)
    os.mkfifo(folder / "result.json")
    problem = "result.json cannot be read: it is not a regular file"
    run = batch.run("run-batch", timeout=30)
    assert run.returncode == 3 and problem in run.stderr, run.stdout + run.stderr
    status = batch.run("batch-status", timeout=30)
    assert status.returncode == 0 and f"✗ g:a: {folder}/{problem}" in status.stdout, status.stdout + status.stderr
    dry_run = batch.run("run-batch", "--dry-run", timeout=30)
    assert "g:a  its records cannot be read" in dry_run.stdout, dry_run.stdout + dry_run.stderr
    assert "Traceback" not in run.stderr + status.stderr + dry_run.stderr
    assert batch.runs("start") == {}


def test_an_item_folder_that_is_a_link_is_refused(batch, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    batch.write("# T\n## G\n- [ ] a: x\n")
    folder = batch.state("g", "a")
    folder.parent.mkdir(parents=True)
    folder.symlink_to(elsewhere, target_is_directory=True)
    result = batch.run("run-batch")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "is a symbolic link: batch-tasks never follows links" in result.stdout
    assert list(elsewhere.iterdir()) == []
    assert batch.runs("start") == {}


def test_a_run_lock_that_is_a_link_is_one_error_and_its_target_untouched(batch, tmp_path_factory):
    target = tmp_path_factory.mktemp("elsewhere") / "precious.txt"
    target.write_text("precious\n")
    batch.write("# T\n## G\n- [ ] a: x\n")
    root = batch.state("g", "a").parent.parent.parent
    root.mkdir(parents=True)
    (root / "run.lock").symlink_to(target)
    result = batch.run("run-batch")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "run.lock is a symbolic link" in result.stderr and "Traceback" not in result.stderr
    assert target.read_text() == "precious\n"


@pytest.fixture
def running(batch):
    """A first run, busy with two slow items."""
    batch.write(SLOW)
    batch.behave(**{"*": {"sleep": 20}})
    runner = batch.start("run-batch", "-n", "2")
    wait_for(lambda: len(batch.runs("start")) == 2)
    yield runner
    runner.send_signal(signal.SIGTERM)
    runner.communicate(timeout=30)


def test_an_alias_of_the_task_file_is_the_same_batch(batch, running):
    (batch.path / "plan.md").symlink_to("task.md")
    second = batch.run("run-batch", "-T", "plan.md")
    assert second.returncode == 3, second.stdout + second.stderr
    assert f"another run (pid {running.pid}, started " in second.stderr
    assert sum(batch.runs("start").values()) == 2


def test_removing_the_state_folder_during_a_run_does_not_let_a_second_one_in(batch, running):
    shutil.rmtree(batch.path / ".batch")
    second = batch.run("run-batch")
    assert second.returncode == 3, second.stdout + second.stderr
    assert "another run (pid unknown) is running task.md; wait for it to end, or stop it, then run again" in second.stderr
    assert sum(batch.runs("start").values()) == 2


def test_an_editor_replacing_the_task_file_during_a_run_does_not_let_a_second_one_in(batch, running):
    replacement = batch.path / ".task.md.swp"
    replacement.write_bytes(batch.taskfile.read_bytes())
    replacement.replace(batch.taskfile)  # a new inode under the same name, as many editors save
    second = batch.run("run-batch")
    assert second.returncode == 3, second.stdout + second.stderr
    assert sum(batch.runs("start").values()) == 2


def test_batch_status_and_batch_log_read_no_link_planted_after_a_run(batch, tmp_path_factory):
    """A failed item's output tail is shown by batch-status: through a link planted in place of
    its log it showed a file from elsewhere (and a FIFO there hung batch-log)."""
    secret = tmp_path_factory.mktemp("elsewhere") / "id_rsa"
    secret.write_text("-----BEGIN PRIVATE KEY----- not for the screen\n")
    batch.write("# T\n## G\n- [ ] a: x\n- [ ] b: y\n")
    batch.behave(**{"g:a": {"exit": 2}, "g:b": {"exit": 2}})
    assert batch.run("run-batch", "-k").returncode == 1
    (batch.state("g", "a") / "output.log").unlink()
    (batch.state("g", "a") / "output.log").symlink_to(secret)
    (batch.state("g", "b") / "events.jsonl").unlink()
    os.mkfifo(batch.state("g", "b") / "events.jsonl")
    status = batch.run("batch-status", timeout=30)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "✗ g:a" in status.stdout and "PRIVATE KEY" not in status.stdout
    log = batch.run("batch-log", "g:b", timeout=30)
    assert "Traceback" not in log.stdout + log.stderr and log.returncode != 0, log.stdout + log.stderr


def test_an_item_folder_says_whether_it_was_made_just_now(tmp_path):
    """An item whose folder its run has just made has no records to read (a first run skips
    reading them); one already there, even empty, is read."""
    from batch_tasks.state.state import BatchState

    state = BatchState(tmp_path / "task.md")
    state.ensure()
    folder = state.item("work", "m1")
    assert folder.ensure() is True
    assert folder.ensure() is False
    other = state.item("work", "m2")
    os.makedirs(other.folder)
    assert other.ensure() is False


@pytest.mark.parametrize("command", ["forget", "ignore"])
def test_forget_and_ignore_are_refused_while_a_run_holds_the_batch(batch, running, command):
    """The run read doit's records as it began and writes them as it goes: an item ignored now
    would run all the same, and a forget would be half done."""
    (batch.path / "doit.cfg").write_text("[GLOBAL]\nloader = batch\n")
    refused = batch.run(command, "g:a")
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert re.fullmatch(rf"ERROR: a run \(pid {running.pid}, started [0-9 :-]+\) is running task.md; "
                        rf"wait for it to end, or stop it, then {command} again\n", refused.stderr), refused.stderr
    assert sum(batch.runs("start").values()) == 2


@pytest.mark.parametrize("by", ["clean", "forget", "ignore"])
def test_a_command_that_holds_the_lock_leaves_a_killed_runs_name_for_the_next_run(batch, by):
    """run.lock still naming a run says it was killed: the next run's recovery reads that."""
    from batch_tasks.state.state import BatchState

    batch.write(SLOW)
    state = BatchState(batch.taskfile)
    state.ensure()
    killed = '{"pid": 999999, "create_time": 1.0, "started": 1.0}'
    state.lock_file.write_text(killed)
    with state.run_lock(by=by) as killed_before:
        assert killed_before is False  # not its to say
    assert state.lock_file.read_text() == killed
    with state.run_lock() as killed_before:
        assert killed_before is True
    assert state.lock_file.read_text() == ""
