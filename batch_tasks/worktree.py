"""Isolation: each attempt of an item in its own git worktree, on its own branch, and
the runner's own worktree of the integration branch, where the merge queue merges.

May touch, in the repository holding task.md: the integration branch (created from
HEAD at the first run, then advanced only by the merge queue), the item branches
`<integrate>.items/<group>/<module>` (and earlier attempts kept as `….<time>`), the
worktree list, and the folders `.batch/<stem>/integration/` (the runner's worktree)
and `.batch/<stem>/worktrees/<group>/<module>/` (one per item). Never the user's
working tree, index, HEAD or checked-out branch; `.batch/.gitignore` (`*`) keeps the
state folder out of `git status`. Nothing with commits that are not on the
integration branch is ever deleted: such a branch is renamed aside, its worktree kept.

    isolation = Isolation(taskfile, plan.settings)
    isolation.validate()            # at load: IsolationError, one line (exit 3)
    isolation.prepare()             # at run start; also aborts a killed run's half-done merge
    workspace = isolation.open_attempt(group, module, run_id, group_settings, log)
    ...                             # the agent runs in workspace.folder
    committed = workspace.commit_leftovers(allow_empty=group_settings["allow_empty"])
    if not committed.changed: workspace.remove()    # and the attempt fails: no changes
    ...                             # check, then MergeQueue.merge (see merge_queue)
    workspace.remove()              # once merged; a failure: kept = workspace.keep("check failed")
    isolation.close()               # at run end: the runner's worktree goes, its branch stays
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .bootstrap import Baseline, SetupFailed, bootstrap, dirty_paths, inside
from .check import NullLog
from .errors import BatchError
from .git import GitError, admin_folder, git, is_ancestor, rev, trailers, worktree_at as _worktree_at, worktrees
from .state import BatchState, safe_name

RECORD = "batch-tasks.json"  # in a worktree's own admin folder: its base, run, and baseline


class IsolationError(BatchError):
    """The batch cannot be isolated as its settings ask; `setting` names the one to blame."""

    def __init__(self, message: str, setting: str = "isolation"):
        super().__init__(message)
        self.setting = setting


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


class Isolation:
    def __init__(self, taskfile: Path, settings: Mapping[str, Any]):
        self.taskfile = Path(taskfile).absolute()
        self.folder = self.taskfile.parent
        self.settings = settings
        self.stem = safe_name(self.taskfile.stem)
        self.state_root = BatchState(self.taskfile).root
        self.branch = settings.get("integrate") or f"batch/{self.stem}"
        self.integration_path = self.state_root / "integration"
        self._top: Path | None = None
        # The worktree list and branch refs change one at a time; commits in worktrees run side by side.
        self.lock = threading.Lock()

    # Where things are

    @property
    def top(self) -> Path:
        """The user's working tree: the top folder of the checkout holding task.md."""
        if self._top is None:
            self.validate()
        return self._top

    @property
    def relative_folder(self) -> Path:
        """task.md's folder, relative to the repository's top."""
        return Path(os.path.relpath(os.path.realpath(self.folder), os.path.realpath(self.top)))

    @property
    def ref(self) -> str:
        return f"refs/heads/{self.branch}"

    def item_branch(self, group: str, module: str) -> str:
        # Not `<integrate>/<group>/…`: git cannot hold a branch and a folder of branches of one name.
        return f"{self.branch}.items/{safe_name(group)}/{safe_name(module)}"

    def item_path(self, group: str, module: str) -> Path:
        return self.state_root / "worktrees" / safe_name(group) / safe_name(module)

    def tip(self) -> str:
        """The integration branch's tip: what a new attempt starts from. The dispatcher starts
        an item only once what it depends on has merged, so the tip holds all of it."""
        commit = rev(self.ref, self.top)
        if commit is None:
            raise IsolationError(f"the integration branch {self.branch} is gone; run again to make it anew", "integrate")
        return commit

    # At load, and at the start and end of a run

    def validate(self) -> None:
        name = self.taskfile.name
        if shutil.which("git") is None:
            raise IsolationError(f"{name}: isolation: worktree needs git on PATH")
        found = git("rev-parse", "--show-toplevel", cwd=self.folder, allowed=(0, 128))
        if found.status != 0 or not found.text:
            raise IsolationError(f"{name}: isolation: worktree needs {name} inside a git repository (git init, then commit)")
        top = Path(found.text)
        if rev(self.ref, top) is None and rev("HEAD", top) is None:
            raise IsolationError(f"{name}: isolation: worktree needs a repository with a commit to start from")
        for branch in (self.branch, self.item_branch("group", "module")):
            if git("check-ref-format", "--branch", branch, cwd=top, allowed=(0, 1, 128)).status != 0:
                raise IsolationError(f"{name}: integrate: {self.branch!r} is not a valid git branch name", "integrate")
        for entry in worktrees(top):
            if entry.get("branch") == self.ref and os.path.realpath(entry["worktree"]) != os.path.realpath(self.integration_path):
                raise IsolationError(
                    f"{name}: integrate: {self.branch} is checked out in {entry['worktree']}; batch-tasks never "
                    "commits into a working tree of yours: name another branch, or check out another one there",
                    "integrate",
                )
        for pattern in self.settings.get("worktree_copy") or ():
            if not inside(os.path.normpath(self.folder / pattern), str(top)):
                raise IsolationError(f"{name}: worktree_copy: {pattern!r} is outside the repository", "worktree_copy")
        self._top = top

    def prepare(self) -> None:
        """Make the integration branch (from HEAD, once) and the runner's own worktree of it.
        A half-done merge a killed run left there is aborted: the branch keeps its tip."""
        self.state_root.mkdir(parents=True, exist_ok=True)
        _ignore_folder(self.state_root.parent)
        with self.lock:
            git("worktree", "prune", cwd=self.top)
            if rev(self.ref, self.top) is None:
                head = rev("HEAD", self.top)
                git("update-ref", "-m", f"batch-tasks: integration branch of {self.taskfile.name}", self.ref, head, "",
                    cwd=self.top)
            entry = _worktree_at(self.top, self.integration_path)
            if entry is None:
                _move_aside(self.integration_path)
                git("worktree", "add", "-q", str(self.integration_path), self.branch, cwd=self.top)
            elif entry.get("branch") != self.ref:
                raise IsolationError(f"{self.integration_path} holds another branch than {self.branch}; move it away")
        self.abort_half_done_merge()

    def abort_half_done_merge(self) -> bool:
        """Recovery: undo whatever a killed merge left in the runner's worktree; True if there was one."""
        path = self.integration_path
        _remove_stale_index_lock(path)
        merging = rev("MERGE_HEAD", path) is not None
        if merging:
            git("merge", "--abort", cwd=path, allowed=(0, 1, 128))
        git("reset", "-q", "--hard", cwd=path)  # the runner's own checkout: nothing of anyone's is lost
        return merging

    def close(self) -> None:
        """At the end of a run: remove the runner's worktree, so that the user may check the
        integration branch out. A merge still in it stays (the next run aborts it)."""
        with self.lock:
            if _worktree_at(self.top, self.integration_path) and rev("MERGE_HEAD", self.integration_path) is None:
                git("worktree", "remove", "--force", str(self.integration_path), cwd=self.top)

    # Attempts

    def open_attempt(self, group: str, module: str, run_id: str, settings: Mapping[str, Any] | None = None,
                     log=None, base: str | None = None) -> "AttemptWorkspace":
        """A fresh worktree on the item's branch, from `base` (default: the integration tip),
        with worktree_copy and worktree_setup done. An earlier attempt's branch with work not
        merged is kept under another name (`workspace.replaced`). Raises SetupFailed."""
        settings = self.settings if settings is None else settings
        branch, path = self.item_branch(group, module), self.item_path(group, module)
        with self.lock:
            replaced = self._retire(_item_key(group, module), branch, path)
            base = base or self.tip()
            path.parent.mkdir(parents=True, exist_ok=True)
            git("worktree", "add", "-q", "-b", branch, str(path), base, cwd=self.top)
        workspace = AttemptWorkspace(self, group, module, run_id, path, branch, base, replaced=replaced)
        workspace.save()
        try:
            workspace.baseline = bootstrap(path, folder=workspace.folder, source_folder=self.folder, top=self.top,
                                           settings=settings, log=log or NullLog())
        except (SetupFailed, OSError):
            workspace.remove()  # it holds nothing but what the setup did
            raise
        workspace.save()
        return workspace

    def reopen(self, group: str, module: str) -> "AttemptWorkspace | None":
        """The item's worktree as a killed run left it, if it is there."""
        path = self.item_path(group, module)
        if _worktree_at(self.top, path) is None:
            return None
        record = _read_record(path)
        branch = self.item_branch(group, module)
        base = record.get("base") or git("merge-base", branch, self.ref, cwd=self.top, allowed=(0, 1)).text
        workspace = AttemptWorkspace(self, group, module, record.get("run_id", ""), path, branch, base,
                                     baseline=Baseline(record.get("baseline", {})))
        _remove_stale_index_lock(path)
        return workspace

    def _retire(self, key: str, branch: str, path: Path) -> Kept | None:
        """Clear the way for a new attempt: an earlier one whose work is all on the integration
        branch goes; one with anything else is committed (WIP) and renamed aside, never lost."""
        entry = _worktree_at(self.top, path)
        if entry is not None and ("prunable" in entry or entry.get("locked") == "initializing"):
            # Gone from disk, or a `worktree add` killed half-way: nothing was ever worked on there.
            git("worktree", "remove", "--force", "--force", str(path), cwd=self.top, allowed=(0, 128))
            git("worktree", "prune", cwd=self.top)
            entry = None
        tip = rev(f"refs/heads/{branch}", self.top)
        if entry is None and tip is None:
            _move_aside(path)
            return None
        wip = False
        if entry is not None:
            _remove_stale_index_lock(path)
            record = _read_record(path)
            wip = _commit_work(path, Baseline(record.get("baseline", {})), _message(
                self, key, f"WIP {key}: an earlier attempt, kept aside",
                "What an earlier attempt left uncommitted, kept by batch-tasks.", "wip", record.get("run_id", "")))
            tip = rev(f"refs/heads/{branch}", self.top)
        if tip is not None and is_ancestor(tip, self.ref, self.top) and not wip:
            if entry is not None:
                git("worktree", "remove", "--force", str(path), cwd=self.top)
            git("update-ref", "-d", f"refs/heads/{branch}", tip, cwd=self.top)
            return None
        aside = _unused_branch(self.top, f"{branch}.{_stamp()}")
        if tip is not None:
            git("branch", "-m", branch, aside, cwd=self.top)
        kept_at = path
        if entry is not None:
            kept_at = _unused_path(Path(f"{path}.{aside.rsplit('.', 1)[1]}"))
            git("worktree", "move", str(path), str(kept_at), cwd=self.top)
        return Kept(kept_at, aside, tip, wip)

    # Recovery

    def merged_commit(self, group: str, module: str, run_id: str) -> str | None:
        """The merge commit that landed this run of the item on the integration branch, if any."""
        key = _item_key(group, module)
        found = git("log", "--first-parent", "--merges", "-F", f"--grep=Batch-Run: {run_id}",
                    "--format=%H%x1f%(trailers:only,unfold)%x1e", self.ref, "--", cwd=self.top)
        for entry in found.out.split("\x1e"):
            commit, _, text = entry.strip().partition("\x1f")
            said = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
            if said.get("Batch-Item") == key and said.get("Batch-Run") == run_id and said.get("Batch-Task") == self.task_path:
                return commit
        return None

    def pending_success(self, group: str, module: str, run_id: str) -> "AttemptWorkspace | None":
        """The item's worktree if its branch holds this run's committed success, not yet merged:
        what is left to do is check and merge (no agent paid for twice)."""
        workspace = self.reopen(group, module)
        if workspace is None:
            return None
        tip = workspace.tip()
        said = trailers(tip, workspace.path)
        if (said.get("Batch-Result") != "succeeded" or said.get("Batch-Run") != run_id
                or said.get("Batch-Item") != workspace.key or is_ancestor(tip, self.ref, self.top)):
            return None
        workspace.run_id = run_id
        return workspace

    @property
    def task_path(self) -> str:
        """task.md's path in the repository, as the trailers name it."""
        return _one_line(Path(os.path.relpath(os.path.realpath(self.taskfile), os.path.realpath(self.top))).as_posix())


