"""Limits at the gate: what an agent leaves cannot hold the runner for minutes, and two task
files of one repository running at once lose nothing to each other."""

from __future__ import annotations

import json
import time

from gitrepo import git
from test_git_guard import hostile_batch, item_folder, run_batch


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
