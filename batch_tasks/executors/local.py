"""The local executor: each attempt's agent runs on this machine, in the batch's workdir
(workdir.py), or with `isolation: worktree` in the same folder of the item's own worktree
(the lifecycle's `workplace`).

Touches what the attempt touches (see attempt.py) and, isolated, the item's worktree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from .. import agent_sandbox
from ..attempt import run_attempt
from ..events import AGENT

if TYPE_CHECKING:
    from ..lifecycle import ItemRun
    from ..records import Attempt


class LocalExecutor:
    def attempt(self, item_run: "ItemRun", number: int, context: Mapping[str, Any], running: Mapping[str, Any],
                continues: str | None = None) -> "Attempt":
        where, environment = item_run.workplace(number)
        item_run.tell_step(number, AGENT)
        workspace = item_run.workspace
        return run_attempt(item_run.job, item_run.run, item_run.folder, number, context, running, where, environment,
                           continues=continues,
                           sandbox=agent_sandbox.for_workspace(workspace, item_run.job.settings) if workspace else None)

    def close(self) -> None:
        pass