@dataclass
class AttemptWorkspace:
    isolation: Isolation
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
        return _item_key(self.group, self.module)

    @property
    def folder(self) -> Path:
        """task.md's folder inside the worktree: where the agent and the check run."""
        return self.path / self.isolation.relative_folder

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
        made = _commit_work(self.path, self.baseline, message)
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

    def keep(self, why: str) -> Kept:
        """A failed or interrupted attempt: commit (WIP) what is uncommitted, and leave it all in place."""
        message = _message(self.isolation, self.key, f"WIP {self.key}: {why}",
                           "What a failed or interrupted attempt left uncommitted, kept by batch-tasks.", "wip", self.run_id)
        try:
            wip, note = _commit_work(self.path, self.baseline, message), ""
        except GitError as error:
            wip, note = False, str(error)
        return Kept(self.path, self.branch, self.tip(), wip, note)

    def remove(self) -> None:
        """Remove the worktree and its branch, once all its work is on the integration branch;
        otherwise raise WorkspaceError and leave both."""
        isolation = self.isolation
        with isolation.lock:
            if self.leftovers():
                raise WorkspaceError(f"{self.path} has uncommitted work; it is kept")
            tip = self.tip()
            if tip is not None and not is_ancestor(tip, isolation.ref, isolation.top):
                raise WorkspaceError(f"{self.branch} has commits not on {isolation.branch}; it is kept")
            git("worktree", "remove", "--force", str(self.path), cwd=isolation.top)
            if tip is not None:
                git("update-ref", "-d", f"refs/heads/{self.branch}", tip, cwd=isolation.top)


