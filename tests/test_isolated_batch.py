"""`isolation: worktree` end to end: real `doit run-batch` processes on a real git repository,
with a stand-in agent that edits lines and a check that can fail once. A tick means the
work landed: the agent succeeded, its check passed, and its branch is merged."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from conftest import wait_for
from gitrepo import git, make_repo

AGENTS = Path(__file__).parent / "agents"
LINES = {"alpha": 2, "beta": 11, "gamma": 20, "delta": 29}


def front_matter(**extra: str) -> str:
    command = json.dumps([sys.executable, str(AGENTS / "editor.py"), "{module}"])
    check = json.dumps([sys.executable, str(AGENTS / "check_once.py"), "{module}"])
    lines = ["---", "agent: command", f"command: {command}", "isolation: worktree", f"check: {check}",
             *(f"{key}: {value}" for key, value in extra.items()), "---"]
    return "\n".join(lines) + "\n"


def setup(tmp_path: Path, body: str, plan: dict, fails_once: str = "", **extra: str):
    repo = make_repo(tmp_path / "repo")
    (repo / "task.md").write_text(front_matter(**extra) + body)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "the plan", cwd=repo)
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    (tmp_path / "checks").mkdir()
    env = {"EDITOR_PLAN": str(tmp_path / "plan.json"), "EDITOR_LOG": str(tmp_path / "agent.log"),
           "CHECK_STATE": str(tmp_path / "checks"), "CHECK_FAILS_ONCE": fails_once}
    return repo, env


def run(repo: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "doit", "run-batch", *args], cwd=repo, capture_output=True,
                          text=True, timeout=180, env={**os.environ, **env})


def starts(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "agent.log").read_text().splitlines()]


def user_tree(repo: Path) -> tuple[str, str, str]:
    status = "\n".join(line for line in git("status", "--porcelain", cwd=repo).splitlines() if not line.endswith("task.md"))
    return git("rev-parse", "HEAD", cwd=repo), git("symbolic-ref", "HEAD", cwd=repo), status


def test_parallel_items_land_one_merge_each_and_the_users_tree_is_untouched(tmp_path):
    body = "# Edits\n## Sections\n" + "".join(f"- [ ] {name}: edit {name}\n" for name in LINES)
    body += "## Same line\n<!-- parallel: 2 -->\n- [ ] first: rewrite alpha's line\n- [ ] second: rewrite it too\n"
    plan = {name: {"file": "shared.py", "line": line, "text": f"{name} = 'edited'"} for name, line in LINES.items()}
    plan["first"] = {"file": "shared.py", "line": 2, "text": "alpha = 'first'"}
    plan["second"] = {"file": "shared.py", "line": 2, "text": "alpha = 'second'"}
    repo, env = setup(tmp_path, body, plan, fails_once="beta", parallel="4")
    before = user_tree(repo)

    result = run(repo, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert user_tree(repo) == before
    assert (repo / "task.md").read_text().count("- [x]") == 6

    landed = git("show", "batch/task:shared.py", cwd=repo)
    for name in ("beta", "gamma", "delta"):
        assert f"{name} = 'edited'" in landed
    assert "alpha = 'first'" in landed or "alpha = 'second'" in landed
    merges = git("log", "--first-parent", "--merges", "--format=%s", "batch/task", cwd=repo).splitlines()
    assert len(merges) == 6  # one merge per item, on the integration branch only
    assert "the work is on batch/task" in result.stdout

    told = {(s["module"], s["attempt"]): s for s in starts(tmp_path)}
    assert "expected a docstring" in told["beta", 2]["prompt"]  # the check's output reached the agent
    assert all(s["worktree"] and s["cwd"] != str(repo) for s in told.values())
    # Of the two that edit one line, the second merge conflicted and was redone from the new tip.
    redone = [m for m in ("first", "second") if ("second" if m == "first" else "first", 1) in told and (m, 2) in told]
    assert redone and "shared.py" in told[redone[0], 2]["prompt"]
    conflicted = json.loads((repo / f".batch/task/items/same-line/{redone[0]}/result.json").read_text())
    assert conflicted["attempts"][0]["reason"] == "merge conflict in shared.py"  # said once

    record = json.loads((repo / ".batch/task/items/sections/beta/result.json").read_text())
    assert record["check"]["passed"] and record["merge"]["status"] == "merged"
    assert record["merge"]["files"] == [{"path": "shared.py", "added": 1, "removed": 1}]
    assert [a["failure_class"] for a in record["attempts"]] == ["check", None]

    again = run(repo, env)
    assert again.returncode == 0 and len(starts(tmp_path)) == len(told)


def test_an_item_that_changes_nothing_fails_and_keeps_nothing_behind(tmp_path):
    repo, env = setup(tmp_path, "# E\n## G\n- [ ] idle: do nothing\n", {"idle": {"nothing": True}})
    result = run(repo, env)
    assert result.returncode == 1
    failure = json.loads((repo / ".batch/task/items/g/idle/failure.json").read_text())
    assert failure["reason"].startswith("no changes")
    assert "- [ ] idle" in (repo / "task.md").read_text()


def test_a_failed_item_keeps_its_worktree_and_branch_with_a_wip_commit(tmp_path):
    plan = {"alpha": {"file": "shared.py", "line": 2, "text": "alpha = 'half done'"}}
    repo, env = setup(tmp_path, "# E\n## G\n- [ ] alpha: edit alpha\n", plan, fails_once="alpha", check_retries="0")
    result = run(repo, env)
    assert result.returncode == 1
    kept = json.loads((repo / ".batch/task/items/g/alpha/failure.json").read_text())["kept"]
    assert kept["wip"] is False  # its work was committed as the item's; nothing was left to WIP
    assert "alpha = 'half done'" in git("show", f"{kept['branch']}:shared.py", cwd=repo)
    assert Path(kept["worktree"]).is_dir()
    assert "alpha = 'half done'" not in git("show", "batch/task:shared.py", cwd=repo)
    # The summary, and batch-status after the run, name where the work is.
    named = f"kept on {kept['branch']} in .batch/task/worktrees/g/alpha"
    status = subprocess.run([sys.executable, "-m", "doit", "batch-status"], cwd=repo, capture_output=True, text=True,
                            timeout=60, env={**os.environ, **env})
    summary = result.stdout.split("\nfailed:\n", 1)[1]
    assert named in summary and named in status.stdout.split("\nfailed:\n", 1)[1]


def kill_9_when(repo: Path, env: dict, reached: Callable[[], bool]) -> None:
    """Start a run, and kill -9 it once `reached()` says it got to the step to interrupt."""
    runner = subprocess.Popen([sys.executable, "-m", "doit", "run-batch"], cwd=repo, env={**os.environ, **env},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    while not reached() and time.monotonic() < deadline and runner.poll() is None:
        time.sleep(0.05)
    assert reached(), "the run never got to the step to interrupt"
    runner.send_signal(signal.SIGKILL)
    runner.wait(timeout=10)


def test_kill_9_during_the_check_then_a_run_that_checks_and_merges_without_the_agent(tmp_path):
    plan = {"alpha": {"file": "shared.py", "line": 2, "text": "alpha = 'kept'"}}
    repo, env = setup(tmp_path, "# E\n## G\n- [ ] alpha: edit alpha\n", plan)
    kill_9_when(repo, {**env, "CHECK_HANGS_ONCE": "alpha"}, (tmp_path / "checks" / "alpha.hung").exists)
    assert "- [ ] alpha" in (repo / "task.md").read_text()

    resumed = run(repo, env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming g:alpha from its log" in resumed.stdout
    assert len(starts(tmp_path)) == 1  # the agent was paid for once
    assert "- [x] alpha" in (repo / "task.md").read_text()
    assert "alpha = 'kept'" in git("show", "batch/task:shared.py", cwd=repo)


def merges_on_the_integration_branch(repo: Path) -> list[str]:
    return git("log", "--first-parent", "--merges", "--format=%s", "batch/task", cwd=repo).splitlines()


def test_kill_9_during_the_agent_then_a_run_that_redoes_it_from_a_fresh_worktree(tmp_path):
    plan = {"alpha": {"file": "shared.py", "line": 2, "text": "alpha = 'kept'", "hang_at": 1}}
    repo, env = setup(tmp_path, "# E\n## G\n- [ ] alpha: edit alpha\n", plan)
    before, start = user_tree(repo), git("rev-parse", "HEAD", cwd=repo)
    kill_9_when(repo, env, Path(f"{tmp_path / 'agent.log'}.alpha.hung").exists)  # it edited, then hung
    assert "- [ ] alpha" in (repo / "task.md").read_text()

    resumed = run(repo, env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    killed, redone = starts(tmp_path)  # the killed attempt had not succeeded: it runs again, once
    assert killed["worktree"] == redone["worktree"]
    assert "- [x] alpha" in (repo / "task.md").read_text()
    assert merges_on_the_integration_branch(repo) == ["Merge g:alpha into batch/task"]
    assert "alpha = 'kept'" in git("show", "batch/task:shared.py", cwd=repo)
    record = json.loads((repo / ".batch/task/items/g/alpha/result.json").read_text())
    assert record["merge"]["base_commit"] == start  # a fresh worktree, from the integration tip

    # The killed attempt's work is kept aside, on a branch and in a worktree of its own, as a WIP commit.
    branches = git("for-each-ref", "--format=%(refname:short)", "refs/heads/batch/task.items/", cwd=repo).split()
    assert len(branches) == 1 and branches[0].startswith("batch/task.items/g/alpha.")
    aside = branches[0]
    assert "Batch-Result: wip" in git("log", "-1", "--format=%B", aside, cwd=repo)
    assert "alpha = 'kept'" in git("show", f"{aside}:shared.py", cwd=repo)
    assert subprocess.run(["git", "merge-base", "--is-ancestor", aside, "batch/task"], cwd=repo).returncode == 1
    kept = Path(redone["worktree"] + "." + aside.rsplit(".", 1)[1])
    assert f"worktree {kept}" in git("worktree", "list", "--porcelain", cwd=repo)
    assert git("rev-parse", "HEAD", cwd=kept) == git("rev-parse", aside, cwd=repo)
    assert user_tree(repo) == before

    again = run(repo, env)
    assert again.returncode == 0 and len(starts(tmp_path)) == 2


def test_kill_9_during_a_merged_state_check_then_a_run_that_discards_it_and_lands_without_the_agent(tmp_path):
    # Both start from one tip, so the second to pass merges onto a moved tip: its merged state is checked.
    plan = {name: {"file": "shared.py", "line": LINES[name], "text": f"{name} = 'edited'", "await": ["alpha", "beta"]}
            for name in ("alpha", "beta")}
    repo, env = setup(tmp_path, "# E\n## G\n- [ ] alpha: edit alpha\n- [ ] beta: edit beta\n", plan, parallel="2")
    before = user_tree(repo)
    checks = tmp_path / "checks"
    # Killed once the second's merged state is being checked and the first has landed: the queue
    # may start that check (speculatively) a moment before the first's landing moves the branch.
    kill_9_when(repo, {**env, "CHECK_HANGS_MERGED": "alpha,beta"},
                lambda: any(checks.glob("*.merged.hung")) and len(merges_on_the_integration_branch(repo)) == 1)
    [marker] = checks.glob("*.merged.hung")
    second = marker.name.split(".")[0]
    integration = repo / ".batch/task/integration"
    first = "alpha" if second == "beta" else "beta"
    # The state being checked was the queue's own: the branch holds only what passed.
    assert merges_on_the_integration_branch(repo) == [f"Merge g:{first} into batch/task"]
    assert f"- [ ] {second}" in (repo / "task.md").read_text()

    resumed = run(repo, env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resuming g:{second} from its log" in resumed.stdout
    assert sorted(s["module"] for s in starts(tmp_path)) == ["alpha", "beta"]  # no agent paid for twice
    assert (repo / "task.md").read_text().count("- [x]") == 2
    assert git("rev-parse", "-q", "--verify", "MERGE_HEAD", cwd=integration, check=False) == ""
    assert sorted(merges_on_the_integration_branch(repo)) == ["Merge g:alpha into batch/task",
                                                              "Merge g:beta into batch/task"]
    landed = git("show", "batch/task:shared.py", cwd=repo)
    assert "alpha = 'edited'" in landed and "beta = 'edited'" in landed
    record = json.loads((repo / f".batch/task/items/g/{second}/result.json").read_text())
    assert record["merge"]["status"] == "merged" and record["merge"]["merged_state_check"]["passed"]
    assert git("for-each-ref", "refs/heads/batch/task.items/", cwd=repo) == ""  # nothing left unmerged
    assert user_tree(repo) == before


def test_kill_9_during_a_retry_after_a_failed_check_then_a_run_that_keeps_both_attempts(tmp_path):
    plan = {"alpha": {"file": "shared.py", "line": 2, "text": "alpha = 'try {attempt}'", "hang_at": 2}}
    repo, env = setup(tmp_path, "# E\n## G\n- [ ] alpha: edit alpha\n", plan, fails_once="alpha")
    kill_9_when(repo, env, Path(f"{tmp_path / 'agent.log'}.alpha.hung").exists)  # its check failed; it was told

    resumed = run(repo, env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert [s["attempt"] for s in starts(tmp_path)] == [1, 2, 1]
    assert "- [x] alpha" in (repo / "task.md").read_text()
    assert merges_on_the_integration_branch(repo) == ["Merge g:alpha into batch/task"]
    assert "alpha = 'try 1'" in git("show", "batch/task:shared.py", cwd=repo)
    [aside] = git("for-each-ref", "--format=%(refname:short)", "refs/heads/batch/task.items/", cwd=repo).split()
    assert "alpha = 'try 2'" in git("show", f"{aside}:shared.py", cwd=repo)  # the killed attempt's edit, kept


def test_with_pipeline_a_modules_next_item_starts_from_a_tip_holding_its_first(tmp_path):
    body = "# P\n## One\n- [ ] alpha: edit\n- [ ] beta: edit\n## Two\n- [ ] alpha: again\n- [ ] beta: again\n"
    plan = {"alpha": {"file": "shared.py", "line": 2, "text": "alpha = '{group}'"},
            "beta": {"file": "shared.py", "line": 11, "text": "beta = '{group}'", "gate": "beta-{group}"}}
    repo, env = setup(tmp_path, body, plan, parallel="2", pipeline="true")
    gates = tmp_path / "gates"
    gates.mkdir()
    (gates / "beta-two").touch()
    runner = subprocess.Popen([sys.executable, "-m", "doit", "run-batch"], cwd=repo, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env={**os.environ, **env, "GATES": str(gates)})
    try:
        # two:alpha lands while one:beta is still held at its gate: it waited for one:alpha only.
        wait_for(lambda: (repo / ".batch/task/items/two/alpha/result.json").exists())
        assert not (repo / ".batch/task/items/one/beta/result.json").exists()
        (gates / "beta-one").touch()
        assert runner.wait(timeout=120) == 0
    finally:
        runner.kill()
    merge = {key: json.loads((repo / f".batch/task/items/{key}/result.json").read_text())["merge"]
             for key in ("one/alpha", "one/beta", "two/alpha")}
    base = merge["two/alpha"]["base_commit"]
    assert git("merge-base", "--is-ancestor", merge["one/alpha"]["merge_commit"], base, cwd=repo) == ""
    assert subprocess.run(["git", "merge-base", "--is-ancestor", merge["one/beta"]["merge_commit"], base],
                          cwd=repo).returncode == 1  # one:beta had not landed when two:alpha began
    landed = git("show", "batch/task:shared.py", cwd=repo)
    assert "alpha = 'two'" in landed and "beta = 'two'" in landed
