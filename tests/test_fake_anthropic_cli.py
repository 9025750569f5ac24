"""The real Claude Code CLI (headless, stream-json) against tests/fake_anthropic.py.

Pins down what the CLI prints and does, so batch-tasks can rely on it.
Every session runs offline in a throwaway HOME/TMPDIR and takes ~0.6-2.5 s.
RECORD_CLAUDE_FIXTURES=1 rewrites tests/fixtures/claude/*.jsonl from these runs.

Retry behaviour seen with 2.1.330 (API key auth):
* 401, 429, 500 and 529 are all retried, announced by system/api_retry events
  (attempt, max_retries, retry_delay_ms, error_status, error).
* Default max_retries 10; CLAUDE_CODE_MAX_RETRIES=N sets it (0 = no retry,
  clamped to 15). Backoff 500 ms * 2**(attempt-1) + up to 25% jitter, capped at
  32 s; a retry-after header (whole seconds) is a floor. No knob for the delay.
* 529 gives up after 3 attempts regardless (or switches to --fallback-model).
* `x-should-retry: false` on the error response stops retrying at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from fake_anthropic import FakeAnthropic, cli_env, error, find_claude, hang, text, tool_use

CLAUDE = find_claude()
needs_claude = pytest.mark.skipif(
    CLAUDE is None,
    reason="claude CLI not found on PATH or at .ci/node/node_modules/.bin/claude "
    "(npm install --prefix .ci/node @anthropic-ai/claude-code@2.1.330)",
)
FIXTURES = Path(__file__).parent / "fixtures" / "claude"
# As root, bypassPermissions is refused; acceptEdits + an allow-list works.
FLAGS = ["-p", "--output-format", "stream-json", "--verbose",
         "--permission-mode", "acceptEdits", "--allowedTools", "Write Bash Edit Read"]


@dataclass
class Run:
    rc: int
    events: list[dict]
    stderr: str
    seconds: float

    def of(self, type_: str, subtype: str | None = None) -> list[dict]:
        return [e for e in self.events
                if e["type"] == type_ and (subtype is None or e.get("subtype") == subtype)]

    @property
    def result(self) -> dict:
        (result,) = self.of("result")
        return result


def run_claude(api, tmp_path, *args, prompt="do the task", fixture=None, **env) -> Run:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    start = time.monotonic()
    proc = subprocess.run(
        [CLAUDE, *FLAGS, *args], input=prompt, capture_output=True, text=True,
        cwd=work, env=cli_env(api.url, tmp_path / "home", **env), timeout=60,
    )
    seconds = time.monotonic() - start
    if fixture and os.environ.get("RECORD_CLAUDE_FIXTURES"):
        FIXTURES.mkdir(parents=True, exist_ok=True)
        (FIXTURES / f"{fixture}.jsonl").write_text(proc.stdout)
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert events[0]["type"] == "system" and events[0]["subtype"] == "init", proc.stderr
    return Run(proc.returncode, events, proc.stderr, seconds)


# --- successful sessions ----------------------------------------------------


@needs_claude
def test_text_answer(tmp_path):
    with FakeAnthropic([text("Hello from the fake")]) as api:
        run = run_claude(api, tmp_path, prompt="say hello", fixture="text_success")
    assert run.rc == 0
    assert [e["type"] for e in run.events] == ["system", "assistant", "result"]
    r = run.result
    assert (r["subtype"], r["is_error"], r["terminal_reason"]) == ("success", False, "completed")
    assert r["result"] == "Hello from the fake"
    assert r["total_cost_usd"] > 0 and r["num_turns"] == 1
    assert r["session_id"] == run.events[0]["session_id"]
    (req,) = api.main_requests
    assert "say hello" in json.dumps(req.body["messages"])
    assert req.body["stream"] is True


@needs_claude
def test_write_tool(tmp_path):
    turns = [tool_use("Write", {"file_path": "hello.txt", "content": "hi there\n"}),
             text("Wrote it")]
    with FakeAnthropic(turns) as api:
        run = run_claude(api, tmp_path, fixture="write_tool")
    assert run.rc == 0 and run.result["num_turns"] == 2
    assert (tmp_path / "work/hello.txt").read_text() == "hi there\n"
    (result,) = api.tool_results()
    assert "File created successfully" in result["content"]
    assert result["tool_use_id"] == run.of("assistant")[0]["message"]["content"][0]["id"]
    assert [e["type"] for e in run.events] == ["system", "assistant", "user", "assistant", "result"]


@needs_claude
def test_bash_tool(tmp_path):
    turns = [tool_use("Bash", {"command": "echo hi > out.txt && cat out.txt",
                               "description": "write out.txt"}),
             text("Ran it")]
    with FakeAnthropic(turns) as api:
        run = run_claude(api, tmp_path, fixture="bash_tool")
    assert run.rc == 0 and not run.result["is_error"]
    assert (tmp_path / "work/out.txt").read_text() == "hi\n"
    (result,) = api.tool_results()
    assert result["content"] == "hi" and result["is_error"] is False
    assert run.result["permission_denials"] == []


@needs_claude
def test_max_turns_stop(tmp_path):
    turns = [tool_use("Write", {"file_path": "a.txt", "content": "x"}), text("never sent")]
    with FakeAnthropic(turns) as api:
        run = run_claude(api, tmp_path, "--max-turns", "1", fixture="max_turns")
    assert run.rc == 1
    r = run.result
    assert (r["subtype"], r["is_error"], r["terminal_reason"]) == ("error_max_turns", True, "max_turns")
    assert r["errors"] == ["Reached maximum number of turns (1)"] and "result" not in r
    assert r["num_turns"] == 2  # counts the tool-result turn it refused to send
    assert (tmp_path / "work/a.txt").exists()  # the tool itself still ran
    assert len(api.main_requests) == 1 and api.remaining == 1


@needs_claude
def test_session_id(tmp_path):
    sid = str(uuid.uuid4())
    with FakeAnthropic([text("one"), text("two")]) as api:
        run = run_claude(api, tmp_path, "--session-id", sid, fixture="session_id")
        assert {e["session_id"] for e in run.events} == {sid}
        assert api.main_requests[0].headers["X-Claude-Code-Session-Id"] == sid
        again = subprocess.run([CLAUDE, *FLAGS, "--session-id", sid], input="x",
                               capture_output=True, text=True, cwd=tmp_path / "work",
                               env=cli_env(api.url, tmp_path / "home"), timeout=60)
        assert again.returncode == 1 and "already in use" in again.stderr
        resumed = run_claude(api, tmp_path, "--resume", sid)
    assert resumed.result["session_id"] == sid and resumed.result["result"] == "two"
    assert len(api.main_requests[-1].body["messages"]) == 4  # earlier turn replayed


# --- API errors -------------------------------------------------------------


def assert_api_error(run: Run, status: int, error_type: str, assistant_error: str):
    """Failures end with a synthetic assistant message plus an is_error result
    whose subtype is still "success"; the CLI exits 1."""
    assert run.rc == 1
    r = run.result
    assert (r["subtype"], r["is_error"], r["terminal_reason"]) == ("success", True, "api_error")
    assert (r["api_error_status"], r["api_error_type"]) == (status, error_type)
    assert r["total_cost_usd"] == 0
    last = run.of("assistant")[-1]
    assert last["error"] == assistant_error and last["is_api_error_message"] is True
    assert last["message"]["model"] == "<synthetic>"
    assert last["message"]["content"][0]["text"] == r["result"]


@needs_claude
def test_auth_error_401(tmp_path):
    # Without CLAUDE_CODE_MAX_RETRIES the CLI retries a 401 ten times (minutes).
    with FakeAnthropic([error(401, "invalid x-api-key")] * 3) as api:
        run = run_claude(api, tmp_path, fixture="auth_401", CLAUDE_CODE_MAX_RETRIES="0")
    assert_api_error(run, 401, "authentication_error", "authentication_failed")
    assert run.result["result"] == "Invalid API key · Fix external API key"
    assert len(api.main_requests) == 1 and not run.of("system", "api_retry")


@needs_claude
def test_rate_limit_429_then_success(tmp_path):
    turns = [error(429, "Number of request tokens has exceeded your per-minute rate limit",
                   retry_after=0)] * 2 + [text("recovered")]
    with FakeAnthropic(turns) as api:
        run = run_claude(api, tmp_path, fixture="rate_limit_429_retry",
                         CLAUDE_CODE_MAX_RETRIES="3")
    assert run.rc == 0 and run.result["result"] == "recovered"
    retries = run.of("system", "api_retry")
    assert [(e["attempt"], e["max_retries"], e["error_status"], e["error"]) for e in retries] == [
        (1, 3, 429, "rate_limit"), (2, 3, 429, "rate_limit")]
    times = [r.time for r in api.main_requests]
    assert times[1] - times[0] >= 0.4 and times[2] - times[1] >= 0.9  # 500 ms, 1 s backoff
    assert not run.of("rate_limit_event")  # only sent for subscription (unified) limits


@needs_claude
def test_rate_limit_429_exhausted(tmp_path):
    with FakeAnthropic([error(429, "Number of request tokens has exceeded your "
                                   "per-minute rate limit")] * 3) as api:
        run = run_claude(api, tmp_path, fixture="rate_limit_429_exhausted",
                         CLAUDE_CODE_MAX_RETRIES="1")
    assert_api_error(run, 429, "rate_limit_error", "rate_limit")
    assert run.result["result"].startswith("API Error: Request rejected (429)")
    assert len(api.main_requests) == 2 and len(run.of("system", "api_retry")) == 1


@needs_claude
def test_429_should_retry_false_fails_at_once(tmp_path):
    with FakeAnthropic([error(429, headers={"x-should-retry": "false"}), text("never")]) as api:
        run = run_claude(api, tmp_path)
    assert_api_error(run, 429, "rate_limit_error", "rate_limit")
    assert len(api.main_requests) == 1


@needs_claude
def test_overloaded_529(tmp_path):
    # No env knob needed: repeated 529s end the session after 3 attempts.
    with FakeAnthropic([error(529, "Overloaded")] * 3 + [text("never")]) as api:
        run = run_claude(api, tmp_path, fixture="overloaded_529")
    assert_api_error(run, 529, "overloaded_error", "server_error")
    assert run.result["result"].startswith("API Error: Repeated 529 Overloaded errors")
    assert [e["error"] for e in run.of("system", "api_retry")] == ["overloaded"] * 2
    assert api.remaining == 1


# --- the fake on its own (no CLI needed) -------------------------------------


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url + "/v1/messages", json.dumps(body).encode(),
                                 {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def test_side_requests_do_not_consume_script():
    with FakeAnthropic([tool_use("Bash", {"command": "ls"})]) as api:
        side = _post(api.url, {"model": "claude-haiku-4-5", "max_tokens": 1,
                               "messages": [{"role": "user", "content": "quota"}]})
        main = _post(api.url, {"model": "m", "max_tokens": 100, "messages": [],
                               "tools": [{"name": "Bash", "input_schema": {}}]})
    assert side["content"] == [{"type": "text", "text": "done"}]
    assert main["stop_reason"] == "tool_use" and main["content"][0]["input"] == {"command": "ls"}
    assert [r.main for r in api.requests] == [False, True]


def test_stop_is_bounded_while_hanging():
    api = FakeAnthropic([hang(60)]).start()
    req = urllib.request.Request(
        api.url + "/v1/messages",
        json.dumps({"model": "m", "max_tokens": 9, "stream": True, "messages": [],
                    "tools": [{"name": "Bash", "input_schema": {}}]}).encode())
    resp = urllib.request.urlopen(req, timeout=5)
    assert b"message_start" in resp.readline() + resp.readline()
    start = time.monotonic()
    api.stop()
    assert time.monotonic() - start < 2
    resp.close()
