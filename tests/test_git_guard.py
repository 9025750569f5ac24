"""batch-tasks' own git calls run no program that git configuration names, whoever planted it:
fsmonitor, filters, diff and merge drivers, hooks, in the repository's config, its attributes,
or the user's ~/.gitconfig. Real git, real planted programs."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from batch_tasks.git import git
from gitrepo import git as plain_git
from gitrepo import make_repo


def plant(repo: Path, home: Path, marker: Path) -> None:
    """What an agent can do as the user: a program named in every place git looks for one."""
    program = home / "planted.sh"
    program.write_text(f'#!/bin/sh\necho "$0 $*" >> {marker}\ncat\n')
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    for key in ("core.fsmonitor", "filter.evil.clean", "filter.evil.smudge", "diff.evil.textconv",
                "diff.evil.command", "merge.evil.driver", "merge.verifySignatures"):
        plain_git("config", key, str(program) if key != "merge.verifySignatures" else "true", cwd=repo)
    plain_git("config", "filter.evil.required", "true", cwd=repo)
    plain_git("config", "core.sshCommand", str(program), cwd=repo)
    (repo / ".git" / "info").mkdir(exist_ok=True)
    (repo / ".git" / "info" / "attributes").write_text("* filter=evil diff=evil merge=evil\n")
    (repo / ".gitattributes").write_text("*.py filter=evil diff=evil merge=evil\n")
    hooks = repo / ".git" / "hooks"
    for hook in ("pre-commit", "post-commit", "post-checkout", "post-merge", "reference-transaction",
                 "pre-merge-commit", "prepare-commit-msg", "commit-msg"):
        (hooks / hook).write_text(f"#!/bin/sh\n{program} hook {hook}\n")
        (hooks / hook).chmod(0o755)
    (home / ".gitconfig").write_text(f"[core]\n\tfsmonitor = {program}\n[filter \"odd=name\"]\n\tclean = {program}\n")
    (home / ".gitattributes").write_text("* filter=odd=name\n")


def test_a_planted_program_never_runs_through_batch_tasks_git(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    repo = make_repo(tmp_path / "repo")
    marker = tmp_path / "ran"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    plant(repo, home, marker)

    # Everything the runner does: status, add, commit, diff, branch, merge (conflicting), worktree, checkout.
    git("status", "--porcelain", "-z", "--untracked-files=all", cwd=repo)
    plain_git("checkout", "-q", "-b", "other", cwd=repo)  # (plain git runs the planted program: see below)
    (repo / "shared.py").write_text("other\n")
    marker.unlink(missing_ok=True)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "--no-verify", "-m", "other", cwd=repo)
    git("checkout", "-q", "main", cwd=repo)
    (repo / "shared.py").write_text("main\n")
    (repo / "new.py").write_text("x = 1\n")
    git("add", "-A", cwd=repo)
    git("diff", "--cached", "--quiet", cwd=repo, allowed=(0, 1))
    git("commit", "-q", "-m", "main", cwd=repo)
    git("diff", "--numstat", "-z", "HEAD~1", "HEAD", "--", cwd=repo)
    git("log", "-1", "--format=%(trailers:only,unfold)", "HEAD", "--", cwd=repo)
    merged = git("merge", "--no-ff", "-m", "merge", "other", cwd=repo, allowed=(0, 1))
    assert merged.status == 1  # the merge driver is not run: the file conflicts
    git("merge", "--abort", cwd=repo)
    git("worktree", "add", "-q", "--detach", str(tmp_path / "wt"), "main", cwd=repo)
    git("status", "--porcelain", cwd=tmp_path / "wt")
    assert not marker.exists(), marker.read_text()

    # The planting works: git as the user runs it is steered by it.
    plain_git("status", cwd=repo)
    assert marker.exists()
