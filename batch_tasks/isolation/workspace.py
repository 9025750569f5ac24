"""One attempt's worktree: what the agent left is committed, a failure is kept, a merged
one removed; every commit made here says in its trailers which batch, item and run it is.
A `Worktree` commits and keeps wherever it was made, needing of what made it only the names
its commits carry (`Named`: a Dask worker has them as data); an `AttemptWorkspace`, made here
by an Isolation (`Owner`), also keeps its record and is removed once merged.

May touch: the attempt's own worktree and branch, and its record in the state folder
(`attempts/<group>/<module>.json`: its base, run, git folder and what copy and setup left).
Removing is refused while anything is uncommitted or not on the integration branch.

The record decides what is committed (what is not the baseline) and where a killed run goes
on from, and an agent can write anywhere its user can: so the record is signed with the
user's key (see signing), and one that does not verify, or names a base that is not on both
the item's branch and the integration branch, is a damaged record (WorkspaceError). A live
attempt never reads it back: the runner holds it. Before its work is committed, the
worktree's git must still be the one it was made with (the `.git` file is the agent's to
rewrite, and would point the runner's commit at another repository than what lands).
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..errors import BatchError
from ..repository.git import GitError, admin_folder, common_dir, git, is_ancestor, rev
from ..signing import sign, signing_key
from ..state.state import open_to_read, write_atomic
from .bootstrap import Baseline, dirty_entries, dirty_or_ignored, dirty_paths


class Named(Protocol):
    """All an attempt's worktree needs of whatever made it to commit there (a Worktree): the
    repository, and what its commits' titles and trailers name of the batch. An Isolation is
    one; a Dask worker, which has no Isolation, is sent these three as data (BatchNames)."""

    @property
    def top(self) -> Path: ...  # the repository's top folder

    @property
    def task_path(self) -> str: ...  # task.md's path in the repository

    @property
    def stem(self) -> str: ...  # the batch's name, in its commits' titles


@dataclass(frozen=True)
class BatchNames:
    """Named, as plain data."""

    top: Path
    task_path: str
    stem: str


class Owner(Named, Protocol):
    """What an attempt's worktree here (an AttemptWorkspace) needs more of what made it
    (worktree.Isolation), to keep its record and to remove it once merged: the integration
    branch, and where the records are kept."""

    branch: str
    state_root: Path
    lock: threading.Lock  # one change to the repository's worktrees at a time

    @property
    def ref(self) -> str: ...

    @property
    def relative_folder(self) -> Path: ...

    @property
    def relative_workdir(self) -> Path: ...

    def recycle(self, path: Path, branch: str, tip: str | None, ignored: list[str] | None = None) -> None: ...


RECORD_FORMAT = 1
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
class Worktree:
    """An attempt's worktree wherever it was made, here or on a Dask worker: what its agent left
    is committed, a failed attempt's work kept (WIP). Needs of what made it only its names."""

    isolation: Named
    group: str
    module: str
    run_id: str
    path: Path  # the worktree's top folder
    branch: str
    base: str  # the commit it was made from
    baseline: Baseline = field(default_factory=Baseline)
    gitdir: str = ""  # its own folder in the repository's .git, as made ("": a worker's clone, whose push is checked here)

    @property
    def key(self) -> str:
        return item_key(self.group, self.module)

    def tip(self) -> str:
        return rev(f"refs/heads/{self.branch}", self.isolation.top)

    def own_git(self) -> None:
        """Raise WorkspaceError unless the worktree's git is still the one it was made with."""
        if not self.gitdir:
            return
        found = git("rev-parse", "--path-format=absolute", "--absolute-git-dir", "--git-common-dir",
                    cwd=self.path, allowed=(0, 128)).out.splitlines()
        common = common_dir(self.isolation.top)
        if found != [self.gitdir, common]:
            now = ", ".join(found) or "none"
            raise WorkspaceError(f"the agent pointed its worktree {self.path} at another git folder ({now}) than its "
                                 f"own, {self.gitdir}; its work is kept there")

    def commit_leftovers(self, allow_empty: bool = False) -> Committed:
        """After the agent succeeded: commit what it left uncommitted (its own commits stay),
        so that the branch's tip says, in its trailers, that this run of the item succeeded."""
        self.own_git()
        head = git("symbolic-ref", "-q", "HEAD", cwd=self.path, allowed=(0, 1)).text
        if head != f"refs/heads/{self.branch}":
            raise WorkspaceError(f"the agent left its worktree {self.path} on {head or 'a detached HEAD'}, "
                                 f"not {self.branch}; its work is kept there")
        message = _message(self.isolation, self.key, f"{self.key}: the work of batch {self.isolation.stem}",
                           "What the agent left uncommitted, committed by batch-tasks.", "succeeded", self.run_id)
        made = commit_work(self.path, self.baseline, message)
        branch = f"refs/heads/{self.branch}"
        tip, tree, base_tree = git("rev-parse", f"{branch}^{{commit}}", f"{branch}^{{tree}}",
                                   f"{self.base}^{{tree}}", cwd=self.path).out.split()
        changed = tree != base_tree
        if not made and (changed or allow_empty):
            # The agent committed everything itself: an empty commit carries the run's trailers.
            git("commit", "-q", "--no-verify", "--allow-empty", "-F", "-", cwd=self.path, input=message.encode())
            made, tip = True, self.tip()
        return Committed(tip, made, changed)

    def leftovers(self) -> list[str]:
        """Paths with uncommitted changes, other than what copy and setup left as they left it."""
        return [path for _, path in self.leftover_entries()]

    def leftover_entries(self) -> list[tuple[str, str]]:
        """leftovers, each with its status (`??` untracked)."""
        return [(status, path) for status, path in dirty_entries(self.path)
                if not self.baseline.untouched_since(self.path, path)]

    def discard_leftovers(self) -> list[str]:
        """What a check left (files it wrote or rewrote) is never the item's work: put the worktree
        back as its branch has it (what copy and setup left stays). Returns the paths put back."""
        entries = self.leftover_entries()  # one walk of the tree: what is left, and which of it is untracked
        left = {path for _, path in entries}
        if not left:
            return []
        untracked = {path for status, path in entries if status == "??"}
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


