"""An agent that tries to write where a sandboxed one may not, then does its own work.

Each path in $INTRUDER_TARGETS (a JSON list; `{module}` is replaced by the item's module,
`{other}` by the other item's) is appended to; it prints `refused PATH: why` or
`WROTE PATH`; each in $INTRUDER_READS is read: `unreadable PATH: why` or `READ PATH`. Then it tries `git update-ref refs/heads/main HEAD` and `git config
--local`, and prints how each went; then writes `<module>.txt` in its worktree and commits
it on its own branch. With $INTRUDER_CONNECT (a port), it first connects to that port on
the loopback and prints `connected` or `cannot connect: why`. Before the writes, it waits
(at most 60 s) for $INTRUDER_WAIT_FOR (with the same replacements) to exist: the other
item's worktree, so that both run at once. With $INTRUDER_SIGNAL (pids, comma-separated), it
sends each SIGTERM and prints `SIGNALLED PID` or `cannot signal PID: why`.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

module = os.environ["BATCH_MODULE"]
other = {"alpha": "beta", "beta": "alpha"}.get(module, "")


def placed(text: str) -> str:
    return text.replace("{module}", module).replace("{other}", other)


sys.stdin.read()
port = os.environ.get("INTRUDER_CONNECT")
if port:
    try:
        socket.create_connection(("127.0.0.1", int(port)), timeout=5).close()
        print("connected", flush=True)
    except OSError as error:
        print(f"cannot connect: {error}", flush=True)
wait_for = placed(os.environ.get("INTRUDER_WAIT_FOR", ""))
deadline = time.monotonic() + 60
while wait_for and not os.path.exists(wait_for) and time.monotonic() < deadline:
    time.sleep(0.05)
for target in json.loads(os.environ.get("INTRUDER_TARGETS", "[]")):
    target = placed(target)
    try:
        with open(target, "a") as stream:
            stream.write("intruded\n")
        print(f"WROTE {target}", flush=True)
    except OSError as error:
        print(f"refused {target}: {error}", flush=True)
for target in json.loads(os.environ.get("INTRUDER_READS", "[]")):
    try:
        with open(target, "rb") as stream:
            stream.read()
        print(f"READ {target}", flush=True)
    except OSError as error:
        print(f"unreadable {target}: {error}", flush=True)
for pid in filter(None, os.environ.get("INTRUDER_SIGNAL", "").split(",")):
    try:
        os.kill(int(pid), signal.SIGTERM)
        print(f"SIGNALLED {pid}", flush=True)
    except OSError as error:
        print(f"cannot signal {pid}: {error}", flush=True)
for argv in (["git", "update-ref", "refs/heads/main", "HEAD"], ["git", "config", "--local", "intruder.was", "here"]):
    tried = subprocess.run(argv, capture_output=True, text=True)
    print(f"{' '.join(argv[:2])}: exit {tried.returncode} {tried.stderr.strip()}", flush=True)
with open(f"{module}.txt", "w") as stream:
    stream.write(f"the work of {module}\n")
subprocess.run(["git", "add", f"{module}.txt"], check=True)
subprocess.run(["git", "commit", "-q", "-m", f"{module}: its work"], check=True)
print(f"committed {module}", flush=True)
