"""Errors on the way to and from a Dask worker: each is handled where it is named (the
scheduler out of reach), said where it costs something (output that never came), and any
other reaches the item's run as the bug it is. Plain objects in place of Dask's."""

from __future__ import annotations

import io
import sys
import threading
from types import SimpleNamespace

import distributed
import pytest
from gitrepo import git, make_repo

from batch_tasks.errors import BatchError
from batch_tasks.executors import fetched, on_worker
from batch_tasks.executors.remote_agent import RemoteAgent
from batch_tasks.isolation.worktree import Isolation
from batch_tasks.processes.process import Exit


class Unreachable:
    """A Dask object whose scheduler is gone (distributed raises a lost connection as an OSError)."""

    def __init__(self, *args, error: Exception | None = None, **kwargs):
        self.error = error or OSError("Timed out trying to connect")
        self.closed = False

    def put(self, batch):
        raise self.error

    def get(self, timeout=None):
        raise self.error

    def close(self):
        self.closed = True


def channel_to(queue) -> on_worker.Channel:
    channel = object.__new__(on_worker.Channel)  # without its sender thread: flushed by hand
    channel.queue, channel.pending, channel.undelivered = queue, [], 0
    channel.lock = threading.Lock()
    return channel


def test_output_the_worker_cannot_send_is_counted_not_dropped_silently():
    channel = channel_to(Unreachable())
    channel.write(b"one line\n")
    channel.send("line", "{}")
    channel.flush()
    channel.send("exit", 0, None)
    channel.flush()
    assert channel.undelivered == 3


def test_a_bug_in_sending_the_worker_output_is_not_taken_for_a_lost_scheduler():
    channel = channel_to(Unreachable(error=TypeError("cannot pickle '_thread.lock' object")))
    channel.send("line", "{}")
    with pytest.raises(TypeError):
        channel.flush()


def test_the_coordinator_says_in_the_item_log_how_much_output_never_came():
    attempt = object.__new__(RemoteAgent)
    attempt.result, attempt.ended = {"worker": "tcp://w:1", "undelivered": 7}, Exit(0, None)
    log = io.BytesIO()
    assert attempt._ended(log) == Exit(0, None)
    assert b"7 messages of its output on tcp://w:1 could not be sent here" in log.getvalue()


RUNNING = {"executor": "dask", "scheduler": "tcp://127.0.0.1:1", "state": "batch-state-x", "worker": "w"}


def test_a_scheduler_out_of_reach_ends_recoverys_wait_at_once(monkeypatch):
    made = []

    def client(*args, **kwargs):
        made.append(kwargs)
        raise OSError("Timed out trying to connect to tcp://127.0.0.1:1 after 5 s")

    monkeypatch.setattr(distributed, "Client", client)
    fetched._wait_for_remote(RUNNING, io.BytesIO(), lambda: pytest.fail("nothing to wait for"))
    assert made


def test_a_scheduler_lost_while_recovery_waits_ends_the_wait(monkeypatch):
    client = Unreachable()
    monkeypatch.setattr(distributed, "Client", lambda *args, **kwargs: client)
    monkeypatch.setattr(distributed, "Variable", lambda name, client: Unreachable())
    fetched._wait_for_remote(RUNNING, io.BytesIO(), lambda: pytest.fail("nothing to wait for"))
    assert client.closed


def test_a_bug_in_recoverys_wait_for_a_remote_attempt_is_not_swallowed(monkeypatch):
    client = Unreachable()
    monkeypatch.setattr(distributed, "Client", lambda *args, **kwargs: client)
    monkeypatch.setattr(distributed, "Variable", lambda name, client: Unreachable(error=KeyError("state")))
    with pytest.raises(KeyError):
        fetched._wait_for_remote(RUNNING, io.BytesIO(), lambda: None)
    assert client.closed


def test_a_bug_in_closing_the_workers_channel_is_not_swallowed():
    channel = channel_to(Unreachable(error=RuntimeError("not properly initialized")))
    channel.queue.close = lambda: (_ for _ in ()).throw(channel.queue.error)
    channel.closed, channel.wake = threading.Event(), threading.Event()
    channel.sender = threading.Thread(target=lambda: None)
    channel.sender.start()
    with pytest.raises(RuntimeError):
        channel.close()


class NotedState:
    """The attempt's state variable on the scheduler, whose last `set` fails as ERROR."""

    def __init__(self, error: Exception):
        self.error, self.values = error, []

    def get(self, timeout=None):
        return on_worker.SUBMITTED

    def set(self, value):
        if value == on_worker.ENDED:
            raise self.error
        self.values.append(value)


class Log(io.BytesIO):
    """The worker's channel to the item's log."""

    undelivered = 0

    def __init__(self, name=None):
        super().__init__()

    def send(self, *message, now=False):
        pass

    def close(self):  # what it held stays readable
        pass


