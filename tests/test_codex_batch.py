"""Codex items end to end: real `doit run-batch`, the real Codex CLI, a fake Responses API.

codex-cli runs whole sessions against tests/fake_openai.py on loopback, with its own
retries off (request_max_retries, stream_max_retries 0: the batch's retries decide). Its
tool calls really run in its sandbox: files appear.
"""

import os
import time
from datetime import datetime, timedelta

import pytest
from fake_openai import FakeOpenAI, apply_patch, codex_env, find_codex, hang, http_error, shell, text, usage_limit

from batch_tasks.agents.pricing import estimated_cost

CODEX = find_codex()
pytestmark = pytest.mark.skipif(
    CODEX is None and not os.environ.get("CI"),  # in CI a missing CLI must fail, not skip
    reason="the codex CLI is not installed: bash .ci/run installs the pinned version",
)

MODEL = "gpt-5.5"
FRONT_MATTER = f"""---
agent: codex
model: {MODEL}
parallel: {{parallel}}
retry_base: 0.2s
{{extra}}---
"""
NOTES = """\
# Codex batch
## Write notes
- [ ] auth: write notes/auth.md
- [ ] billing: write notes/billing.md
- [ ] catalog: write notes/catalog.md
"""


def write(batch, modules=("auth", "billing", "catalog"), *, parallel=3, extra=""):
    lines = NOTES.splitlines(keepends=True)
    items = [line for line in lines[2:] if line.split()[3].rstrip(":") in modules]
    batch.write("".join(lines[:2] + items), front_matter=FRONT_MATTER.format(parallel=parallel, extra=extra))


def env(api, batch, **extra) -> dict:
    return {**codex_env(api, batch.path / "home", CODEX), **extra}


def writes_by_shell(module: str) -> list:
    return [shell(f"mkdir -p notes && printf '# {module}\\n' > notes/{module}.md"), text(f"Wrote {module}.")]


def writes_by_patch(module: str) -> list:
    return [apply_patch(f"*** Begin Patch\n*** Add File: notes/{module}.md\n+# {module}\n*** End Patch\n"),
            text(f"Wrote {module}.")]


def attempts(batch, module: str, name: str = "result") -> list[tuple]:
    return [(a["ok"], a["failure_class"]) for a in batch.record("write-notes", module, name)["attempts"]]


