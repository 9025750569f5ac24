"""Fault injection: failures by cause, timeouts, hangs, limits, secrets, broken disks.

Real `doit run-batch` processes; the agents are the scripted stand-in (tests/agents)
or, where an agent's own event stream matters, a stand-in CLI that replays the
real Claude Code stream recorded in tests/fixtures.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FRONT_MATTER, alive

FIXTURES = Path(__file__).parent / "fixtures" / "claude"


def front_matter(*lines: str) -> str:
    return FRONT_MATTER.replace("agent: command\n", "agent: command\n" + "".join(f"{line}\n" for line in lines))


def record(batch, group: str, module: str, name: str = "result.json") -> dict:
    return json.loads((batch.state(group, module) / name).read_text())


def test_transient_failures_are_retried_with_backoff_and_each_attempt_recorded(batch):
    batch.write("# T\n## G\n- [ ] a: flaky\n", front_matter(
        "transient_exit_codes: [75]", "retries: 3", "retry_base: 0.2s", "retry_cap: 1s"))
    batch.behave(a={"attempts": {"1": {"exit": 75}, "2": {"exit": 75}}})
    result = batch.run("run-batch")
    assert result.returncode == 0, result.stdout + result.stderr
    attempts = record(batch, "g", "a")["attempts"]
    assert [(a["ok"], a["failure_class"]) for a in attempts] == [(False, "transient"), (False, "transient"), (True, None)]
    assert len({a["session_id"] for a in attempts}) == 3  # a fresh session for every attempt
    gaps = [later["started"] - earlier["finished"] for earlier, later in zip(attempts, attempts[1:])]
    assert 0.1 <= gaps[0] <= 0.5 and 0.2 <= gaps[1] <= 1.0  # base, then twice the base, with jitter
    log = (batch.state("g", "a") / "output.log").read_text()
    assert log.count("=== g:a attempt") == 5  # three attempts, two failure notices


def test_permanent_failures_are_not_retried(batch):
    batch.write("# T\n## G\n- [ ] a: broken\n", front_matter("retries: 3", "retry_base: 0.1s"))
    batch.behave(a={"exit": 2})
    assert batch.run("run-batch").returncode == 1
    failure = record(batch, "g", "a", "failure.json")
    assert [a["failure_class"] for a in failure["attempts"]] == ["permanent"]
    assert batch.runs("start") == {"g:a": 1}


def test_a_silent_agent_is_stopped_by_idle_timeout_with_its_tree_and_retried(batch):
    batch.write("# T\n## G\n- [ ] a: hangs once\n", front_matter("idle_timeout: 1s", "retry_base: 0.1s"))
    batch.behave(a={"attempts": {"1": {"hang": 60, "child": True}}})
    started = time.monotonic()
    result = batch.run("run-batch")
    assert result.returncode == 0, result.stdout + result.stderr
    assert time.monotonic() - started < 15
    first = record(batch, "g", "a")["attempts"][0]
    assert (first["reason"], first["failure_class"]) == ("no output for 1s", "transient")
    grandchild = int((batch.path / "child-a.pid").read_text())
    assert not alive(grandchild)


def test_timeout_stops_an_attempt_that_talks_but_never_ends(batch):
    ticker = "import time\nwhile True:\n    print('still going', flush=True)\n    time.sleep(0.1)\n"
    command = json.dumps([sys.executable, "-c", ticker])
    batch.write("# T\n## G\n- [ ] a: endless\n", f"---\ncommand: {command}\ntimeout: 1.5s\nretries: 0\n---\n")
    result = batch.run("run-batch")
    assert result.returncode == 1
    assert record(batch, "g", "a", "failure.json")["reason"] == "timed out after 1.5s"


def fake_claude(batch, then: str) -> dict:
    """A stand-in `claude` that replays a real recorded success, then does `then`."""
    bin_folder = batch.path / "bin"
    bin_folder.mkdir()
    script = bin_folder / "claude"
    script.write_text(
        f"#!{sys.executable}\n"
        "import os, signal, sys, time\n"
        "if sys.argv[1:] == ['--version']:\n"  # as the real one answers, asked before a run (history.versions)
        "    sys.exit(print('2.1.330 (Claude Code)'))\n"
        "sys.stdin.read()\n"
        f"open({str(batch.path / 'claude-runs.log')!r}, 'a').write('run\\n')\n"
        f"sys.stdout.write(open({str(FIXTURES / 'text_success.jsonl')!r}).read())\n"
        "sys.stdout.flush()\n"
        f"{then}\n"
    )
    script.chmod(0o755)
    return {"PATH": f"{bin_folder}{os.pathsep}{os.environ['PATH']}"}


def test_an_agent_lingering_after_its_result_is_stopped_and_judged_by_its_result(batch):
    env = fake_claude(batch, then="time.sleep(120)")
    batch.write("# T\n## G\n- [ ] a: answer\n", front_matter="---\nagent: claude\n---\n")
    started = time.monotonic()
    result = batch.run("run-batch", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert time.monotonic() - started < 20
    assert record(batch, "g", "a")["cost_usd"] > 0
    exit_event = [json.loads(line) for line in (batch.state("g", "a") / "events.jsonl").read_text().splitlines()][-1]
    assert exit_event["data"]["stopped_for"] == "still running after its final result"


def test_a_run_killed_right_after_the_agent_succeeded_is_finished_from_the_log(batch):
    # The agent reports its success, and its runner dies before the agent exits and it is recorded.
    env = fake_claude(batch, then="time.sleep(0.5); os.kill(os.getppid(), signal.SIGKILL); time.sleep(30)")
    batch.write("# T\n## G\n- [ ] a: answer\n## H\n- [ ] a: next\n", front_matter="---\nagent: claude\n---\n")
    killed = batch.run("run-batch", env=env)
    assert killed.returncode == -9
    assert not (batch.state("g", "a") / "result.json").exists()
    stand_in = batch.path / "bin" / "claude"  # the next run: the stand-in no longer kills its runner
    stand_in.write_text(stand_in.read_text().replace("time.sleep(0.5); os.kill(os.getppid(), signal.SIGKILL); time.sleep(30)", ""))
    resumed = batch.run("run-batch", env=env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming g:a from its log" in resumed.stdout
    assert record(batch, "g", "a")["salvaged"] is True
    assert (batch.path / "claude-runs.log").read_text().count("run") == 2  # g:a once, h:a once
    assert batch.taskfile.read_text().count("- [x]") == 2


def test_secrets_never_reach_logs_events_or_records(batch):
    batch.write("# T\n## G\n- [ ] a: leaks\n")
    batch.behave(a={"print": "the token is tok-5ecret-value-42 and the key sk-live-998877"})
    env = {"MY_SERVICE_TOKEN": "tok-5ecret-value-42", "PAYMENT_API_KEY": "sk-live-998877", "EDITOR_NAME": "nano-editor"}
    result = batch.run("run-batch", env=env)
    assert result.returncode == 0
    written = "".join(p.read_text() for p in batch.state("g", "a").iterdir() if p.is_file())
    assert "tok-5ecret-value-42" not in written and "sk-live-998877" not in written
    assert "the token is *** and the key ***" in written


def test_templates_cannot_run_code(batch):
    (batch.path / "evil.j2").write_text("{{ ''.__class__.__mro__[1].__subclasses__() }}\n")
    batch.write("# T\n## G\n- [ ] a: x\n", front_matter("template: evil.j2"))
    result = batch.run("run-batch")
    assert result.returncode == 3  # every prompt is rendered before anything runs
    assert "unsafe" in result.stderr and "Traceback" not in result.stdout + result.stderr
    assert batch.runs("start") == {}


@pytest.fixture
def full_folder(batch):
    """The item's state folder on a tiny file system, filled up (needs root, to mount it)."""
    folder = batch.state("g", "a")
    folder.mkdir(parents=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(folder)], capture_output=True).returncode:
        pytest.skip("cannot mount a small file system here (needs root)")
    try:
        filler = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(filler, b"x" * 512):
                pass
        except OSError:
            pass  # full
        os.close(filler)
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def test_a_full_disk_fails_the_item_clearly_and_leaves_task_md_whole(batch, full_folder):
    batch.write("# T\n## G\n- [ ] a: x\n")
    before = batch.taskfile.read_bytes()
    result = batch.run("run-batch")
    assert result.returncode == 1
    assert "cannot keep g:a's state" in result.stdout and "No space left on device" in result.stdout
    assert batch.taskfile.read_bytes() == before


def test_an_unusable_state_folder_is_one_error_before_anything_runs(batch):
    batch.write("# T\n## G\n- [ ] a: x\n")
    (batch.path / ".batch").write_text("a file where the state folder should be")
    result = batch.run("run-batch")
    assert result.returncode == 3
    assert "cannot create the state folder" in result.stderr and "Traceback" not in result.stderr
    assert batch.runs("start") == {}
