"""A stand-in for `services:` (`service.py up`) and `services_down:` (`service.py down`): appends
what it was given as a JSON line to $PORTS_LOG; `up` fails with status 3 for $SERVICE_FAILS."""

import json
import os
import sys

with open(os.environ["PORTS_LOG"], "a") as stream:
    stream.write(json.dumps({"service": sys.argv[1], "module": os.environ["BATCH_MODULE"],
                             "port": int(os.environ["BATCH_PORT"]), "slot": int(os.environ["BATCH_SLOT"]),
                             "worktree": os.environ.get("BATCH_WORKTREE", "")}) + "\n")
if sys.argv[1] == "up" and os.environ["BATCH_MODULE"] == os.environ.get("SERVICE_FAILS"):
    print("the database would not start", flush=True)
    sys.exit(3)
print(f"service {sys.argv[1]} for {os.environ['BATCH_MODULE']}", flush=True)
