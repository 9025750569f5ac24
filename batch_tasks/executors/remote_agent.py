"""One attempt's agent on a Dask worker, seen through a process.Supervisor's `run`: submitted
(fire-and-forget, so that a coordinator killed stops nothing remote), what it streams back
taken into the attempt's own output.log, events.jsonl and the run's hub, and how it ended.

Faults, per attempt (the run-wide part is executors/cluster.py):
- a worker that fails by its own fault before its agent started (it cannot fetch, has no
  agent CLI, a full disk): the worker is set aside for the run, and the same attempt goes to
  another; after its agent ran (it cannot push): set aside, and the attempt fails, transient;
- its scheduler lost: once a scheduler with a worker is back, the work the agent pushed (its
  worker had some time still, as Dask closes it) is the attempt's success; else the attempt
  is transient, and runs again.

Touches the item's state folder (through the attempt's log and events), and reads the remote.
"""

from __future__ import annotations

import contextlib
import io
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Protocol

from ..events import AgentEvent
from ..isolation.bootstrap import SetupFailed, copy_files
from ..processes.process import Exit, StoppedError
from ..state import item_log
from .fetched import pushed_success
from .on_worker import SUBMITTED, run_on_worker

if TYPE_CHECKING:
    from ..isolation.worktree import Isolation
    from ..processes.process import Supervisor
    from ..redaction import Redactor
    from .cluster import Cluster
    from .seam import AttemptSpec, Reporter

POLL_SECONDS = 0.2  # a long poll of the attempt's queue: events arrive at once, not each POLL
# How long Dask lets a worker that lost its scheduler finish its running tasks (Worker.close's
# timeout): the work of an agent that ended within it is pushed by then.
WORKER_CLOSE_SECONDS = 30


class SchedulerLost(Exception):
    """The attempt's scheduler went away while it ran."""


@dataclass
class RemoteProcesses:
    """What running.json says of a remote attempt (no pid here: recovery stops nothing local)."""

    details: dict[str, Any]
    pid: int | None = None

    def record(self) -> dict[str, Any]:
        return dict(self.details)


class Coordinator(Protocol):
    """What a remote agent needs of its executor (dask_cluster.DaskExecutor), on the coordinator."""

    cluster: Cluster
    scheduler: str
    remote: str
    pass_env: Mapping[str, str]
    supervisor: Supervisor  # the run's: its `stopping`
    redactor: Redactor
    isolation: Isolation

    def resources(self, client) -> dict[str, int] | None: ...


