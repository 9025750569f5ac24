"""The start window: how long after an agent starts its start is recorded.

An agent that ends, and succeeds, before its start is recorded (running.json) and whose
runner is killed in that moment runs again in the next run: the one window the run's
watchdog cannot close (see README, "The agent's own exit decides"). This measures it as
a run has it: from Popen's return (the agent has been exec'd) to running.json written,
for N starts of `true` through the run's Supervisor, as attempt.py records them.

    python bench/start_window.py [--starts 200]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from batch_tasks.processes import process
from batch_tasks.state.state import write_json_atomic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=200)
    options = parser.parse_args()
    started: list[float] = []

    class Timed(subprocess.Popen):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            started.append(time.perf_counter())

    process.subprocess.Popen = Timed  # the one Supervisor uses
    supervisor = process.Supervisor()
    gaps: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        running = Path(folder, "running.json")

        def on_start(processes) -> None:
            write_json_atomic(running, processes.record())
            gaps.append(time.perf_counter() - started[-1])

        load = os.getloadavg()[0]
        for _ in range(options.starts):
            supervisor.run(["true"], cwd=Path(folder), env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, stdin=b"",
                           log=io.BytesIO(), on_line=lambda line: None, on_start=on_start,
                           exit_file=str(Path(folder, "exit.json")))
    gaps.sort()
    print(f"{options.starts} starts, load {load:.2f} before, {os.getloadavg()[0]:.2f} after: start → recorded "
          f"median {statistics.median(gaps) * 1e3:.2f} ms, 90th percentile {gaps[len(gaps) * 9 // 10] * 1e3:.2f} ms, "
          f"max {gaps[-1] * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
