"""The Dask executor: each attempt's agent runs on a worker of a Dask cluster; the rest of the
run (task.md, ticks, the state folder, the panel, the dispatcher and its caps, the merge
queue, the budget) stays here, on the coordinator.

Per attempt: the item's base (the integration tip) is pushed to the remote as the item's
branch; `on_worker.run_on_worker` is submitted (with `resources={"agent": 1}` when the
workers declare an `agent` resource), fire-and-forget, so that a coordinator killed stops
nothing remote; what it streams back (output, masked on the worker, its start and its exit)
goes through `RemoteAgent`, which has the shape of a process.Supervisor, into the attempt's
own output.log, events.jsonl and the run's hub; the pushed branch is then fetched and the
item lands here through the run's check and merge queue (see fetched.py). A worker lost
mid-attempt makes the attempt transient; a run stopped here cancels the task, which stops
the agent on its worker.

May touch: the remote's item branches (pushing each base; deleting them once merged), the item's
worktree and branch here (as worktree.Isolation does), and the item's state folder.
"""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from .. import item_log
from ..agents import PERMANENT, TRANSIENT, Outcome
from ..bootstrap import SetupFailed, copy_files
from ..errors import BatchError
from ..events import AGENT, AgentEvent
from ..git import git
from ..process import Exit, StoppedError
from ..workspace import Committed
from .fetched import FetchedWorkspace, PushedAside, adopt, leave_remote
from .on_worker import SUBMITTED, run_on_worker

if TYPE_CHECKING:
    from ..lifecycle import ItemRun
    from ..records import Attempt

CONNECT_SECONDS = 20
POLL_SECONDS = 0.2  # a long poll of the attempt's queue: events arrive at once, not each POLL
NO_DISTRIBUTED = "--executor dask needs the distributed package: pip install 'batch-tasks[dask]'"


def check_ready(batch, will_run: set[str]) -> None:
    """What would stop a Dask run, found before anything is written: exit 3."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise BatchError(NO_DISTRIBUTED) from None
    name = batch.plan.path.name
    for group in batch.plan.groups:
        if group.settings["isolation"] != "worktree" and any(item.key in will_run for item in group.items):
            raise BatchError(f"{name}: group {group.slug!r}: --executor dask runs items on other machines, so it "
                             "needs isolation: worktree (and a git remote the workers reach: remote:)")
    missing = [variable for variable in batch.plan.settings.get("pass_env", ()) if variable not in os.environ]
    if missing:
        raise BatchError(f"{name}: pass_env: {', '.join(missing)} not set in this environment")
    remote_of(batch.plan.path.parent, batch.plan.settings)


def remote_of(folder: Path, settings: Mapping[str, Any]) -> str:
    """`remote:`, else the URL of the repository's `origin`."""
    if settings.get("remote"):
        return settings["remote"]
    found = git("remote", "get-url", "origin", cwd=folder, allowed=(0, 2, 128))
    if found.status != 0 or not found.text:
        raise BatchError("--executor dask needs a git remote the workers can reach: remote: URL in the front "
                         "matter, or an `origin` remote")
    return found.text


