"""A stand-in `check`: fails the first time for each module named in $CHECK_FAILS_ONCE
(remembering that in $CHECK_STATE, outside the repository), passes otherwise; the first
time for each module in $CHECK_HANGS_ONCE it first hangs (for a test to kill the runner),
and likewise for $CHECK_HANGS_MERGED, but only when it checks a merged state (in one of the
merge queue's worktrees, `.batch/<stem>/checks/<n>`). Each run is counted in $CHECK_STATE/<module>.runs;
for each module in $CHECK_LEAVES it leaves what a test run or a formatter does: an untracked
report file, and a tracked file (shared.py) rewritten."""

import os
import sys
import time


def hangs_once(variable: str, marker: str) -> None:
    if module in os.environ.get(variable, "").split(",") and not os.path.exists(marker):
        open(marker, "w").close()
        time.sleep(60)


module = sys.argv[1]
state = os.path.join(os.environ["CHECK_STATE"], module)
with open(f"{state}.runs", "a") as runs:
    runs.write(f"{os.getpid()} {os.environ['BATCH_WORKTREE']}\n")
if module in os.environ.get("CHECK_LEAVES", "").split(","):
    with open("check-report.txt", "w") as report:
        report.write("what a check writes\n")
    if os.path.exists("shared.py"):
        with open("shared.py", "a") as formatted:
            formatted.write("# reformatted by the check\n")
hangs_once("CHECK_HANGS_ONCE", f"{state}.hung")
if os.path.basename(os.path.dirname(os.environ["BATCH_WORKTREE"])) == "checks":
    hangs_once("CHECK_HANGS_MERGED", f"{state}.merged.hung")
if module in os.environ.get("CHECK_FAILS_ONCE", "").split(",") and not os.path.exists(state):
    open(state, "w").close()
    print(f"FAILED tests/{module}: expected a docstring")
    sys.exit(1)
print("ok")
