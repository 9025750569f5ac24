"""An item's own git worktree and the run's integration branch: preparing, committing,
bootstrapping, removing; and the folder items run in (workdir). Imports processes/ and below."""