class DaskExecutor:
    def __init__(self, client, scheduler: str, remote: str, pass_env: Mapping[str, str]):
        self.client, self.scheduler, self.remote, self.pass_env = client, scheduler, remote, dict(pass_env)
        self.fetch_lock = threading.Lock()  # one git fetch into the coordinator's repository at a time
        self.merged: list[tuple[str, str]] = []  # item branches merged here: they leave the remote at the end
        self.top: Path | None = None

    @classmethod
    def connect(cls, batch, scheduler: str, run) -> "DaskExecutor":
        from distributed import Client

        try:
            client = Client(scheduler, timeout=CONNECT_SECONDS, set_as_default=False)
        except (OSError, TimeoutError) as error:
            raise BatchError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None
        settings = batch.plan.settings
        return cls(client, scheduler, remote_of(batch.plan.path.parent, settings),
                   {name: os.environ[name] for name in settings.get("pass_env", ())})

    def resources(self) -> dict[str, int] | None:
        """One `agent` of a worker's, when its workers say how many agents each may run."""
        workers = self.client.scheduler_info().get("workers", {}).values()
        return {"agent": 1} if any("agent" in (w.get("resources") or {}) for w in workers) else None

    def attempt(self, item_run: "ItemRun", number: int, context: Mapping[str, Any], running: Mapping[str, Any],
                continues: str | None = None) -> "Attempt":
        """`continues` is not taken: an agent's session lives where it ran, on a worker that may
        be another one (or gone), so each remote attempt is a fresh session, told all."""
        from ..attempt import run_attempt

        job, run, isolation = item_run.job, item_run.run, item_run.run.isolation
        branch = isolation.item_branch(job.item.group, job.item.module)
        before = item_run.workspace if isinstance(item_run.workspace, FetchedWorkspace) else None
        if before is not None:  # its check failed: the agent goes on from its own work, as in a local worktree
            base, start = before.base, before.tip()
        else:
            # The worker fetches the item's base as its branch: one ref of its own, no race with other items.
            base = start = isolation.tip()
            git("push", "-q", "--no-verify", "--force", self.remote, f"{base}:refs/heads/{branch}", cwd=isolation.top)
        agent = RemoteAgent(self, item_run, number, branch, base, start)
        item_run.tell_step(number, AGENT, "on a Dask worker: its worktree, setup and agent")
        attempt = run_attempt(job, run, item_run.folder, number, context, running, isolation.relative_folder,
                              self.pass_env, supervisor=agent)
        came = agent.result
        if came.get("kept"):  # a failed attempt's work, pushed aside: its failure record names it
            item_run.workspace = PushedAside(self.remote, came["kept"]["branch"], came["kept"]["commit"],
                                             came["kept"]["wip"])
        if attempt.outcome is None:
            return attempt
        if came.get("land_error"):
            attempt.outcome = Outcome(ok=False, reason=f"landing its work: {came['land_error']}",
                                      failure_class=PERMANENT)
        elif attempt.outcome.ok and not came.get("commit"):
            attempt.outcome = Outcome(ok=False, reason=f"its work did not come back from {came.get('worker')}: "
                                      f"{came.get('error') or 'no branch was pushed'}", failure_class=TRANSIENT)
        elif attempt.outcome.ok:
            self.bring_back(item_run, attempt, came, branch, base)
        return attempt

    def bring_back(self, item_run: "ItemRun", attempt: "Attempt", came: dict, branch: str, base: str) -> None:
        job, run = item_run.job, item_run.run
        committed = Committed(came["commit"], came["made_commit"], came["changed"])
        try:
            with self.fetch_lock, item_run.folder.open_log() as log:
                if isinstance(item_run.workspace, FetchedWorkspace):  # the attempt before: this one went on from it
                    item_run.workspace.replace_with(came["commit"])
                item_run.workspace = adopt(run.isolation, self.remote, job.item.group, job.item.module, run.run_id,
                                           job.settings, log, came["commit"], base, committed, self.merged)
                self.top = run.isolation.top
        except SetupFailed as error:
            attempt.outcome = Outcome(ok=False, reason=f"worktree here, for its check: {error}", failure_class=PERMANENT)
        except BatchError as error:
            attempt.outcome = Outcome(ok=False, reason=f"fetching its branch {branch}: {error}", failure_class=TRANSIENT)

    def close(self) -> None:
        if self.merged and self.top is not None:
            leave_remote(self.top, self.remote, self.merged)
        self.client.close()


def _copies(isolation, settings) -> bytes:
    """The `worktree_copy` files of the user's checkout, as a tar archive to ship with the task."""
    with tempfile.TemporaryDirectory() as folder:
        copy_files(settings.get("worktree_copy") or (), isolation.folder, isolation.top, Path(folder))
        packed = io.BytesIO()
        with tarfile.open(fileobj=packed, mode="w:gz") as archive:
            archive.add(folder, arcname=".")
        return packed.getvalue()


@dataclass
class RemoteProcesses:
    """What running.json says of a remote attempt (no pid here: recovery stops nothing local)."""

    details: dict[str, Any]
    pid: int | None = None

    def record(self) -> dict[str, Any]:
        return dict(self.details)


