"""The agent's own exit decides, timeouts watch the process, and nothing it started is left behind.

Real `doit run-batch` processes with the scripted agent, which starts helpers that
hold its output, background helpers, setsid double-fork daemons, and closes its output.
"""

import json
import signal
import time

import psutil
import pytest
from conftest import FRONT_MATTER, alive, wait_for, watchdogs


def front_matter(*lines: str) -> str:
    return FRONT_MATTER.replace("agent: command\n", "agent: command\n" + "".join(f"{line}\n" for line in lines))




def pid_of(batch, name: str) -> int:
    path = batch.path / name
    wait_for(lambda: path.exists() and path.read_text().strip())
    return int(path.read_text())


def record(batch, group, module, name="result.json") -> dict:
    return json.loads((batch.state(group, module) / name).read_text())


def kill_all(*pids: int) -> None:
    for pid in pids:
        try:
            psutil.Process(pid).kill()
        except psutil.Error:
            pass


def test_a_success_counts_while_a_helper_holds_the_output_and_talks_past_the_timeout(batch):
    batch.write("# T\n## G\n- [ ] a: helped\n", front_matter("timeout: 6s", "retries: 0"))
    batch.behave(a={"holder": 60, "holder_talks": True, "sleep": 1})
    result = batch.run("run-batch", timeout=50)
    helper = pid_of(batch, "helper-a.pid")
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        assert record(batch, "g", "a")["attempts"][0]["reason"] == ""
        assert batch.runs("start") == {"g:a": 1}
        assert not alive(helper)
        assert "helper still here" in (batch.state("g", "a") / "output.log").read_text()
    finally:
        kill_all(helper)


def test_the_exit_is_recorded_at_once_so_a_kill_right_after_it_loses_nothing(batch):
    # The helper holds the output, talks, and ignores SIGTERM: it takes a while to stop.
    batch.write("# T\n## G\n- [ ] a: helped\n## H\n- [ ] b: later\n")
    batch.behave(a={"holder": 60, "holder_talks": True, "holder_stubborn": True}, b={"sleep": 30})
    runner = batch.start("run-batch")
    try:
        wait_for(lambda: batch.runs("done")["g:a"] == 1)
        time.sleep(1.0)  # the agent has exited; its helper is still being stopped, or just was
        runner.kill()
        runner.wait(timeout=10)
        helper = pid_of(batch, "helper-a.pid")
        batch.behave()
        resumed = batch.run("run-batch", timeout=60)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert batch.runs("start")["g:a"] == 1, "a success was paid for twice"
        assert "- [x] a: helped" in batch.taskfile.read_text()
        assert not alive(helper)
    finally:
        runner.kill()