def _commit_work(path: Path, baseline: Baseline, message: str) -> bool:
    """Commit every uncommitted change in the worktree but what copy and setup left untouched; True if any."""
    dirty = dirty_paths(path)
    if not dirty:
        return False
    untouched = [p for p in dirty if baseline.untouched_since(path, p)]
    if len(untouched) == len(dirty):
        return False
    specs = ["."] + [f":(exclude,literal){p}" for p in untouched]
    git("add", "-A", "--pathspec-from-file=-", "--pathspec-file-nul", cwd=path,
        input="\0".join(specs).encode("utf-8", "surrogateescape"))
    if git("diff", "--cached", "--quiet", cwd=path, allowed=(0, 1)).status == 0:
        return False
    git("commit", "-q", "--no-verify", "-F", "-", cwd=path, input=message.encode())
    return True


def _message(isolation: Isolation, key: str, title: str, body: str, result: str, run_id: str) -> str:
    """A commit message whose trailers let a later run find what this one did."""
    return (f"{_one_line(title)}\n\n{body}\n\n" + trailer_lines(isolation, key, run_id) + f"Batch-Result: {result}\n")


def trailer_lines(isolation: Isolation, key: str, run_id: str) -> str:
    return f"Batch-Task: {isolation.task_path}\nBatch-Item: {key}\nBatch-Run: {_one_line(run_id)}\n"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _item_key(group: str, module: str) -> str:
    return _one_line(f"{group}:{module}")


