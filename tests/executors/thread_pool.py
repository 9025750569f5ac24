"""A third executor, written against the seam (batch_tasks.executors.seam) alone: each attempt
runs on a thread of a pool of its own, which it names in a file (THREAD_POOL_LOG) so that a
test can see it ran them. Found by run-batch as the `batch_tasks.executors` entry points
`threads` and `isolated-threads` (the latter needs every item isolated, as a remote one would)."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

from batch_tasks.events import AGENT
from batch_tasks.executors.attempt import run_attempt
from batch_tasks.executors.seam import AttemptResult, AttemptSpec, Needs, Reporter, RunTools


class ThreadPool:
    needs = Needs()

    def __init__(self, batch, tools: RunTools):
        self.tools = tools
        self.pool = ThreadPoolExecutor(2, thread_name_prefix="thread-pool-executor")
        self.said = threading.Lock()

    def attempt(self, spec: AttemptSpec, reporter: Reporter) -> AttemptResult:
        return self.pool.submit(self._attempt, spec, reporter).result()

    def _attempt(self, spec: AttemptSpec, reporter: Reporter) -> AttemptResult:
        with self.said, open(os.environ["THREAD_POOL_LOG"], "a", encoding="utf-8") as log:
            log.write(f"{spec.job.item.key} {spec.number} {threading.current_thread().name}\n")
        reporter.step(AGENT, "on a thread of the pool")
        tools = self.tools
        attempt = run_attempt(spec, reporter, tools.supervisor, tools.supervisor.stopping, tools.redactor,
                              spec.where, spec.environment, spec.sandbox)
        return AttemptResult(attempt, spec.workspace)

    def close(self) -> None:
        self.pool.shutdown()


class IsolatedThreadPool(ThreadPool):
    needs = Needs(isolation=True)
