"""batch-tasks: a markdown checklist of coding-agent work, run as a resumable doit batch.

Data flows one way: task.md → plan (taskfile, plan) → doit tasks (doit_tasks)
→ item runs (runner, dispatcher, lifecycle, attempt, agents, process) → state and
ticks (records, state, item_status, checkbox). A run's state is one object (run).
"""

__version__ = "0.1.0"
