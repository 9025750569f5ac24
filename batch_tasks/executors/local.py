"""The local executor: each attempt's agent runs on this machine, where the lifecycle made its
workplace (the batch's workdir, or with `isolation: worktree` the same folder of the item's own
worktree), in its sandbox if it has one. Written against the seam (seam.py) alone.

Touches what the attempt touches (see attempt.py).
"""

from __future__ import annotations

from ..events import AGENT
from ..processes.process import Supervisor
from ..redaction import Redactor
from .attempt import run_attempt
from .seam import AttemptResult, AttemptSpec, Needs, Reporter


class LocalExecutor:
    needs = Needs()

    def __init__(self, supervisor: Supervisor, redactor: Redactor):
        self.supervisor, self.redactor = supervisor, redactor

    def attempt(self, spec: AttemptSpec, reporter: Reporter) -> AttemptResult:
        reporter.step(AGENT)
        attempt = run_attempt(spec, reporter, self.supervisor, self.supervisor.stopping, self.redactor, spec.where,
                              spec.environment, spec.sandbox)
        return AttemptResult(attempt, spec.workspace)

    def close(self) -> None:
        pass
