"""Limits at the gate: what an agent leaves cannot hold the runner for minutes, and two task
files of one repository running at once lose nothing to each other."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

from gitrepo import git, make_repo
from test_git_guard import hostile_batch, item_folder, run_batch

from batch_tasks.repository.git import git as batch_git
from batch_tasks.repository.git import rev


def test_a_huge_sparse_file_is_refused_at_once_naming_the_limit(tmp_path):
    plan = {"big": {"write": {"fine.py": "x = 1\n"}, "sparse": {"data/huge.bin": 3 * 2**30}}}
    repo = hostile_batch(tmp_path, "# T\n## G\n- [ ] big: make data\n", plan, retries="0")
    started = time.monotonic()
    result = run_batch(repo, tmp_path)
    took = time.monotonic() - started
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stdout + result.stderr
    assert (item_folder(repo, "g", "big") / "failure.json").exists(), result.stdout + result.stderr
    failure = json.loads((item_folder(repo, "g", "big") / "failure.json").read_text())
    assert "data/huge.bin, of 3,072 MiB: batch-tasks commits no file over 100 MiB" in failure["reason"]
    assert "huge.bin" not in git("ls-tree", "-r", "--name-only", "batch/task", cwd=repo)
    assert took < 60, took  # it took 165 s to land


def test_a_ref_another_run_holds_locked_is_waited_for_not_lost(tmp_path):
    """Two task files of one repository run at once: each one's git waits for the other's lock
    on a ref, or on packed-refs, instead of failing an item (5 of 360 were lost so)."""
    repo = make_repo(tmp_path / "repo")
    git("branch", "gone", cwd=repo)
    git("pack-refs", "--all", cwd=repo)
    for lock, change in ((repo / ".git" / "packed-refs.lock", ("update-ref", "-d", "refs/heads/gone")),
                         (repo / ".git" / "refs" / "heads" / "made.lock", ("update-ref", "refs/heads/made", "HEAD"))):
        lock.parent.mkdir(parents=True, exist_ok=True)
        lock.write_text("")  # as the other run's git holds it, for 1.5 s
        threading.Timer(1.5, lock.unlink).start()
        batch_git(*change, cwd=repo)
    assert rev("refs/heads/gone", repo) is None and rev("refs/heads/made", repo) == rev("HEAD", repo)


def test_two_task_files_of_one_repository_run_at_once_and_lose_nothing(tmp_path):
    plan = {f"m{n}": {"write": {f"m{n}-first.py": "x = 1\n"}} for n in range(6)}
    body = "# T\n## G\n" + "".join(f"- [ ] m{n}: item {n}\n" for n in range(6))
    repo = hostile_batch(tmp_path, body, plan, parallel="3")
    (repo / "other.md").write_text((repo / "task.md").read_text())  # its agents write other files (its own plan)
    plan_other = {f"m{n}": {"write": {f"m{n}-second.py": "x = 2\n"}} for n in range(6)}
    (tmp_path / "other-plan.json").write_text(json.dumps(plan_other))
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "another plan", cwd=repo)
    runs = [subprocess.Popen([sys.executable, "-m", "doit", "run-batch", "-T", name], cwd=repo, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             env={**os.environ, "HOSTILE_PLAN": str(tmp_path / plan_file)})
            for name, plan_file in (("task.md", "plan.json"), ("other.md", "other-plan.json"))]
    for run in runs:
        output = run.communicate(timeout=300)[0]
        assert run.returncode == 0, output
    for name, branch in (("task.md", "batch/task"), ("other.md", "batch/other")):
        assert (repo / name).read_text().count("- [x]") == 6
        assert len(git("log", "--first-parent", "--merges", "--format=%s", branch, cwd=repo).splitlines()) == 6
