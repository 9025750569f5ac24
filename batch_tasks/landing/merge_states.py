"""The states the merge queue checks, made in git: a chain of merge commits (one per item, each
on the last) written without a worktree (`git merge-tree --write-tree`), and the worktrees the
checks of such states run in, side by side.

May touch: git's object database (unreferenced commits until the queue moves the integration
branch onto one) and the folders `.batch/<stem>/checks/<n>/`, detached worktrees of the
queue's own; nothing else. A run killed while a state is made or checked leaves only those: the
next run checks its states afresh, and `discard` puts a check's worktree back.

    chain = merge_chain(top, base, [(key, item_commit, message), ...])  # a Chain, or a Conflict
    with checkouts.lend(chain.top, settings, log, on_start) as (worktree, folder):
        check.run(worktree, folder, ...)
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from ..errors import BatchError
from ..isolation.bootstrap import bootstrap
from ..processes import agent_sandbox
from ..repository.git import git, worktrees


@dataclass(frozen=True)
class Link:
    key: str
    item_commit: str
    before: str  # the state it was merged onto
    merge_commit: str


@dataclass(frozen=True)
class Chain:
    base: str
    links: tuple[Link, ...]

    @property
    def top(self) -> str:
        return self.links[-1].merge_commit if self.links else self.base


@dataclass(frozen=True)
class Conflict:
    key: str
    files: tuple[str, ...]


MERGE_TREE_SINCE = (2, 38)  # `git merge-tree --write-tree`: a merge made without a worktree


def require_merge_tree(top: Path) -> None:
    """One clear error, before anything runs, where git is too old to make the queue's states."""
    said = git("version", cwd=top).text
    found = tuple(int(part) for part in re.findall(r"\d+", said)[:2])
    if found < MERGE_TREE_SINCE:
        raise BatchError(f"isolation: worktree needs git {'.'.join(map(str, MERGE_TREE_SINCE))} or later for its "
                         f"merge queue (git merge-tree --write-tree); this is {said}")


def merge_chain(top: Path, base: str, merges) -> Chain | Conflict:
    """`merges`: (key, item_commit, message) in order, each merged onto the last, from `base`."""
    links, before = [], base
    for key, item_commit, message in merges:
        made = git("merge-tree", "--write-tree", "--name-only", "--no-messages", before, item_commit, cwd=top,
                   allowed=(0, 1))
        lines = made.out.split("\n")
        if made.status != 0:
            return Conflict(key, tuple(line for line in lines[1:] if line))
        merged = git("commit-tree", lines[0], "-p", before, "-p", item_commit, "-F", "-", cwd=top,
                     input=message.encode()).text
        links.append(Link(key, item_commit, before, merged))
        before = merged
    return Chain(base, tuple(links))


class Checkouts:
    """The queue's worktrees for its checks, one per check at a time; each set up (worktree_copy,
    worktree_setup) once per setting, as the items' own are. A check runs the items' code, and
    an item that failed its own could write a file there that passes the next: so a worktree
    is lent again only once it is exactly its new state, tracked files as the state has them
    and nothing else, but what the setup made (untracked or ignored, found right after it ran)."""

    def __init__(self, isolation):
        self.isolation = isolation
        self.root = isolation.state_root / "checks"
        self._free: list[Path] = []
        self._made = 0
        self._set_up: dict[Path, set] = {}
        self._setup_made: dict[Path, set[str]] = {}  # the untracked and ignored paths the setup left
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def lend(self, commit: str, settings, log, on_start=None):
        """A worktree at `commit`; yields task.md's working folder there."""
        path = self._take()
        try:
            git("reset", "-q", "--hard", commit, cwd=path)  # detached: HEAD, index and files at COMMIT
            git("clean", "-ffdxq", *(f"--exclude={_exactly(name)}" for name in sorted(self._setup_made.get(path, ()))),
                cwd=path)
            self._set_up_for(path, settings, log, on_start)
            yield path, path / self.isolation.relative_workdir
        finally:
            with self._lock:
                self._free.append(path)

    def close(self) -> None:
        """At the end of a run: the worktrees go (a killed run's go at the next one's start)."""
        with self.isolation.lock:
            for entry in worktrees(self.isolation.top):
                if Path(os.path.realpath(entry["worktree"])).parent == Path(os.path.realpath(self.root)):
                    git("worktree", "remove", "--force", entry["worktree"], cwd=self.isolation.top, allowed=(0, 128))
            shutil.rmtree(self.root, ignore_errors=True)

    def _take(self) -> Path:
        with self._lock:
            if self._free:
                return self._free.pop()
            self._made += 1
            path = self.root / str(self._made)
        isolation = self.isolation
        with isolation.lock:
            registered = {os.path.realpath(entry["worktree"]) for entry in worktrees(isolation.top)}
            if os.path.realpath(path) not in registered:
                shutil.rmtree(path, ignore_errors=True)  # a killed run's half-made one
                path.parent.mkdir(parents=True, exist_ok=True)
                git("worktree", "add", "-q", "--detach", str(path), isolation.ref, cwd=isolation.top)
        return path

    def _set_up_for(self, path: Path, settings, log, on_start) -> None:
        wanted = (tuple(settings.get("worktree_copy") or ()), tuple(settings.get("worktree_setup") or ()))
        done = self._set_up.setdefault(path, set())
        if wanted in done or wanted == ((), ()):
            return
        isolation = self.isolation
        bootstrap(path, folder=path / isolation.relative_folder, source_folder=isolation.folder, top=isolation.top,
                  settings=settings, log=log, supervisor=isolation.supervisor, on_start=on_start,
                  sandbox=agent_sandbox.for_merged_state(path, isolation.top, settings))
        # A folder once, not each file in it (`--untracked-files=normal`): these stay from check to check.
        found = git("status", "--porcelain", "-z", "--untracked-files=normal", "--ignored=matching", "--no-renames",
                    cwd=path).fields()
        self._setup_made.setdefault(path, set()).update(entry[3:] for entry in found if entry[:2] in ("??", "!!"))
        done.add(wanted)


def _exactly(name: str) -> str:
    """A pattern for `git clean --exclude` that matches NAME, relative to the worktree's top, alone."""
    return "/" + re.sub(r"([\\*?\[ ])", r"\\\1", name)
