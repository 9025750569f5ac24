"""One attempt's worktree: what the agent left is committed, a failure is kept, a merged
one removed; every commit made here says in its trailers which batch, item and run it is.

May touch: the attempt's own worktree and branch, and its record in the worktree's own
admin folder inside .git (base, run, what copy and setup left: `batch-tasks.json`).
Removing is refused while anything is uncommitted or not on the integration branch.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .bootstrap import Baseline, dirty_paths
from .errors import BatchError
from .git import GitError, admin_folder, git, is_ancestor, rev

if TYPE_CHECKING:
    from .worktree import Isolation

RECORD = "batch-tasks.json"
MAX_FILE_BYTES = 100 * 2**20  # as GitHub's own limit: a bigger file is a mistake, or an attack on the runner's time


class WorkspaceError(BatchError):
    """An attempt's worktree is not as it should be (it is kept as it is)."""


@dataclass(frozen=True)
class Committed:
    commit: str  # the item branch's tip
    made_commit: bool  # the runner committed something (leftovers, or the success marker)
    changed: bool  # the branch's tree differs from its base's


@dataclass(frozen=True)
class Kept:
    """A worktree and branch left in place, to be named in the summary."""

    path: Path
    branch: str
    commit: str | None
    wip: bool  # a WIP commit was made of what was uncommitted
    note: str = ""  # why no WIP commit could be made, if so


@dataclass
class AttemptWorkspace:
    isolation: "Isolation"
    group: str
    module: str
    run_id: str
    path: Path  # the worktree's top folder
    branch: str
    base: str  # the commit it was made from
    baseline: Baseline = field(default_factory=Baseline)
    replaced: Kept | None = None  # the earlier attempt kept aside to make room for this one

    @property
    def key(self) -> str:
        return item_key(self.group, self.module)

    @property
    def folder(self) -> Path:
        """task.md's folder inside the worktree: where its setup runs."""
        return self.path / self.isolation.relative_folder

    @property
    def workdir(self) -> Path:
        """The batch's workdir inside the worktree: where the agent and the check run."""
        return self.path / self.isolation.relative_workdir

    def tip(self) -> str:
        return rev(f"refs/heads/{self.branch}", self.isolation.top)

    def save(self) -> None:
        record = {"base": self.base, "run_id": self.run_id, "baseline": self.baseline.paths}
        with open(admin_folder(self.path) / RECORD, "w", encoding="utf-8") as stream:
            json.dump(record, stream)

    def commit_leftovers(self, allow_empty: bool = False) -> Committed:
        """After the agent succeeded: commit what it left uncommitted (its own commits stay),
        so that the branch's tip says, in its trailers, that this run of the item succeeded."""
        head = git("symbolic-ref", "-q", "HEAD", cwd=self.path, allowed=(0, 1)).text
        if head != f"refs/heads/{self.branch}":
            raise WorkspaceError(f"the agent left its worktree {self.path} on {head or 'a detached HEAD'}, "
                                 f"not {self.branch}; its work is kept there")
        message = _message(self.isolation, self.key, f"{self.key}: the work of batch {self.isolation.stem}",
                           "What the agent left uncommitted, committed by batch-tasks.", "succeeded", self.run_id)
        made = commit_work(self.path, self.baseline, message)
        tip = self.tip()
        changed = _tree(tip, self.path) != _tree(self.base, self.path)
        if not made and (changed or allow_empty):
            # The agent committed everything itself: an empty commit carries the run's trailers.
            git("commit", "-q", "--no-verify", "--allow-empty", "-F", "-", cwd=self.path, input=message.encode())
            made, tip = True, self.tip()
        return Committed(tip, made, changed)

    def leftovers(self) -> list[str]:
        """Paths with uncommitted changes, other than what copy and setup left as they left it."""
        return [path for path in dirty_paths(self.path) if not self.baseline.untouched_since(self.path, path)]

    def discard_leftovers(self) -> list[str]:
        """What a check left (files it wrote or rewrote) is never the item's work: put the worktree
        back as its branch has it (what copy and setup left stays). Returns the paths put back."""
        left = set(self.leftovers())
        if not left:
            return []
        status = git("status", "--porcelain", "-z", "--untracked-files=all", "--no-renames", cwd=self.path).fields()
        untracked = {entry[3:] for entry in status if entry.startswith("??")}
        tracked = sorted(left - untracked)
        if tracked:
            git("checkout", "-q", "HEAD", "--pathspec-from-file=-", "--pathspec-file-nul", cwd=self.path,
                input="\0".join(f":(literal){p}" for p in tracked).encode("utf-8", "surrogateescape"))
        for path in left & untracked:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path / path)
        return sorted(left)

    def keep(self, why: str) -> Kept:
        """A failed or interrupted attempt: commit (WIP) what is uncommitted, and leave it all in place."""
        try:
            wip, note = commit_work(self.path, self.baseline, wip_message(self.isolation, self.key, why, self.run_id)), ""
        except BatchError as error:  # git refused, or a file too big to commit: all stays uncommitted
            wip, note = False, str(error)
        return Kept(self.path, self.branch, self.tip(), wip, note)

    def remove(self) -> None:
        """Remove the worktree (made a spare) and its branch, once all its work is on the
        integration branch; otherwise raise WorkspaceError and leave both."""
        isolation = self.isolation
        with isolation.lock:
            if self.leftovers():
                raise WorkspaceError(f"{self.path} has uncommitted work; it is kept")
            tip = self.tip()
            if tip is not None and not is_ancestor(tip, isolation.ref, isolation.top):
                raise WorkspaceError(f"{self.branch} has commits not on {isolation.branch}; it is kept")
            isolation.recycle(self.path, self.branch, tip)


