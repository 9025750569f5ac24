"""`python -m batch_tasks`: the `batch-tasks` command."""

from .main import run

run()
