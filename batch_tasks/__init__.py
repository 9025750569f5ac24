"""batch-tasks: a markdown checklist of coding-agent work, run as a resumable doit batch.

Data flows one way: task.md → plan (taskfile, plan) → doit tasks (doit_tasks)
→ item runs (item_run, agents, process) → state and ticks (state, checkbox).
"""

__version__ = "0.1.0"
