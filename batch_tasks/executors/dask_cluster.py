"""The Dask executor: each attempt's agent runs on a worker of a Dask cluster; the rest of the
run (task.md, ticks, the state folder, the panel, the dispatcher and its caps, the merge
queue, the budget) stays here, on the coordinator.

Per attempt: the item's base (the integration tip) is pushed to the remote as the item's
branch; the attempt's agent runs on a worker through `RemoteAgent` (remote_agent.py), which
has the shape of a process.Supervisor; the pushed branch is then fetched and the item lands
here through the run's check and merge queue (see fetched.py). The cluster's faults (a worker
lost, a worker broken, the scheduler lost) are remote_agent.py's and cluster.py's.

May touch: the remote's item branches (pushing each base; deleting them once merged), the item's
worktree and branch here (as worktree.Isolation does), and the item's state folder.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ..agents import PERMANENT, TRANSIENT, Outcome
from ..errors import BatchError
from ..events import AGENT
from ..isolation.bootstrap import SetupFailed
from ..isolation.workspace import Committed
from ..repository.git import git
from .attempt import run_attempt
from .cluster import Cluster
from .fetched import FetchedWorkspace, PushedAside, adopt, leave_remote, merged_on_remote
from .remote_agent import RemoteAgent
from .seam import AttemptResult, AttemptSpec, Needs, Reporter, RunTools

if TYPE_CHECKING:
    from ..isolation.worktree import Isolation
    from ..state.records import Attempt

CONNECT_SECONDS = 20
NO_DISTRIBUTED = "--executor dask needs the distributed package: pip install 'batch-tasks[dask]'"


def check_installed() -> None:
    """`distributed` is there, or one BatchError: exit 3 (what else a Dask run needs is its Needs)."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise BatchError(NO_DISTRIBUTED) from None


def remote_of(folder: Path, settings: Mapping[str, Any]) -> str:
    """`remote:`, else the URL of the repository's `origin` (seam.check_needs found there is one)."""
    return settings.get("remote") or git("remote", "get-url", "origin", cwd=folder).text


class DaskExecutor:
    needs = Needs(isolation=True, remote=True, pass_env=True, workplace_here=False)

    def __init__(self, cluster: Cluster, remote: str, pass_env: Mapping[str, str], tools: RunTools):
        self.cluster, self.scheduler, self.remote, self.pass_env = cluster, cluster.scheduler, remote, dict(pass_env)
        self.fetch_lock = threading.Lock()  # one git fetch into the coordinator's repository at a time
        self.supervisor, self.redactor = tools.supervisor, tools.redactor
        self.isolation: Isolation = tools.isolation  # the run's (every item is isolated): at its end, merged item branches leave the remote

    @classmethod
    def connect(cls, batch, scheduler: str, tools: RunTools) -> "DaskExecutor":
        from distributed import Client

        # Dask logs each failed reconnection with its traceback: this run says what it waits for itself.
        logging.getLogger("distributed").setLevel(logging.CRITICAL)
        try:
            client = Client(scheduler, timeout=CONNECT_SECONDS, set_as_default=False)
        except (OSError, TimeoutError) as error:
            raise BatchError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None
        settings = batch.plan.settings
        cluster = Cluster(client, scheduler, lambda text: tools.notice(scheduler, text))
        return cls(cluster, remote_of(batch.plan.path.parent, settings),
                   {name: os.environ[name] for name in settings.get("pass_env", ())}, tools)

    def resources(self, client) -> dict[str, int] | None:
        """One `agent` of a worker's, when its workers say how many agents each may run."""
        workers = client.scheduler_info().get("workers", {}).values()
        return {"agent": 1} if any("agent" in (w.get("resources") or {}) for w in workers) else None

    def attempt(self, spec: AttemptSpec, reporter: Reporter) -> AttemptResult:
        """`spec.continues` is not taken: an agent's session lives where it ran, on a worker that may
        be another one (or gone), so each remote attempt is a fresh session, told all."""
        job, isolation = spec.job, self.isolation
        branch = isolation.item_branch(job.item.group, job.item.module)
        workspace = spec.workspace
        before = workspace if isinstance(workspace, FetchedWorkspace) else None
        if before is not None:  # its check failed: the agent goes on from its own work, as in a local worktree
            base, start = before.base, before.tip()
        else:
            # The worker fetches the item's base as its branch: one ref of its own, no race with other items.
            base = start = isolation.tip()
            git("push", "-q", "--no-verify", "--force", self.remote, f"{base}:refs/heads/{branch}", cwd=isolation.top)
        agent = RemoteAgent(self, spec, reporter, branch, base, start)
        reporter.step(AGENT, "on a Dask worker: its worktree, setup and agent")
        attempt = run_attempt(replace(spec, continues=None), reporter, agent, self.supervisor.stopping, self.redactor,
                              isolation.relative_workdir, self.pass_env)
        came = agent.result
        if came.get("pushed_while_lost") and attempt.outcome is not None:  # its worker's word: it succeeded
            attempt.outcome = Outcome(ok=True, result_text=attempt.outcome.result_text, data=attempt.outcome.data)
        if came.get("kept"):  # a failed attempt's work, pushed aside: its failure record names it
            workspace = PushedAside(self.remote, came["kept"]["branch"], came["kept"]["commit"], came["kept"]["wip"])
        if attempt.outcome is None:
            return AttemptResult(attempt, workspace)
        if came.get("land_error"):
            attempt.outcome = Outcome(ok=False, reason=f"landing its work: {came['land_error']}",
                                      failure_class=PERMANENT)
        elif attempt.outcome.ok and not came.get("commit"):
            attempt.outcome = Outcome(ok=False, reason=f"its work did not come back from {came.get('worker')}: "
                                      f"{came.get('error') or 'no branch was pushed'}", failure_class=TRANSIENT)
        elif attempt.outcome.ok:
            workspace = self.bring_back(spec, workspace, attempt, came, branch, base)
        return AttemptResult(attempt, workspace)

    def bring_back(self, spec: AttemptSpec, workspace, attempt: "Attempt", came: dict, branch: str, base: str):
        """The worktree here its pushed work is fetched into, for its check and its merge."""
        job = spec.job
        committed = Committed(came["commit"], came["made_commit"], came["changed"])
        try:
            with self.fetch_lock, spec.folder.open_log() as log:
                if isinstance(workspace, FetchedWorkspace):  # the attempt before: this one went on from it
                    workspace.replace_with(came["commit"])
                return adopt(self.isolation, self.remote, job.item.group, job.item.module, spec.run_id,
                             job.settings, log, came["commit"], base, committed, swept=True)
        except SetupFailed as error:
            attempt.outcome = Outcome(ok=False, reason=f"worktree here, for its check: {error}", failure_class=PERMANENT)
        except BatchError as error:
            attempt.outcome = Outcome(ok=False, reason=f"fetching its branch {branch}: {error}", failure_class=TRANSIENT)
        return workspace

    def close(self) -> None:
        try:
            if self.isolation is not None:
                leave_remote(self.isolation.top, self.remote, merged_on_remote(self.isolation, self.remote))
        finally:
            self.cluster.close()
