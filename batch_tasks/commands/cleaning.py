"""`doit batch-clean`: the attempts an isolated batch kept aside (failed, conflicted, interrupted,
superseded: item branches `<integrate>.items/…` and their worktrees), removed once nothing of
theirs would be lost, and the others named with why they stay; and the spare worktrees runs keep.

May touch: the item branches and their worktrees (see worktree). A branch goes only if its tip
is on another branch (merged into the integration branch, or carried on by a later attempt) and
its worktree holds nothing uncommitted; a branch with commits on no other branch is never
deleted. Takes the run lock: never while a run of the batch runs.
"""

from __future__ import annotations

import os
import sys

from doit.cmd_base import DoitCmdBase

from ..errors import BatchError
from ..isolation.bootstrap import dirty_paths
from ..isolation.worktree import Isolation
from ..repository.git import git, worktrees
from ..tasks.loader import ReadsTaskFile
from .cli import EXIT_BAD_INPUT, FriendlyArgs


class BatchClean(FriendlyArgs, ReadsTaskFile, DoitCmdBase):
    name = "batch-clean"
    doc_purpose = "remove kept attempts whose work is merged or on another branch"
    doc_usage = ""
    doc_description = (
        "Removes the item branches and worktrees an isolated batch kept aside (failed,\n"
        "conflicted or interrupted attempts) whose commits are all on another branch;\n"
        "names each one it keeps, and why. Never deletes a commit that is on no other branch."
    )

    def _execute(self, pos_args=None):
        batch = self.loader.batch
        if not any(group.settings["isolation"] == "worktree" for group in batch.plan.groups):
            self.outstream.write("nothing to clean: no group of this batch runs with isolation: worktree\n")
            return 0
        try:
            isolation = Isolation(batch.plan.path, batch.plan.settings, state=batch.state)
            isolation.validate()
            with batch.state.run_lock(by="clean"):
                lines = clean(isolation)
                spares = isolation.remove_spares()
        except BatchError as error:
            sys.stderr.write(f"ERROR: {error}\n")
            return EXIT_BAD_INPUT
        if spares:
            lines.append(f"removed {spares} spare worktree(s): clean checkouts runs keep for the attempts of the next")
        self.outstream.write("".join(line + "\n" for line in lines) or "nothing kept: nothing to clean\n")
        return 0


def clean(isolation: Isolation) -> list[str]:
    """Remove what can go; one line per kept attempt, removed or kept, saying so."""
    top, prefix = isolation.top, f"refs/heads/{isolation.branch}.items/"
    listed = git("for-each-ref", "--format=%(refname)%00%(objectname)", prefix, cwd=top).out.splitlines()
    checked_out = {entry.get("branch"): entry["worktree"] for entry in worktrees(top) if entry.get("branch")}
    lines = []
    for ref, _, tip in (entry.partition("\0") for entry in listed):
        name, path = ref.removeprefix("refs/heads/"), checked_out.get(ref)
        where = f" in {os.path.relpath(path)}" if path else ""
        if path and dirty_paths(path):
            lines.append(f"kept {name}{where}: it holds uncommitted changes")
            continue
        holders = [other for other in git("for-each-ref", "--contains", tip, "--format=%(refname)", "refs/heads/",
                                          cwd=top).out.splitlines() if other != ref]
        if not holders:
            alone = git("rev-list", "--count", tip, "--not", f"--exclude={name}", "--branches", cwd=top,
                        allowed=(0, 128))
            count = alone.text if alone.status == 0 else "its"
            lines.append(f"kept {name}{where}: {count} commit(s) on no other branch "
                         f"(see git log {isolation.branch}..{name})")
            continue
        with isolation.lock:
            if path:
                git("worktree", "remove", "--force", path, cwd=top)
            git("update-ref", "-d", ref, tip, cwd=top)
        on = isolation.branch if f"refs/heads/{isolation.branch}" in holders else holders[0].removeprefix("refs/heads/")
        lines.append(f"removed {name}{where}: its work is on {on}")
    return lines
