"""What a person sees: a live panel on a terminal, plain lines anywhere else."""

import os
import pty
import re
import select
import subprocess
import time

from conftest import FRONT_MATTER


def run_on_a_terminal(batch, *args: str, timeout: float = 60) -> str:
    """`doit ARGS` with a pseudo-terminal for its output; what it drew, as bytes decoded."""
    leader, follower = pty.openpty()
    runner = subprocess.Popen(batch.command(*args), cwd=batch.path, stdout=follower, stderr=follower, close_fds=True)
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
