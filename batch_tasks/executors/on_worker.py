"""The remote part of an attempt, as a Dask worker runs it: `run_on_worker(spec)`.

Fetch the item's branch (its base commit, pushed by the coordinator) from the git remote
into the worker's own cache, make a worktree of it, put there the `worktree_copy` files
shipped with the task, run `worktree_setup`, then the agent; commit what it left and push
the item's branch back (a failed attempt's work is pushed aside, as a WIP commit). Output,
masked here already, and the agent's start and exit go to the coordinator as they happen,
through a Dask queue named in the spec. A task cancelled (`client.cancel`) stops the agent
and all it started; a task the scheduler runs again after its first worker was lost does
nothing and says so (`lost`), so that the coordinator retries it as its own attempt.

May touch: the cache folder ($BATCH_TASKS_CACHE, else the worker's local directory) and,
through git, the item's branches on the remote. Nothing of the coordinator's machine.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import socket
import tarfile
import tempfile
import threading
from pathlib import Path
from typing import Any

from ..agents import AGENTS
from ..errors import BatchError
from ..isolation.bootstrap import SetupFailed, bootstrap
from ..isolation.workspace import BatchNames, Worktree, commit_work, wip_message
from ..processes import process
from ..processes.attempt_processes import GRACE_SECONDS
from ..redaction import Redactor
from ..repository.git import environment_for_worktrees, git
from ..state import item_log
from ..state.state import safe_name
from .attempt import outcome_of

SUBMITTED, RUNNING, ENDED, LOST = "submitted", "running", "ended", "lost"  # an attempt's state variable
FLUSH_SECONDS = 0.1  # how often what the agent printed is sent on
WATCH_SECONDS = 0.2  # how often a cancelled task is looked for
_cache_lock = threading.Lock()  # one worker's attempts share its cache's repositories


class Channel:
    """Messages to the coordinator, sent in batches every FLUSH_SECONDS (and at once when asked),
    from a thread of their own: a scheduler gone makes a send wait for its timeout, and the
    attempt must not wait with it (it goes on, and pushes). What could not be sent is counted,
    for the attempt's result to say."""

    def __init__(self, name: str):
        from distributed import Queue

        self.queue = Queue(name)
        self.pending: list = []
        self.undelivered = 0  # messages its coordinator never got
        self.lock = threading.Lock()
        self.closed, self.wake = threading.Event(), threading.Event()
        self.sender = threading.Thread(target=self._send_every, daemon=True)
        self.sender.start()

    def send(self, *message, now: bool = False) -> None:
        with self.lock:
            self.pending.append(list(message))
        if now:
            self.wake.set()

    def write(self, data: bytes) -> int:  # a log: output, setup's output, notes
        if data:
            self.send("out", bytes(data))
        return len(data)

    def flush(self) -> None:
        with self.lock:
            batch, self.pending = self.pending, []
            if batch:
                try:
                    self.queue.put(batch)
                except (OSError, TimeoutError):  # its scheduler is gone (a lost connection): the attempt goes on, and pushes
                    self.undelivered += len(batch)

    def _send_every(self) -> None:
        while not self.closed.is_set():
            self.wake.wait(FLUSH_SECONDS)
            self.wake.clear()
            self.flush()

    def close(self) -> None:
        self.closed.set()
        self.wake.set()
        self.sender.join()
        self.flush()
        # The scheduler forgets it once its coordinator lets go too; with its scheduler gone,
        # distributed sends nothing and raises nothing: whatever this raises is a bug.
        self.queue.close()


def run_on_worker(spec: dict[str, Any]) -> dict[str, Any]:
    from distributed import Variable, get_client, get_worker
    from distributed.client import ClosedClientError

    worker = get_worker()
    state = Variable(spec["state"])
    try:
        first = state.get(timeout=10) == SUBMITTED
    except TimeoutError:
        first = False
    if not first:  # the scheduler runs it again: the worker of its first run was lost
        state.set(LOST)
        return {"lost": True, "worker": worker.address}
    if not get_client().run_on_scheduler(_connected, spec["coordinator"]):
        state.set(LOST)  # its run was killed before it started: the next run does it
        return {"orphaned": True, "worker": worker.address}
    state.set(RUNNING)
    channel = Channel(spec["channel"])
    try:
        result = {"worker": worker.address, **_attempt(spec, worker, channel)}
    finally:
        try:
            state.set(ENDED)
        except (OSError, TimeoutError, ClosedClientError) as error:  # its scheduler out of reach
            channel.write(item_log.note_header(
                f"its end could not be noted on its scheduler ({error}): a later run may wait for it, as for "
                "an attempt still running; what it pushed is all there"))
        channel.send("end")  # the result follows at once: the coordinator need not poll for it
        channel.close()
    return {**result, "undelivered": channel.undelivered} if channel.undelivered else result


