"""What a person sees: a live panel on a terminal, plain lines anywhere else."""

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time

from conftest import FRONT_MATTER


def run_on_a_terminal(batch, *args: str, timeout: float = 60, size: tuple[int, int] = (24, 80)) -> str:
    """`doit ARGS` with a pseudo-terminal (rows, columns) for its output; what it drew, decoded."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))
    env = {name: value for name, value in os.environ.items() if name not in ("COLUMNS", "LINES")}  # the terminal's own size
    runner = subprocess.Popen(batch.command(*args), cwd=batch.path, env=env, stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    screen, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: the run ended
                break
            screen += chunk
        elif runner.poll() is not None:
            break
    runner.wait(timeout=10)
    os.close(leader)
    return screen.decode("utf-8", "replace")


BATCH = "# T\n## G\n- [ ] a: one\n- [ ] b: two\n- [ ] c: three\n"


def test_a_terminal_gets_a_live_panel_of_running_items(batch):
    batch.write(BATCH, FRONT_MATTER.replace("agent: command\n", "agent: command\nparallel: 3\n"))
    batch.behave(**{"*": {"sleep": 1.0, "print": "thinking about it"}})
    drawn = run_on_a_terminal(batch, "run-batch")
    assert "\x1b[" in drawn  # drawn, not printed
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", drawn)  # what a person reads
    assert "0/3 done · 3 running" in screen  # the panel, while all three ran
    assert "g:a  #1" in screen and "thinking about it" in screen  # a running item and its latest activity
    assert "✓ g:a" in screen and "3 done, 0 failed" in screen


def test_anywhere_else_plain_timestamped_lines_and_no_control_characters(batch):
    batch.write(BATCH)
    result = batch.run("run-batch")
    assert result.returncode == 0
    assert "\x1b" not in result.stdout
    lines = [line for line in result.stdout.splitlines() if line[:2].isdigit()]
    assert len(lines) == 6  # started and done, for each of the three
    assert all(line[2] == ":" and line[5] == ":" and line[8] == " " for line in lines)


FAILING = "# T\n## Inventory\n- [ ] auth: one\n- [ ] billing: two\n## Extract\n- [ ] auth: three\n"
CAUSE = "can't open file 'tools/summarize.py': [Errno 2] No such file or directory"


def failing_batch(batch):
    batch.write(FAILING)
    batch.behave(**{"inventory:auth": {"print": CAUSE, "exit": 2}, "inventory:billing": {"sleep": 0.5}})


def test_a_failure_shows_its_cause_and_last_lines_in_plain_output(batch):
    failing_batch(batch)
    result = batch.run("run-batch")
    assert result.returncode == 1
    out = result.stdout
    # Was: `✗ inventory:auth 0.0s: exit status 2; log: /abs/…/output.log`, the cause only in the log.
    failed = [line for line in out.splitlines() if "✗ inventory:auth" in line][0]
    assert failed.endswith(": exit status 2 (log: .batch/task/items/inventory/auth/output.log)")
    after = out.splitlines()[out.splitlines().index(failed) + 1 :]
    assert after[0] == "    agent for inventory:auth, argv ['auth', 'inventory']" and after[2] == f"    {CAUSE}"
    summary = out[out.index("\n\n") :]
    assert "\nfailed:\n  ✗ inventory:auth" in summary and f"\n      {CAUSE}\n" in summary
    assert "not started: 2 items, inventory:auth failed: inventory:billing, extract:auth" in summary
    assert "\nnext: fix inventory:auth (its cause is above), then `doit run-batch` reruns only the 3 items left\n" in summary
    assert out.splitlines()[0][9:] == "[0/3] ▶ inventory:auth"  # a counter on each line, for CI logs
    assert "most expensive" not in summary and "$0.0000" not in out


def test_a_failure_shows_its_cause_on_the_panel_too(batch):
    failing_batch(batch)
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", run_on_a_terminal(batch, "run-batch"))
    assert "✗ inventory:auth" in screen and CAUSE in screen
    assert "\nfailed:" in screen.replace("\r", "") and "next: fix inventory:auth" in screen


def test_a_stopped_run_calls_its_items_interrupted_not_failed(batch):
    batch.write(BATCH, FRONT_MATTER.replace("agent: command\n", "agent: command\nparallel: 2\n"))
    batch.behave(**{"*": {"sleep": 60}})
    runner = batch.start("run-batch")
    deadline = time.monotonic() + 30
    while batch.runs("start").total() < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    runner.send_signal(2)
    out, _ = runner.communicate(timeout=30)
    assert runner.returncode == 130
    summary = out[out.index("\n\n") :]
    # Was: `1/12 done · 4 failed` after Ctrl-C.
    first = summary.lstrip().splitlines()[0]
    assert first.startswith("0 done, 0 failed, ") and re.search(r" [23] interrupted", first)
    assert "interrupted (run again: they go on from the step they reached):\n  ■ g:a interrupted after" in summary
    assert "next: `doit run-batch` reruns only the 3 items left" in summary
    assert "\nfailed:\n" not in summary


def test_the_panel_fits_a_wide_terminal_a_short_one_and_names_the_group(batch):
    long_activity = "reading " + "very/" * 30 + "deep.py"  # 158 characters
    batch.write(
        "# T\n## Wide group\n" + "".join(f"- [ ] m{i}: item {i}\n" for i in range(6)),
        FRONT_MATTER.replace("agent: command\n", "agent: command\nparallel: 6\n"),
    )
    batch.behave(**{"*": {"sleep": 2.0, "print": long_activity}})
    screen = run_on_a_terminal(batch, "run-batch", size=(6, 250))
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)
    assert long_activity in plain  # at 250 columns the activity is whole, not cut at 48
    assert "6 running in wide-group" in plain
    assert "+3 more running" in plain  # 6 items do not fit 6 lines with the header: 3 and a line for the rest
    assert "\n..." not in plain.replace("\r", "")
    assert "\x1b[1;36m" not in screen.split("6 done")[-1]  # no highlighter colouring the summary's numbers


def test_paths_are_shown_from_task_md_s_folder_wherever_the_run_starts(batch):
    (batch.path / "plans").mkdir()
    batch.write(FAILING, name="plans/task.md")
    (batch.path / "plans" / "behaviour.json").write_text('{"inventory:auth": {"exit": 2}}')  # read from task.md's folder
    result = subprocess.run(batch.command("run-batch", "-T", "plans/task.md"), cwd=batch.path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "✗ inventory:auth" in result.stdout and "(log: .batch/task/items/inventory/auth/output.log)" in result.stdout
