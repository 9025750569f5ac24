"""A branch a Dask worker pushed, brought back here: fetched, and worktree'd as a local
attempt leaves its own (`FetchedWorkspace`), so that the lifecycle lands it through the run's
check and merge queue; a failed attempt's work pushed aside (`PushedAside`); and, for recovery,
the success a killed run's remote attempt pushed (`fetch_pushed_success`).

May touch: the coordinator's repository (fetching, the item's worktree and branch, as
worktree.Isolation does) and the remote's item branches (deleting them once merged).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Mapping

from ..isolation.bootstrap import SetupFailed
from ..isolation.workspace import AttemptWorkspace, Committed, Kept, WorkspaceError, holds_base
from ..processes.check import Check
from ..repository.git import GitError, git, is_ancestor, rev, trailers
from ..state import item_log
from .on_worker import RUNNING

RECOVERY_WAIT_SECONDS = 3600  # a killed run's remote attempt still running: how long the next run waits for it


@dataclass
class FetchedWorkspace(AttemptWorkspace):
    """The item's branch here, as its worker pushed it, the work committed there; in a worktree
    here when the item has a check to run, else the branch alone (nothing runs here but the merge)."""

    committed: Committed | None = None
    remote: str = ""
    swept: bool = False  # once merged, its branch leaves the remote at the run's end (see merged_on_remote)
    worktree: bool = True

    def commit_leftovers(self, allow_empty: bool = False) -> Committed:
        return self.committed if self.committed is not None else super().commit_leftovers(allow_empty)

    def save(self) -> None:
        if self.worktree:
            super().save()

    def leftover_entries(self) -> list[tuple[str, str]]:
        return super().leftover_entries() if self.worktree else []

    def keep(self, why: str) -> Kept:
        if self.worktree:
            return super().keep(why)
        return Kept(self.path, self.branch, self.tip(), False, note="no worktree here: the branch holds the work")

    def replace_with(self, commit: str) -> None:
        """A later attempt went on from this one's work: its worktree here goes (a spare), its
        branch moves on with the later one; kept aside as a local attempt's would be otherwise."""
        git("fetch", "-q", "--no-tags", self.remote, f"refs/heads/{self.branch}", cwd=self.isolation.top)
        if self.worktree and not self.leftovers() and is_ancestor(self.tip(), commit, self.isolation.top):
            with self.isolation.lock:
                self.isolation.recycle(self.path, self.branch, self.tip())

    def remove(self) -> None:
        """Once merged, the pushed branch goes from the remote too (if it is still what was fetched)."""
        tip = self.tip()
        if self.worktree:
            super().remove()
        else:
            with self.isolation.lock:
                if not is_ancestor(tip, self.isolation.ref, self.isolation.top):
                    raise WorkspaceError(f"{self.branch} has commits not on {self.isolation.branch}; it is kept")
                git("update-ref", "-d", f"refs/heads/{self.branch}", tip, cwd=self.isolation.top)
        if not self.swept:
            leave_remote(self.isolation.top, self.remote, [(self.branch, tip)])


@dataclass(frozen=True)
class PushedAside:
    """A failed remote attempt's work, on a branch of its own on the remote (what ItemRun.keep names)."""

    remote: str
    branch: str
    commit: str
    wip: bool

    def keep(self, why: str) -> Kept:
        return Kept(Path(self.remote), self.branch, self.commit, self.wip)


def leave_remote(top: Path, remote: str, branches: list[tuple[str, str]]) -> None:
    """Delete merged item branches from the remote, each only if it is still at the tip merged."""
    for start in range(0, len(branches), 100):
        chunk = branches[start:start + 100]
        git("push", "-q", "--no-verify", *(f"--force-with-lease=refs/heads/{b}:{tip}" for b, tip in chunk), remote,
            *(f":refs/heads/{b}" for b, _ in chunk), cwd=top, allowed=(0, 1, 128))


def merged_on_remote(isolation, remote: str) -> list[tuple[str, str]]:
    """The item branches on the remote, and their tips, that the integration branch holds: merged,
    by this run or by one killed before it could delete them."""
    found = git("ls-remote", remote, f"refs/heads/{isolation.branch}.items/*", cwd=isolation.top, allowed=(0, 2, 128))
    pairs = [line.split("\t") for line in found.text.splitlines()] if found.status == 0 else []
    return [(ref.removeprefix("refs/heads/"), tip) for tip, ref in pairs
            if rev(tip, isolation.top) is not None and is_ancestor(tip, isolation.ref, isolation.top)]


