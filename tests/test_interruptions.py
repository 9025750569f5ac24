"""Interruptions lose nothing: kill -9, Ctrl-C, SIGTERM, SIGHUP and a closed output mid-group,
then a resume."""

import os
import platform
import signal
import subprocess
import threading
import time

import psutil
import pytest
from conftest import alive, wait_for, watchdogs

SIX = "# T\n## G\n" + "".join(f"- [ ] m{i}: item {i}\n" for i in range(6)) + "## H\n- [ ] m0: after\n"


def agent_pids(batch) -> set[int]:
    """Every agent and grandchild the batch started."""
    pids = {int(line.split()[2]) for line in (batch.path / "runs.log").read_text().splitlines()}
    pids |= {int(p.read_text()) for p in batch.path.glob("child-*.pid")}
    return pids


def completed(batch) -> set[str]:
    return {f"g:m{i}" for i in range(6) if (batch.state("g", f"m{i}") / "result.json").exists()}


@pytest.fixture
def busy(batch):
    """A group of six items, three at a time, two of them slow, each with a grandchild."""
    batch.write(SIX)
    batch.behave(**{"*": {"sleep": 0.5, "child": True}}, m4={"sleep": 30}, m5={"sleep": 30})
    return batch


def resume_and_check(batch, done_before: set[str]) -> None:
    batch.behave()
    result = batch.run("run-batch", "-n", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    starts = batch.runs("start")
    for item in done_before:
        assert starts[item] == 1, f"{item} ran again after it had completed"
    assert all(f"- [x] m{i}:" in batch.taskfile.read_text() for i in range(6))
    assert not [pid for pid in agent_pids(batch) if alive(pid)]


def test_kill_9_mid_group_then_resume(busy):
    runner = busy.start("run-batch", "-n", "3")
    wait_for(lambda: len(completed(busy)) >= 4 and busy.runs("start")["g:m5"] == 1)
    runner.kill()
    runner.wait(timeout=10)
    done_before = completed(busy)
    assert {"g:m4", "g:m5"}.isdisjoint(done_before)
    wait_for(lambda: not [pid for pid in agent_pids(busy) if alive(pid)], timeout=20)  # gone with their runner

    resume = busy.run("run-batch", "--dry-run")
    assert "g:m4  interrupted last time (its run was killed)" in resume.stdout
    resume_and_check(busy, done_before)


@pytest.mark.parametrize("signum, code, words", [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM"),
                                                 (signal.SIGHUP, 129, "SIGHUP")])
def test_ctrl_c_and_sigterm_stop_every_agent_tree_then_resume(busy, signum, code, words):
    runner = busy.start("run-batch", "-n", "3")
    wait_for(lambda: len(completed(busy)) >= 4 and busy.runs("start")["g:m5"] == 1)
    pids = agent_pids(busy)
    runner.send_signal(signum)
    stopped_at = time.monotonic()
    output, _ = runner.communicate(timeout=15)
    assert time.monotonic() - stopped_at < 5
    assert runner.returncode == code, output
    assert f"Stopped by {words}" in output and "run `doit run-batch` again" in output
    assert "not started: 1 item, the run was stopped: h:m0" in output  # was: "an item it depends on failed"
    assert not [pid for pid in pids if alive(pid)]
    assert "g:m4" in busy.run("run-batch", "--dry-run").stdout
    assert "h:m0" not in busy.runs("start")  # nothing new started after the signal
    resume_and_check(busy, completed(busy))


def test_a_closed_output_stops_the_run_as_sigterm_does_then_resume(busy):
    """`doit run-batch | head -1`: was a BrokenPipeError traceback, and agents left running."""
    runner = subprocess.Popen(busy.command("run-batch", "-n", "3"), cwd=busy.path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    runner.stdout.readline()
    wait_for(lambda: busy.runs("start")["g:m5"] == 1)
    runner.stdout.close()  # the next line it writes finds no reader
    errors = runner.stderr.read()
    assert runner.wait(timeout=30) == 128 + signal.SIGPIPE, errors
    assert "Traceback" not in errors and "Broken pipe" not in errors, errors
    assert not [pid for pid in agent_pids(busy) if alive(pid)]
    interrupted = [key for key in ("g:m4", "g:m5") if busy.state(*key.split(":")).joinpath("failure.json").exists()]
    assert interrupted == ["g:m4", "g:m5"]
    resume_and_check(busy, completed(busy))


def test_a_second_run_on_the_same_file_is_refused(busy):
    runner = busy.start("run-batch", "-n", "3")
    try:
        # Only the slow two still run, the others ticked: the first run ticks nothing while the second is refused.
        wait_for(lambda: busy.taskfile.read_text().count("- [x]") == 4 and busy.runs("start")["g:m5"] == 1)
        before = busy.taskfile.read_bytes()
        second = busy.run("run-batch")
        assert second.returncode != 0
        assert f"another run (pid {runner.pid}, started " in second.stderr
        assert busy.taskfile.read_bytes() == before
    finally:
        runner.send_signal(signal.SIGTERM)
        runner.communicate(timeout=15)


def test_kill_9_of_the_runner_ends_its_running_agents_and_what_they_started_at_once(busy):
    """The agents die with their runner (the run's watchdog), and so does what they started
    (a subagent of theirs would go on paying): not at the next run."""
    runner = busy.start("run-batch", "-n", "3")
    wait_for(lambda: busy.runs("start")["g:m4"] == 1 and busy.runs("start")["g:m5"] == 1)
    agents = {int(line.split()[2]) for line in (busy.path / "runs.log").read_text().splitlines()
              if line.split()[0] == "start" and line.split()[1] in ("g:m4", "g:m5")}
    children = {int(text) for text in wait_for(lambda: all(
        (busy.path / f"child-{module}.pid").exists() and (busy.path / f"child-{module}.pid").read_text()
        for module in ("m4", "m5")) and [(busy.path / f"child-{module}.pid").read_text() for module in ("m4", "m5")])}
    runner.kill()
    runner.wait(timeout=10)
    wait_for(lambda: not [pid for pid in agents | children if alive(pid)], timeout=20)


def test_a_watchdog_killed_mid_run_is_replaced_and_still_ends_the_agents(busy):
    """An agent may kill the run's watchdog (it runs as the same user): another takes its
    place, told of the agents running, and they still die with a runner killed with -9."""
    runner = busy.start("run-batch", "-n", "3")
    wait_for(lambda: busy.runs("start")["g:m4"] == 1 and busy.runs("start")["g:m5"] == 1)
    agents = {int(line.split()[2]) for line in (busy.path / "runs.log").read_text().splitlines()
              if line.split()[0] == "start" and line.split()[1] in ("g:m4", "g:m5")}

    first = wait_for(lambda: watchdogs(runner))[0]
    first.kill()
    # Killed as soon as the new one exists: it was told of the agents before it started.
    second = wait_for(lambda: [w for w in watchdogs(runner) if w.pid != first.pid], timeout=10)[0]
    runner.kill()
    runner.wait(timeout=10)
    wait_for(lambda: not [pid for pid in agents if alive(pid)], timeout=20)
    wait_for(lambda: not alive(second.pid), timeout=20)  # then it removed their cgroups and ended


def test_a_stopped_watchdog_is_replaced_and_still_ends_the_agents(busy):
    """An agent may stop the run's watchdog (SIGSTOP): a stopped watchdog hears nothing, and
    would do nothing when the runner dies. It is replaced as a killed one is, within a second,
    and the agents still die with a runner killed with -9."""
    runner = busy.start("run-batch", "-n", "3")
    wait_for(lambda: busy.runs("start")["g:m4"] == 1 and busy.runs("start")["g:m5"] == 1)
    agents = {int(line.split()[2]) for line in (busy.path / "runs.log").read_text().splitlines()
              if line.split()[0] == "start" and line.split()[1] in ("g:m4", "g:m5")}
    first = wait_for(lambda: watchdogs(runner))[0]
    first.suspend()
    try:
        second = wait_for(lambda: [w for w in watchdogs(runner) if w.pid != first.pid], timeout=10)[0]
        wait_for(lambda: not alive(first.pid), timeout=10)  # killed, not left stopped
        runner.kill()
        runner.wait(timeout=10)
        wait_for(lambda: not [pid for pid in agents if alive(pid)], timeout=20)
        wait_for(lambda: not alive(second.pid), timeout=20)
    finally:
        if alive(first.pid):
            first.kill()
        if runner.poll() is None:
            runner.kill()
            runner.wait()


class WatchdogStopper:
    """Stops (SIGSTOP) every watchdog of the runner it sees, as an agent bent on outliving it would."""

    def __init__(self) -> None:
        self.stopped: set[int] = set()
        self._done = threading.Event()
        self._runner = None
        self._thread = threading.Thread(target=self._stop_them, daemon=True)
        self._thread.start()

    def watch(self, runner) -> None:
        self._runner = runner

    def _stop_them(self) -> None:
        while not self._done.wait(0.02):
            for watchdog in watchdogs(self._runner) if self._runner is not None else ():
                if watchdog.pid not in self.stopped:
                    try:
                        watchdog.suspend()
                        self.stopped.add(watchdog.pid)
                    except psutil.Error:
                        pass

    def close(self) -> None:
        self._done.set()
        self._thread.join()
        for pid in self.stopped:
            try:
                psutil.Process(pid).kill()
            except psutil.Error:
                pass


def test_twelve_hundred_items_with_their_watchdogs_stopped_end_and_ctrl_c_still_works(batch):
    """A stopped watchdog reads nothing: a runner that waited for it to read hung after about
    350 items, deaf to Ctrl-C. It must neither hang nor stop answering."""
    count = 1200
    batch.write("# Many\n## G\n" + "".join(f"- [ ] m{i}: item {i}\n" for i in range(count)),
                '---\nagent: command\ncommand: ["true"]\n---\n')
    stopper = WatchdogStopper()
    output = batch.path / "output.txt"
    try:
        with open(output, "w") as stream:
            runner = subprocess.Popen(batch.command("run-batch", "-n", "8"), cwd=batch.path, stdout=stream,
                                      stderr=subprocess.STDOUT, text=True)
        stopper.watch(runner)
        ticked = lambda: batch.taskfile.read_text().count("- [x] ")  # noqa: E731
        try:
            wait_for(lambda: ticked() >= 600, timeout=120)
            runner.send_signal(signal.SIGINT)
            assert runner.wait(timeout=15) == 130, output.read_text()[-2000:]
        finally:
            if runner.poll() is None:
                runner.kill()
                runner.wait()
        assert ticked() < count, "it should have been stopped mid-run"

        with open(output, "w") as stream:
            runner = subprocess.Popen(batch.command("run-batch", "-n", "8"), cwd=batch.path, stdout=stream,
                                      stderr=subprocess.STDOUT, text=True)
        stopper.watch(runner)
        try:
            assert runner.wait(timeout=180) == 0, output.read_text()[-2000:]
        finally:
            if runner.poll() is None:
                runner.kill()
                runner.wait()
        assert ticked() == count
        assert stopper.stopped, "no watchdog was ever stopped: the test tested nothing"
    finally:
        stopper.close()


def test_an_agent_that_ends_while_its_runner_cannot_record_it_is_not_paid_for_again(batch):
    """The last window: an agent that succeeds in the moment its runner is being killed. Here
    that moment is held open: the runner is stopped (SIGSTOP) while its agent finishes, then
    killed. Its watchdog, which holds the agent's exit status, writes it down; the next run
    finishes the item from that record instead of running the agent again."""
    batch.write("# T\n## G\n- [ ] m0: the one that finishes as its runner dies\n")
    batch.behave(m0={"sleep": 1.0})
    runner = batch.start("run-batch")
    try:
        agent = psutil.Process(wait_for(lambda: [int(line.split()[2]) for line in
                                                 (batch.path / "runs.log").read_text().splitlines()]
                                        if (batch.path / "runs.log").exists() else None)[0])
        psutil.Process(runner.pid).suspend()
        wait_for(lambda: batch.runs("done")["g:m0"] == 1 and not alive(agent.pid))
    finally:
        runner.kill()
        runner.wait(timeout=10)
    assert not (batch.state("g", "m0") / "result.json").exists()

    result = batch.run("run-batch")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "resuming g:m0 from its log" in result.stdout + result.stderr
    assert batch.runs("done")["g:m0"] == 1 and batch.runs("start")["g:m0"] == 1, "its agent was paid for twice"
    assert "- [x] m0:" in batch.taskfile.read_text()


def test_the_watchdog_reads_an_agents_exit_status_whoever_reaps_it():
    """Through a pidfd taken before the agent could be reaped: from the zombie while it is
    one, and from the pidfd once something reaped it (Linux 6.15)."""
    from batch_tasks.processes.watchdog import exit_status

    deadline = time.monotonic() + 10
    killed = subprocess.Popen(["sleep", "30"])
    pidfd = os.pidfd_open(killed.pid)
    killed.kill()
    assert exit_status(pidfd, killed.pid, deadline) == -signal.SIGKILL  # a zombie: nobody reaped it yet
    killed.wait()
    os.close(pidfd)

    if tuple(int(part) for part in platform.release().split(".")[:2] if part.isdigit()) >= (6, 15):
        ended = subprocess.Popen(["sh", "-c", "exit 3"])
        pidfd = os.pidfd_open(ended.pid)
        ended.wait()  # reaped by its parent: its status is the pidfd's now
        assert exit_status(pidfd, ended.pid, deadline) == 3
        os.close(pidfd)


def test_recovery_reads_only_the_exit_record_of_the_killed_attempt(tmp_path):
    from batch_tasks.run.recovery import exit_seen_by_watchdog
    from batch_tasks.state.state import ItemState

    folder = ItemState(str(tmp_path))
    running = {"attempt_id": "a1", "runner_pid": -1}
    assert exit_seen_by_watchdog(folder, running) is None
    (tmp_path / "exit.json").write_text('{"attempt_id": "a0", "status": 0}')
    assert exit_seen_by_watchdog(folder, running) is None  # an earlier attempt's
    (tmp_path / "exit.json").write_text('{"attempt_id": "a1", "status": "0"}')
    assert exit_seen_by_watchdog(folder, running) is None
    (tmp_path / "exit.json").write_text('{"attempt_id": "a1", "status": 0}')
    assert exit_seen_by_watchdog(folder, running) == {"status": 0, "stopped_for": None}
    assert exit_seen_by_watchdog(folder, {"runner_pid": -1}) is None  # a record of no attempt
