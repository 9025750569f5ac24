"""The merge queue: items' branches merged into the integration branch one at a time,
in the order they pass, so that the integration branch only ever holds checked states.

May touch: the runner's own worktree (`.batch/<stem>/integration/`) and, through it,
the integration branch, which advances only by a merge commit made here.

    queue = MergeQueue(isolation)                     # one per run; merge() from any thread
    result = queue.merge(workspace, check, log)       # check: check.Check or None; on_step= hears
                                                      # "waiting to merge" (behind whom), "merging"
    if result.merged:
        workspace.remove(); record["merge"] = result.record()
    else:                                             # "conflict": the integration branch is unchanged
        workspace.keep("conflict"); retry from isolation.tip(), telling the agent result.conflicts

`git merge --no-ff --no-commit` first, in the runner's worktree (detached at the tip);
if the integration tip moved since the item's branch was made, the check runs on that
merged state before it is committed; a conflict, or a check failing there, undoes the
merge (`git merge --abort`). Only a committed, checked merge moves the branch, by a
compare-and-swap `git update-ref`. A run killed at any step leaves at most an uncommitted
merge or an unreferenced merge commit, which `Isolation.prepare` puts away.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from . import agent_sandbox
from . import item_log
from .bootstrap import bootstrap
from .check import Check, CheckResult, NullLog
from .errors import BatchError
from .events import MERGING, WAITING_TO_MERGE
from .git import GitError, git, is_ancestor, rev
from .process import StoppedError
from .workspace import AttemptWorkspace, trailer_lines
from .worktree import Isolation, stale_lock

MERGED = "merged"
CONFLICT = "conflict"
MOVES_FOLLOWED = 3  # how many times a merge follows an integration tip that moved under it




@dataclass(frozen=True)
class FileChange:
    path: str
    added: int | None  # None for a binary file
    removed: int | None


@dataclass(frozen=True)
class MergeResult:
    status: str  # MERGED or CONFLICT
    reason: str
    base: str  # the commit the item's branch was made from
    item_commit: str
    integration_before: str
    merge_commit: str | None = None
    files: tuple[FileChange, ...] = ()  # what landed on the integration branch
    conflicts: tuple[str, ...] = ()  # files both sides changed: for the agent's next attempt
    check: CheckResult | None = None  # the check on the merged state, when it ran

    @property
    def merged(self) -> bool:
        return self.status == MERGED

    def record(self) -> dict[str, Any]:
        """The evidence for the item's result record."""
        return {
            "status": self.status,
            "reason": self.reason,
            "base_commit": self.base,
            "item_commit": self.item_commit,
            "integration_before": self.integration_before,
            "merge_commit": self.merge_commit,
            "files": [{"path": f.path, "added": f.added, "removed": f.removed} for f in self.files],
            "conflicts": list(self.conflicts),
            "merged_state_check": self.check.record() if self.check else None,
        }