def run_on_worker_with(monkeypatch, state: NotedState) -> tuple[dict, Log]:
    channel = Log()
    monkeypatch.setattr(distributed, "get_worker", lambda: type("Worker", (), {"address": "tcp://w:1"})())
    monkeypatch.setattr(distributed, "get_client", lambda: type("Client", (), {"run_on_scheduler": lambda *a: True})())
    monkeypatch.setattr(distributed, "Variable", lambda name: state)
    monkeypatch.setattr(on_worker, "Channel", lambda name: channel)
    monkeypatch.setattr(on_worker, "_attempt", lambda spec, worker, channel: {"commit": "abc"})
    spec = {"state": "s", "coordinator": "c", "channel": "q"}
    return on_worker.run_on_worker(spec), channel


def test_an_attempts_end_the_scheduler_could_not_note_is_said_in_the_items_log(monkeypatch):
    result, log = run_on_worker_with(monkeypatch, NotedState(OSError("Timed out trying to connect")))
    assert result["commit"] == "abc"
    assert b"its end could not be noted on its scheduler" in log.getvalue()


def test_a_bug_in_noting_an_attempts_end_is_not_swallowed(monkeypatch):
    with pytest.raises(KeyError):
        run_on_worker_with(monkeypatch, NotedState(KeyError("state")))


# --- recovery: the success a killed run's remote attempt pushed -----------------------


@pytest.fixture
def pushed(tmp_path, monkeypatch):
    """A repository whose integration branch is made, and a remote where a worker pushed the
    success of run-1's attempt at g:alpha: (isolation, running record, pushed commit)."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-global-gitconfig"))
    repo = make_repo(tmp_path / "repo")
    isolation = Isolation(repo / "task.md", {"integrate": None})
    isolation.validate()
    isolation.prepare()
    base = isolation.tip()
    remote = tmp_path / "remote.git"
    git("clone", "-q", "--bare", str(repo), str(remote), cwd=tmp_path)
    branch = isolation.item_branch("g", "alpha")
    (repo / "work.txt").write_text("work\n")
    git("add", "work.txt", cwd=repo)
    git("commit", "-q", "-m", "work\n\nBatch-Item: g:alpha\nBatch-Run: run-1\nBatch-Result: succeeded", cwd=repo)
    commit = git("rev-parse", "HEAD", cwd=repo)
    git("push", "-q", str(remote), f"HEAD:refs/heads/{branch}", cwd=repo)
    git("reset", "-q", "--hard", "HEAD~1", cwd=repo)
    running = {"executor": "dask", "branch": branch, "remote": str(remote), "run_id": "run-1", "base": base}
    return isolation, running, commit


ITEM = SimpleNamespace(group="g", module="alpha", key="g:alpha")
CHECKED = {"check": [sys.executable, "-c", "pass"]}


def test_pushed_work_whose_worktree_here_cannot_be_set_up_is_said_in_the_items_log(pushed):
    isolation, running, _ = pushed
    group = SimpleNamespace(settings={**CHECKED, "worktree_setup": [sys.executable, "-c", "raise SystemExit(3)"]})
    log = io.BytesIO()
    assert fetched.fetch_pushed_success(isolation, group, ITEM, running, log) is None
    assert b"the work its worker pushed is not gone on with: worktree_setup" in log.getvalue()


def test_an_error_recovery_does_not_name_reaches_the_items_run(pushed, monkeypatch):
    isolation, running, _ = pushed

    def bug(*args, **kwargs):
        raise BatchError("not an error of git's or of the setup's")

    monkeypatch.setattr(fetched, "adopt", bug)
    with pytest.raises(BatchError):
        fetched.fetch_pushed_success(isolation, SimpleNamespace(settings=CHECKED), ITEM, running, io.BytesIO())


def test_a_base_moved_past_the_pushed_work_in_the_running_record_is_not_taken(pushed):
    isolation, running, commit = pushed
    found = fetched.fetch_pushed_success(isolation, SimpleNamespace(settings=CHECKED), ITEM,
                                         {**running, "base": commit}, io.BytesIO())
    assert found.base == running["base"]  # where the work and the integration branch meet


class Ended:
    """A Dask future whose task ended by raising ERROR."""

    def __init__(self, error: BaseException):
        self.error = error

    def result(self):
        raise self.error


def test_a_task_whose_workers_died_under_it_is_a_lost_attempt_and_a_bug_on_the_worker_reaches_the_runner():
    from batch_tasks.executors.remote_agent import task_result

    result, over = task_result(Ended(distributed.KilledWorker("batch-tasks-run-g:a-1", None, 3)))
    assert result["lost"] and over.status == -9 and "KilledWorker" in over.stopped_for
    with pytest.raises(KeyError, match="relative_workdir"):  # recorded with its traceback as an internal error
        task_result(Ended(KeyError("relative_workdir")))