def adopt(isolation, remote: str, group: str, module: str, run_id: str, settings, log, commit: str, base: str,
          committed: Committed | None = None, swept: bool = False) -> FetchedWorkspace:
    """The pushed branch fetched as the item's branch, and, for its check, a worktree of it here
    (with worktree_copy and worktree_setup), as a local attempt leaves its own."""
    branch = isolation.item_branch(group, module)
    git("fetch", "-q", "--no-tags", remote, f"refs/heads/{branch}", cwd=isolation.top)
    if rev(commit, isolation.top) is None:
        raise GitError(("fetch", branch), isolation.top, 1, f"{commit[:12]} did not come with {branch}")
    if Check.from_settings(settings, group, module) is None:  # only the merge runs here: no worktree needed
        replaced = isolation.set_branch(group, module, commit)
        return FetchedWorkspace(isolation, group, module, run_id, isolation.item_path(group, module), branch, base,
                                replaced=replaced, committed=committed, remote=remote, swept=swept, worktree=False)
    opened = isolation.open_attempt(group, module, run_id, settings, log, base=commit)
    workspace = FetchedWorkspace(**{f.name: getattr(opened, f.name) for f in fields(opened)}, committed=committed,
                                 remote=remote, swept=swept)
    workspace.base = base
    workspace.save()
    return workspace


def wait_for_remote_attempt(item, running: Mapping[str, Any], log, waiting: Callable[[str], None]) -> None:
    """Recovery, before the run: a killed run's remote attempt may still be running; its end is
    waited for (said through `waiting`), so that what it pushes is there to land."""
    if running.get("executor") == "dask" and isinstance(running.get("state"), str):
        _wait_for_remote(running, log, lambda: waiting(f"{item.key}: its agent on {running.get('worker')}, started by "
                                                       "the killed run, still runs: waiting for it to end"))


def fetch_pushed_success(isolation, group, item, running: Mapping[str, Any], log) -> FetchedWorkspace | None:
    """Recovery: the worktree here of the branch a killed run's remote attempt pushed (its end
    waited for before the run: wait_for_remote_attempt), if that branch holds this very run's
    success (its agent is not run again); else None, saying why in LOG when it was pushed but cannot
    be gone on with (git failed on the way, or its worktree's setup here). The item branches that run
    merged leave the remote on the way."""
    if running.get("executor") != "dask" or not isinstance(running.get("branch"), str):
        return None
    remote = str(running["remote"])
    try:
        # What the killed run merged, it had no time to delete from the remote: deleted now.
        leave_remote(isolation.top, remote, merged_on_remote(isolation, remote))
        found = pushed_success(isolation.top, remote, running["branch"], running["run_id"], item.key)
        if found is None:
            return None
        return adopt(isolation, remote, item.group, item.module, running["run_id"], group.settings, log,
                     found.commit, base_of(isolation, found.commit, running.get("base")))
    except (GitError, SetupFailed) as error:
        if log is not None:
            log.write(item_log.note_header(f"the work its worker pushed is not gone on with: {error}"))
        return None


def base_of(isolation, commit: str, said) -> str:
    """The commit COMMIT's work started from: as the killed run's record SAID (in the state folder,
    an agent's to write) if the integration branch holds it below COMMIT, else where the two meet."""
    if holds_base(isolation, said, commit):
        return rev(said, isolation.top)
    return git("merge-base", commit, isolation.ref, cwd=isolation.top).text


def pushed_success(top: Path, remote: str, branch: str, run_id: str, key: str, start: str | None = None,
                   base: str | None = None) -> Committed | None:
    """The success of run `run_id`'s attempt at item `key` that a worker pushed as `branch` (fetched
    here), if the branch holds one that is new since `start`; None otherwise."""
    found = git("ls-remote", remote, f"refs/heads/{branch}", cwd=top, allowed=(0, 2, 128))
    commit = found.text.split("\t")[0] if found.status == 0 and found.text else None
    if commit is None or commit == start:
        return None
    git("fetch", "-q", "--no-tags", remote, f"refs/heads/{branch}", cwd=top)
    said = trailers(commit, top)
    if said.get("Batch-Result") != "succeeded" or said.get("Batch-Run") != run_id or said.get("Batch-Item") != key:
        return None
    changed = base is None or len({git("rev-parse", f"{c}^{{tree}}", cwd=top).text for c in (commit, base)}) == 2
    return Committed(commit, True, changed)


def _wait_for_remote(running: Mapping[str, Any], log, say_waiting: Callable[[], None]) -> None:
    """A remote attempt of a killed run may still be running: wait for it to end (its scheduler
    gone, the attempt went with it), saying so once."""
    try:
        from distributed import Client, Variable
    except ImportError:  # no distributed here: nothing of this machine's runs there any more
        return
    try:
        client = Client(running["scheduler"], timeout=5, set_as_default=False)
    except (OSError, TimeoutError):  # its scheduler is gone, and the attempt with it
        return
    try:
        state = Variable(running["state"], client=client)
        deadline = time.monotonic() + RECOVERY_WAIT_SECONDS
        told = False
        while time.monotonic() < deadline and state.get(timeout=5) == RUNNING:
            if not told:
                log.write(f"=== waiting for its remote attempt on {running.get('worker')} to end ===\n".encode())
                say_waiting()
                told = True
            time.sleep(0.5)
        state.delete()
    except (OSError, TimeoutError):  # the scheduler went (a lost connection is an OSError), or the variable with it
        pass
    finally:
        client.close()
