"""The state folder, .batch/<stem>/: each item's log and records, its status and state
machine, the ticks in task.md, staleness, the budget's arithmetic, the files items touch.
Imports plan/ and agents/ below it, nothing above."""
