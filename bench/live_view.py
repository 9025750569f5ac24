"""The live view's costs: the runner's own CPU while agents stream events, and the
delay from an agent writing an event to the event showing on the screen.

Eight fake Claude Code agents (bench/fake_claude.py) each write RATE events a
second, every one stamped with the time it was written. `doit run-batch` runs
them under a pseudo-terminal, so the real live panel is drawn; this script reads
the screen and notes when each stamp first shows. The runner's CPU is its own
(psutil, children excluded), over the wall time of the run.

    python bench/live_view.py [--agents 8] [--rate 10] [--seconds 15] [--pending 10000]

Then, the panel's cost with many items waiting: the same agents, silent (no events),
with 0 and then --pending items in a group after theirs; the runner's own CPU over
--window seconds once all of them run, then Ctrl-C. It must not grow with the items
waiting (under 2% of a core with 10,000).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import re
import select
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import psutil

OUT = Path(__file__).parent / "out" / "live_view"
STAMP = re.compile(rb"t=(\d{10}\.\d{6})")

def make_batch(agents: int, rate: float, seconds: float, pending: int = 0) -> dict:
    shutil.rmtree(OUT, ignore_errors=True)
    (OUT / "bin").mkdir(parents=True)
    fake = OUT / "bin" / "claude"
    fake.write_text(
        f"#!/bin/sh\nexec {sys.executable} {Path(__file__).parent / 'fake_claude.py'} "
        f'"$@" --rate {rate} --seconds {seconds}\n'
    )
    fake.chmod(0o755)
    items = "".join(f"- [ ] m{i}: stream events\n" for i in range(agents))
    waiting = "".join(f"- [ ] p{i}: wait for the stream\n" for i in range(pending))
    later = f"## Later\n{waiting}" if pending else ""
    (OUT / "task.md").write_text(f"---\nagent: claude\nparallel: {agents}\n---\n# Live\n## Stream\n{items}{later}")
    return {**os.environ, "PATH": f"{OUT / 'bin'}{os.pathsep}{os.environ['PATH']}"}

def run_on_terminal(env: dict) -> tuple[list[float], tuple[float, float], tuple[float, float], int]:
    """Delays of each stamp's first showing; (CPU seconds, wall seconds) of the runner over the
    whole run and while events streamed (first stamp shown to last); its exit status."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    started = time.monotonic()
    runner = subprocess.Popen(
        [sys.executable, "-m", "doit", "run-batch"], cwd=OUT, env=env, stdout=follower, stderr=follower, close_fds=True
    )
    os.close(follower)
    watched = psutil.Process(runner.pid)
    cpu = 0.0
    streaming_from = None  # (cpu, wall) when the first stamp showed
    streaming_to = None
    seen: dict[bytes, float] = {}
    pending = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 0.05)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            now = time.time()
            pending = pending[-64:] + chunk
            fresh = [m.group(1) for m in STAMP.finditer(pending) if m.group(1) not in seen]
            for stamp in fresh:
                seen[stamp] = now - float(stamp)
        try:
            times = watched.cpu_times()
            cpu = times.user + times.system
        except psutil.NoSuchProcess:
            pass
        if ready and fresh:
            streaming_to = (cpu, time.monotonic())
            streaming_from = streaming_from or streaming_to
        if runner.poll() is not None and not ready:
            break
    runner.wait()  # the terminal closes (EIO) a moment before the runner is reaped
    wall = time.monotonic() - started
    os.close(leader)
    streaming = (streaming_to[0] - streaming_from[0], streaming_to[1] - streaming_from[1])
    return list(seen.values()), (cpu, wall), streaming, runner.returncode

def silent_cpu(env: dict, agents: int, window: float) -> float:
    """The runner's own CPU, as a share of one core, over `window` seconds while all
    `agents` run and say nothing; then Ctrl-C."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    runner = subprocess.Popen(
        [sys.executable, "-m", "doit", "run-batch"], cwd=OUT, env=env, stdout=follower, stderr=follower, close_fds=True
    )
    os.close(follower)
    watched, screen = psutil.Process(runner.pid), b""
    deadline = time.monotonic() + 120
    while f"{agents} running".encode() not in screen[-4096:] and time.monotonic() < deadline:
        if select.select([leader], [], [], 0.1)[0]:
            screen += os.read(leader, 65536)
    time.sleep(1.0)  # settled
    before, started = watched.cpu_times(), time.monotonic()
    end = started + window
    while time.monotonic() < end:  # keep the terminal drained, as a person's would be
        if select.select([leader], [], [], 0.1)[0]:
            os.read(leader, 65536)
    after, wall = watched.cpu_times(), time.monotonic() - started
    runner.send_signal(signal.SIGINT)
    while runner.poll() is None:
        if select.select([leader], [], [], 0.1)[0]:
            try:
                os.read(leader, 65536)
            except OSError:
                break
    runner.wait()
    os.close(leader)
    return (after.user + after.system - before.user - before.system) / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--rate", type=float, default=10.0, help="events a second, per agent")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--pending", type=int, default=10000, help="items waiting behind the silent agents")
    parser.add_argument("--window", type=float, default=10.0, help="seconds of silence measured")
    options = parser.parse_args()
    env = make_batch(options.agents, options.rate, options.seconds)
    delays, whole, streaming, status = run_on_terminal(env)
    if status != 0 or not delays:
        raise SystemExit(f"the run failed (exit {status}); see {OUT}")
    delays.sort()
    print(f"{options.agents} agents x {options.rate:g} events/s for {options.seconds:g}s, live panel on a terminal")
    print(f"events shown: {len(delays)} (written: ~{int(options.agents * options.rate * options.seconds)})")
    print(
        f"event to screen: median {statistics.median(delays) * 1000:.0f} ms, "
        f"95th percentile {delays[int(len(delays) * 0.95)] * 1000:.0f} ms, max {delays[-1] * 1000:.0f} ms"
    )
    for name, (cpu, wall) in (("while streaming", streaming), ("whole run, start-up included", whole)):
        print(f"runner's own CPU {name}: {cpu:.2f}s over {wall:.1f}s = {100 * cpu / wall:.1f}% of one core")
    for pending in (0, options.pending):
        env = make_batch(options.agents, 0, options.window + 120, pending)
        share = silent_cpu(env, options.agents, options.window)
        print(f"{options.agents} silent agents, {pending:,} items waiting: runner's own CPU {100 * share:.2f}% of one core")

if __name__ == "__main__":
    main()