@dataclass
class AttemptWorkspace(Worktree):
    """An attempt's worktree here, made by an Isolation: its record kept in the state folder,
    and removed once its work is on the integration branch."""

    isolation: Owner
    replaced: Kept | None = None  # the earlier attempt kept aside to make room for this one

    @property
    def folder(self) -> Path:
        """task.md's folder inside the worktree: where its setup runs."""
        return self.path / self.isolation.relative_folder

    @property
    def workdir(self) -> Path:
        """The batch's workdir inside the worktree: where the agent and the check run."""
        return self.path / self.isolation.relative_workdir

    def save(self) -> None:
        """Sign and keep the record, for a later run that goes on from this attempt or keeps it aside."""
        record = {"worktree": str(self.path), "branch": self.branch, "gitdir": self.gitdir, "base": self.base,
                  "run_id": self.run_id, "baseline": self.baseline.paths}
        secret = signing_key()
        signature = _sign(secret, record) if secret is not None else ""  # then it never verifies: kept whole
        path = record_file(self.isolation, self.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps({"format": RECORD_FORMAT, "record": record, "signature": signature}))

    def remove(self) -> None:
        """Remove the worktree (made a spare) and its branch, once all its work is on the
        integration branch; otherwise raise WorkspaceError and leave both."""
        isolation = self.isolation
        with isolation.lock:
            dirty, ignored = dirty_or_ignored(self.path)
            if any(not self.baseline.untouched_since(self.path, path) for path in dirty):
                raise WorkspaceError(f"{self.path} has uncommitted work; it is kept")
            tip = self.tip()
            if tip is not None and not is_ancestor(tip, isolation.ref, isolation.top):
                raise WorkspaceError(f"{self.branch} has commits not on {isolation.branch}; it is kept")
            isolation.recycle(self.path, self.branch, tip, ignored=None if dirty else ignored)
            record_file(isolation, self.path).unlink(missing_ok=True)


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
    tree = git("write-tree", cwd=path).text
    found = git("rev-parse", "HEAD^{commit}", "HEAD^{tree}", cwd=path, allowed=(0, 128))
    head, head_tree = found.out.split() if found.status == 0 else (None, None)
    if tree == head_tree:
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


