"""Gemini items end to end: real `doit run-batch`, the real Gemini CLI, a fake Gemini API.

gemini-cli runs whole sessions against tests/fake_gemini.py on loopback, with its own
retries down to one attempt (general.maxAttempts: the batch's retries decide). Its tool
calls really run: files appear.
"""

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from fake_gemini import FakeGemini, api_error, find_gemini, gemini_env, hang, shell, text, write_file

from batch_tasks.agents.pricing import estimated_cost

GEMINI = find_gemini()
pytestmark = pytest.mark.skipif(
    GEMINI is None and not os.environ.get("CI"),  # in CI a missing CLI must fail, not skip
    reason="the gemini CLI is not installed: bash .ci/run installs the pinned version",
)

FRONT_MATTER = """---
agent: gemini
{model}allowed_tools: [run_shell_command]
parallel: {parallel}
retry_base: 0.2s
{extra}---
"""
NOTES = """\
# Gemini batch
## Write notes
- [ ] auth: write notes/auth.md
- [ ] billing: write notes/billing.md
- [ ] catalog: write notes/catalog.md
"""
MODEL = "gemini-2.5-flash"


def write(batch, modules=("auth", "billing", "catalog"), *, parallel=3, extra="", model=MODEL):
    lines = NOTES.splitlines(keepends=True)
    items = [line for line in lines[2:] if line.split()[3].rstrip(":") in modules]
    front_matter = FRONT_MATTER.format(model=f"model: {model}\n" if model else "", parallel=parallel, extra=extra)
    batch.write("".join(lines[:2] + items), front_matter=front_matter)


def env(api, batch) -> dict:
    home = batch.path / "home"
    (home / "tmp").mkdir(parents=True, exist_ok=True)  # gemini writes its error reports there
    # No relaunch in a child process with a bigger heap: it halves gemini's start-up.
    return {**gemini_env(api, home, GEMINI), "TMPDIR": str(home / "tmp"), "GEMINI_CLI_NO_RELAUNCH": "true"}


def writes(batch, module: str) -> list:
    return [write_file(str(batch.path / "notes" / f"{module}.md"), f"# {module}\n"), text(f"Wrote {module}.")]


def attempts(batch, module: str, name: str = "result") -> list[tuple]:
    return [(a["ok"], a["failure_class"]) for a in batch.record("write-notes", module, name)["attempts"]]