class RemoteAgent:
    """One attempt's agent on a worker, seen through a process.Supervisor's `run`."""

    def __init__(self, executor: DaskExecutor, item_run: "ItemRun", number: int, branch: str, base: str, start: str):
        self.executor, self.item_run, self.number, self.branch = executor, item_run, number, branch
        self.base, self.start = base, start
        run = item_run.run
        self.key = f"batch-tasks-{run.run_id}-{item_run.job.item.key}-{number}"
        self.result: dict[str, Any] = {}

    def run(self, argv, *, cwd, env, stdin: bytes, log, on_line, on_start=lambda p: None, on_exit=lambda e: None,
            timeout=None, idle_timeout=None, finished=lambda: False, redact=None) -> Exit:
        from distributed import Queue, Variable, fire_and_forget

        item_run, executor, client = self.item_run, self.executor, self.executor.client
        run, job = item_run.run, item_run.job
        if run.supervisor.stopping.is_set():
            raise StoppedError()
        isolation = run.isolation
        channel, state = Queue(self.key, client=client), Variable(f"{self.key}-state", client=client)
        state.set(SUBMITTED)
        spec = {
            "key": self.key, "channel": self.key, "state": f"{self.key}-state", "remote": executor.remote,
            "branch": self.branch, "base": self.base, "start": self.start, "relative_folder": isolation.relative_folder.as_posix(),
            "copies": _copies(isolation, job.settings), "settings": dict(job.settings), "argv": list(argv),
            "env": dict(env), "stdin": stdin, "prompt_path": item_run.folder.prompt,
            "secrets": list(executor.pass_env.values()), "stem": isolation.stem, "task_path": isolation.task_path,
            "group": job.item.group, "module": job.item.module, "run_id": run.run_id, "number": self.number,
            "coordinator": client.id,
        }
        future = client.submit(run_on_worker, spec, key=self.key, pure=False, retries=0,
                               resources=executor.resources())
        fire_and_forget(future)  # a coordinator killed stops nothing remote: the next run lands what it pushed
        masker = (redact or run.redactor).stream()
        ended: Exit | None = None
        cancelled = False
        try:
            while True:
                if run.supervisor.stopping.is_set() and not cancelled:
                    client.cancel(future, force=True)  # its worker stops the agent and all it started
                    cancelled = True
                try:
                    batch = channel.get(timeout=POLL_SECONDS)
                except TimeoutError:
                    batch = None
                for message in batch or ():
                    ended = self._take(message, log, masker, on_line, on_start, on_exit) or ended
                if batch and batch[-1][0] == "end":
                    break  # its last word: its result is there, or on its way
                if not batch and future.done() and (cancelled or not channel.qsize()):
                    break  # it ended without its last word (its worker lost, a cancel): all it sent is taken
        finally:
            log.write(masker.flush())
            channel.close()
        if cancelled or future.status == "cancelled":
            return ended or Exit(-15, "the run was stopped")
        try:
            return self._ended(future, ended, log)
        finally:
            state.delete()  # only a killed run's attempts keep theirs: the next run looks

    def _take(self, message, log, masker, on_line, on_start, on_exit) -> Exit | None:
        kind, *rest = message
        if kind == "out":
            log.write(masker.feed(rest[0]))
        elif kind == "line":
            log.flush()
            on_line(rest[0])
        elif kind == "started":
            worker, host, pid = rest
            details = {"executor": "dask", "worker": worker, "host": host, "remote_pid": pid,
                       "scheduler": self.executor.scheduler, "dask_key": self.key, "state": f"{self.key}-state",
                       "remote": self.executor.remote, "branch": self.branch, "base": self.base}
            on_start(RemoteProcesses(details))
            self._tell_worker(worker, host)
        elif kind == "exit":
            status, stopped_for = rest
            ended = Exit(status, stopped_for)
            on_exit(ended)
            return ended
        return None

    def _tell_worker(self, worker: str, host: str) -> None:
        """Which worker runs the item: in its events (batch-status reads them) and on the panel."""
        item_run, run = self.item_run, self.item_run.run
        event = AgentEvent("worker", text=f"on worker {worker} ({host})", data={"worker": worker, "host": host})
        item_log.append(item_run.folder, run.run_id, self.number, event.kind, event.text, event.data)
        run.hub.publish("item_event", item_run.job.item.key, event)

    def _ended(self, future, ended: Exit | None, log) -> Exit:
        """How the remote attempt ended, as this run sees it."""
        try:
            self.result = came = future.result()
        except Exception as error:  # noqa: BLE001 - its worker died too often (KilledWorker), or a bug there
            self.result = {"lost": True, "error": repr(error)}
            return Exit(-9, f"its Dask task failed: {error!r}")
        if came.get("setup_failed"):
            raise SetupFailed(came["setup_failed"], came.get("tail", ""))
        if came.get("cannot_start"):
            raise OSError(came["cannot_start"])
        if came.get("lost"):
            return Exit(-9, "its worker was lost mid-attempt")
        if came.get("error"):
            log.write(f"{came['error']}\n".encode())
            return ended if ended is not None and ended.status != 0 else Exit(-1, came["error"])
        if came.get("kept"):
            kept = came["kept"]
            log.write(f"=== its work is kept on {self.executor.remote} as {kept['branch']} ({kept['commit'][:12]}) ===\n"
                      .encode())
        if came.get("cancelled") or ended is None:
            return Exit(-15, "its task was cancelled")
        return ended


