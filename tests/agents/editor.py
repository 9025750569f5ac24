"""A stand-in agent for isolated batches: edits one line of a file in the folder it runs in.

What each module does is in the JSON file named by $EDITOR_PLAN (outside the repository):
  {"<module>": {"file": "shared.txt", "line": 2, "text": "new words"} | {"nothing": true}}
with, optionally, "await": [modules] (start editing only once each of them has started:
so that items start from one tip), "gate": NAME (start only once the file $GATES/NAME exists:
a test holds the agent so) and "hang_at": N (the first time it makes attempt N,
hang after the edit, for a test to kill the runner). "{attempt}" in the text is the attempt's number,
"{group}" (there and in "gate") its item's group. Each start is logged to $EDITOR_LOG as one JSON
line: module, attempt, worktree, the prompt, and which GitHub token variables it was given, so that
tests can see what the agent was told."""

import json
import os
import sys
import time

module = sys.argv[1]
with open(os.environ["EDITOR_PLAN"]) as stream:
    plan = json.load(stream)[module]
prompt = sys.stdin.read()
log_path = os.environ["EDITOR_LOG"]
with open(log_path, "a") as log:
    log.write(json.dumps({"module": module, "attempt": int(os.environ["BATCH_ATTEMPT"]), "cwd": os.getcwd(),
                          "worktree": os.environ.get("BATCH_WORKTREE"), "prompt": prompt,
                          "tokens": sorted(name for name in ("GH_TOKEN", "GITHUB_TOKEN") if name in os.environ)}) + "\n")


def started() -> set[str]:
    with open(log_path) as stream:
        return {json.loads(line)["module"] for line in stream if line.strip()}


deadline = time.monotonic() + 60
while not set(plan.get("await", ())) <= started() and time.monotonic() < deadline:
    time.sleep(0.05)
gate, deadline = plan.get("gate", "").replace("{group}", os.environ["BATCH_GROUP"]), time.monotonic() + 120
while gate and not os.path.exists(os.path.join(os.environ["GATES"], gate)) and time.monotonic() < deadline:
    time.sleep(0.05)
if not plan.get("nothing"):
    with open(plan["file"]) as stream:
        lines = stream.read().splitlines()
    lines[plan["line"] - 1] = plan["text"].replace("{attempt}", os.environ["BATCH_ATTEMPT"]).replace("{group}", os.environ["BATCH_GROUP"])
    with open(plan["file"], "w") as stream:
        stream.write("\n".join(lines) + "\n")
hung = f"{log_path}.{module}.hung"
if plan.get("hang_at") == int(os.environ["BATCH_ATTEMPT"]) and not os.path.exists(hung):
    open(hung, "w").close()
    time.sleep(60)