def _attempt(spec: dict[str, Any], worker, channel: Channel) -> dict[str, Any]:
    settings = spec["settings"]
    root = Path(os.environ.get("BATCH_TASKS_CACHE") or Path(worker.local_directory) / "batch-tasks")
    path = root / "worktrees" / safe_name(spec["key"])
    supervisor = process.Supervisor.for_run()
    watching = threading.Thread(target=_stop_when_cancelled, args=(worker, spec["key"], supervisor), daemon=True)
    watching.start()
    mirror = None
    try:
        try:
            mirror = _checkout(root, path, spec)
        except BatchError as error:
            return _worker_fault(f"cannot fetch {spec['branch']} from {spec['remote']}", error)
        workspace = Worktree(BatchNames(path, spec["task_path"], spec["stem"]), spec["group"], spec["module"],
                             spec["run_id"], path, spec["branch"], spec["base"])
        folder = path / spec["relative_folder"]
        (root / "staging").mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=root / "staging") as unpacked:
            staging = Path(unpacked)
            tarfile.open(fileobj=io.BytesIO(spec["copies"])).extractall(staging, filter="data")
            (staging / spec["relative_folder"]).mkdir(parents=True, exist_ok=True)
            workspace.baseline = bootstrap(path, folder=folder, source_folder=staging / spec["relative_folder"],
                                           top=staging, settings=settings, log=channel, supervisor=supervisor)
        # The agent runs where it would here: the batch's workdir (see workdir.py), its setup in task.md's folder.
        return _run_agent(spec, worker, channel, supervisor, workspace, path / spec["relative_workdir"], root)
    except SetupFailed as error:
        return {"setup_failed": str(error), "tail": error.tail}
    except process.StoppedError:
        return {"cancelled": True}
    except BatchError as error:
        return {"error": f"on {worker.address}: {error}"}
    except OSError as error:  # its disk full, its cache unwritable
        return _worker_fault("its cache folder", error)
    finally:
        supervisor.stopping.set()  # the watch ends
        supervisor.close()  # the cgroups its setup and agent left empty
        if mirror is not None:  # after the result is sent: nobody waits for it
            threading.Thread(target=_recycle, args=(mirror, path), daemon=True).start()


def _run_agent(spec, worker, channel: Channel, supervisor: process.Supervisor, workspace: Worktree,
               workdir: Path, root: Path) -> dict[str, Any]:
    settings = spec["settings"]
    prompt = root / "prompts" / f"{safe_name(spec['key'])}.md"
    prompt.parent.mkdir(parents=True, exist_ok=True)
    prompt.write_bytes(spec["stdin"])
    here = {spec["prompt_path"]: str(prompt)}  # the coordinator's prompt file is this copy here
    argv = [here.get(arg, arg) for arg in spec["argv"]]
    env = {**environment_for_worktrees(), **{k: here.get(v, v) for k, v in spec["env"].items()},
           "BATCH_WORKTREE": str(workspace.path)}
    reader = AGENTS[settings["agent"]].reader(settings)
    result_seen = threading.Event()

    def on_line(line: str) -> None:
        channel.send("line", line)
        if any(event.kind == "result" for event in reader.feed(line)):
            result_seen.set()

    def on_start(processes) -> None:
        channel.send("started", worker.address, socket.gethostname(), processes.pid, now=True)

    def on_exit(ended) -> None:
        channel.send("exit", ended.status, ended.stopped_for, now=True)

    try:
        ended = supervisor.run(argv, cwd=workdir, env=env, stdin=spec["stdin"], log=channel, on_line=on_line,
                               on_start=on_start, on_exit=on_exit, timeout=settings["timeout"],
                               idle_timeout=settings["idle_timeout"], finished=result_seen.is_set,
                               redact=Redactor(env, also=spec["secrets"]))
    except OSError as error:  # no agent CLI there
        return _worker_fault("cannot start the agent", error)
    finally:
        prompt.unlink(missing_ok=True)
    outcome = outcome_of(reader, ended.status, ended.stopped_for, result_seen.is_set())
    if not outcome.ok:
        return {"kept": _keep(spec, workspace, outcome.reason or f"exit status {ended.status}")}
    try:
        committed = workspace.commit_leftovers(settings["allow_empty"])
    except BatchError as error:  # it left its worktree on another branch: pushed aside, as it is
        return {"land_error": str(error), "kept": _keep(spec, workspace, str(error))}
    try:
        _push(spec, workspace.path, spec["branch"], lease=spec["start"])
    except BatchError as error:  # its agent ran: the attempt fails, and goes elsewhere next time
        return {**_worker_fault(f"cannot push {spec['branch']} to {spec['remote']}", error), "agent_ran": True}
    return {"commit": committed.commit, "made_commit": committed.made_commit, "changed": committed.changed}


