"""A stand-in agent for isolated batches: edits one line of a file in the folder it runs in.

What each module does is in the JSON file named by $EDITOR_PLAN (outside the repository):
  {"<module>": {"file": "shared.txt", "line": 2, "text": "new words"} | {"nothing": true}}
Each start is logged to $EDITOR_LOG as one JSON line: module, attempt, worktree, and the
prompt, so that tests can see what the agent was told."""

import json
import os
import sys

module = sys.argv[1]
with open(os.environ["EDITOR_PLAN"]) as stream:
    plan = json.load(stream)[module]
prompt = sys.stdin.read()
with open(os.environ["EDITOR_LOG"], "a") as log:
    log.write(json.dumps({"module": module, "attempt": int(os.environ["BATCH_ATTEMPT"]), "cwd": os.getcwd(),
                          "worktree": os.environ.get("BATCH_WORKTREE"), "prompt": prompt}) + "\n")
if not plan.get("nothing"):
    with open(plan["file"]) as stream:
        lines = stream.read().splitlines()
    lines[plan["line"] - 1] = plan["text"]
    with open(plan["file"], "w") as stream:
        stream.write("\n".join(lines) + "\n")