def test_a_batch_of_gemini_items_writes_files_through_its_tools(batch):
    write(batch, model=None)  # gemini chooses: its router asks a small model first
    routes = {"Module: auth": writes(batch, "auth"), "Module: billing": writes(batch, "billing"),
              "Module: catalog": [shell("mkdir -p notes && printf '# catalog\\n' > notes/catalog.md"),
                                  text("Wrote catalog.")]}
    with FakeGemini(by_prompt=routes) as api:
        result = batch.run("run-batch", env=env(api, batch), timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    side = [r for r in api.requests if not r.main]
    assert len(side) == 3 and all(":generateContent" in r.path for r in side)  # one routing question each
    for module in ("auth", "billing", "catalog"):
        assert (batch.path / "notes" / f"{module}.md").read_text() == f"# {module}\n"
        turns = api.turns(f"Module: {module}")
        assert len(turns) == 2
        record = batch.record("write-notes", module)
        # The model that answered, not init's `auto`.
        assert record["model"] == api.model_of(turns[0]) != "auto"
        # Two turns of 1000 tokens in (600 cached) and 50 out, and the router's question.
        assert record["tokens"] == {"input": 1200, "output": 150, "cache_read": 1800, "cache_write": 0}
        assert record["cost_usd"] > 0
        assert attempts(batch, module) == [(True, None)]
    assert batch.taskfile.read_text().count("- [x]") == 3
    tools = [e["text"] for e in batch.events("write-notes", "auth") if e["kind"] == "tool_use"]
    assert tools == [f"Write {batch.path}/notes/auth.md"]
    tools = [e["text"] for e in batch.events("write-notes", "catalog") if e["kind"] == "tool_use"]
    assert tools == ["Bash: mkdir -p notes && printf '# catalog\\n' > notes/catalog.md"]


def test_an_authentication_failure_is_not_retried(batch):
    write(batch, ["auth"])
    with FakeGemini(by_prompt={"Module: auth": [api_error(401, "API key not valid.")]}) as api:
        result = batch.run("run-batch", env=env(api, batch), timeout=120)
    assert result.returncode == 1
    assert len(api.requests) == 1
    assert "API key not valid." in batch.record("write-notes", "auth", "failure")["reason"]
    assert attempts(batch, "auth", "failure") == [(False, "permanent")]


def test_a_server_error_and_a_rate_limit_it_retried_are_retried_then_the_item_is_ticked(batch):
    write(batch, ["auth"])
    # "Please retry in 1.5s": gemini retried it itself; no reset to wait for, so transient.
    limit = api_error(429, "You exceeded your current quota. Please retry in 1.5s.", retry_delay="1.5s")
    with FakeGemini(by_prompt={"Module: auth": [api_error(500, "Internal error"), limit,
                                                *writes(batch, "auth")]}) as api:
        result = batch.run("run-batch", env=env(api, batch), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [r.reply for r in api.requests] == ["error", "error", "tool", "text"]
    assert all(r.main for r in api.requests)  # no router question when the model is set
    assert attempts(batch, "auth") == [(False, "transient"), (False, "transient"), (True, None)]
    assert "- [x] auth:" in batch.taskfile.read_text()
    record = batch.record("write-notes", "auth")
    assert record["model"] == MODEL
    assert record["tokens"] == {"input": 800, "output": 100, "cache_read": 1200, "cache_write": 0}
    assert record["cost_usd"] == estimated_cost("google", MODEL, record["tokens"]) > 0


def test_a_usage_limit_pauses_the_batch_until_its_reset(batch):
    # A delay past 5 minutes, which gemini does not retry itself: a limit that resets then.
    # The batch pauses for it (the reset, an hour away, is not waited for here: the run is
    # stopped once the pause is seen).
    write(batch, ["auth", "billing"], parallel=1)
    limit = api_error(429, "You exceeded your current quota. Please retry in 3600s.", retry_delay="3600s")
    with FakeGemini(by_prompt={"Module: auth": [limit], "Module: billing": writes(batch, "billing")}) as api:
        started = time.time()
        runner = batch.start("run-batch", env=env(api, batch))
        log = batch.state("write-notes", "auth") / "output.log"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not (log.exists() and "failed (wait)" in log.read_text()):
            time.sleep(0.2)
        time.sleep(2)  # were billing not held by the pause, it would start now
        assert runner.poll() is None
        assert [r.key for r in api.requests] == ["Module: auth"]
        runner.send_signal(signal.SIGINT)
        runner.communicate(timeout=60)
    line = next(line for line in log.read_text().splitlines() if "failed (wait)" in line)
    reset = time.strptime(line.rsplit("limit resets at ", 1)[1].split()[0], "%H:%M:%S")
    seconds_away = (reset.tm_hour * 3600 + reset.tm_min * 60 + reset.tm_sec
                    - (time.localtime(started).tm_hour * 3600 + time.localtime(started).tm_min * 60
                       + time.localtime(started).tm_sec)) % 86400
    assert 3500 < seconds_away < 3700
    assert not (batch.path / "notes" / "billing.md").exists()


def test_a_stalled_stream_is_stopped_by_idle_timeout_and_retried(batch):
    # Long enough for gemini's silent start-up on a busy machine.
    write(batch, ["auth"], extra="idle_timeout: 8s\n")
    with FakeGemini(by_prompt={"Module: auth": [hang(120), *writes(batch, "auth")]}) as api:
        started = time.monotonic()
        result = batch.run("run-batch", env=env(api, batch), timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert time.monotonic() - started < 100
    record = batch.record("write-notes", "auth")
    assert record["attempts"][0]["reason"] == "no output for 8s"
    assert attempts(batch, "auth") == [(False, "transient"), (True, None)]
    assert [r.reply for r in api.requests] == ["hang", "tool", "text"]


def test_a_failed_check_is_told_to_the_same_gemini_session(batch, tmp_path):
    """gemini --resume SESSION, in task.md's folder where the session was made: the retry's
    conversation holds the first attempt's, then the check's output."""
    check = json.dumps([sys.executable, str(Path(__file__).parent / "agents" / "check_once.py"), "{module}"])
    write(batch, ("billing",), parallel=1, extra=f"check: {check}\n")
    (tmp_path / "checks").mkdir()
    with FakeGemini(by_prompt={"Module: billing": writes(batch, "billing") + [text("Fixed it.")]}) as api:
        result = batch.run("run-batch", timeout=180, env={**env(api, batch), "CHECK_STATE": str(tmp_path / "checks"),
                                                          "CHECK_FAILS_ONCE": "billing"})
        turns = [turn.body["contents"] for turn in api.turns("Module: billing")]
    assert result.returncode == 0, result.stdout + result.stderr
    said = [[" ".join(part.get("text", "") for part in content.get("parts") or []) for content in turn] for turn in turns]
    assert len(said) == 3 and not any("FAILED" in text for text in said[1])
    assert "FAILED tests/billing" in said[2][-1] and "Module: billing" not in said[2][-1]
    assert "Wrote billing." in said[2] and sum("Module: billing" in text for text in said[2]) == 1
    first, second = batch.record("write-notes", "billing")["attempts"]
    assert second["resumed_session"] == first["session_id"] == second["session_id"]