def test_a_batch_of_codex_items_writes_files_through_its_tools(batch):
    write(batch)
    routes = {"Module: auth": writes_by_shell("auth"), "Module: billing": writes_by_patch("billing"),
              "Module: catalog": writes_by_shell("catalog")}
    with FakeOpenAI(by_prompt=routes) as api:
        result = batch.run("run-batch", env=env(api, batch), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    for module in ("auth", "billing", "catalog"):
        assert (batch.path / "notes" / f"{module}.md").read_text() == f"# {module}\n"
        assert len(api.turns(f"Module: {module}")) == 2  # the tool call, then the answer
        record = batch.record("write-notes", module)
        # Codex names no model: the setting's is recorded, and the cost estimated at its price.
        assert (record["agent"], record["model"]) == ("codex", MODEL)
        assert record["tokens"] == {"input": 800, "output": 100, "cache_read": 1200, "cache_write": 0}
        assert record["cost_usd"] == estimated_cost("openai", MODEL, record["tokens"]) > 0
        assert record["result_text"] == f"Wrote {module}."
        assert attempts(batch, module) == [(True, None)]
    assert batch.taskfile.read_text().count("- [x]") == 3
    tools = [e["text"] for e in batch.events("write-notes", "billing") if e["kind"] == "tool_use"]
    assert tools == [f"Write {batch.path}/notes/billing.md"]
    tools = [e["text"] for e in batch.events("write-notes", "auth") if e["kind"] == "tool_use"]
    assert tools == ["Bash: mkdir -p notes && printf '# auth\\n' > notes/auth.md"]
    usage = [e for e in batch.events("write-notes", "auth") if e["kind"] == "usage"]
    assert usage[-1]["data"]["cost_estimated"] is True


def test_an_authentication_failure_is_not_retried(batch):
    write(batch, ["auth"])
    with FakeOpenAI(by_prompt={"Module: auth": [http_error(401, "Incorrect API key provided")]}) as api:
        result = batch.run("run-batch", env=env(api, batch), timeout=120)
    assert result.returncode == 1
    assert len(api.requests) == 1
    failure = batch.record("write-notes", "auth", "failure")
    assert failure["reason"].startswith("unexpected status 401 Unauthorized: Incorrect API key provided")
    assert attempts(batch, "auth", "failure") == [(False, "permanent")]
    assert "- [ ] auth:" in batch.taskfile.read_text()


def test_a_server_error_is_retried_then_the_item_is_ticked(batch):
    write(batch, ["auth"])
    with FakeOpenAI(by_prompt={"Module: auth": [http_error(500, "boom"), *writes_by_shell("auth")]}) as api:
        result = batch.run("run-batch", env=env(api, batch), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [r.reply for r in api.requests] == ["error", "tool", "text"]
    assert attempts(batch, "auth") == [(False, "transient"), (True, None)]
    assert "- [x] auth:" in batch.taskfile.read_text()


def test_a_usage_limit_pauses_the_batch_once_until_its_reset(batch):
    # Codex words the reset to the minute. A time zone some seconds off UTC (for codex and
    # the runner alike) puts the start near the end of a local minute, so the pause, to the
    # end of that minute, is short.
    offset = (50 - datetime.now().second) % 60
    write(batch, ["auth", "billing"], parallel=1)
    routes = {"Module: auth": [usage_limit(resets_in=1), *writes_by_shell("auth")],
              "Module: billing": writes_by_shell("billing")}
    with FakeOpenAI(by_prompt=routes) as api:
        result = batch.run("run-batch", env=env(api, batch, TZ=f"BATCH-00:00:{offset:02d}"), timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    limited, *after = api.turns("Module: auth")
    # The end of the local minute the limit was hit in, as an epoch time.
    local = datetime.utcfromtimestamp(limited.time + 1) + timedelta(seconds=offset)
    reset = limited.time + 1 + (60 - local.second - local.microsecond / 1e6)
    assert after[0].time >= reset
    assert api.turns("Module: billing")[0].time >= after[0].time  # billing waited for the pause too
    assert attempts(batch, "auth") == [(False, "wait"), (True, None)]
    assert attempts(batch, "billing") == [(True, None)]
    log = (batch.state("write-notes", "auth") / "output.log").read_text()
    assert log.count("failed (wait)") == 1 and "limit resets at" in log
    assert len(api.requests) == 5


def test_a_stalled_stream_is_stopped_by_idle_timeout_and_retried(batch):
    write(batch, ["auth"], extra="idle_timeout: 3s\n")
    with FakeOpenAI(by_prompt={"Module: auth": [hang(60), *writes_by_shell("auth")]}) as api:
        started = time.monotonic()
        result = batch.run("run-batch", env=env(api, batch), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert time.monotonic() - started < 50
    record = batch.record("write-notes", "auth")
    assert record["attempts"][0]["reason"] == "no output for 3s"
    assert attempts(batch, "auth") == [(False, "transient"), (True, None)]
    assert [r.reply for r in api.requests] == ["hang", "tool", "text"]


def test_estimated_costs_hold_the_batch_to_its_budget(batch):
    write(batch, ["auth", "billing"], parallel=1, extra="budget_usd: 0.005\n")
    routes = {"Module: auth": writes_by_shell("auth"), "Module: billing": writes_by_shell("billing")}
    with FakeOpenAI(by_prompt=routes) as api:
        result = batch.run("run-batch", env=env(api, batch), timeout=120)
    assert result.returncode == 4  # not all started
    assert batch.record("write-notes", "auth")["cost_usd"] > 0.005
    assert not api.turns("Module: billing") and not (batch.path / "notes" / "billing.md").exists()
    assert "not started: 1 item, the batch's budget of $0.005 is spent (it needed $" in result.stdout
