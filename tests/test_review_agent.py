"""`review: agent`: a reviewer agent, the real Claude Code CLI against the loopback fake of its
API, reads the item's diff against its instruction; CHANGES goes back to the item's session,
APPROVE lands it. And its answer's form, on plain data."""

import json
import os
import subprocess
import sys

import pytest
from fake_anthropic import FakeAnthropic, claude_path_env, cli_env, find_claude, text, tool_use
from gitrepo import git, make_repo
from test_claude_isolated_batch import said

from batch_tasks.landing.reviewer import settings_of, verdict

CLAUDE = find_claude()
needs_claude = pytest.mark.skipif(CLAUDE is None and not os.environ.get("CI"),
                                  reason="the claude CLI is not installed: bash .ci/run installs the pinned version")

TASK = """---
agent: claude
permission_mode: acceptEdits
allowed_tools: [Write, Read]
isolation: worktree
review: agent
retry_base: 0.2s
---
# Claude batch
## Write notes
- [ ] auth: write notes/auth.md
"""


def test_a_verdict_is_the_last_verdict_line_and_its_reasons_follow_it_or_come_before_it():
    assert verdict("All good.\nVERDICT: APPROVE") == ("approve", "All good.")
    assert verdict("VERDICT: CHANGES\n- add a title\n- drop the debug print") == (
        "changes", "- add a title\n- drop the debug print")
    assert verdict("Missing tests.\n**VERDICT: CHANGES**") == ("changes", "Missing tests.")  # markdown, as models write
    assert verdict("VERDICT: CHANGES first\nthen VERDICT: APPROVE\nVERDICT: approve")[0] == "approve"
    assert verdict("I approve of this.") is None and verdict("") is None


def test_the_reviewer_takes_the_groups_settings_with_its_own_agent_and_model():
    group = {"agent": "claude", "model": "claude-opus-4-1", "extra_args": ("--x",), "review": {"by": "agent"}}
    assert settings_of(group)["model"] == "claude-opus-4-1"
    other = settings_of({**group, "review": {"by": "agent", "agent": "codex"}})
    assert other["agent"] == "codex" and other["model"] is None and other["extra_args"] is None
    assert settings_of({**group, "review": {"by": "agent", "model": "claude-haiku-4-5"}})["model"] == "claude-haiku-4-5"


def writes(repo, content: str):
    path = repo / ".batch/task/worktrees/write-notes/auth/notes/auth.md"
    return tool_use("Write", {"file_path": str(path), "content": content})


@needs_claude
def test_a_reviewer_agent_asks_for_changes_that_go_back_to_the_session_then_approves(tmp_path):
    repo = make_repo(tmp_path / "repo")
    (repo / "task.md").write_text(TASK)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "the plan", cwd=repo)
    routes = {
        "Review the work done for item write-notes:auth": [
            text("The notes name no owner.\nVERDICT: CHANGES\nSay who owns auth."), text("VERDICT: APPROVE")],
        "Module: auth": [writes(repo, "# auth\n"), text("Wrote auth."),
                         writes(repo, "# auth\nowner: the identity team\n"), text("Added the owner.")],
    }
    with FakeAnthropic(by_prompt=routes) as api:
        env = cli_env(api.url, tmp_path / "home", CLAUDE_CODE_MAX_RETRIES="0")
        env["PATH"] = claude_path_env(CLAUDE)
        result = subprocess.run([sys.executable, "-m", "doit", "run-batch"], cwd=repo, capture_output=True,
                                text=True, timeout=240, env={**os.environ, **env})
        requests = [r.body["messages"] for r in api.main_requests]
    assert result.returncode == 0, result.stdout + result.stderr
    assert git("show", "batch/task:notes/auth.md", cwd=repo) == "# auth\nowner: the identity team"
    reviews = [messages for messages in requests if "Review the work done" in said(messages[0])]
    assert len(reviews) == 2
    assert "+# auth" in said(reviews[0][0]) and "write notes/auth.md" in said(reviews[0][0])
    assert "+owner: the identity team" in said(reviews[1][0])
    # The changes asked for went back to the session that made the work, told why.
    work = [messages for messages in requests if "Module: auth" in said(messages[0])]
    told = [messages for messages in work if "Say who owns auth." in said(messages[-1])]
    assert told and "Wrote auth." in " ".join(said(m) for m in told[0][:-1])
    record = json.loads((repo / ".batch/task/items/write-notes/auth/result.json").read_text())
    first, second = record["attempts"]
    assert first["failure_class"] == "check" and first["reason"] == "rejected in review: Say who owns auth."
    assert second["resumed_session"] == first["session_id"]
    assert second["review"]["verdict"] == "approve" and second["review"]["by"] == "claude"
    assert second["review"]["cost_usd"] > 0 and first["review"]["cost_usd"] > 0  # its cost, kept apart
    assert "review $" in result.stdout  # and shown apart