def _tree(commit: str, cwd: Path) -> str:
    return git("rev-parse", f"{commit}^{{tree}}", cwd=cwd).text


def _read_record(path: Path) -> dict[str, Any]:
    try:
        with open(admin_folder(path) / RECORD, encoding="utf-8") as stream:
            record = json.load(stream)
    except (OSError, ValueError, GitError):
        return {}
    return record if isinstance(record, dict) else {}


def _remove_stale_index_lock(worktree: Path) -> None:
    """What a git killed with its run left: every later git command in that worktree would fail.
    The run lock says no other run of this batch is here; git's own lock outlives only a dead git."""
    try:
        os.remove(admin_folder(worktree) / "index.lock")
    except (FileNotFoundError, GitError):
        pass


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def _unused_branch(top: Path, name: str) -> str:
    candidate, number = name, 1
    while rev(f"refs/heads/{candidate}", top) is not None:
        number += 1
        candidate = f"{name}-{number}"
    return candidate


def _unused_path(path: Path) -> Path:
    candidate, number = path, 1
    while os.path.lexists(candidate):
        number += 1
        candidate = Path(f"{path}-{number}")
    return candidate


def _move_aside(path: Path) -> None:
    """Something not a worktree of ours is where one goes: rename it, never delete it."""
    if os.path.lexists(path):
        os.rename(path, _unused_path(Path(f"{path}.{_stamp()}")))


def _ignore_folder(folder: Path) -> None:
    """`.batch/.gitignore` holding `*`: the state folder, worktrees and all, stays out of `git status`."""
    try:
        descriptor = os.open(folder / ".gitignore", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except FileExistsError:
        return
    with os.fdopen(descriptor, "w") as stream:
        stream.write("# made by batch-tasks: nothing here belongs in git\n*\n")