class RemoteAgent:
    def __init__(self, executor: Coordinator, spec: AttemptSpec, reporter: Reporter, branch: str, base: str,
                 start: str):
        self.executor, self.spec, self.reporter, self.number, self.branch = executor, spec, reporter, spec.number, branch
        self.base, self.start = base, start
        self.key = f"batch-tasks-{spec.run_id}-{spec.job.item.key}-{spec.number}"
        self.submissions = 0  # one more each time a worker set aside sends the attempt elsewhere
        self.worker = ""
        self.ended: Exit | None = None  # its agent's exit, as its worker said it
        self.result: dict[str, Any] = {}

    def run(self, argv, *, cwd, env, stdin: bytes, log, on_line, on_start=lambda p: None, on_exit=lambda e: None,
            timeout=None, idle_timeout=None, finished=lambda: False, redact=None, exit_file=None, sandbox=None) -> Exit:
        # `exit_file` is a local watchdog's (see watchdog.py): a remote agent's exit reaches the
        # next run through the branch its worker pushed instead. No `sandbox`: a run refuses it
        # with this executor before it starts (see agent_sandbox.preflight).
        executor, cluster = self.executor, self.executor.cluster
        stopping = executor.supervisor.stopping
        if stopping.is_set():
            raise StoppedError()
        spec = self._spec(argv, env, stdin)
        masker = (redact or executor.redactor).stream()
        try:
            while True:
                client = cluster.ready(stopping)
                self.submissions += 1
                key = self.key if self.submissions == 1 else f"{self.key}.{self.submissions}"
                self.ended = None
                try:
                    over = self._submit(client, key, spec, log, masker, on_line, on_start, on_exit)
                except SchedulerLost as lost:
                    cluster.lost(client)
                    return self._after_loss(str(lost), log)
                if over is not None:
                    return over
                fault = self.result.get("worker_fault")
                if fault:
                    worker = self.result.get("worker", "?")
                    cluster.set_worker_aside(worker, fault, self.spec.job.item.key)
                    log.write(f"=== the Dask worker {worker} is set aside for this run: {fault} ===\n".encode())
                    if not self.result.get("agent_ran"):
                        continue  # the same attempt, on another worker
                    self.result["error"] = fault
                return self._ended(log)
        finally:
            log.write(masker.flush())

    def _spec(self, argv, env, stdin: bytes) -> dict[str, Any]:
        executor, job = self.executor, self.spec.job
        isolation = executor.isolation
        return {
            "remote": executor.remote, "branch": self.branch, "base": self.base, "start": self.start,
            "relative_folder": isolation.relative_folder.as_posix(),
            "relative_workdir": isolation.relative_workdir.as_posix(), "copies": _copies(isolation, job.settings),
            "settings": dict(job.settings), "argv": list(argv), "env": dict(env), "stdin": stdin,
            "prompt_path": self.spec.folder.prompt, "secrets": list(executor.pass_env.values()),
            "stem": isolation.stem, "task_path": isolation.task_path, "group": job.item.group,
            "module": job.item.module, "run_id": self.spec.run_id, "number": self.number,
        }

    def _submit(self, client, key: str, spec, log, masker, on_line, on_start, on_exit) -> Exit | None:
        """One submission, streamed to its end; its result in self.result. Returns an Exit when the
        attempt is over without a result to read (stopped here, cancelled); raises SchedulerLost."""
        from distributed import Queue, Variable, fire_and_forget
        from distributed.client import ClosedClientError

        stopping = self.executor.supervisor.stopping
        with _losing_scheduler(client):
            channel, state = Queue(key, client=client), Variable(f"{key}-state", client=client)
            state.set(SUBMITTED)
            future = client.submit(run_on_worker, {**spec, "key": key, "channel": key, "state": f"{key}-state",
                                                   "coordinator": client.id},
                                   key=key, pure=False, retries=0, resources=self.executor.resources(client),
                                   workers=self.executor.cluster.allowed(), allow_other_workers=False)
            fire_and_forget(future)  # a coordinator killed stops nothing remote: the next run lands what it pushed
        cancelled = False
        try:
            while True:
                with _losing_scheduler(client):
                    if stopping.is_set() and not cancelled:
                        client.cancel(future, force=True)  # its worker stops the agent and all it started
                        cancelled = True
                    try:
                        batch = channel.get(timeout=POLL_SECONDS)
                    except TimeoutError:
                        batch = None
                for message in batch or ():
                    self._take(key, message, log, masker, on_line, on_start, on_exit)
                if batch and batch[-1][0] == "end":
                    break  # its last word: its result is there, or on its way
                with _losing_scheduler(client):
                    if not batch and future.done() and (cancelled or not channel.qsize()):
                        break  # it ended without its last word (its worker lost, a cancel): all it sent is taken
        finally:
            with contextlib.suppress(ClosedClientError):  # its scheduler gone: nothing to let go of
                channel.close()
        if cancelled or future.status == "cancelled":
            if not cancelled:  # nobody here cancelled it: its scheduler forgot it
                raise SchedulerLost("its task was forgotten")
            return self.ended or Exit(-15, "the run was stopped")
        with _losing_scheduler(client):
            self.result, over = task_result(future)
        if over is not None:
            return over
        with contextlib.suppress(ClosedClientError):  # its scheduler gone since: nothing to let go of
            state.delete()  # only a killed run's attempts keep theirs: the next run looks
        return None

    def _take(self, key: str, message, log, masker, on_line, on_start, on_exit) -> None:
        kind, *rest = message
        if kind == "out":
            log.write(masker.feed(rest[0]))
        elif kind == "line":
            log.flush()
            on_line(rest[0])
        elif kind == "started":
            worker, host, pid = rest
            self.worker = worker
            details = {"executor": "dask", "worker": worker, "host": host, "remote_pid": pid,
                       "scheduler": self.executor.scheduler, "dask_key": key, "state": f"{key}-state",
                       "remote": self.executor.remote, "branch": self.branch, "base": self.base}
            on_start(RemoteProcesses(details))
            self._tell_worker(worker, host)
        elif kind == "exit":
            status, stopped_for = rest
            self.ended = Exit(status, stopped_for)
            on_exit(self.ended)

    def _tell_worker(self, worker: str, host: str) -> None:
        """Which worker runs the item: in its events (batch-status reads them) and on the panel."""
        event = AgentEvent("worker", text=f"on worker {worker} ({host})", data={"worker": worker, "host": host})
        item_log.append(self.spec.folder, self.spec.run_id, self.number, event.kind, event.text, event.data)
        self.reporter.event(event)

    def _ended(self, log) -> Exit:
        """How the remote attempt ended, as this run sees it, from its result."""
        came, ended = self.result, self.ended
        if came.get("undelivered"):
            log.write(item_log.note_header(f"{came['undelivered']} messages of its output on {came.get('worker', '?')} "
                                           "could not be sent here (its scheduler was out of reach); "
                                           "what it pushed is all there"))
        if came.get("setup_failed"):
            raise SetupFailed(came["setup_failed"], came.get("tail", ""))
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

    def _after_loss(self, why: str, log) -> Exit:
        """Its scheduler lost: wait for one with a worker (StoppedError past the cluster's wait), then
        look for the work its agent pushed, as long as its worker may still have been pushing it."""
        cluster, stopping, isolation = self.executor.cluster, self.executor.supervisor.stopping, self.executor.isolation
        lost_at = time.monotonic()
        log.write(f"=== its Dask scheduler was lost ({why}): waiting for it to be back ===\n".encode())
        cluster.ready(stopping)
        ended = self.ended
        if ended is None or ended.status == 0:  # its agent may have succeeded, and pushed
            while True:
                found = pushed_success(isolation.top, self.executor.remote, self.branch, self.spec.run_id,
                                       self.spec.job.item.key, self.start, self.base)
                if found is not None or time.monotonic() > lost_at + WORKER_CLOSE_SECONDS:
                    break
                if stopping.wait(1.0):
                    raise StoppedError()
            if found is not None:
                self.result = {"worker": self.worker, "commit": found.commit, "made_commit": found.made_commit,
                               "changed": found.changed, "pushed_while_lost": True}
                log.write(f"=== its agent's work was pushed ({found.commit[:12]}): it lands ===\n".encode())
                return ended or Exit(0, None)
        self.result = {"lost": True}
        return Exit(-9, "its Dask scheduler was lost mid-attempt")


