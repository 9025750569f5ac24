"""Claude Code items with `isolation: worktree` and a check, end to end: real `doit run-batch`,
a real git repository, the real CLI against the fake Messages API on loopback. Each item's
session writes its file (Write tool) in its own worktree; both land on the integration
branch; the user's working tree is untouched; a check that fails once is retried with a
prompt, as the API received it, that carries the check's output."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fake_anthropic import FakeAnthropic, claude_path_env, cli_env, find_claude, text, tool_use
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


def first_prompt(request) -> str:
    message = request.body["messages"][0]["content"]
    return message if isinstance(message, str) else " ".join(block.get("text", "") for block in message)


def test_claude_items_in_worktrees_land_and_a_failed_check_reaches_the_next_prompt(tmp_path):
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
        prompts = [first_prompt(r) for r in api.main_requests]
    assert result.returncode == 0, result.stdout + result.stderr
    assert (repo / "task.md").read_text().count("- [x]") == 2
    assert user_tree(repo) == before and not (repo / "notes").exists()
    for module in ("auth", "billing"):
        assert git("show", f"batch/task:notes/{module}.md", cwd=repo) == f"# {module}"
    merges = git("log", "--first-parent", "--merges", "--format=%s", "batch/task", cwd=repo).splitlines()
    assert sorted(merges) == ["Merge write-notes:auth into batch/task", "Merge write-notes:billing into batch/task"]

    # Billing's first session was not told of a check; its second, a fresh session, was told its output.
    billing = [p for p in prompts if "Module: billing" in p]
    sessions = list(dict.fromkeys(billing))  # each request of a session repeats its first prompt
    assert len(sessions) == 2 and FAILED not in sessions[0] and FAILED in sessions[1]
    assert not any(FAILED in p for p in prompts if "Module: auth" in p)
    record = json.loads((repo / ".batch/task/items/write-notes/billing/result.json").read_text())
    assert [a["failure_class"] for a in record["attempts"]] == ["check", None]
    assert record["attempts"][0]["session_id"] != record["attempts"][1]["session_id"]
    assert record["check"]["passed"] and record["merge"]["status"] == "merged"
    assert record["merge"]["files"] == [{"path": "notes/billing.md", "added": 1, "removed": 0}]
