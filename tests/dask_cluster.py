"""A real Dask cluster on loopback for the tests: `dask scheduler` and `dask worker` processes,
each worker in a temporary folder of its own (its cwd, HOME and cache), with no access to the
coordinator's checkout but through the git remote it is given."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

DASK = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
WORKER = [sys.executable, "-m", "distributed.cli.dask_worker"]
# A cluster a test run left behind (killed before its teardown) stops by itself: its scheduler
# after this long without a task, and its workers with it. Longer than the whole suite: a
# module's cluster waits idle while its worker runs other tests between the module's own.
IDLE_TIMEOUT = "20m"
QUIET = {"DASK_LOGGING__DISTRIBUTED": "error", "PYTHONWARNINGS": "ignore"}


class Cluster:
    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.scheduler_file = folder / "scheduler.json"
        self.workers: dict[str, subprocess.Popen] = {}
        self.closing: list[subprocess.Popen] = []  # workers whose scheduler was killed
        self.scheduler = self._start_scheduler("0")
        self.address = self._wait_for_address()

    def _start_scheduler(self, port: str) -> subprocess.Popen:
        self.scheduler_file.unlink(missing_ok=True)
        return subprocess.Popen(
            [*DASK, "--host", "127.0.0.1", "--port", port, "--no-dashboard", "--scheduler-file",
             str(self.scheduler_file), "--idle-timeout", IDLE_TIMEOUT], cwd=self.folder,
            env={**os.environ, **QUIET}, stdout=subprocess.DEVNULL, stderr=open(self.folder / "scheduler.log", "a"))

    def kill_scheduler(self) -> None:
        """As a machine rebooted: SIGKILL. Dask then shuts its workers down too (they do not
        reconnect): they are forgotten here, and wait()ed for as they go."""
        self.scheduler.send_signal(signal.SIGKILL)
        self.scheduler.wait(timeout=10)
        self.closing, self.workers = [*self.closing, *self.workers.values()], {}

    def restart_scheduler(self) -> None:
        """A new scheduler at the same address."""
        self.scheduler = self._start_scheduler(self.address.rsplit(":", 1)[1])
        assert self._wait_for_address() == self.address

    def _wait_for_address(self) -> str:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.scheduler_file.exists():
                try:
                    return json.loads(self.scheduler_file.read_text())["address"]
                except (ValueError, KeyError):
                    pass
            time.sleep(0.1)
        raise AssertionError("the Dask scheduler did not start")

    def start_worker(self, name: str, agents: int = 2, env: dict | None = None) -> Path:
        """A worker process that may run `agents` agents at once, in a folder of its own."""
        home = self.folder / name
        (home / "tmp").mkdir(parents=True, exist_ok=True)
        worker_env = {**os.environ, **QUIET, "HOME": str(home), "TMPDIR": str(home / "tmp"),
                      "BATCH_TASKS_CACHE": str(home / "cache"),
                      **(env or {})}
        self.workers[name] = subprocess.Popen(
            [*WORKER, self.address, "--name", name, "--nthreads", str(agents), "--no-nanny", "--no-dashboard",
             "--resources", f"agent={agents}", "--local-directory", str(home / "scratch")],
            cwd=home, env=worker_env, stdout=subprocess.DEVNULL, stderr=open(home / "worker.log", "w"))
        return home

    def wait_for_workers(self, count: int) -> None:
        from distributed import Client

        with Client(self.address, timeout=30) as client:
            client.wait_for_workers(count, timeout=60)

    def names(self) -> dict[str, str]:
        """Each worker's name and address, as the scheduler knows them."""
        from distributed import Client

        with Client(self.address, timeout=30) as client:
            return {info["name"]: address for address, info in client.scheduler_info()["workers"].items()}

    def kill_worker(self, name: str) -> None:
        self.workers.pop(name).send_signal(signal.SIGKILL)

    def close(self) -> None:
        every = [*self.workers.values(), *self.closing, self.scheduler]
        for process in every:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in every:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def bare_remote(repo: Path, folder: Path) -> Path:
    """A bare repository in a folder of its own, as `origin` of `repo`, holding what repo has."""
    remote = folder / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    subprocess.run(["git", "remote", "add", "origin", str(remote)], cwd=repo, check=True)
    subprocess.run(["git", "push", "-q", "origin", "HEAD"], cwd=repo, check=True)
    return remote
