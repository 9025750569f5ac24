"""Isolation: each attempt of an item in its own git worktree, on its own branch, and
the runner's own worktree of the integration branch, where the merge queue merges.

May touch, in the repository holding task.md: the integration branch (created from
HEAD at the first run, then advanced only by the merge queue), the item branches
`<integrate>.items/<group>/<module>` (and earlier attempts kept as `….<time>`), the
worktree list, and the folders `.batch/<stem>/integration/` (the runner's worktree, where
the integration branch is checked out: git then refuses to check it out anywhere else, so
no checkout can move under a merge or revert what landed; the user reads it with `git log`,
`git show`, `git diff` and merges it, any time), `.batch/<stem>/worktrees/<group>/<module>/` (one per item) and
`.batch/<stem>/attempts/` (each attempt's signed record: see workspace). Never
the user's working tree, index, HEAD or checked-out branch; `.batch/.gitignore` (`*`)
keeps the state folder out of `git status`. Nothing with commits that are not on the
integration branch is ever deleted: such a branch is renamed aside, its worktree kept.

A merged item's worktree is not deleted but kept, clean, as a spare for the next attempt
(see spares): a checkout of a large tree costs seconds, switching one between two nearby
commits milliseconds.

    isolation = Isolation(taskfile, plan.settings, supervisor)   # the run's process.Supervisor
    isolation.validate()            # at load: IsolationError, one line (exit 3)
    isolation.prepare()             # at run start; also aborts a killed run's half-done merge
    workspace = isolation.open_attempt(group, module, run_id, group_settings, log)
    ...                             # the agent runs in workspace.folder
    committed = workspace.commit_leftovers(allow_empty=group_settings["allow_empty"])
    if not committed.changed: workspace.remove()    # and the attempt fails: no changes
    ...                             # check, then MergeQueue.merge (see merge_queue)
    workspace.remove()              # once merged (made a spare); a failure: kept = workspace.keep("check failed")
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from typing import Any, Mapping

from ..errors import BatchError
from ..processes import agent_sandbox
from ..processes.check import NullLog
from ..processes.process import Supervisor
from ..repository.git import GitError, admin_folder, git, is_ancestor, parse_trailers, rev, trailers, worktrees
from ..repository.git import worktree_at as _worktree_at
from ..state.state import BatchState, safe_name
from .bootstrap import Baseline, SetupFailed, bootstrap, inside
from .integration_checkout import IntegrationCheckout
from . import spares
from .kept_aside import move_aside, stamp, unused_branch, unused_path
from .workspace import (AttemptWorkspace, Kept, WorkspaceError, commit_work, item_key, one_line, read_record,
                        remove_stale_index_lock, wip_message)


class IsolationError(BatchError):
    """The batch cannot be isolated as its settings ask; `setting` names the one to blame."""

    def __init__(self, message: str, setting: str = "isolation"):
        super().__init__(message)
        self.setting = setting


class BranchLocked(BatchError):
    """A branch's lock file is there: a git that crashed left it, and the branch cannot move."""


def stale_lock(error: GitError, branch: str) -> BranchLocked | None:
    """A lock git could not take because a crashed git left it: named, with what to do."""
    said = error.stderr
    if ".lock': File exists" not in said:
        return None
    path = said.split("Unable to create '", 1)[1].split("'", 1)[0] if "Unable to create '" in said else "a .lock file"
    return BranchLocked(f"{path} is there (a git that crashed left it), so {branch} cannot move; remove it if no "
                        "git runs in this repository, then run again: what was checked is kept")


