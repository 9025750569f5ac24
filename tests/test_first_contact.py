"""What a newcomer meets first: run-batch's own help, make's flags, options and names in
any order, and one line with a suggestion (never a repr, never a traceback) for a
mistake, from run-batch and from doit's own commands on a batch."""

import os
import signal
import subprocess

import pytest
from conftest import wait_for

TASK = """\
# T
## Inventory
- [ ] auth: list the functions
- [ ] billing: list the functions
- [ ] catalog: list the functions
## Review
- [ ] auth: review it
"""


@pytest.fixture
def configured(batch):
    batch.write(TASK)
    (batch.path / "doit.cfg").write_text("[GLOBAL]\nloader = batch\n")
    return batch


def one_line_error(result) -> str:
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "CmdOption(" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    return result.stderr.strip()


@pytest.mark.parametrize("ask", [["run-batch", "--help"], ["run-batch", "-h"], ["help", "run-batch"]])
def test_help_is_run_batchs_own_with_examples(configured, ask):
    shown = configured.run(*ask)
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert "usage: doit run-batch [OPTIONS] [GROUP | GROUP:MODULE ...]" in text
    assert "-n N, -j N" in text and "--keep-going" in text and "--dry-run" in text
    assert "examples:" in text and "doit run-batch -j 4 -k" in text
    assert "exit status: 0 all done; 1 an item failed" in text
    for doits_own in ("-P", "--pdb", "--backend", "number of subprocesses", "--db-file", "CmdOption"):
        assert doits_own not in text
    assert not (configured.path / "runs.log").exists()  # asking for help runs nothing


def test_minus_j_runs_items_at_once_as_make_does(configured):
    configured.behave(**{"*": {"sleep": 1.0}})
    result = configured.run("run-batch", "inventory", "-j", "3")  # a flag after a group name
    assert result.returncode == 0, result.stderr
    events = [line.split()[0] for line in (configured.path / "runs.log").read_text().splitlines()]
    assert events[:3] == ["start", "start", "start"]  # all three began before any ended
    assert configured.runs() == {"inventory:auth": 1, "inventory:billing": 1, "inventory:catalog": 1}


def test_minus_k_keeps_going_past_a_failure(configured):
    # One spelling through a real batch; test_cli's test_every_spelling_of_keep_going_is_continue has the others.
    configured.behave(**{"inventory:auth": {"exit": 2}})
    stopped = configured.run("run-batch", "-n", "1")
    assert stopped.returncode == 1
    assert "inventory:catalog" not in configured.runs("start")  # without it, the first failure stops the rest
    kept_going = configured.run("run-batch", "-k", "-j1")
    assert kept_going.returncode == 1
    assert configured.runs()["inventory:catalog"] == 1 and configured.runs("start")["inventory:auth"] == 2


def test_an_unknown_option_is_one_line_with_a_suggestion(configured):
    # One process for the promise (one line, exit 3, nothing runs); test_cli has the suggestions.
    error = one_line_error(configured.run("run-batch", "inventory", "--keepgoing"))
    assert error == "ERROR: unknown option --keepgoing; did you mean --keep-going? (`doit run-batch --help` lists them)"
    assert not (configured.path / "runs.log").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["run-batch", "reveiw"], "no group 'reveiw'; did you mean 'review'?"),
        (["run-batch", "-n", "2", "review:auht"], "no item 'review:auht'; did you mean 'review:auth'?"),
        (["info", "nosuch"], "no group 'nosuch' in task.md; there are: inventory, review"),
        (["forget", "inventory:billng"], "no item 'inventory:billng'; did you mean 'inventory:billing'?"),
        (["ignore", "revew"], "no group 'revew'; did you mean 'review'?"),
        (["list", "inventry"], "no group 'inventry'; did you mean 'inventory'?"),
    ],
)
def test_an_unknown_name_is_one_line_with_a_suggestion(configured, args, message):
    assert one_line_error(configured.run(*args)) == f"ERROR: {message}"
    assert not (configured.path / "runs.log").exists()


def test_doits_commands_take_unknown_options_as_one_line_too(configured):
    assert one_line_error(configured.run("list", "--sttus")).startswith("ERROR: unknown option --sttus; did you mean --status?")
    assert one_line_error(configured.run("batch-status", "--wach")).startswith("ERROR: unknown option --wach; did you mean --watch?")


@pytest.mark.parametrize("args", [[], ["run"], ["run", "inventory"]])
def test_bare_doit_on_a_batch_refuses_with_the_command_to_use(configured, args):
    error = one_line_error(configured.run(*args))
    assert "a batch runs with `doit run-batch`" in error
    assert not (configured.path / "runs.log").exists()  # doit's own runner ran nothing


@pytest.mark.parametrize("command", ["list", "info", "forget", "ignore"])
def test_without_doit_cfg_doits_commands_say_how_to_set_it_up(batch, command):
    batch.write(TASK)
    error = one_line_error(batch.run(command, *(["inventory"] if command in ("info", "ignore") else [])))
    assert "Could not find dodo file" not in error
    assert error == (
        "ERROR: no dodo.py here, but a task.md: for doit's own commands to read it, "
        r"tell doit once, here:  printf '[GLOBAL]\nloader = batch\n' > doit.cfg"
    )
    assert "run its items with `doit run-batch`" in one_line_error(batch.run())


def test_task_md_mistakes_still_reach_doit_list_as_they_are(configured):
    configured.write(TASK + "<!-- parallel: lots -->\n")
    assert one_line_error(configured.run("list")).startswith("ERROR: task.md:12: hint 'parallel'")



