"""batch-tasks' own git calls run no program that git configuration names, whoever planted it:
fsmonitor, filters, diff and merge drivers, hooks, in the repository's config, its attributes,
or the user's ~/.gitconfig. Real git, real planted programs."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from gitrepo import git as plain_git
from gitrepo import make_repo

from batch_tasks.repository import repository_guard
from batch_tasks.repository.git import git
from batch_tasks.state.state import BatchState


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
    git("update-ref", "refs/heads/made", "HEAD", "", cwd=repo)  # the commands that touch refs only
    git("branch", "-D", "made", cwd=repo)
    git("rev-parse", "--verify", "HEAD", cwd=repo)
    git("worktree", "prune", cwd=repo)
    assert not marker.exists(), marker.read_text()

    # The planting works: git as the user runs it is steered by it.
    plain_git("status", cwd=repo)
    assert marker.exists()


# Where a driver can be configured after batch-tasks' git has already read the configuration once.
LATE_PLACES = {
    "repository": lambda repo, home, text: (repo / ".git" / "config").open("a").write(text),
    "home": lambda repo, home, text: (home / ".gitconfig").write_text(text),
    "xdg": lambda repo, home, text: ((home / ".config" / "git").mkdir(parents=True),
                                     (home / ".config" / "git" / "config").write_text(text)),
    "include": lambda repo, home, text: (home / "included").write_text(text),  # named before, made now
    "worktree": lambda repo, home, text: (repo / ".git" / "worktrees" / "wt" / "config.worktree").write_text(text),
}


@pytest.mark.parametrize("place", sorted(LATE_PLACES))
def test_a_driver_configured_after_the_first_call_is_caught(tmp_path, monkeypatch, place):
    """The configuration is read once and kept while its files read the same: a driver planted
    later, in any file git would read, is seen at the next call, with no time passing between."""
    home, marker = tmp_path / "home", tmp_path / "ran"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    repo = make_repo(tmp_path / "repo")
    plain_git("config", "include.path", str(home / "included"), cwd=repo)
    plain_git("config", "extensions.worktreeConfig", "true", cwd=repo)
    plain_git("worktree", "add", "-q", "--detach", str(tmp_path / "wt"), cwd=repo)
    folder = tmp_path / "wt"
    (folder / ".gitattributes").write_text("* filter=evil diff=evil\n")
    for _ in range(3):  # read, and then kept
        git("add", "-A", cwd=folder)
        git("diff", "--cached", "--no-ext-diff", "HEAD", cwd=folder)
    program = tmp_path / "planted.sh"
    program.write_text(f'#!/bin/sh\necho "$0 $*" >> {marker}\ncat\n')
    program.chmod(0o755)
    LATE_PLACES[place](repo, home, f'[filter "evil"]\n\tclean = {program}\n[diff "evil"]\n\ttextconv = {program}\n')
    (folder / "shared.py").write_text("changed\n")
    git("add", "-A", cwd=folder)
    git("diff", "--cached", "--no-ext-diff", "HEAD", cwd=folder)
    assert not marker.exists(), marker.read_text()
    plain_git("add", "--renormalize", ".", cwd=folder)  # the planting works: plain git runs it
    assert marker.exists()


def test_the_configuration_is_read_once_while_its_files_read_the_same(tmp_path, monkeypatch):
    """A git call spends no process on reading the configuration while nothing in it changed."""
    monkeypatch.setenv("HOME", str(tmp_path))
    repo = make_repo(tmp_path / "repo")
    runs = []
    real_run = subprocess.run
    monkeypatch.setattr(subprocess, "run", lambda argv, **kw: (runs.append(argv[1:3]), real_run(argv, **kw))[1])
    for _ in range(5):
        git("status", "--porcelain", cwd=repo)
    assert sum(argv[:1] == ["config"] for argv in runs) <= 2, runs
    plain_git("config", "filter.late.clean", "cat", cwd=repo)
    git("status", "--porcelain", cwd=repo)
    assert sum(argv[:1] == ["config"] for argv in runs) == 3


AGENTS = Path(__file__).parent / "agents"


def hostile_batch(tmp_path: Path, body: str, plan: dict, setup_files: dict | None = None, **extra: str) -> Path:
    """A repository (with SETUP_FILES committed) whose task.md runs the hostile agent, isolated,
    with the plan given."""
    repo = make_repo(tmp_path / "repo")
    for name, text in (setup_files or {}).items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    command = json.dumps([sys.executable, str(AGENTS / "hostile.py"), "{module}"])
    settings = {"agent": "command", "command": command, "isolation": "worktree", **extra}
    front = "---\n" + "".join(f"{key}: {value}\n" for key, value in settings.items()) + "---\n"
    (repo / "task.md").write_text(front + body)
    plain_git("add", "-A", cwd=repo)
    plain_git("commit", "-q", "-m", "the plan", cwd=repo)
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    return repo


def item_folder(repo: Path, group: str, module: str) -> Path:
    return Path(BatchState(repo / "task.md").item(group, module).folder)


def run_batch(repo: Path, tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "doit", "run-batch", *args], cwd=repo, capture_output=True, text=True,
                          timeout=180, env={**os.environ, "HOSTILE_PLAN": str(tmp_path / "plan.json"), **(env or {})})


def test_an_agent_that_plants_programs_in_git_settings_fails_and_they_are_undone(tmp_path):
    """An agent plants fsmonitor, a filter and a hook, and says it is done: the runner's git
    (which commits what it left, as WIP) never runs them, the settings are put back as they
    were, and the attempt fails for good, naming each."""
    marker, program = tmp_path / "ran", tmp_path / "planted.sh"
    program.write_text(f'#!/bin/sh\necho "$0 $*" >> {marker}\ncat\n')
    program.chmod(0o755)
    plan = {"planter": {"git": [["config", "core.fsmonitor", str(program)], ["config", "filter.evil.clean", str(program)]],
                        "hooks": {"pre-commit": f"#!/bin/sh\n{program} hook\n"},
                        "write": {".gitattributes": "* filter=evil\n", "planted.py": "x = 1\n"}}}
    repo = hostile_batch(tmp_path, "# Batch\n## Edits\n- [ ] planter: plant\n", plan)
    config_before = (repo / ".git" / "config").read_bytes()

    result = run_batch(repo, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert not marker.exists(), marker.read_text()
    assert (repo / ".git" / "config").read_bytes() == config_before
    assert not (repo / ".git" / "hooks" / "pre-commit").exists()
    failure = json.loads((item_folder(repo, "edits", "planter") / "failure.json").read_text())
    assert failure["reason"] == "changed the repository's .git/config, .git/hooks/pre-commit (undone)"
    assert len(failure["attempts"]) == 1 and failure["attempts"][0]["failure_class"] == "permanent"
    assert "[ ] planter" in (repo / "task.md").read_text()
    assert "planted.py" not in plain_git("ls-tree", "-r", "--name-only", "batch/task", cwd=repo)
    plain_git("status", cwd=repo)  # the user's own git is not steered either, now
    assert not marker.exists()


def test_a_change_beside_other_attempts_is_laid_on_each_of_them(tmp_path):
    """No file says which of several attempts running at once changed the settings: the first to
    end finds it undone, and each one that ran beside it is told, none of them for good."""
    repo = make_repo(tmp_path / "repo")
    guard = repository_guard.note(repo)
    guard.started("a")
    guard.started("b")
    plain_git("config", "core.fsmonitor", "planted", cwd=repo)
    found = guard.ended("a")
    assert found == repository_guard.Changed([".git/config"], alone=False)
    assert "planted" not in (repo / ".git" / "config").read_text()
    assert guard.ended("b") == repository_guard.Changed([".git/config"], alone=False)
    guard.started("c")
    assert guard.ended("c") is None
    guard.started("d")
    (repo / ".git" / "hooks" / "post-checkout").write_text("#!/bin/sh\n")
    assert guard.ended("d") == repository_guard.Changed([".git/hooks/post-checkout"], alone=True)
    assert not (repo / ".git" / "hooks" / "post-checkout").exists()
