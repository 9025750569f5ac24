"""The runner's own worktree of the integration branch (`.batch/<stem>/integration/`): it holds
the branch, so that git refuses to check it out anywhere else, and holds no files.

Nothing runs there (checks of merged states run in the merge queue's own worktrees), and on a
tree of 100,000 files each `reset --hard` of a full checkout walks all of them: a second or
more an item, only to keep files nobody reads. So it is a sparse checkout of the top folder's
files alone, with a sparse index: each top folder is one entry of the index (its tree), not
one entry a file, so following the branch after a landing writes an index of a few hundred
entries (100 KB at 100,000 files, not 8 MB) and no file beyond the top folder's. The sparse
settings are given to each of the runner's own git commands here, never written to the
repository's configuration (which the user's other worktrees share); a `git status` of the
user's there sees a clean worktree (their git, without those settings, reads the sparse index
as the full one it stands for).

May touch: that worktree, its index, and its sparse-checkout file in its own folder under
`.git/worktrees/`.
"""

from __future__ import annotations

from pathlib import Path

from ..repository.git import admin_folder, git, rev
from ..repository.git import worktree_at as _worktree_at
from .workspace import remove_stale_index_lock

# Cone mode: the top folder's files, no folder (git's own `sparse-checkout set` with no folder).
PATTERNS = "/*\n!/*/\n"
SPARSE = ("-c", "core.sparseCheckout=true", "-c", "core.sparseCheckoutCone=true", "-c", "index.sparse=true")


class IntegrationCheckout:
    def __init__(self, top: Path, path: Path, branch: str):
        self.top, self.path, self.branch = top, path, branch

    def exists(self) -> bool:
        return _worktree_at(self.top, self.path) is not None

    def add(self) -> None:
        """Make it, without writing the tree out: the sparse patterns first, then the index."""
        git("worktree", "add", "-q", "--no-checkout", str(self.path), self.branch, cwd=self.top)
        self._sparse()
        self.git("reset", "-q", "--hard")

    def follow(self) -> None:
        """Put it at the branch's tip, which the merge queue moved (the index alone is rewritten)."""
        self.git("reset", "-q", "--hard")

    def abort_half_done_merge(self) -> bool:
        """Recovery: undo whatever a killed merge left here (an earlier version merged here), and
        make it sparse if an earlier version checked it out whole; True if a merge was in progress."""
        remove_stale_index_lock(self.path)
        merging = rev("MERGE_HEAD", self.path) is not None
        if merging:
            git("merge", "--abort", cwd=self.path, allowed=(0, 1, 128))
        self._sparse()
        self.git("reset", "-q", "--hard")  # the runner's own checkout: nothing of anyone's is lost
        if git("symbolic-ref", "-q", "HEAD", cwd=self.path, allowed=(0, 1)).text != f"refs/heads/{self.branch}":
            self.git("checkout", "-q", self.branch)  # one a run made before held no branch
            self.git("reset", "-q", "--hard")
        self.git("clean", "-ffdxq")  # the top folder's files alone: the rest is not there
        return merging

    def git(self, *args: str):
        return git(*SPARSE, *args, cwd=self.path)

    def _sparse(self) -> None:
        patterns = admin_folder(self.path) / "info" / "sparse-checkout"
        if not patterns.exists() or patterns.read_text() != PATTERNS:
            patterns.parent.mkdir(parents=True, exist_ok=True)
            patterns.write_text(PATTERNS)
