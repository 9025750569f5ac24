"""Claude Code items end to end: real `doit run-batch`, the real CLI, a fake Messages API.

The CLI runs whole sessions against tests/fake_anthropic.py on loopback: it
performs the tool calls the fake asks for (files appear), streams its events
(they land in the item's events.jsonl while it runs), and reports cost and its
session id (they land in the result record).
"""

import json
import os
import threading
import time

import pytest
from fake_anthropic import FakeAnthropic, claude_path_env, cli_env, error, find_claude, hang, text, tool_use

CLAUDE = find_claude()
pytestmark = pytest.mark.skipif(
    CLAUDE is None and not os.environ.get("CI"),  # in CI a missing CLI must fail, not skip
    reason="the claude CLI is not installed: bash .ci/run installs the pinned version",
)

FRONT_MATTER = """---
agent: claude
permission_mode: acceptEdits
allowed_tools: [Write, Bash, Edit, Read]
parallel: 2
{extra}---
"""
NOTES = """\
# Claude batch
## Write notes
- [ ] auth: write notes/auth.md
- [ ] billing: write notes/billing.md
"""


def claude_env(api, batch) -> dict:
    env = cli_env(api.url, batch.path / "home", CLAUDE_CODE_MAX_RETRIES="0")
    env["PATH"] = claude_path_env(CLAUDE)
    return env


def writes(batch, module: str, *, until: threading.Event | None = None):
    path = str(batch.path / "notes" / f"{module}.md")
    return [tool_use("Write", {"file_path": path, "content": f"# {module}\n"}), text(f"Wrote {module}.", until=until)]