def test_forget_without_a_name_says_what_it_takes_and_forgets_nothing(configured):
    assert configured.run("run-batch", "inventory:auth").returncode == 0
    error = one_line_error(configured.run("forget"))
    assert error == "ERROR: name what to forget: `doit forget GROUP:MODULE` (or a GROUP), or `doit forget --all`"
    assert configured.run("run-batch", "--dry-run").stdout.endswith("3 would run, 1 up to date\n")
    assert configured.run("forget", "--all").returncode == 0
    assert configured.run("run-batch", "--dry-run").stdout.endswith("4 would run, 0 up to date\n")


def test_question_answers_by_its_exit_status_alone_as_makes_does(configured):
    # make's -q through real runs; test_cli's test_both_spellings_of_question_ask_it_wherever_they_stand has --question.
    question = "-q"
    asked = configured.run("run-batch", question)
    assert (asked.returncode, asked.stdout, asked.stderr) == (1, "", "")  # work is pending
    assert configured.run("run-batch", "inventory").returncode == 0
    assert configured.run("run-batch", question, "inventory").returncode == 0  # the group is done
    assert configured.run("run-batch", "review", question).returncode == 1
    assert configured.runs() == {"inventory:auth": 1, "inventory:billing": 1, "inventory:catalog": 1}


def test_always_execute_runs_the_named_item_alone_and_upstream_only_when_asked(configured):
    assert configured.run("run-batch").returncode == 0
    forced = configured.run("run-batch", "review:auth", "-a")
    assert forced.returncode == 0, forced.stderr
    assert configured.runs("start") == {"inventory:auth": 1, "inventory:billing": 1, "inventory:catalog": 1, "review:auth": 2}
    assert "1 done, 0 failed, 3 already done" in forced.stdout
    assert configured.run("run-batch", "--dry-run").stdout.endswith("0 would run, 4 up to date\n")
    assert configured.run("run-batch", "-a", "inventory", "--dry-run").stdout.endswith("3 would run, 0 up to date\n")
    upstream = configured.run("run-batch", "review:auth", "-a", "--upstream")
    assert upstream.returncode == 0, upstream.stderr
    assert configured.runs("start") == {"inventory:auth": 2, "inventory:billing": 2, "inventory:catalog": 2, "review:auth": 3}


@pytest.mark.parametrize("args", [["info", "inventory:auth"], ["batch-graph", "--dot"], ["list", "--all"]])
def test_output_closed_early_ends_quietly_as_head_expects(configured, args):
    reader = subprocess.Popen(configured.command(*args), cwd=configured.path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reader.stdout.close()  # as `| head` does once it has its lines
    _, err = reader.communicate(timeout=60)
    assert (reader.returncode, err.decode()) == (141, "")


def test_ctrl_c_while_it_starts_is_one_line_and_130(configured):
    fifo = configured.path / "slow.md"
    os.mkfifo(fifo)  # task.md read from a pipe: the run waits at its start until it is written
    starting = subprocess.Popen(configured.command("run-batch", "-T", "slow.md"), cwd=configured.path,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    writer = wait_for(lambda: _open_for_writing(fifo))  # the run has opened it
    # A Ctrl-C between that open and the read after it is handled before the read begins, which
    # then waits for the pipe (Python checks for signals between calls, not inside one). A real
    # Ctrl-C reaches the pipe's writer too, whose end ends that read; this one reaches the run
    # alone, so it is sent once the run is asleep in the read, where the signal ends it.
    wait_for(lambda: _asleep_reading_a_pipe(starting.pid))
    starting.send_signal(signal.SIGINT)
    out, err = starting.communicate(timeout=60)
    os.close(writer)
    assert "Traceback" not in err and err.strip() == "Stopped by Ctrl-C."
    assert starting.returncode == 130
    assert not (configured.path / "runs.log").exists()


def _asleep_reading_a_pipe(pid: int) -> bool:
    with open(f"/proc/{pid}/wchan") as wchan:  # where the kernel holds it: pipe_read, anon_pipe_read
        return "pipe" in wchan.read()


def _open_for_writing(fifo):
    try:
        return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # no reader yet
        return None


def test_doit_clean_says_why_a_batch_has_nothing_to_clean_and_what_to_do(configured):
    assert configured.run("run-batch", "inventory:auth").returncode == 0
    error = one_line_error(configured.run("clean"))
    assert error == ("ERROR: a batch's items leave no files for `doit clean` to remove: `doit forget GROUP:MODULE` "
                     "makes an item run again; its records are kept under .batch/task/")
    assert configured.run("run-batch", "-q", "inventory:auth").returncode == 0  # nothing was forgotten


def test_dry_run_counts_an_ignored_item_as_ignored_not_up_to_date(configured):
    assert configured.run("ignore", "inventory:billing").returncode == 0
    shown = configured.run("run-batch", "--dry-run")
    assert shown.stdout.endswith("3 would run, 0 up to date, 1 ignored (`doit forget` it to run it)\n"), shown.stdout


def test_info_on_an_item_says_what_a_person_asks_in_a_screenful(configured):
    configured.behave(**{"inventory:billing": {"exit": 2, "print": "no src/billing.py"}})
    configured.run("run-batch", "inventory", "-k")
    done = configured.run("info", "inventory:auth")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "inventory:auth  (task.md line 7): list the functions"
    assert "state: done" in done.stdout and "would run: no, up to date" in done.stdout
    assert "waits for: nothing" in done.stdout and "prompt, its first lines:" in done.stdout
    failed = configured.run("info", "review:auth").stdout
    assert "state: open" in failed and "would run: yes, new" in failed and "waits for: all of inventory" in failed
    assert len(lines) < 30 and "meta" not in done.stdout and "uptodate" not in done.stdout
    broken = configured.run("info", "inventory:billing").stdout
    assert "state: failed: exit status 2" in broken and "would run: yes, failed last time (exit status 2)" in broken
