"""A stand-in check or worktree_setup that may wait at a gate, for a test to hold an item at a step.

Its gate is named by its argument (`check-{module}`), or, for a setup (which is given no
module), `setup-` and its worktree's folder name; a check of a merged state (in one of the merge
queue's worktrees, `.batch/<stem>/checks/<n>`) is at `merged-` and its argument's module. If that
name is listed in $GATED, it waits until the file $GATES/<name> exists (the test opens it),
at most 120 s; then it passes (exit 0)."""

import os
import sys
import time

worktree = os.path.basename(os.environ["BATCH_WORKTREE"])
name = sys.argv[1] if len(sys.argv) > 1 else f"setup-{worktree}"
if os.path.basename(os.path.dirname(os.environ["BATCH_WORKTREE"])) == "checks":
    name = "merged-" + name.split("-", 1)[1]
if name in os.environ.get("GATED", "").split(","):
    print(f"at the gate {name}", flush=True)
    deadline = time.monotonic() + 120
    while not os.path.exists(os.path.join(os.environ["GATES"], name)) and time.monotonic() < deadline:
        time.sleep(0.05)
print(f"{name}: ok")
