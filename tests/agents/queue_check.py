"""A stand-in `check` for the merge queue's tests: one command for every item (so that the queue
may check items together), which knows the item by $BATCH_MODULE (a batch's last item); a check
of a merged state is one run in the queue's worktrees (`.batch/<stem>/checks/<n>`).

- Each run appends a JSON line to $CHECK_STATE/runs.jsonl: the module, whether the state is a
  merged one, the lines of shared.py that items changed, and (for a merged state) how many
  merged-state checks were running when it looked (see $CHECK_MEET).
- It fails when shared.py holds the word `breaks1` beside any other item's edit (`edited`): the
  culprit's first work breaks the others' and passes alone (its own check passes).
- $CHECK_MEET=N: a merged-state check waits until N merged-state checks have started (at most
  30 s), so that checks that run side by side are seen to (by the files they leave, not by time).
- $CHECK_FLAKY=1: the first merged-state check fails, whatever it finds.
- $CHECK_HOLD=1: the first merged-state check waits until the file $CHECK_STATE/go exists.
- $CHECK_LINGER=M: a merged-state check of a state holding M's edit and a `breaks1` lingers (20 s)
  before it fails; stopped (SIGTERM), it appends {"stopped": edits} to runs.jsonl as it goes. The
  second failing merged-state check without M's edit waits (at most 20 s) until one lingers.
"""

import json
import os
import signal
import sys
import time

module = os.environ.get("BATCH_MODULE", "")
state = os.environ["CHECK_STATE"]
merged = os.path.basename(os.path.dirname(os.environ["BATCH_WORKTREE"])) == "checks"
top = os.environ["BATCH_WORKTREE"]
with open(os.path.join(top, "shared.py")) as stream:
    text = stream.read()
edits = [line for line in text.splitlines() if "edited" in line or "breaks" in line]
running = None


def first(name: str) -> bool:
    """True the first time `name` is asked for, across processes."""
    try:
        os.close(os.open(os.path.join(state, name), os.O_CREAT | os.O_EXCL))
        return True
    except FileExistsError:
        return False


if merged:
    started = os.path.join(state, "merged-started")
    os.makedirs(started, exist_ok=True)
    open(os.path.join(started, str(os.getpid())), "w").close()
    wanted = int(os.environ.get("CHECK_MEET", "0"))
    deadline = time.monotonic() + 30
    while len(os.listdir(started)) < wanted and time.monotonic() < deadline:
        time.sleep(0.02)
    running = len(os.listdir(started))
    if os.environ.get("CHECK_HOLD") and first("held"):
        while not os.path.exists(os.path.join(state, "go")) and time.monotonic() < deadline + 90:
            time.sleep(0.02)
fails = any("breaks1" in line for line in edits) and any("edited" in line for line in edits)
lingering = os.environ.get("CHECK_LINGER")
if merged and fails and lingering and any(line.startswith(f"{lingering} = ") for line in edits):
    def stopped(signum, frame):
        with open(os.path.join(state, "runs.jsonl"), "a") as runs:
            runs.write(json.dumps({"stopped": edits}) + "\n")
        sys.exit(1)
    signal.signal(signal.SIGTERM, stopped)
    first("lingers")
    time.sleep(20)
elif merged and fails and lingering and not first("failed once"):
    deadline = time.monotonic() + 20
    while not os.path.exists(os.path.join(state, "lingers")) and time.monotonic() < deadline:
        time.sleep(0.02)
if merged and os.environ.get("CHECK_FLAKY") and first("flaked"):
    fails = True
with open(os.path.join(state, "runs.jsonl"), "a") as runs:
    runs.write(json.dumps({"module": module, "merged": merged, "edits": edits, "running": running,
                           "passed": not fails}) + "\n")
if fails:
    print(f"FAILED tests/test_{module}.py: the state holds {edits}")
    sys.exit(1)
print("ok")
