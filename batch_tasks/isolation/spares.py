"""Spare worktrees: a merged item's worktree, found or made clean, kept under
`.batch/<stem>/worktrees/.spare/` and moved into place as a later attempt's worktree.

A checkout of 10,000 files costs seconds on a busy machine, deleting one as much; switching a
checkout between two nearby commits costs milliseconds. So a spare is only ever moved: set
aside once nothing of it is left but its commit, taken by the next attempt (of this run or of
a later one: spares stay from run to run) and switched to its base, removed by `batch-clean`.
A worktree is moved under `.spare/` only once clean, so a spare is taken as it is.

May touch: the worktrees given, the spares' folder, and the item branch being set aside or made.
"""

from __future__ import annotations

from pathlib import Path

from ..repository.git import GitError, git, worktrees
from .kept_aside import unused_path

PATHS_PER_CLEAN = 1000  # a command line of them stays far below the system's limit


def listed(top: Path, folder: Path) -> list[Path]:
    return [Path(entry["worktree"]) for entry in worktrees(top)
            if Path(entry["worktree"]).parent == folder and "detached" in entry
            and "locked" not in entry and "prunable" not in entry]


def set_aside(top: Path, folder: Path, path: Path, branch: str, tip: str | None,
              ignored: list[str] | None = None) -> None:
    """Delete BRANCH (at TIP) and make its worktree at PATH a spare. `ignored`: a status just found
    nothing in it but its commit and these ignored files and folders (a check's `__pycache__`),
    which alone are deleted; None: not known, so the whole tree is reset and cleaned (each
    walks it: on 100,000 files 330 ms of CPU, against 20 ms for the paths named). If git
    refuses, the worktree is removed instead."""
    try:
        # Detached at the same commit: HEAD alone is rewritten (a checkout would refresh every file).
        git("update-ref", "--no-deref", "-m", "batch-tasks: set aside", "HEAD", "HEAD", cwd=path)
        if tip is not None:
            git("update-ref", "-d", f"refs/heads/{branch}", tip, cwd=top)
        if ignored is None:
            git("reset", "-q", "--hard", cwd=path)
            git("clean", "-ffdxq", cwd=path)
        for start in range(0, len(ignored or ()), PATHS_PER_CLEAN):
            git("clean", "-ffdxq", "--", *(f":(literal){name}" for name in ignored[start:start + PATHS_PER_CLEAN]),
                cwd=path)
        folder.mkdir(parents=True, exist_ok=True)
        git("worktree", "move", str(path), str(unused_path(folder / "1")), cwd=top)
    except GitError:
        git("worktree", "remove", "--force", str(path), cwd=top, allowed=(0, 128))
        if tip is not None:
            git("update-ref", "-d", f"refs/heads/{branch}", tip, cwd=top, allowed=(0, 1, 128))


def take(top: Path, folder: Path, path: Path, branch: str, base: str) -> bool:
    """A spare moved to PATH, on a new BRANCH at BASE; False if there is none."""
    found = listed(top, folder)
    if not found:
        return False
    git("worktree", "move", str(found[0]), str(path), cwd=top)
    # Only the files that differ from the spare's commit are written, and no other is looked
    # at (`checkout -b` refreshes every entry of the index: a walk of the tree); a file to be
    # written that is not as the index has it stops it, as it would stop a checkout. Not
    # `read-tree -m -u`: it drops the index's cache of tree ids and hashes all the folders'
    # trees again (on 100,000 files 160 ms of CPU, against 90 ms).
    if git("reset", "-q", "--merge", base, cwd=path, allowed=(0, 128)).status != 0:
        git("checkout", "-q", "-b", branch, base, cwd=path)  # git's own word, if it refuses too
        return True
    git("update-ref", "-m", f"branch: Created from {base}", f"refs/heads/{branch}", base, "", cwd=path)
    git("symbolic-ref", "-m", f"checkout: moving to {branch}", "HEAD", f"refs/heads/{branch}", cwd=path)
    return True


def remove_all(top: Path, folder: Path) -> int:
    found = listed(top, folder)
    for spare in found:
        git("worktree", "remove", "--force", str(spare), cwd=top)
    return len(found)
