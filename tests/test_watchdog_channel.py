"""A watchdog replaced, then its runner killed: the agents still die with the runner.

A real runner (a small script using WatchdogChannel as the Supervisor does) starts three
agents, then has its watchdog replaced (killed, stopped, or its socket full) and is killed
with SIGKILL: the moment the new watchdog exists, before it could tell it anything more, or
once the replacement is done.
"""

import json
import os
import subprocess
import sys

import psutil
import pytest
from conftest import alive, wait_for

RUNNER = """
import os, select, signal, socket, subprocess, sys
import psutil
from batch_tasks.processes import watchdog_channel

mode, when, folder = sys.argv[1:]
channel = watchdog_channel.WatchdogChannel()
pids, pidfds = {}, {}
for attempt_id, argv in (("killed", ["sleep", "60"]), ("ended", ["sh", "-c", "exit 3"]), ("oom", ["sleep", "60"])):
    channel.started(attempt_id, os.path.join(folder, attempt_id + ".json"))
    agent = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pidfds[attempt_id] = os.pidfd_open(agent.pid)
    channel.agent(attempt_id, agent.pid, pidfds[attempt_id])
    pids[attempt_id] = agent.pid
os.kill(pids["oom"], signal.SIGKILL)  # as the OOM killer would
# Both exited, unreaped: how they ended is the watchdog's to write
select.select([pidfds["ended"]], [], [], 10)
select.select([pidfds["oom"]], [], [], 10)
channel.started("late", None)
with open(os.path.join(folder, "pids"), "w") as stream:
    stream.write(" ".join(map(str, pids.values())))

watchdog = next(child.pid for child in psutil.Process().children() if "watchdog.py" in " ".join(child.cmdline()))
def ignores_sighup():
    with open(f"/proc/{watchdog}/status") as stream:
        return any(line.startswith("SigIgn:") and int(line.split()[1], 16) & 1 for line in stream)
while not ignores_sighup():  # it has started (as an agent would find it, not as it is being born)
    select.select([], [], [], 0.01)
if mode == "gone":
    os.kill(watchdog, signal.SIGKILL)
    os.waitid(os.P_PID, watchdog, os.WEXITED | os.WNOWAIT)
elif mode == "stopped":
    os.kill(watchdog, signal.SIGSTOP)
    os.waitid(os.P_PID, watchdog, os.WSTOPPED | os.WNOWAIT)
    if when == "unnoticed":  # killed before its next look could replace it
        os.kill(os.getpid(), signal.SIGKILL)
else:  # alive, but its socket full: the next message cannot be sent
    send_fds = socket.send_fds
    def full(*args):
        socket.send_fds = send_fds
        raise BlockingIOError()
    socket.send_fds = full

popen = subprocess.Popen
def killed_once_started(*args, **kwargs):  # the runner dies the moment its new watchdog exists
    popen(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
if when == "starting":
    subprocess.Popen = killed_once_started

channel.ended("late", os.path.join(folder, "cgroup"))  # unread by a stopped watchdog; a gone one fails it
channel.look()  # a stopped one is noticed here
if when == "starting":
    sys.exit("the watchdog was not replaced")
os.kill(os.getpid(), signal.SIGKILL)
"""


def watchdogs_of(runner_pid: int) -> list[int]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        argv = process.info["cmdline"] or []
        if len(argv) > 4 and argv[2].endswith("watchdog.py") and argv[4] == str(runner_pid):
            found.append(process.pid)
    return found


def kill_the_runner(folder, mode: str, when: str) -> None:
    """Run RUNNER to its death, then see its agent killed and its watchdogs ended."""
    (folder / "cgroup").mkdir()
    (folder / "runner.py").write_text(RUNNER)
    # A session of its own: whatever reaps it is outside, so its watchdog's process group is
    # orphaned as it dies (see watchdog_channel.OWN_GROUP), as under a shell, init or systemd.
    runner = subprocess.Popen([sys.executable, str(folder / "runner.py"), mode, when, str(folder)],
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    _, errors = runner.communicate(timeout=30)
    assert runner.returncode == -9, errors
    sleeping = int((folder / "pids").read_text().split()[0])
    try:
        wait_for(lambda: not alive(sleeping), timeout=5)
        # 9 s: recovery's wait for them (watchdog_channel.WRITTEN_WAIT), less a margin
        wait_for(lambda: not watchdogs_of(runner.pid), timeout=9)
    finally:
        for pid in [sleeping, *watchdogs_of(runner.pid)]:
            if alive(pid):
                os.kill(pid, 9)


@pytest.mark.parametrize("mode, when", [("gone", "starting"), ("stopped", "starting"), ("full", "starting"),
                                        ("gone", "after"), ("stopped", "after")])
def test_a_runner_killed_as_it_replaces_its_watchdog_still_takes_its_agents_with_it(tmp_path, mode, when):
    """Its agents were told to the new watchdog before it started; the one it replaced does not
    stay stopped; an agent that ended by itself has its exit written, the killed one none; and
    what the old one had not read (an attempt's cgroup to remove: here an empty folder) is done."""
    kill_the_runner(tmp_path, mode, when)
    assert json.loads((tmp_path / "ended.json").read_text()) == {"attempt_id": "ended", "status": 3}
    assert not (tmp_path / "killed.json").exists(), "killed by a watchdog, not ended by itself"
    assert not (tmp_path / "cgroup").exists()
    # Killed by another than a watchdog: so it says. Unless the one replaced was still there as the
    # runner died: the new one cannot tell that one's SIGKILL from another's, and leaves it to
    # that one (continued by the kernel if it was stopped), which writes it if it got there first.
    if mode == "gone" or when == "after" or (tmp_path / "oom.json").exists():
        assert json.loads((tmp_path / "oom.json").read_text()) == {"attempt_id": "oom", "status": -9}


@pytest.mark.skipif(sys.version_info < (3, 11), reason="a process group of its own needs Python 3.11")
def test_a_watchdog_stopped_then_its_runner_killed_before_it_is_replaced_still_kills_the_agents(tmp_path):
    """An agent that stops the watchdog (SIGSTOP) and kills the runner at once: the kernel
    continues the stopped watchdog as the runner dies (its process group is orphaned then)."""
    kill_the_runner(tmp_path, "stopped", "unnoticed")
    assert json.loads((tmp_path / "ended.json").read_text()) == {"attempt_id": "ended", "status": 3}
    assert json.loads((tmp_path / "oom.json").read_text()) == {"attempt_id": "oom", "status": -9}
    assert not (tmp_path / "killed.json").exists()
