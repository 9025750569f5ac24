"""The run's Supervisor, on real agents: a cgroup an attempt left empty is the next attempt's
(none made and removed per item), one whose helpers had to be stopped is not, and the run
removes those it still holds as it closes; a prompt reaches its agent whole, however long."""

import os
import sys

import pytest

from batch_tasks.processes.attempt_processes import cgroup_parent
from batch_tasks.processes.check import NullLog
from batch_tasks.processes.process import Supervisor
from batch_tasks.redaction import Redactor

needs_cgroups = pytest.mark.skipif(cgroup_parent() is None or bool(os.environ.get("BATCH_TASKS_NO_CGROUP")),
                                   reason="no writable cgroup v2 here")


class KeptLog:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    def flush(self) -> None:
        pass


def cgroup_of_attempt(supervisor: Supervisor, argv: list[str], folder) -> str:
    started = {}
    supervisor.run(argv, cwd=folder, env=dict(os.environ), stdin=b"", log=NullLog(), on_line=lambda line: None,
                   on_start=lambda processes: started.update(processes.record()))
    assert started["cgroup"] is not None
    return started["cgroup"]


@needs_cgroups
def test_a_cgroup_left_empty_is_the_next_attempts_and_removed_as_the_run_closes(tmp_path):
    supervisor = Supervisor.for_run()
    first = cgroup_of_attempt(supervisor, [sys.executable, "-c", "pass"], tmp_path)
    assert cgroup_of_attempt(supervisor, [sys.executable, "-c", "pass"], tmp_path) == first
    supervisor.close()
    assert not os.path.exists(first)


@needs_cgroups
def test_a_supervisor_not_a_runs_keeps_no_cgroup_no_one_would_close(tmp_path):
    """A command's own (a check run outside a run): each attempt's cgroup is removed as before."""
    supervisor = Supervisor()
    first = cgroup_of_attempt(supervisor, [sys.executable, "-c", "pass"], tmp_path)
    assert cgroup_of_attempt(supervisor, [sys.executable, "-c", "pass"], tmp_path) != first


@needs_cgroups
def test_a_cgroup_whose_helper_was_stopped_is_not_taken_again(tmp_path):
    supervisor = Supervisor.for_run()
    helper = "import subprocess, sys; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])"
    left_behind = cgroup_of_attempt(supervisor, [sys.executable, "-c", helper], tmp_path)
    assert cgroup_of_attempt(supervisor, [sys.executable, "-c", "pass"], tmp_path) != left_behind
    supervisor.close()


def test_a_prompt_larger_than_its_pipe_reaches_the_agent_whole(tmp_path):
    """The agent's stdin is a bare pipe: what it cannot take at once is written on from a thread, to the last byte."""
    supervisor = Supervisor()
    prompt = bytes(range(256)) * 1200  # 300 KB: several times what a pipe holds
    echo = "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())"
    log = KeptLog()
    supervisor.run([sys.executable, "-c", echo], cwd=tmp_path, env=dict(os.environ), stdin=prompt, log=log,
                   on_line=lambda line: None, redact=Redactor({}))
    supervisor.close()
    assert bytes(log.data) == prompt