def events_of(batch, group: str, module: str) -> list[dict]:
    lines = (batch.state(group, module) / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_a_batch_of_claude_items_runs_through_the_real_cli(batch):
    batch.write(NOTES, front_matter=FRONT_MATTER.format(extra=""))
    routes = {"Module: auth": writes(batch, "auth"), "Module: billing": writes(batch, "billing")}
    with FakeAnthropic(by_prompt=routes) as api:
        result = batch.run("run-batch", env=claude_env(api, batch), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (batch.path / "notes" / "auth.md").read_text() == "# auth\n"
    assert (batch.path / "notes" / "billing.md").read_text() == "# billing\n"
    assert batch.taskfile.read_text().count("- [x]") == 2

    record = json.loads((batch.state("write-notes", "auth") / "result.json").read_text())
    started = [e for e in events_of(batch, "write-notes", "auth") if e["kind"] == "started"]
    assert record["agent"] == "claude"
    assert record["session_id"] == started[0]["data"]["session_id"] == record["attempts"][0]["session_id"]
    assert record["cost_usd"] > 0 and record["tokens"]["input"] > 0
    assert record["result_text"] == "Wrote auth."
    events = events_of(batch, "write-notes", "auth")
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "started" and "tool_use" in kinds and "tool_result" in kinds and kinds[-2:] == ["result", "exit"]
    assert events[-1]["data"] == {"status": 0, "stopped_for": None}
    summary = result.stdout.split("\n\n")[-1]
    assert "2 done, 0 failed" in summary and "$0.0" in summary
    assert "by group:" in summary and "most expensive:" in summary
    assert "2 tool calls, $0.0" in summary.splitlines()[0]  # each item's one Write
    assert "✓ write-notes:auth" in result.stdout and " · 1 tool call" in result.stdout
    status = batch.run("batch-status").stdout
    assert "2 of 2 done, 0 failed, 2 tool calls" in status
    report = json.loads(batch.run("batch-report", "--format", "json", "-o", "-").stdout)
    assert [(row["key"], row["tool_calls"], row["tools"]) for row in report["items"]] == [
        ("write-notes:auth", 1, {"Write": 1}), ("write-notes:billing", 1, {"Write": 1})]
    assert report["top_tools"] == [["Write", 2]]


def test_events_reach_the_log_and_batch_status_while_the_agent_runs(batch):
    batch.write(NOTES.replace("- [ ] billing: write notes/billing.md\n", ""), front_matter=FRONT_MATTER.format(extra=""))
    seen = threading.Event()  # its last answer waits until the test has looked
    with FakeAnthropic(by_prompt={"Module: auth": writes(batch, "auth", until=seen)}) as api:
        env = claude_env(api, batch)
        runner = batch.start("run-batch", env=env)
        try:
            events_file = batch.state("write-notes", "auth") / "events.jsonl"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if events_file.exists() and '"tool_use"' in events_file.read_text():
                    break
                time.sleep(0.1)
            assert runner.poll() is None, "the agent should still be running"
            assert not (batch.state("write-notes", "auth") / "result.json").exists()
            status = batch.run("batch-status", env=env)
            assert f"running: pid {runner.pid}" in status.stdout
            assert "write-notes:auth  #1" in status.stdout and "Write " in status.stdout
        finally:
            seen.set()
        output, _ = runner.communicate(timeout=60)
    assert runner.returncode == 0, output


def test_an_authentication_failure_fails_the_item_with_that_reason(batch):
    batch.write(NOTES, front_matter=FRONT_MATTER.format(extra=""))
    with FakeAnthropic([error(401, "Invalid API key"), error(401, "Invalid API key")]) as api:
        result = batch.run("run-batch", env=claude_env(api, batch), timeout=120)
    assert result.returncode == 1
    assert "authentication failed (401)" in result.stdout
    assert '{"' not in result.stdout  # its last lines are its words, not its stream-json
    assert "      Failed to authenticate. API Error: 401 Invalid API key" in result.stdout.split("\nfailed:\n")[1]
    failure = json.loads((batch.state("write-notes", "auth") / "failure.json").read_text())
    assert failure["reason"].startswith("authentication failed (401)")
    assert failure["attempts"][0]["failure_class"] == "permanent"
    assert "- [ ] auth:" in batch.taskfile.read_text()


def test_a_missing_cli_is_one_error_before_anything_runs(batch):
    batch.write(NOTES, front_matter=FRONT_MATTER.format(extra=""))
    result = batch.run("run-batch", env={"PATH": "/nonexistent"})
    assert result.returncode == 3
    assert result.stderr.strip().endswith("ERROR: agent 'claude' needs the claude command on PATH")
    assert not (batch.path / ".batch" / "task" / "items").exists()


def test_once_the_budget_is_spent_no_new_item_starts(batch):
    batch.write(NOTES, front_matter=FRONT_MATTER.format(extra="budget_usd: 0.01\n").replace("parallel: 2", "parallel: 1"))
    routes = {"Module: auth": writes(batch, "auth"), "Module: billing": writes(batch, "billing")}
    with FakeAnthropic(by_prompt=routes) as api:
        result = batch.run("run-batch", env=claude_env(api, batch), timeout=120)
    assert result.returncode == 4  # not all started
    assert (batch.path / "notes" / "auth.md").exists() and not (batch.path / "notes" / "billing.md").exists()
    assert "not started: 1 item, the batch's budget of $0.01 is spent (it needed $0.03" in result.stdout
    assert "items that did not fit were not started" in result.stdout


def test_a_rate_limited_attempt_is_retried_with_a_fresh_session(batch):
    extra = "retry_base: 0.2s\n"
    batch.write(NOTES.replace("- [ ] billing: write notes/billing.md\n", ""), front_matter=FRONT_MATTER.format(extra=extra))
    with FakeAnthropic(by_prompt={"Module: auth": [error(429, "slow down"), *writes(batch, "auth")]}) as api:
        result = batch.run("run-batch", env=claude_env(api, batch), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    attempts = json.loads((batch.state("write-notes", "auth") / "result.json").read_text())["attempts"]
    assert [(a["ok"], a["failure_class"]) for a in attempts] == [(False, "transient"), (True, None)]
    assert "429" in attempts[0]["reason"]
    assert attempts[0]["session_id"] != attempts[1]["session_id"]


def test_a_stalled_stream_is_stopped_by_idle_timeout_and_retried(batch):
    extra = "idle_timeout: 2s\nretry_base: 0.2s\n"
    batch.write(NOTES.replace("- [ ] billing: write notes/billing.md\n", ""), front_matter=FRONT_MATTER.format(extra=extra))
    with FakeAnthropic(by_prompt={"Module: auth": [hang(60), *writes(batch, "auth")]}) as api:
        started = time.monotonic()
        result = batch.run("run-batch", env=claude_env(api, batch), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert time.monotonic() - started < 30
    attempts = json.loads((batch.state("write-notes", "auth") / "result.json").read_text())["attempts"]
    assert attempts[0]["reason"] == "no output for 2s" and attempts[0]["failure_class"] == "transient"
    assert (batch.path / "notes" / "auth.md").exists()