def _worker_fault(what: str, error: Exception) -> dict[str, Any]:
    """A failure of the worker's own, not the item's: the coordinator sets the worker aside. git's
    whole error, not its last line: which remote, which key, which host."""
    said = (getattr(error, "stderr", "") or "").strip() or str(error)
    return {"worker_fault": f"{what}: {said}"}


def _checkout(root: Path, path: Path, spec) -> Path:
    """The worker's own copy of the remote (a bare repository, fetched into), and a worktree on
    the item's branch at `start`: its base, or after a failed check the work its attempt before
    pushed. A spare (an earlier attempt's worktree, cleaned) is switched there if there is one:
    a fresh checkout of a large repository costs seconds, a switch between nearby commits little."""
    mirror = root / "repos" / f"{hashlib.sha256(spec['remote'].encode()).hexdigest()[:16]}.git"
    with _cache_lock:
        if not (mirror / "HEAD").exists():
            mirror.mkdir(parents=True, exist_ok=True)
            git("init", "-q", "--bare", cwd=mirror)
        # Into a remote-tracking ref: a branch checked out in a worktree cannot be fetched into.
        git("fetch", "-q", "--no-tags", spec["remote"], f"+refs/heads/{spec['branch']}:refs/remotes/batch/{spec['branch']}",
            cwd=mirror)
        _remove_worktree(mirror, path)
        path.parent.mkdir(parents=True, exist_ok=True)
        spares = sorted(_spares(mirror).iterdir()) if _spares(mirror).is_dir() else []
        if spares:
            git("worktree", "move", str(spares[0]), str(path), cwd=mirror)
            git("checkout", "-q", "-f", "-B", spec["branch"], spec["start"], cwd=path)
        else:
            git("worktree", "add", "-q", "-f", "-B", spec["branch"], str(path), spec["start"], cwd=mirror)
    return mirror


def _spares(mirror: Path) -> Path:
    return mirror.parent.parent / "worktrees" / ".spare" / mirror.stem


def _recycle(mirror: Path, path: Path) -> None:
    """The attempt's worktree, cleaned (its work is pushed, or kept on its branch here), made a spare."""
    with _cache_lock:
        try:
            git("checkout", "-q", "--detach", cwd=path)
            git("reset", "-q", "--hard", cwd=path)
            git("clean", "-ffdxq", cwd=path)
            _spares(mirror).mkdir(parents=True, exist_ok=True)
            git("worktree", "move", str(path), str(_spares(mirror) / path.name), cwd=mirror)
        except BatchError:
            _remove_worktree(mirror, path)


def _keep(spec, workspace: Worktree, why: str) -> dict[str, Any] | None:
    """A failed attempt's work, committed (WIP) and pushed to a branch of its own; None if it left none."""
    try:
        wip = commit_work(workspace.path, workspace.baseline,
                          wip_message(workspace.isolation, workspace.key, why, spec["run_id"]))
        tip = git("rev-parse", "HEAD", cwd=workspace.path).text
        if tip == spec["start"]:
            return None
        aside = f"{spec['branch']}.{safe_name(spec['run_id'])}-{spec['number']}"
        _push(spec, workspace.path, aside)
        return {"branch": aside, "commit": tip, "wip": wip}
    except BatchError:
        return None


def _push(spec, path: Path, branch: str, lease: str | None = None) -> None:
    guard = [f"--force-with-lease=refs/heads/{branch}:{lease}"] if lease else ["--force"]
    git("push", "-q", "--no-verify", *guard, spec["remote"], f"HEAD:refs/heads/{branch}", cwd=path)


def _remove_worktree(mirror: Path, path: Path) -> None:
    if os.path.lexists(path):
        git("worktree", "remove", "--force", "--force", str(path), cwd=mirror, allowed=(0, 128))
        shutil.rmtree(path, ignore_errors=True)
    git("worktree", "prune", cwd=mirror)


def _stop_when_cancelled(worker, key: str, supervisor: process.Supervisor) -> None:
    """A cancelled task's agent, and all it started, are stopped (SIGTERM, grace, SIGKILL). Not
    when the worker closes (its scheduler lost, most often): Dask gives a running task some
    time still, in which the agent may end and its work be pushed; an agent still running
    when the worker's process exits is killed by the watchdog (see process)."""
    from distributed.core import Status

    while not supervisor.stopping.wait(WATCH_SECONDS):
        if worker.status in (Status.closing, Status.closed, Status.closing_gracefully, Status.failed):
            continue
        task = worker.state.tasks.get(key)
        if task is None or task.state != "executing":
            supervisor.stop_all(GRACE_SECONDS)
            return


def _connected(client_id: str, dask_scheduler=None) -> bool:
    """On the scheduler: is the run that submitted the task still there?"""
    return client_id in dask_scheduler.clients
