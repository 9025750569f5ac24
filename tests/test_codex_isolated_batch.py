"""A Codex item with `isolation: worktree` whose check fails once: real `doit run-batch`, a
real git repository, the real Codex CLI against the fake Responses API on loopback. The
retry goes on with the same thread (`codex exec resume THREAD -`), in the same worktree,
told the check's output, as the API received it."""

import json
import os
import re
import subprocess
import sys

import pytest
from fake_openai import FakeOpenAI, codex_env, find_codex, shell, text
from gitrepo import git, make_repo
from test_isolated_batch import AGENTS, user_tree

CODEX = find_codex()
pytestmark = pytest.mark.skipif(
    CODEX is None and not os.environ.get("CI"),  # in CI a missing CLI must fail, not skip
    reason="the codex CLI is not installed: bash .ci/run installs the pinned version",
)

CHECK = json.dumps([sys.executable, str(AGENTS / "check_once.py"), "{module}"])
TASK = f"""---
agent: codex
model: gpt-5.5
isolation: worktree
check: {CHECK}
---
# Codex batch
## Write notes
- [ ] billing: write notes/billing.md
"""
FAILED = "FAILED tests/billing: expected a docstring"


def said(item: dict) -> str:
    return " ".join(part.get("text", "") for part in item.get("content") or [] if isinstance(part, dict))


def test_a_failed_check_is_told_to_the_same_codex_thread_in_the_same_worktree(tmp_path):
    repo = make_repo(tmp_path / "repo")
    (repo / "task.md").write_text(TASK)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "the plan", cwd=repo)
    (tmp_path / "checks").mkdir()
    before = user_tree(repo)
    writes = [shell("mkdir -p notes && printf '# billing\\n' > notes/billing.md"), text("Wrote billing.")]
    with FakeOpenAI(by_prompt={"Module: billing": writes + [text("Fixed it.")]}) as api:
        env = {**os.environ, **codex_env(api, tmp_path / "home", CODEX), "CHECK_STATE": str(tmp_path / "checks"),
               "CHECK_FAILS_ONCE": "billing"}
        result = subprocess.run([sys.executable, "-m", "doit", "run-batch"], cwd=repo, capture_output=True, text=True,
                                timeout=240, env=env)
        raw = [turn.body for turn in api.turns("Module: billing")]
        turns = [[item for item in turn.body["input"] if item.get("role") in ("user", "assistant")]
                 for turn in api.turns("Module: billing")]
    assert result.returncode == 0, result.stdout + result.stderr
    worktree = repo / ".batch/task/worktrees/write-notes/billing"
    assert set(re.findall(r"<cwd>([^<]*)</cwd>", json.dumps(raw))) == {str(worktree)}
    assert user_tree(repo) == before
    assert git("show", "batch/task:notes/billing.md", cwd=repo) == "# billing"

    # Three turns: the shell call, the last word, then the resumed thread told of the check.
    assert len(turns) == 3 and not any(FAILED in said(item) for item in turns[1])
    resumed = turns[2]
    assert FAILED in said(resumed[-1]) and "Module: billing" not in said(resumed[-1])
    assert [said(item) for item in resumed[:-1] if item["role"] == "assistant"][-1] == "Wrote billing."
    assert sum("Module: billing" in said(item) for item in resumed) == 1  # its first prompt, once

    record = json.loads((repo / ".batch/task/items/write-notes/billing/result.json").read_text())
    first, second = record["attempts"]
    assert (first["failure_class"], second["failure_class"]) == ("check", None)
    # Codex goes on under the thread's own id; the record names it.
    assert second["resumed_session"] == first["session_id"] == second["session_id"] == record["session_id"]
    # What landed is the first attempt's file: the second went on in the same worktree, on the same branch.
    assert record["result_text"] == "Fixed it." and record["merge"]["status"] == "merged"
    assert record["merge"]["files"] == [{"path": "notes/billing.md", "added": 1, "removed": 0}]
