"""A stand-in for an agent that wants to finish whatever it takes, for the tests of the gate.

What each module does is in the JSON file named by $HOSTILE_PLAN, keyed by module:
  {"git": [[args], ...] (git commands, run in its folder),
   "hooks": {"name": "script"} (written, executable, into the repository's hooks folder),
   "write": {"path": "text"} (files written, relative to its folder),
   "sparse": {"path": bytes} (a sparse file that long),
   "print": "text" (printed), "wait_for": "/a/path" (wait until it exists, at most 60 s),
   "say": "text" (its final message: the last line it prints), "exit": status}
"""

import json
import os
import subprocess
import sys
import time

module = sys.argv[1]
with open(os.environ["HOSTILE_PLAN"]) as stream:
    plan = json.load(stream).get(module, {})
sys.stdin.read()
for args in plan.get("git", ()):
    subprocess.run(["git", *args], check=True)
if plan.get("hooks"):
    common = subprocess.run(["git", "rev-parse", "--path-format=absolute", "--git-common-dir"], check=True,
                            capture_output=True, text=True).stdout.strip()
    for name, script in plan["hooks"].items():
        path = os.path.join(common, "hooks", name)
        with open(path, "w") as stream:
            stream.write(script)
        os.chmod(path, 0o755)
for path, text in plan.get("write", {}).items():
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as stream:
        stream.write(text)
for path, size in plan.get("sparse", {}).items():
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb") as stream:
        stream.truncate(size)
if plan.get("print"):
    print(plan["print"], flush=True)
deadline = time.monotonic() + 60
while plan.get("wait_for") and not os.path.exists(plan["wait_for"]) and time.monotonic() < deadline:
    time.sleep(0.05)
if plan.get("say"):
    print(plan["say"], flush=True)
sys.exit(plan.get("exit", 0))
