"""Throughput: what a full first run costs per item, beside make, GNU parallel and bare doit.

Runs N independent trivial items (each runs `true`) at -j/-n JOBS with each tool,
in one run of this script, so that the ratios compare like with like:

- batch-tasks: a task.md of one group of N items, `command: ["true"]`,
  `doit run-batch -n JOBS`, in a fresh folder each time (no `.batch`);
- make: a Makefile of N phony targets whose recipe is `true`, `make -j JOBS`;
- GNU parallel: `seq N | parallel -jJOBS true`;
- bare doit: a dodo.py of N tasks with the action ["true"], `doit -n JOBS -P thread`;
- with --baseline PYTHONPATH, batch-tasks imported from there too (e.g. a clone of main).

The tools alternate between repetitions, so that a noisy machine hurts all alike;
figures are medians of whole-process wall times. The load average is printed
before and after, and every result is appended to bench/out/throughput-results.txt.

    python bench/throughput.py [--sizes 1000 10000] [--jobs 8] [--repeat 3] [--baseline PATH] [--tool batch make parallel doit]
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import batch_tasks

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out"
WORK = OUT / "throughput"
RESULTS = OUT / "throughput-results.txt"

TOOLS = {"batch": "batch-tasks", "base": "baseline", "make": "make", "parallel": "parallel", "doit": "bare doit"}

BARE_DODO = '''\
DOIT_CONFIG = {{"backend": "sqlite3", "dep_file": ".doit.db", "verbosity": 0}}


def task_t():
    for number in range({count}):
        yield {{"name": str(number), "actions": [["true"]], "verbosity": 0}}
'''


def prepare(tool: str, folder: Path, count: int) -> None:
    """A fresh folder holding what TOOL needs to run COUNT trivial items."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    if tool in ("batch", "base"):
        lines = ["---", "agent: command", 'command: ["true"]', "---", f"# {count} trivial items", "", "## Work"]
        lines += [f"- [ ] m{number}: item {number}" for number in range(count)]
        (folder / "task.md").write_text("\n".join(lines) + "\n")
    elif tool == "make":
        targets = " ".join(f"t{number}" for number in range(count))
        rules = "".join(f"t{number}:\n\t@true\n" for number in range(count))
        (folder / "Makefile").write_text(f".PHONY: all {targets}\nall: {targets}\n{rules}")
    elif tool == "doit":
        (folder / "dodo.py").write_text(BARE_DODO.format(count=count))


def command(tool: str, count: int, jobs: int) -> list[str]:
    return {
        "batch": [sys.executable, "-m", "doit", "run-batch", "-n", str(jobs)],
        "base": [sys.executable, "-m", "doit", "run-batch", "-n", str(jobs)],
        "make": ["make", "-s", f"-j{jobs}"],
        "parallel": ["parallel", f"-j{jobs}", "true"],
        "doit": [sys.executable, "-m", "doit", "-n", str(jobs), "-P", "thread"],
    }[tool]


def run_once(tool: str, count: int, jobs: int, baseline: str | None) -> float:
    folder = WORK / tool
    prepare(tool, folder, count)
    feed = "".join(f"{number}\n" for number in range(count)) if tool == "parallel" else None
    env = {**os.environ, "PYTHONPATH": baseline} if tool == "base" else None
    started = time.perf_counter()
    result = subprocess.run(command(tool, count, jobs), cwd=folder, input=feed, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{TOOLS[tool]} failed in {folder}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    if tool in ("batch", "base") and (folder / "task.md").read_text().count("- [x] ") != count:
        raise SystemExit(f"batch-tasks did not tick all {count} items in {folder}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tool", nargs="+", choices=[tool for tool in TOOLS if tool != "base"], default=None)
    parser.add_argument("--baseline", metavar="PYTHONPATH", help="also run batch-tasks imported from there (e.g. a clone of main)")
    options = parser.parse_args()
    options.tool = options.tool or [tool for tool in TOOLS if tool != "base"]
    if options.baseline:
        options.tool.insert(options.tool.index("batch") + 1 if "batch" in options.tool else 0, "base")
    missing = [tool for tool in ("make", "parallel") if tool in options.tool and shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"{', '.join(missing)} not found (Debian: apt-get install -y {' '.join(missing)})")

    lines = [
        f"{datetime.datetime.now():%Y-%m-%d %H:%M} batch-tasks from {Path(batch_tasks.__file__).parent}, "
        f"-j {options.jobs}, median of {options.repeat}, load before {os.getloadavg()[0]:.2f}"
    ]
    print(lines[0], flush=True)
    for count in options.sizes:
        times: dict[str, list[float]] = {tool: [] for tool in options.tool}
        for repetition in range(options.repeat):
            order = options.tool[repetition % len(options.tool) :] + options.tool[: repetition % len(options.tool)]
            for tool in order:
                times[tool].append(run_once(tool, count, options.jobs, options.baseline))
                print(f"  {count} {TOOLS[tool]}: {times[tool][-1]:.2f}s", file=sys.stderr, flush=True)
        medians = {tool: statistics.median(values) for tool, values in times.items()}
        lines.append(f"{count:>6} items {'wall':>9} {'per item':>9} " + "".join(f"{'/' + TOOLS[t]:>11}" for t in options.tool))
        for tool in options.tool:
            ratios = "".join(f"{medians[tool] / medians[other]:11.2f}" for other in options.tool)
            lines.append(f"{TOOLS[tool]:>12} {medians[tool]:8.2f}s {medians[tool] / count * 1000:6.2f} ms{ratios}")
        print("\n".join(lines[-len(options.tool) - 1 :]), flush=True)
    lines.append(f"load after {os.getloadavg()[0]:.2f}\n")
    print(lines[-1])
    OUT.mkdir(parents=True, exist_ok=True)
    with open(RESULTS, "a", encoding="utf-8") as stream:
        stream.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
