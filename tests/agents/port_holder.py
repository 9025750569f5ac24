"""An agent that serves on its BATCH_PORT while it works, as a dev server would.

It binds 127.0.0.1:$BATCH_PORT (no SO_REUSEADDR: a port another process holds is an error),
appends `{"module", "port", "slot", "pid"}` as a JSON line to $PORTS_LOG, then waits until
the wave of $PORTS_TOGETHER lines its own line is in is whole (the others of its wave listen
at the same time; at most 20 s), and writes its module's file in its folder.
"""

import json
import os
import socket
import sys
import time

sys.stdin.read()
server = socket.socket()
server.bind(("127.0.0.1", int(os.environ["BATCH_PORT"])))
server.listen()
module, log = os.environ["BATCH_MODULE"], os.environ["PORTS_LOG"]
with open(log, "a") as stream:
    stream.write(json.dumps({"module": module, "port": int(os.environ["BATCH_PORT"]),
                             "slot": int(os.environ["BATCH_SLOT"]), "pid": os.getpid()}) + "\n")
together = int(os.environ["PORTS_TOGETHER"])
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    with open(log) as stream:
        lines = [json.loads(line) for line in stream]
    mine = next(index for index, line in enumerate(lines) if line.get("pid") == os.getpid())
    if len(lines) >= (mine // together + 1) * together:
        break
    time.sleep(0.05)
with open(f"{module}.txt", "w") as stream:
    stream.write(f"{module} served on {os.environ['BATCH_PORT']}\n")
print(f"served on {os.environ['BATCH_PORT']}", flush=True)