def task_result(future) -> tuple[dict[str, Any], Exit | None]:
    """What the attempt's ended task returned; with an Exit when it returned nothing: the workers
    it went to died under it, one after another (KilledWorker), as a lost worker's attempt. Any
    other error is a bug in run_on_worker: raised here, with the worker's traceback, for the
    runner to record in the item's log as an internal error."""
    from distributed import KilledWorker

    try:
        return future.result(), None
    except KilledWorker as error:
        return {"lost": True, "error": repr(error)}, Exit(-9, f"its Dask task failed: {error!r}")


@contextlib.contextmanager
def _losing_scheduler(client):
    """Dask's calls, where a scheduler gone shows as OSError (a closed stream, a timeout to connect)."""
    try:
        yield
    except OSError as error:
        raise SchedulerLost(str(error) or type(error).__name__) from None
    if client.status not in ("running", "newly-created"):
        raise SchedulerLost("its connection closed")


def _copies(isolation, settings) -> bytes:
    """The `worktree_copy` files of the user's checkout, as a tar archive to ship with the task."""
    with tempfile.TemporaryDirectory() as folder:
        copy_files(settings.get("worktree_copy") or (), isolation.folder, isolation.top, Path(folder))
        packed = io.BytesIO()
        with tarfile.open(fileobj=packed, mode="w:gz") as archive:
            archive.add(folder, arcname=".")
        return packed.getvalue()