@dataclass
class MergeQueue:
    isolation: Isolation
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _set_up: set = field(default_factory=set)  # the (copy, setup) pairs done in the runner's worktree
    _holder: str | None = None  # the item merging now, named to those waiting behind it

    def merge(self, workspace: AttemptWorkspace, check: Check | None = None, log=None,
              settings=None, on_step: Callable[[str, str], None] | None = None, on_start=None) -> MergeResult:
        """Merge the item's branch; `settings` (the item's group's) say how to set up the runner's
        worktree should the check have to run there. `on_step(step, text)` hears WAITING_TO_MERGE
        (if another item holds the queue, naming it) and then MERGING; `on_start` is the check's (see check)."""
        log, tell = log or NullLog(), on_step or (lambda step, text: None)
        if not self._lock.acquire(blocking=False):
            holder = self._holder
            tell(WAITING_TO_MERGE, f"behind {holder}" if holder else "")
            self._lock.acquire()
        try:
            self._holder = workspace.key
            tell(MERGING, f"into {self.isolation.branch}")
            for _ in range(MOVES_FOLLOWED):
                try:
                    result = self._merge(workspace, check, log, settings or self.isolation.settings, on_start)
                except GitError as error:
                    raise stale_lock(error, self.isolation.branch) or error
                if result is not None:
                    return result
            raise BatchError(f"{self.isolation.branch} kept moving while {workspace.key} merged "
                             f"({MOVES_FOLLOWED} times): something other than batch-tasks commits onto it")
        finally:
            self._holder = None
            self._lock.release()

    def _merge(self, workspace: AttemptWorkspace, check: Check | None, log, settings, on_start=None) -> MergeResult:
        """The merge, or None if the integration branch moved under it (a commit of the user's,
        made without checking it out): then it is made again, on the new tip."""
        isolation, here = self.isolation, self.isolation.integration_path
        git("reset", "-q", "--hard", cwd=here)  # the runner's worktree holds the integration branch: at its tip
        before, item = rev("HEAD", here), workspace.tip()
        evidence = {"base": workspace.base, "item_commit": item, "integration_before": before}
        if is_ancestor(item, before, here):
            landed = isolation.merged_commit(workspace.group, workspace.module, workspace.run_id)
            return MergeResult(MERGED, "already on the integration branch", merge_commit=landed, **evidence)
        tried = git("merge", "--no-ff", "--no-commit", "--no-verify", "-q", workspace.branch, cwd=here, allowed=(0, 1, 2, 128))
        if tried.status != 0:
            conflicts = git("diff", "--name-only", "-z", "--diff-filter=U", cwd=here).fields()
            self._undo()
            if not conflicts:
                raise GitError(("merge", workspace.branch), here, tried.status, tried.err or tried.out)
            return MergeResult(CONFLICT, f"merge conflict in {', '.join(conflicts)}", conflicts=tuple(conflicts), **evidence)
        checked = None
        if check is not None and not is_ancestor(before, item, here):
            # The tip moved since the branch was made: the merged state is new, and must pass too.
            self._set_up_for(check, settings, log, on_start)
            folder = here / isolation.relative_workdir
            log.write(item_log.note_header(f"check on the merged state of {workspace.key}"))
            try:
                checked = check.run(worktree=here, cwd=folder, supervisor=isolation.supervisor, log=log,
                                    on_start=on_start,
                                    sandbox=agent_sandbox.for_merged_state(here, isolation.top, settings))
            except BaseException:  # the run is stopping: the branch keeps its tip
                self._undo()
                raise
            if not checked.passed:
                self._undo()
                if isolation.supervisor.stopping.is_set():
                    raise StoppedError()  # stopped with the run: the merged state was not judged
                overlap = _overlap(workspace.base, before, item, here)
                return MergeResult(CONFLICT, f"{checked.reason} on the merged state", conflicts=overlap,
                                   check=checked, **evidence)
        message = (f"Merge {workspace.key} into {isolation.branch}\n\n"
                   f"batch-tasks merged {workspace.branch} ({item[:12]}, from {workspace.base[:12]}).\n\n"
                   + trailer_lines(isolation, workspace.key, workspace.run_id))
        tree = git("write-tree", cwd=here).text
        merged = git("commit-tree", tree, "-p", before, "-p", item, "-F", "-", cwd=here, input=message.encode()).text
        # Only now does the branch advance, and only from the tip the merge was made on.
        moved = git("update-ref", "-m", f"batch-tasks: merge {workspace.key}", isolation.ref, merged, before,
                    cwd=here, allowed=(0, 1, 128))
        if moved.status != 0:
            self._undo()
            if ".lock" in moved.err:
                raise GitError(("update-ref", isolation.ref), here, moved.status, moved.err)
            log.write(item_log.note_header(f"{isolation.branch} moved under the merge of {workspace.key}: "
                                           "merging again on its new tip"))
            return None
        git("reset", "-q", "--hard", cwd=here)  # the merge is the tip now; what the check changed goes
        return MergeResult(MERGED, "merged", merge_commit=merged, files=_numstat(before, merged, here),
                           check=checked, **evidence)

    def _set_up_for(self, check: Check, settings, log, on_start=None) -> None:
        """The runner's worktree gets the item's worktree_copy and worktree_setup, once each."""
        wanted = (tuple(settings.get("worktree_copy") or ()), tuple(settings.get("worktree_setup") or ()))
        if wanted in self._set_up or wanted == ((), ()):
            return
        isolation = self.isolation
        bootstrap(isolation.integration_path, folder=isolation.integration_path / isolation.relative_folder,
                  source_folder=isolation.folder, top=isolation.top, settings=settings, log=log,
                  supervisor=isolation.supervisor, on_start=on_start,
                  sandbox=agent_sandbox.for_merged_state(isolation.integration_path, isolation.top, settings))
        self._set_up.add(wanted)

    def _undo(self) -> None:
        """Back to the integration tip; untracked files (the setup's among them) stay."""
        git("merge", "--abort", cwd=self.isolation.integration_path, allowed=(0, 1, 128))
        git("reset", "-q", "--hard", cwd=self.isolation.integration_path)


def _numstat(before: str, after: str, cwd) -> tuple[FileChange, ...]:
    changes = []
    for entry in git("diff", "--numstat", "-z", "--no-renames", before, after, "--", cwd=cwd).fields():
        added, removed, path = entry.split("\t", 2)
        changes.append(FileChange(path, None if added == "-" else int(added), None if removed == "-" else int(removed)))
    return tuple(changes)


def _overlap(base: str, before: str, item: str, cwd) -> tuple[str, ...]:
    """The files changed both on the integration branch since the item's base and by the item."""
    theirs = set(git("diff", "--name-only", "-z", "--no-renames", base, before, "--", cwd=cwd).fields())
    ours = git("diff", "--name-only", "-z", "--no-renames", base, item, "--", cwd=cwd).fields()
    return tuple(path for path in ours if path in theirs)
