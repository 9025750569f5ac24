"""A run of a loaded batch whose attempts run here, built as run-batch builds one (for tests
that drive an item's run without a run-batch process)."""

from __future__ import annotations

import os

from batch_tasks.executors.local import LocalExecutor
from batch_tasks.processes.process import Supervisor
from batch_tasks.redaction import Redactor
from batch_tasks.run.run import Run


def local_run(loaded, report_error=print, state=None, redactor=None, **fields) -> Run:
    supervisor, redactor = Supervisor.for_run(), redactor or Redactor(os.environ)
    return Run(budget=loaded.budget, report_error=report_error, state=state or loaded.state,
               executor=LocalExecutor(supervisor, redactor), supervisor=supervisor, redactor=redactor, **fields)
