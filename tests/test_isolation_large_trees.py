"""What keeps isolation off walks of a large tree, on real git repositories: the runner's own
worktree holds the integration branch without its files, and merged items' worktrees are kept
clean, as spares, from one run to the next."""

from __future__ import annotations

from pathlib import Path

import pytest
from gitrepo import edit_section, git, make_repo
from gitrepo import no_global_git_config  # noqa: F401 - a fixture: imported here, it is autouse here

from batch_tasks.isolation.worktree import Isolation
from batch_tasks.repository import git as git_module
from batch_tasks.landing.merge_queue import MergeQueue


@pytest.fixture
def repo(tmp_path) -> Path:
    repo = make_repo(tmp_path / "repo")
    (repo / "src").mkdir()
    (repo / "src" / "deep.py").write_text("deep = 1\n")
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "a folder", cwd=repo)
    return repo


def prepared(repo: Path) -> Isolation:
    isolation = Isolation(repo / "task.md", {"integrate": None})
    isolation.validate()
    isolation.prepare()
    return isolation


def files_in(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*") if ".git" not in path.parts}


def test_the_runners_worktree_holds_the_branch_without_its_folders_and_follows_each_landing(repo):
    config = (repo / ".git" / "config").read_text()
    isolation = prepared(repo)
    integration = isolation.integration_path
    assert files_in(integration) == {"shared.py", "task.md", ".gitignore"}  # no folder written out
    workspace = isolation.open_attempt("edit", "alpha", "run-1")
    edit_section(workspace.folder, "alpha", "landed")
    (workspace.path / "src" / "deep.py").write_text("deep = 2\n")
    workspace.commit_leftovers()
    assert MergeQueue(isolation).merge(workspace).merged
    assert "alpha = 'landed'" in (integration / "shared.py").read_text()  # it followed the branch
    assert not (integration / "src").exists()
    # Its index holds the folder as one entry (its tree), not one entry a file: following
    # the branch writes a few hundred entries on a tree of 100,000 files, not 100,000.
    # (Read from the file: git expands or folds an index as it reads it, by its settings.)
    index = (Path(git("rev-parse", "--absolute-git-dir", cwd=integration)) / "index").read_bytes()
    assert b"src/\0" in index and b"src/deep.py" not in index
    # As the user's own git sees it: on the branch, nothing changed, and their configuration untouched.
    assert git("symbolic-ref", "HEAD", cwd=integration) == "refs/heads/batch/task"
    assert git("status", "--porcelain", "--untracked-files=all", cwd=integration) == ""
    assert git("diff", "HEAD", "--stat", cwd=integration) == ""
    assert (repo / ".git" / "config").read_text() == config


def test_a_runners_worktree_an_earlier_version_checked_out_whole_is_made_sparse(repo):
    git("branch", "batch/task", cwd=repo)
    git("worktree", "add", "-q", str(repo / ".batch" / "task" / "integration"), "batch/task", cwd=repo)
    isolation = prepared(repo)
    assert files_in(isolation.integration_path) == {"shared.py", "task.md", ".gitignore"}
    assert git("status", "--porcelain", "--untracked-files=all", cwd=isolation.integration_path) == ""


def test_a_merged_items_worktree_is_kept_clean_for_the_next_runs_attempts(repo):
    isolation = prepared(repo)
    first = isolation.open_attempt("edit", "alpha", "run-1")
    edit_section(first.folder, "alpha", "one")
    (first.folder / "build.ignored").write_text("a build output\n")  # not the work: it goes
    first.commit_leftovers()
    assert MergeQueue(isolation).merge(first).merged
    first.remove()
    [spare] = [Path(entry) for entry in git("worktree", "list", "--porcelain", cwd=repo).splitlines()
               if entry.startswith("worktree ") and "/.spare/" in entry for entry in [entry.split(" ", 1)[1]]]
    assert not (spare / "build.ignored").exists()

    again = prepared(repo)  # the next run: the spare is still there, and is what its first attempt gets
    assert spare.is_dir()
    second = again.open_attempt("edit", "beta", "run-2")
    assert not spare.exists() and second.path.is_dir()
    assert "alpha = 'one'" in (second.folder / "shared.py").read_text()  # at the tip, not the spare's commit
    assert git("status", "--porcelain", "--untracked-files=all", cwd=second.path) == ""
    edit_section(second.folder, "beta", "two")
    assert second.commit_leftovers().changed
    assert MergeQueue(again).merge(second).merged
    second.remove()
    assert again.remove_spares() == 1


def test_a_merged_worktree_holding_ignored_files_alone_loses_those_and_is_not_reset(repo, monkeypatch):
    """What a check leaves that the repository ignores (`__pycache__`) goes by name: a reset and a
    clean of the whole tree would each walk all of its files again."""
    from batch_tasks.isolation import spares

    (repo / ".gitignore").write_text("*.ignored\n__pycache__/\n")
    git("commit", "-q", "-am", "ignore caches", cwd=repo)
    isolation = prepared(repo)
    workspace = isolation.open_attempt("edit", "alpha", "run-1")
    edit_section(workspace.folder, "alpha", "one")
    workspace.commit_leftovers()
    assert MergeQueue(isolation).merge(workspace).merged
    (workspace.path / "src" / "__pycache__").mkdir()
    (workspace.path / "src" / "__pycache__" / "deep.pyc").write_text("compiled\n")
    (workspace.path / "report.ignored").write_text("a check's output\n")
    ran = []
    monkeypatch.setattr(spares, "git", lambda *args, **kwargs: ran.append(args) or git_module.git(*args, **kwargs))
    workspace.remove()
    [spare] = spares.listed(repo, isolation.spares)
    assert not (spare / "report.ignored").exists() and not (spare / "src" / "__pycache__").exists()
    assert (spare / "src" / "deep.py").read_text() == "deep = 1\n"
    assert git("status", "--porcelain", "--untracked-files=all", "--ignored", cwd=spare) == ""
    assert not any(args[0] == "reset" or args == ("clean", "-ffdxq") for args in ran), ran


def test_what_a_check_leaves_is_put_back_after_one_walk_of_the_tree(repo, monkeypatch):
    from batch_tasks.isolation import bootstrap, workspace as workspace_module

    isolation = prepared(repo)
    workspace = isolation.open_attempt("edit", "alpha", "run-1")
    edit_section(workspace.folder, "alpha", "one")
    workspace.commit_leftovers()
    (workspace.path / "src" / "deep.py").write_text("deep = 'reformatted'\n")  # as a check might leave them
    (workspace.path / "src" / "coverage.json").write_text("{}\n")
    ran = []
    for module in (bootstrap, workspace_module):
        monkeypatch.setattr(module, "git", lambda *args, **kwargs: ran.append(args) or git_module.git(*args, **kwargs))
    assert workspace.discard_leftovers() == ["src/coverage.json", "src/deep.py"]
    assert [args[0] for args in ran].count("status") == 1, ran
    assert git("status", "--porcelain", "--untracked-files=all", cwd=workspace.path) == ""
    assert (workspace.path / "src" / "deep.py").read_text() == "deep = 1\n"


SEES = """
import os, sys
seen = sorted(os.path.relpath(os.path.join(folder, name), ".") for folder, folders, names in os.walk(".")
              for name in names if ".git" not in folder.split(os.sep) and name != ".git")
open(os.path.join(os.environ["SEEN"], sys.argv[1]), "w").write("\\n".join(seen))
"""


def test_a_later_runs_attempt_in_a_spare_lands_exactly_the_files_its_check_saw(tmp_path):
    """A real run leaves its merged item's worktree as a spare; the next run's attempt is made in
    it. What lands is what its check saw: nothing the spare held before, nothing less."""
    import json
    import os
    import subprocess
    import sys

    repo = make_repo(tmp_path / "repo")
    seen = tmp_path / "seen"
    seen.mkdir()
    agent = json.dumps([sys.executable, "-c", "import sys; open(sys.argv[1] + '.txt', 'w').write('made')", "{module}"])
    check = json.dumps([sys.executable, "-c", SEES, "{module}"])
    front = f"---\nagent: command\ncommand: {agent}\nisolation: worktree\ncheck: {check}\n---\n# Two runs\n## Files\n"
    (repo / "task.md").write_text(front + "- [ ] alpha: make alpha.txt\n")
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "the plan", cwd=repo)

    def run() -> None:
        done = subprocess.run([sys.executable, "-m", "doit", "run-batch"], cwd=repo, capture_output=True, text=True,
                              timeout=120, env={**os.environ, "SEEN": str(seen)})
        assert done.returncode == 0, done.stdout + done.stderr

    run()
    [spare] = (repo / ".batch" / "task" / "worktrees" / ".spare").iterdir()
    admin = (spare / ".git").read_text()  # git's own folder of that worktree: a move keeps it
    (repo / "task.md").write_text((repo / "task.md").read_text() + "- [ ] beta: make beta.txt\n")
    run()
    [spare] = (repo / ".batch" / "task" / "worktrees" / ".spare").iterdir()
    assert (spare / ".git").read_text() == admin  # the second run's attempt was made in it, and set aside again
    landed = git("ls-tree", "-r", "--name-only", "batch/task", cwd=repo).split()
    assert "alpha.txt" in landed and "beta.txt" in landed
    assert sorted(landed) == (seen / "beta").read_text().split("\n")