def _message(isolation: Named, key: str, title: str, body: str, result: str, run_id: str) -> str:
    """A commit message whose trailers let a later run find what this one did."""
    return (f"{one_line(title)}\n\n{body}\n\n" + trailer_lines(isolation, key, run_id) + f"Batch-Result: {result}\n")


def wip_message(isolation: Named, key: str, why: str, run_id: str) -> str:
    return _message(isolation, key, f"WIP {key}: {why}",
                    "What a failed or interrupted attempt left uncommitted, kept by batch-tasks.", "wip", run_id)


def trailer_lines(isolation: Named, key: str, run_id: str) -> str:
    return f"Batch-Task: {isolation.task_path}\nBatch-Item: {key}\nBatch-Run: {one_line(run_id)}\n"


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def item_key(group: str, module: str) -> str:
    return one_line(f"{group}:{module}")


def record_file(isolation: Owner, path: Path) -> Path:
    """Where the record of the attempt in the worktree at PATH is kept: the state folder's
    `attempts/`, as the worktree is under `worktrees/`."""
    worktrees = isolation.state_root / "worktrees"
    return isolation.state_root / "attempts" / f"{Path(path).relative_to(worktrees)}.json"


def read_record(isolation: Owner, path: Path) -> dict[str, Any]:
    """What `save` wrote of the attempt in the worktree at PATH, checked; {} if it wrote nothing
    (it was killed before). Raises WorkspaceError if it cannot be read or does not verify: a
    damaged record is no record of a baseline (every file setup made would be taken for the
    agent's work), and a forged one would hide the agent's files from its commit."""
    where = record_file(isolation, path)
    try:
        with open_to_read(str(where)) as stream:
            kept = json.loads(stream.read())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise WorkspaceError(f"the record of the attempt in {path} cannot be read: {error}") from None
    record = kept.get("record") if isinstance(kept, dict) else None
    if not isinstance(record, dict):
        raise WorkspaceError(f"the record of the attempt in {path} is not an object")
    secret = signing_key()
    if secret is None or not hmac.compare_digest(_sign(secret, record), str(kept.get("signature"))):
        raise WorkspaceError(f"the record of the attempt in {path} does not verify ({where} is not as "
                             "batch-tasks signed it with your key)")
    if record.get("worktree") != str(path) or not isinstance(record.get("baseline"), dict):
        raise WorkspaceError(f"the record of the attempt in {path} is another attempt's")
    branch = f"refs/heads/{record.get('branch')}"
    if not holds_base(isolation, record.get("base"), branch):
        raise WorkspaceError(f"the record of the attempt in {path} names a base, {str(record.get('base'))[:12]}, "
                             f"that is not on both {branch} and {isolation.ref}")
    return record


def holds_base(isolation: Owner, base: Any, commit: str) -> bool:
    """Whether BASE is a commit on both COMMIT's history and the integration branch's, as the
    base of an attempt's work is: one moved past the work would hide what it changed."""
    top = isolation.top
    found = rev(base, top) if isinstance(base, str) and base else None
    return (found is not None and rev(commit, top) is not None and is_ancestor(found, commit, top)
            and is_ancestor(found, isolation.ref, top))


def _sign(secret: bytes, record: dict[str, Any]) -> str:
    return sign(secret, "attempt-record", json.dumps(record, sort_keys=True).encode())


def remove_stale_index_lock(worktree: Path) -> None:
    """What a git killed with its run left: every later git command in that worktree would fail.
    The run lock says no other run of this batch is here; git's own lock outlives only a dead git."""
    try:
        os.remove(admin_folder(worktree) / "index.lock")
    except (FileNotFoundError, GitError):
        pass
