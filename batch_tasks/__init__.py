"""batch-tasks: a markdown checklist of coding-agent work, run as a resumable doit batch.

Data flows one way: task.md → plan → doit tasks → dispatch → an item's lifecycle →
landing → records and ticks → views. The package's folders are its layers, each
importing only the ones below it (tests/test_import_graph.py holds them to it), from the
bottom up:

    (here)      errors, events, redaction, formats, json_positions, setting_values, signing:
                what every layer uses; doit_bridge (doit's internals), main (the batch-tasks command)
    agents/     the agent CLIs, what their tokens cost, what to do after each failure
    plan/       task.md and other tools' plans (dialects/) read into groups and items, settings
    state/      the state folder: items' logs, records, status, state machine, ticks
    repository/ git, with what an agent could plant in its settings ignored
    processes/  agents' and checks' processes, their sandboxes, watchdogs and ports
    isolation/  worktrees and the integration branch
    tasks/      a batch loaded as doit tasks
    executors/  where an attempt runs: here, or on a Dask worker
    landing/    the merge queue, review, pull requests
    run/        a run's state object (run), the dispatcher, the runner, an item's lifecycle
    views/      the live panel, the plain lines, the report
    commands/   run-batch and the other doit commands
"""

__version__ = "0.1.0"
