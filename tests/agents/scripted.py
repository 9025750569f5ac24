"""A scripted stand-in for an agent CLI, driven by the `command` agent in tests.

It appends one line to runs.log (in the batch folder) when it starts and when it
succeeds, so tests can count how often each item ran. What it does is read from
behaviour.json in the batch folder, keyed by BATCH_ITEM or BATCH_MODULE (`*` for all):
  {"sleep": seconds, "exit": status, "child": true (start a grandchild that sleeps),
   "write": "file name to create", "print": "a line to print",
   "hang": seconds (go silent that long), "limit_in": seconds (say a limit resets then, exit 1),
   "attempts": {"1": {...}, ...} (what differs on that attempt, by BATCH_ATTEMPT)}
"""

import json
import os
import subprocess
import sys
import time

item = os.environ["BATCH_ITEM"]
module = os.environ["BATCH_MODULE"]
try:
    with open("behaviour.json") as stream:
        behaviours = json.load(stream)
except FileNotFoundError:
    behaviours = {}
behaviour = {**behaviours.get("*", {}), **behaviours.get(module, {}), **behaviours.get(item, {})}
behaviour.update(behaviour.pop("attempts", {}).get(os.environ["BATCH_ATTEMPT"], {}))


def log(event: str) -> None:
    with open("runs.log", "a") as stream:
        stream.write(f"{event} {item} {os.getpid()} {time.time():.6f}\n")


log("start")
prompt = sys.stdin.read()
print(f"agent for {item}, argv {sys.argv[1:]}", flush=True)
print(f"prompt: {prompt.splitlines()[0] if prompt else ''}", flush=True)
if behaviour.get("child"):
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(f"child-{module}.pid", "w") as stream:
        stream.write(str(grandchild.pid))
if "print" in behaviour:
    print(behaviour["print"], flush=True)
if "limit_in" in behaviour:
    print(f"batch-tasks: retry at {time.time() + behaviour['limit_in']:.3f}", flush=True)
    sys.exit(1)
time.sleep(behaviour.get("hang", 0))
time.sleep(behaviour.get("sleep", 0))
if "write" in behaviour:
    with open(behaviour["write"], "w") as stream:
        stream.write(prompt)
status = behaviour.get("exit", 0)
if status == 0:
    log("done")
    sys.stdout.flush()
    os._exit(0)  # at once: "done" in runs.log means it did finish, not that it was about to
sys.exit(status)