def commit_work(path: Path, baseline: Baseline, message: str) -> bool:
    """Commit every uncommitted change in the worktree but what copy and setup left untouched; True if any."""
    dirty = dirty_paths(path)
    if not dirty:
        return False
    untouched = [p for p in dirty if baseline.untouched_since(path, p)]
    if len(untouched) == len(dirty):
        return False
    changed = [p for p in dirty if p not in untouched]
    _refuse_huge_files(path, changed)
    # The paths status named, not the whole tree: on a large tree each walk of it costs
    # a second or more, and `git commit` would refresh every entry again. Plumbing instead.
    git("add", "-A", "--pathspec-from-file=-", "--pathspec-file-nul", cwd=path,
        input="\0".join(f":(literal){p}" for p in changed).encode("utf-8", "surrogateescape"))
    tree, head = git("write-tree", cwd=path).text, rev("HEAD", path)
    if head is not None and tree == _tree(head, path):
        return False
    parents = ["-p", head] if head is not None else []
    commit = git("commit-tree", tree, *parents, "-F", "-", cwd=path, input=message.encode()).text
    git("update-ref", "-m", f"commit: {message.splitlines()[0]}", "HEAD", commit, head or "", cwd=path)
    return True


def _refuse_huge_files(worktree: Path, paths: list[str]) -> None:
    """git would take minutes to hash a file of gigabytes (a sparse one costs the agent nothing)."""
    for relative in paths:
        try:
            size = os.lstat(worktree / relative).st_size
        except OSError:
            continue
        if size > MAX_FILE_BYTES:
            raise WorkspaceError(f"the agent left {relative}, of {size / 2**20:,.0f} MiB: batch-tasks commits no file "
                                 f"over {MAX_FILE_BYTES // 2**20} MiB; it is left uncommitted in {worktree}")


def _message(isolation: "Isolation", key: str, title: str, body: str, result: str, run_id: str) -> str:
    """A commit message whose trailers let a later run find what this one did."""
    return (f"{one_line(title)}\n\n{body}\n\n" + trailer_lines(isolation, key, run_id) + f"Batch-Result: {result}\n")


def wip_message(isolation: "Isolation", key: str, why: str, run_id: str) -> str:
    return _message(isolation, key, f"WIP {key}: {why}",
                    "What a failed or interrupted attempt left uncommitted, kept by batch-tasks.", "wip", run_id)


def trailer_lines(isolation: "Isolation", key: str, run_id: str) -> str:
    return f"Batch-Task: {isolation.task_path}\nBatch-Item: {key}\nBatch-Run: {one_line(run_id)}\n"


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def item_key(group: str, module: str) -> str:
    return one_line(f"{group}:{module}")


def _tree(commit: str, cwd: Path) -> str:
    return git("rev-parse", f"{commit}^{{tree}}", cwd=cwd).text


def read_record(path: Path) -> dict[str, Any]:
    try:
        with open(admin_folder(path) / RECORD, encoding="utf-8") as stream:
            record = json.load(stream)
    except (OSError, ValueError, GitError):
        return {}
    return record if isinstance(record, dict) else {}


def remove_stale_index_lock(worktree: Path) -> None:
    """What a git killed with its run left: every later git command in that worktree would fail.
    The run lock says no other run of this batch is here; git's own lock outlives only a dead git."""
    try:
        os.remove(admin_folder(worktree) / "index.lock")
    except (FileNotFoundError, GitError):
        pass
