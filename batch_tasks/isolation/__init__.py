"""An item's own git worktree and the run's integration branch: preparing, committing,
bootstrapping, removing. Imports processes/ and below."""
