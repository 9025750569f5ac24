"""The local executor: each attempt's agent runs on this machine, in task.md's folder, or
with `isolation: worktree` in the item's own worktree (see worktree.Isolation.open_attempt).

Touches what the attempt touches (see attempt.py) and, isolated, the item's worktree.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ..attempt import run_attempt
from ..git import environment_for_worktrees

if TYPE_CHECKING:
    from ..lifecycle import ItemRun
    from ..records import Attempt


class LocalExecutor:
    def attempt(self, item_run: "ItemRun", number: int, context: Mapping[str, Any],
                running: Mapping[str, Any]) -> "Attempt":
        where, environment = self.workplace(item_run)
        return run_attempt(item_run.job, item_run.run, item_run.folder, number, context, running, where, environment)

    def workplace(self, item_run: "ItemRun") -> tuple[Path, Mapping[str, str]]:
        """Where the agent runs, and on what environment: task.md's folder, or its own worktree
        (made once per item: a retry goes on in the worktree of the attempt before)."""
        job, run = item_run.job, item_run.run
        if job.settings["isolation"] != "worktree":
            return job.taskfile.parent, os.environ
        if item_run.workspace is None:
            with item_run.folder.open_log() as log:
                item_run.workspace = run.isolation.open_attempt(job.item.group, job.item.module, run.run_id,
                                                                job.settings, log)
        workspace = item_run.workspace
        return workspace.folder, {**environment_for_worktrees(), "BATCH_WORKTREE": str(workspace.path)}

    def close(self) -> None:
        pass