@pytest.mark.parametrize("limit, reason", [("timeout: 3s", "timed out after 3s"), ("idle_timeout: 2s", "no output for 2s")])
def test_timeouts_hold_after_the_agent_closes_its_output(batch, limit, reason):
    batch.write("# T\n## G\n- [ ] a: mute\n", front_matter(limit, "retries: 0"))
    batch.behave(a={"close_output": True, "hang": 120})
    started = time.monotonic()
    result = batch.run("run-batch", timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert record(batch, "g", "a", "failure.json")["reason"] == reason
    assert time.monotonic() - started < 40
    assert not [line for line in (batch.path / "runs.log").read_text().splitlines() if alive(int(line.split()[2]))]


def test_an_agent_silent_at_its_start_for_longer_than_idle_timeout_is_not_stopped(batch):
    """The idle clock starts at the first output (when the allowance ends: test_limits.py)."""
    batch.write("# T\n## G\n- [ ] a: slow start\n", front_matter("idle_timeout: 1s", "retries: 0"))
    batch.behave(a={"quiet": True, "sleep": 3})
    result = batch.run("run-batch")
    assert (batch.state("g", "a") / "result.json").exists(), result.stdout  # 3 s silent, then success


@pytest.fixture(params=["cgroup", "marker"])
def tracking(request, monkeypatch):
    """Each leftover test runs with the attempt's cgroup, and without (process scan alone)."""
    if request.param == "marker":
        return {"BATCH_TASKS_NO_CGROUP": "1"}
    return {}


def test_no_helper_outlives_a_successful_item(batch, tracking):
    batch.write("# T\n## G\n- [ ] a: background\n- [ ] b: daemon\n")
    batch.behave(a={"background": True}, b={"daemon": True})
    result = batch.run("run-batch", env=tracking)
    helpers = [pid_of(batch, "background-a.pid"), pid_of(batch, "daemon-b.pid")]
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        assert [pid for pid in helpers if alive(pid)] == []
    finally:
        kill_all(*helpers)


@pytest.mark.parametrize("daemon", [
    {"daemon_env": "clear"},  # no environment, no marker: found by its cgroup
    # Out of its cgroup, as one started in the moment before its agent joined it would be, or one that
    # moved itself out (a process may, into a cgroup of its user's above it): found by its marker.
    {"daemon_cgroup": "leave"},
], ids=["no-environment", "left-its-cgroup"])
def test_a_daemon_is_found_by_its_cgroup_or_by_its_marker(batch, daemon):
    batch.write("# T\n## G\n- [ ] a: daemon\n")
    batch.behave(a={"daemon": True, **daemon})
    result = batch.run("run-batch")
    started = pid_of(batch, "daemon-a.pid")
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        assert not alive(started)
    finally:
        kill_all(started)


def test_ctrl_c_stops_daemons_too(batch, tracking):
    batch.write("# T\n## G\n- [ ] a: daemon\n- [ ] b: background\n", front_matter("parallel: 2"))
    batch.behave(a={"daemon": True, "sleep": 60}, b={"background": True, "sleep": 60})
    runner = batch.start("run-batch", env=tracking)
    helpers = [pid_of(batch, "daemon-a.pid"), pid_of(batch, "background-b.pid")]
    try:
        runner.send_signal(signal.SIGINT)
        output, _ = runner.communicate(timeout=30)
        assert runner.returncode == 130, output
        assert [pid for pid in helpers if alive(pid)] == []
    finally:
        runner.kill()
        kill_all(*helpers)


@pytest.fixture
def two_helpers(batch):
    """Two agents at once, each leaving a process behind: a daemon out of the cgroup it was born
    in (found by its marker), and a background process (in its cgroup, and marked)."""
    batch.write("# T\n## G\n- [ ] a: daemon\n- [ ] b: background\n", front_matter("parallel: 2"))
    batch.behave(a={"daemon": True, "daemon_cgroup": "leave", "sleep": 60}, b={"background": True, "sleep": 60})
    return batch


def test_kill_9_stops_what_the_killed_attempts_started_with_their_runner(two_helpers, tracking):
    batch = two_helpers
    runner = batch.start("run-batch", env=tracking)
    helpers = [pid_of(batch, "daemon-a.pid"), pid_of(batch, "background-b.pid")]
    try:
        wait_for(lambda: len(batch.runs("start")) == 2)
        runner.kill()
        runner.wait(timeout=10)
        agents = [int(line.split()[2]) for line in (batch.path / "runs.log").read_text().splitlines()]
        wait_for(lambda: not any(alive(pid) for pid in agents + helpers), timeout=10)
    finally:
        runner.kill()
        kill_all(*helpers)


def test_what_outlives_a_runner_killed_with_its_watchdog_is_stopped_by_the_next_run(two_helpers, tracking):
    """An agent can kill the watchdog and its runner at once (the same user's processes, without a
    sandbox): all it started lives on, and the next run stops it before anything runs."""
    batch = two_helpers
    runner = batch.start("run-batch", env=tracking)
    helpers = [pid_of(batch, "daemon-a.pid"), pid_of(batch, "background-b.pid")]
    try:
        wait_for(lambda: len(batch.runs("start")) == 2)
        watchdog = wait_for(lambda: watchdogs(runner))[0]
        runner.send_signal(signal.SIGSTOP)  # stopped, it cannot start another watchdog
        watchdog.kill()
        wait_for(lambda: not alive(watchdog.pid), timeout=10)  # a zombie: its stopped runner cannot reap it
        runner.kill()
        runner.wait(timeout=10)
        agents = [int(line.split()[2]) for line in (batch.path / "runs.log").read_text().splitlines()]
        assert all(alive(pid) for pid in agents + helpers)
        batch.behave()
        resumed = batch.run("run-batch", env=tracking, timeout=60)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert resumed.stdout.count("recovered: stopped what the agent of") == 2
        assert [pid for pid in agents + helpers if alive(pid)] == []
    finally:
        runner.kill()
        kill_all(*helpers)
