"""Claude Code items with `isolation: worktree` and a check, end to end: real `doit run-batch`,
a real git repository, the real CLI against the fake Messages API on loopback. Each item's
session writes its file (Write tool) in its own worktree; both land on the integration
branch; the user's working tree is untouched; a check that fails once is retried by going on
with the same conversation (`claude --resume`, forked under a session id of ours), told the
check's output, as the API received it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fake_anthropic import FakeAnthropic, claude_path_env, cli_env, error, find_claude, text, tool_use
from gitrepo import git, make_repo
from test_isolated_batch import AGENTS, user_tree

CLAUDE = find_claude()
pytestmark = pytest.mark.skipif(
    CLAUDE is None and not os.environ.get("CI"),  # in CI a missing CLI must fail, not skip
    reason="the claude CLI is not installed: bash .ci/run installs the pinned version",
)

CHECK = json.dumps([sys.executable, str(AGENTS / "check_once.py"), "{module}"])
TASK = f"""---
agent: claude
permission_mode: acceptEdits
allowed_tools: [Write, Read]
isolation: worktree
check: {CHECK}
retry_base: 0.2s
---
# Claude batch
## Write notes
- [ ] auth: write notes/auth.md
- [ ] billing: write notes/billing.md
"""
FAILED = "FAILED tests/billing: expected a docstring"


def writes(repo: Path, module: str) -> list:
    """One session: the Write tool, in the item's own worktree, then a last word."""
    path = repo / ".batch/task/worktrees/write-notes" / module / "notes" / f"{module}.md"
    return [tool_use("Write", {"file_path": str(path), "content": f"# {module}\n"}), text(f"Wrote {module}.")]


def said(message: dict) -> str:
    content = message["content"]
    return content if isinstance(content, str) else " ".join(block.get("text", "") for block in content)


def test_claude_items_in_worktrees_land_and_a_failed_check_is_told_to_the_same_session(tmp_path):
    repo = make_repo(tmp_path / "repo")
    (repo / "task.md").write_text(TASK)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "the plan", cwd=repo)
    (tmp_path / "checks").mkdir()
    before = user_tree(repo)
    routes = {"Module: auth": writes(repo, "auth"), "Module: billing": writes(repo, "billing") * 2}
    with FakeAnthropic(by_prompt=routes) as api:
        env = cli_env(api.url, tmp_path / "home", CLAUDE_CODE_MAX_RETRIES="0",
                      CHECK_STATE=str(tmp_path / "checks"), CHECK_FAILS_ONCE="billing")
        env["PATH"] = claude_path_env(CLAUDE)
        result = subprocess.run([sys.executable, "-m", "doit", "run-batch", "-n", "2"], cwd=repo, capture_output=True,
                                text=True, timeout=240, env={**os.environ, **env})
        requests = [r.body["messages"] for r in api.main_requests]
    assert result.returncode == 0, result.stdout + result.stderr
    assert (repo / "task.md").read_text().count("- [x]") == 2
    assert user_tree(repo) == before and not (repo / "notes").exists()
    for module in ("auth", "billing"):
        assert git("show", f"batch/task:notes/{module}.md", cwd=repo) == f"# {module}"
    merges = git("log", "--first-parent", "--merges", "--format=%s", "batch/task", cwd=repo).splitlines()
    assert sorted(merges) == ["Merge write-notes:auth into batch/task", "Merge write-notes:billing into batch/task"]

    # Billing's conversation went on: one first prompt, not told of any check; the request after the
    # check failed holds all the first attempt said and did, then the check's output.
    billing = [messages for messages in requests if "Module: billing" in said(messages[0])]
    assert len({said(messages[0]) for messages in billing}) == 1 and FAILED not in said(billing[0][0])
    told = [messages for messages in billing if FAILED in said(messages[-1])]
    assert len(told) == 1 and len(billing) == 4  # two turns an attempt
    earlier = told[0][:-1]
    assert [m["role"] for m in earlier[-3:]] == ["assistant", "user", "assistant"]  # Write, its result, a last word
    assert "Wrote billing." in said(earlier[-1]) and "Module: billing" not in said(told[0][-1])
    assert not any(FAILED in said(m) for messages in requests if "Module: auth" in said(messages[0]) for m in messages)
    record = json.loads((repo / ".batch/task/items/write-notes/billing/result.json").read_text())
    first, second = record["attempts"]
    assert (first["failure_class"], second["failure_class"]) == ("check", None)
    # Forked under a session id of ours: the first attempt's session stays as it ended.
    assert second["resumed_session"] == first["session_id"] != second["session_id"] == record["session_id"]
    assert "resumed_session" not in first
    prompt = (repo / ".batch/task/items/write-notes/billing/prompt.md").read_text()
    assert FAILED in prompt and "Module: billing" not in prompt  # what it was told: the failure, not all again
    assert record["check"]["passed"] and record["merge"]["status"] == "merged"
    assert record["merge"]["files"] == [{"path": "notes/billing.md", "added": 1, "removed": 0}]


def test_a_resumed_session_that_hits_a_server_error_is_resumed_again_from_the_work(tmp_path):
    """The check failed; the session told of it hit a server error; the retry goes on with
    the session that made the work, told the check's output again, not a fresh session told
    only of the server error."""
    repo = make_repo(tmp_path / "repo")
    (repo / "task.md").write_text(TASK.replace("- [ ] auth: write notes/auth.md\n", ""))
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "the plan", cwd=repo)
    (tmp_path / "checks").mkdir()
    routes = {"Module: billing": [*writes(repo, "billing"), error(500), text("Fixed billing.")]}
    with FakeAnthropic(by_prompt=routes) as api:
        env = cli_env(api.url, tmp_path / "home", CLAUDE_CODE_MAX_RETRIES="0",
                      CHECK_STATE=str(tmp_path / "checks"), CHECK_FAILS_ONCE="billing")
        env["PATH"] = claude_path_env(CLAUDE)
        result = subprocess.run([sys.executable, "-m", "doit", "run-batch"], cwd=repo, capture_output=True,
                                text=True, timeout=240, env={**os.environ, **env})
        requests = [r.body["messages"] for r in api.main_requests]
    assert result.returncode == 0, result.stdout + result.stderr
    assert git("show", "batch/task:notes/billing.md", cwd=repo) == "# billing"
    record = json.loads((repo / ".batch/task/items/write-notes/billing/result.json").read_text())
    first, second, third = record["attempts"]
    assert [a["failure_class"] for a in record["attempts"]] == ["check", "transient", None]
    assert second["resumed_session"] == third["resumed_session"] == first["session_id"]
    last = requests[-1]
    assert FAILED in said(last[-1]) and "Wrote billing." in said(last[-2])  # the work's session, told the check again
    prompt = (repo / ".batch/task/items/write-notes/billing/prompt.md").read_text()
    assert FAILED in prompt and "Module: billing" not in prompt
