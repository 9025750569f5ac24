"""A real git repository in a temporary folder, for the isolation tests: no git is faked."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SECTIONS = ("alpha", "beta", "gamma", "delta")


@pytest.fixture(autouse=True)  # autouse in each module that imports it: git as the tests set it, not the user's
def no_global_git_config(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-global-gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


def git(*args: str, cwd: Path, check: bool = True) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout.strip()


def shared_file() -> str:
    """One file in four parts far enough apart that edits to different parts merge cleanly."""
    parts = []
    for name in SECTIONS:
        parts.append(f"# {name}\n{name} = 'original'\n" + "".join(f"# {name} filler {n}\n" for n in range(6)))
    return "\n".join(parts)


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git("init", "-q", "-b", "main", cwd=path)
    git("config", "user.name", "Test User", cwd=path)
    git("config", "user.email", "test@example.invalid", cwd=path)
    (path / "shared.py").write_text(shared_file())
    (path / "task.md").write_text("# A batch\n\n## Edit\n- [ ] alpha: edit alpha\n")
    (path / ".gitignore").write_text("*.ignored\n")
    git("add", "-A", cwd=path)
    git("commit", "-q", "-m", "initial", cwd=path)
    return path


def edit_section(folder: Path, section: str, value: str) -> None:
    """What an agent would do: change one section's line of shared.py."""
    target = folder / "shared.py"
    text = target.read_text()
    start = text.index(f"{section} = ")
    end = text.index("\n", start)
    target.write_text(text[:start] + f"{section} = {value!r}" + text[end:])


def snapshot(repo: Path) -> dict[str, str]:
    """What the user sees of their working tree."""
    return {
        "status": git("status", "--porcelain", "--untracked-files=all", cwd=repo),
        "head": git("rev-parse", "HEAD", cwd=repo),
        "branch": git("symbolic-ref", "-q", "HEAD", cwd=repo, check=False),
        "diff": git("diff", "HEAD", cwd=repo),
    }
