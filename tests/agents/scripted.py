"""A scripted stand-in for an agent CLI, driven by the `command` agent in tests.

It appends one line to runs.log (in the batch folder, or $SCRIPTED_RUNS_LOG) when it starts
and when it succeeds, so tests can count how often each item ran. What it does is read from
behaviour.json in the batch folder, keyed by BATCH_ITEM or BATCH_MODULE (`*` for all):
  {"sleep": seconds, "exit": status, "child": true (start a grandchild that sleeps),
   "write": "file name to create", "print": "a line to print",
   "hang": seconds (go silent that long), "limit_in": seconds (say a limit resets then, exit 1),
   "attempts": {"1": {...}, ...} (what differs on that attempt, by BATCH_ATTEMPT),
   "holder": seconds (start a helper that keeps our stdout open that long; "holder_talks": true
             makes it print all the while, "holder_stubborn": true makes it ignore SIGTERM),
   "background": true (start a helper as `cmd >/dev/null &` does, in our session),
   "daemon": true (a setsid double-fork daemon; "daemon_env": "clear" starts it with no environment,
             "daemon_cgroup": "leave" has it move itself out of its cgroup, into the one above),
   "close_output": true (close stdout and stderr, then go on: hang, sleep, exit),
   "leak": [variable names] (print their values: "leak_as" "raw", "json" (a JSON line, escaped),
           "split" (in two writes, a pause between), or "lines" (one line of the value at a time)),
   "limit_at": seconds from now, may be negative (say a limit resets then, exit 1),
   "progress": frames (a `\r` progress bar, 0.3 s a frame, no newline),
   "huge_line": bytes (print one line that long), "quiet": true (print nothing of its own),
   "talk": seconds (print a line every 0.2 s that long: busy, not hung),
   "until": a path (wait for that file to exist, after the sleep, and before a progress bar's
   last frame: the test says when to go on)}
Every helper it starts writes its pid to helper-<module>.pid, background-<module>.pid or
daemon-<module>.pid in the batch folder.
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
    # $SCRIPTED_RUNS_LOG: where a remote worker's runs are counted (its cwd is a worktree there).
    with open(os.environ.get("SCRIPTED_RUNS_LOG", "runs.log"), "a") as stream:
        stream.write(f"{event} {item} {os.getpid()} {time.time():.6f}\n")


log("start")
prompt = sys.stdin.read()
if not behaviour.get("quiet"):
    print(f"agent for {item}, argv {sys.argv[1:]}", flush=True)
    print(f"prompt: {prompt.splitlines()[0] if prompt else ''}", flush=True)
HELPER = "import signal, sys, time\nif sys.argv[3] == 'stubborn':\n    signal.signal(signal.SIGTERM, signal.SIG_IGN)\nfor _ in range(int(float(sys.argv[1]) * 10)):\n    if sys.argv[2] == 'talk':\n        print('helper still here', flush=True)\n    time.sleep(0.1)\n"
DAEMON = (
    "import os, sys, time\n"
    "if os.fork(): os._exit(0)\n"
    "os.setsid()\n"
    "if os.fork(): os._exit(0)\n"
    "if sys.argv[2:] == ['leave']:\n"
    "    here = next(line[3:].strip() for line in open('/proc/self/cgroup') if line.startswith('0::'))\n"
    "    root = next(line.split()[1] for line in open('/proc/self/mounts') if line.split()[2] == 'cgroup2')\n"
    "    open(f'{root}{os.path.dirname(here)}/cgroup.procs', 'w').write(str(os.getpid()))\n"
    "open(sys.argv[1], 'w').write(str(os.getpid()))\n"
    "for fd in (0, 1, 2): os.close(fd)\n"
    "time.sleep(600)\n"
)


def write_pid(name: str, pid: int) -> None:
    with open(f"{name}-{module}.pid", "w") as stream:
        stream.write(str(pid))


def leak(names: list, form: str) -> None:
    for name in names:
        value = os.environ[name]
        if form == "json":
            print(json.dumps({"type": "tool_result", "text": f"the value is {value}"}), flush=True)
        elif form == "split":
            half = len(value) // 2
            sys.stdout.write(f"the value is {value[:half]}")
            sys.stdout.flush()
            time.sleep(0.3)
            print(f"{value[half:]} there", flush=True)
        elif form == "lines":
            for line in value.splitlines():
                print(f"part: {line}", flush=True)
        else:
            print(f"the value is {value}", flush=True)


if behaviour.get("holder"):
    talk = "talk" if behaviour.get("holder_talks") else "quiet"
    stubborn = "stubborn" if behaviour.get("holder_stubborn") else "gentle"
    helper = subprocess.Popen([sys.executable, "-c", HELPER, str(behaviour["holder"]), talk, stubborn])
    write_pid("helper", helper.pid)
if behaviour.get("background"):
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    write_pid("background", helper.pid)
if behaviour.get("daemon"):
    env = {} if behaviour.get("daemon_env") == "clear" else None
    pid_file = os.path.abspath(f"daemon-{module}.pid")
    subprocess.run([sys.executable, "-c", DAEMON, pid_file, behaviour.get("daemon_cgroup", "")], env=env,
                   stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    while not os.path.exists(pid_file) or not open(pid_file).read():
        time.sleep(0.01)
if "leak" in behaviour:
    leak(behaviour["leak"], behaviour.get("leak_as", "raw"))
if "limit_at" in behaviour:
    print(f"batch-tasks: retry at {time.time() + behaviour['limit_at']:.3f}", flush=True)
    sys.exit(1)
if "progress" in behaviour:
    for frame in range(behaviour["progress"]):
        while frame + 1 == behaviour["progress"] and "until" in behaviour and not os.path.exists(behaviour["until"]):
            time.sleep(0.05)  # the last frame waits for the test's word
        sys.stdout.write(f"\rprogress {frame + 1}/{behaviour['progress']}")
        sys.stdout.flush()
        time.sleep(0.3)
    print(flush=True)
if "talk" in behaviour:
    until = time.monotonic() + behaviour["talk"]
    while time.monotonic() < until:
        print("working", flush=True)
        time.sleep(0.2)
if "huge_line" in behaviour:
    block = b"x" * 65536
    left = behaviour["huge_line"]
    while left > 0:
        sys.stdout.buffer.write(block[:left])
        left -= len(block)
    sys.stdout.buffer.write(b"\n")
    sys.stdout.flush()
if behaviour.get("close_output"):
    sys.stdout.flush()
    os.close(1)
    os.close(2)
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
while "until" in behaviour and not os.path.exists(behaviour["until"]):
    time.sleep(0.05)
if "write" in behaviour:
    with open(behaviour["write"], "w") as stream:
        stream.write(prompt)
status = behaviour.get("exit", 0)
if status == 0:
    log("done")
    if not behaviour.get("close_output"):
        sys.stdout.flush()
    os._exit(0)  # at once: "done" in runs.log means it did finish, not that it was about to
sys.exit(status)
