"""A run of a loaded batch whose attempts run here, built as run-batch builds one (for tests
that drive an item's run without a run-batch process). A fixture: each run's supervisor is
closed after the test, as run-batch closes its own (what its attempts left stopped, their
cgroups removed)."""

from __future__ import annotations

import os

import pytest

from batch_tasks.executors.local import LocalExecutor
from batch_tasks.processes.process import Supervisor
from batch_tasks.redaction import Redactor
from batch_tasks.run.run import Run


@pytest.fixture
def local_run():
    supervisors: list[Supervisor] = []

    def make(loaded, report_error=print, state=None, redactor=None, **fields) -> Run:
        supervisor, redactor = Supervisor.for_run(), redactor or Redactor(os.environ)
        supervisors.append(supervisor)
        return Run(budget=loaded.budget, report_error=report_error, state=state or loaded.state,
                   executor=LocalExecutor(supervisor, redactor), supervisor=supervisor, redactor=redactor, **fields)

    yield make
    for supervisor in supervisors:
        supervisor.close()