class Isolation:
    def __init__(self, taskfile: Path, settings: Mapping[str, Any], supervisor: Supervisor | None = None,
                 workdir: Path | None = None, state: BatchState | None = None):
        self.taskfile = Path(taskfile).absolute()
        self.supervisor = supervisor or Supervisor()  # runs the setups (and the merge queue's checks)
        self.folder = self.taskfile.parent
        self.workdir = Path(workdir).absolute() if workdir is not None else self.folder  # where agents and checks run
        self.settings = settings
        self.stem = safe_name(self.taskfile.stem)
        self.state_root = (state or BatchState(self.taskfile)).root  # the batch's, when a batch is loaded
        self.branch = settings.get("integrate") or f"batch/{self.stem}"
        self.integration_path = self.state_root / "integration"
        self._integration: IntegrationCheckout | None = None
        self.spares = self.state_root / "worktrees" / ".spare"  # no group's folder starts with a dot
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
    def relative_workdir(self) -> Path:
        """Where agents and checks run (see workdir.py), relative to the repository's top."""
        return Path(os.path.relpath(os.path.realpath(self.workdir), os.path.realpath(self.top)))

    @property
    def ref(self) -> str:
        return f"refs/heads/{self.branch}"

    @property
    def integration(self) -> IntegrationCheckout:
        if self._integration is None:
            self._integration = IntegrationCheckout(self.top, self.integration_path, self.branch)
        return self._integration

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
        try:
            self._prepare()
        except GitError as error:
            raise stale_lock(error, self.branch) or error

    def _prepare(self) -> None:
        self.state_root.mkdir(parents=True, exist_ok=True)
        _ignore_folder(self.state_root.parent)
        with self.lock:
            git("worktree", "prune", cwd=self.top)
            if rev(self.ref, self.top) is None:
                head = rev("HEAD", self.top)
                git("update-ref", "-m", f"batch-tasks: integration branch of {self.taskfile.name}", self.ref, head, "",
                    cwd=self.top)
            if not self.integration.exists():
                move_aside(self.integration_path)
                self.integration.add()
        # The spares an earlier run left are not cleaned again (each clean walks the tree): one is
        # moved under `.spare/` only once it was found, or made, clean (see recycle).
        self.abort_half_done_merge()

    def abort_half_done_merge(self) -> bool:
        """Recovery: undo whatever a killed merge left in the runner's worktree, and put it at the
        integration tip; True if a merge was in progress. The branch itself keeps its tip."""
        return self.integration.abort_half_done_merge()

    def follow_tip(self) -> None:
        """The runner's worktree put at the integration branch's tip, once the merge queue moved it."""
        self.integration.follow()

    def other_refs(self) -> dict[str, str]:
        """The branches and tags an attempt's agent has no business moving: all but the
        integration branches of batch-tasks' runs (this one's, and another task file's run
        beside it: under `batch/`, or held by a runner's worktree, `.batch/<stem>/integration`)
        and their items' branches (each attempt's own). A ref that an agent makes look like a
        run's during its attempt is missing after it: moved, as any other."""
        held = {entry["branch"] for entry in worktrees(self.top) if "branch" in entry
                and Path(entry["worktree"]).name == "integration" and Path(entry["worktree"]).parent.parent.name == ".batch"}
        runs = {self.ref, *held}
        listed = git("for-each-ref", "--format=%(refname)%00%(objectname)", "refs/heads/", "refs/tags/",
                     cwd=self.top).out.splitlines()
        return {ref: tip for ref, _, tip in (entry.partition("\0") for entry in listed)
                if not ref.startswith("refs/heads/batch/") and ref not in runs
                and not any(ref.startswith(f"{run}.items/") for run in runs)}

    def remove_spares(self) -> int:
        """`batch-clean`: remove the spare worktrees, which runs keep for the runs after them; how many."""
        with self.lock:
            return spares.remove_all(self.top, self.spares)

    def recycle(self, path: Path, branch: str, tip: str | None, ignored: list[str] | None = None) -> None:
        """Delete a branch whose work is all on the integration branch, and make its worktree a
        spare (see spares). Hold `lock`, and make sure first that nothing in it is uncommitted."""
        spares.set_aside(self.top, self.spares, path, branch, tip, ignored)

    # Attempts

    def open_attempt(self, group: str, module: str, run_id: str, settings: Mapping[str, Any] | None = None,
                     log=None, base: str | None = None, on_start=None) -> "AttemptWorkspace":
        """A fresh worktree on the item's branch, from `base` (default: the integration tip),
        with worktree_copy and worktree_setup done (`on_start`: see bootstrap). An earlier attempt's
        branch with work not merged is kept under another name (`workspace.replaced`). Raises SetupFailed."""
        settings = self.settings if settings is None else settings
        branch, path = self.item_branch(group, module), self.item_path(group, module)
        with self.lock:
            replaced = self._retire(item_key(group, module), branch, path)
            base = base or self.tip()
            path.parent.mkdir(parents=True, exist_ok=True)
            if not spares.take(self.top, self.spares, path, branch, base):
                # The branch first, on its own: `worktree add -b` makes it before the worktree, and
                # tried again (another run's half-made worktree failed it) would find it made.
                git("update-ref", "-m", f"branch: Created from {base}", f"refs/heads/{branch}", base, "",
                    cwd=self.top)
                git("worktree", "add", "-q", str(path), branch, cwd=self.top)
        workspace = AttemptWorkspace(self, group, module, run_id, path, branch, base, replaced=replaced,
                                     gitdir=str(admin_folder(path)))
        workspace.save()
        try:
            workspace.baseline = bootstrap(path, folder=workspace.folder, source_folder=self.folder, top=self.top,
                                           settings=settings, log=log or NullLog(), supervisor=self.supervisor,
                                           on_start=on_start, sandbox=agent_sandbox.for_workspace(workspace, settings))
        except (SetupFailed, OSError):
            workspace.baseline = Baseline.of(path)  # what the setup made before it failed is nobody's work
            if is_ancestor(base, self.ref, self.top):  # else work fetched here: kept, the next attempt keeps it aside
                workspace.remove()
            raise
        workspace.save()
        return workspace

    def set_branch(self, group: str, module: str, commit: str) -> Kept | None:
        """The item's branch at `commit` (work made elsewhere: a Dask worker's), with no worktree
        here; an earlier attempt with work not merged is kept aside first, as for open_attempt."""
        branch, path = self.item_branch(group, module), self.item_path(group, module)
        with self.lock:
            replaced = self._retire(item_key(group, module), branch, path)
            git("update-ref", "-m", f"batch-tasks: {item_key(group, module)} fetched", f"refs/heads/{branch}", commit,
                "", cwd=self.top)
        return replaced

    def reopen(self, group: str, module: str) -> "AttemptWorkspace | None":
        """The item's worktree as a killed run left it, if it is there (WorkspaceError: its record is damaged)."""
        path = self.item_path(group, module)
        if _worktree_at(self.top, path) is None:
            return None
        record = read_record(self, path)
        branch = self.item_branch(group, module)
        base = record.get("base") or git("merge-base", branch, self.ref, cwd=self.top, allowed=(0, 1)).text
        workspace = AttemptWorkspace(self, group, module, record.get("run_id", ""), path, branch, base,
                                     baseline=Baseline(record.get("baseline", {})), gitdir=record.get("gitdir", ""))
        remove_stale_index_lock(path)
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
            move_aside(path)
            return None
        wip = False
        if entry is not None:
            remove_stale_index_lock(path)
            try:
                record, why = read_record(self, path), "an earlier attempt, kept aside"
            except WorkspaceError as error:
                # Without its baseline, what setup made is not told from the agent's work: all is kept, aside.
                record, why = {}, f"an earlier attempt, kept aside whole: {error}"
            message = wip_message(self, key, why, record.get("run_id", ""))
            wip = commit_work(path, Baseline(record.get("baseline", {})), message)
            tip = rev(f"refs/heads/{branch}", self.top)
        if tip is not None and is_ancestor(tip, self.ref, self.top) and not wip:
            if entry is not None:
                self.recycle(path, branch, tip)
            else:
                git("update-ref", "-d", f"refs/heads/{branch}", tip, cwd=self.top)
            return None
        aside = unused_branch(self.top, f"{branch}.{stamp()}")
        if tip is not None:
            git("branch", "-m", branch, aside, cwd=self.top)
        kept_at = path
        if entry is not None:
            kept_at = unused_path(Path(f"{path}.{aside.rsplit('.', 1)[1]}"))
            git("worktree", "move", str(path), str(kept_at), cwd=self.top)
        return Kept(kept_at, aside, tip, wip)

    # Recovery

    def merged_commit(self, group: str, module: str, run_id: str) -> str | None:
        """The merge commit that landed this run of the item on the integration branch, if any."""
        key = item_key(group, module)
        found = git("log", "--first-parent", "--merges", "-F", f"--grep=Batch-Run: {run_id}",
                    "--format=%H%x1f%(trailers:only,unfold)%x1e", self.ref, "--", cwd=self.top)
        for entry in found.out.split("\x1e"):
            commit, _, text = entry.strip().partition("\x1f")
            said = parse_trailers(text)
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

    def how_to_take(self) -> str:
        """For the end of the summary: how the user takes the batch's work."""
        current = git("symbolic-ref", "-q", "--short", "HEAD", cwd=self.top, allowed=(0, 1)).text or "HEAD"
        return f"the work is on {self.branch}: git log --oneline {current}..{self.branch}, then git merge {self.branch}"

    @property
    def task_path(self) -> str:
        """task.md's path in the repository, as the trailers name it."""
        return one_line(Path(os.path.relpath(os.path.realpath(self.taskfile), os.path.realpath(self.top))).as_posix())


def _ignore_folder(folder: Path) -> None:
    """`.batch/.gitignore` holding `*`: the state folder, worktrees and all, stays out of `git status`."""
    try:
        descriptor = os.open(folder / ".gitignore", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except FileExistsError:
        return
    with os.fdopen(descriptor, "w") as stream:
        stream.write("# made by batch-tasks: nothing here belongs in git\n*\n")
