"""Throughput: what a full first run costs per item, beside make, GNU parallel and bare doit.

Runs N independent trivial items (each runs `true`) at -j/-n JOBS with each tool,
in one run of this script, so that the ratios compare like with like:

- batch-tasks: a task.md of one group of N items, `command: ["true"]`,
  `doit run-batch -n JOBS`, in a fresh folder each time (no `.batch`);
- make: a Makefile of N phony targets whose recipe is `true`, `make -j JOBS`;
- GNU parallel: `seq N | parallel -jJOBS true`;
- bare doit: a dodo.py of N tasks with the action ["true"], `doit -n JOBS -P thread`;
- with --baseline PYTHONPATH, batch-tasks imported from there too (e.g. a clone of main);
- with `--tool ... wide`, batch-tasks again at -n WIDE (default 16): more slots must not be slower;
- with `--tool ... groups`, batch-tasks again with the N items in GROUPS groups (default 100), each
  waiting for the one before: what the barriers between them cost;
- with `--tool ... floor records`, the floor under a Python runner (python_floor.py): `true` started
  from JOBS threads as batch-tasks starts an agent, alone (`floor`) and with each item's crash-safe
  records as batch-tasks keeps them (`records`: its files, its result fsynced, its tick).
- with `--tool ... doit-records`, the floor under a runner built on doit: bare doit's thread runner
  with one task an item whose Python action is the `records` floor's (its result the target).

Every batch-tasks run's summary says how long it took ("... in 9.8s"); that is printed
beside the process's own wall time, which it should match (it counts from the process's start).
Python processes run as a normal install does, writing and reusing their bytecode
(PYTHONDONTWRITEBYTECODE is dropped from their environment: a session may set it).

Each run's folder is new, and the folders of earlier runs are removed only at the end:
this machine's disk is ext4 without a journal, where a new file is searched for past the
inodes deleted in the last minutes, so removing one run's 6,000 files just before the
next would bill that run's file creations for the benchmark's own cleanup. batch-tasks
makes six files an item, GNU parallel two temporary ones a job (in /tmp), so recent
deletions near the work folder hurt batch-tasks most: the time to make a file there is
measured first and printed ("new file: N us"; a few tens of microseconds on a disk
left alone, hundreds after a mass deletion). Wait some minutes after one.

The CPU of a run counts its orphans too (batch-tasks' watchdog outlives its runner by a
moment): this process is their subreaper, and reaps them before it reads the time used.

The tools alternate between repetitions, so that a noisy machine hurts all alike;
figures are medians of whole-process wall times. The load average is printed
before and after, and every result is appended to bench/out/throughput-results.txt.

    python bench/throughput.py [--sizes 1000 10000] [--jobs 8] [--repeat 3] [--baseline PATH] [--tool batch make parallel doit wide groups floor records doit-records] [--wide 16] [--groups 100]
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import os
import re
import resource
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
DONE = WORK / "done"  # the folders of earlier runs, removed at the end
RESULTS = OUT / "throughput-results.txt"
PR_SET_CHILD_SUBREAPER = 36

TOOLS = {"batch": "batch-tasks", "base": "baseline", "make": "make", "parallel": "parallel", "doit": "bare doit",
         "wide": "batch-tasks -n WIDE", "groups": "batch-tasks, GROUPS groups",
         "floor": "Python floor", "records": "floor+records", "doit-records": "doit+records"}
BATCH_TOOLS = ("batch", "base", "wide", "groups")
SUMMARY_TIME = re.compile(r"already done in (?:(\d+)m)?([0-9.]+)s")
# As a normal install runs: bytecode written once and reused (a session may turn that off).
ENVIRONMENT = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}

BARE_DODO = '''\
DOIT_CONFIG = {{"backend": "sqlite3", "dep_file": ".doit.db", "verbosity": 0}}


def task_t():
    for number in range({count}):
        yield {{"name": str(number), "actions": [["true"]], "verbosity": 0}}
'''


RECORDS_DODO = '''\
import sys

sys.path.insert(0, {bench!r})
from python_floor import run_one, task_file as write_task_file  # not a doit task creator

DOIT_CONFIG = {{"backend": "sqlite3", "dep_file": ".doit.db", "verbosity": 0}}
MARKS = write_task_file({count})


def task_t():
    for number in range({count}):
        yield {{"name": str(number), "actions": [(run_one, [number, True, MARKS])],
               "targets": [f"items/m{{number}}/result.json"], "verbosity": 0}}
'''


def file_creation_us(files: int = 2000) -> float:
    """How long making a file takes in the work folder now, in microseconds (median of 20 batches)."""
    probe = WORK / "probe"
    probe.mkdir(parents=True, exist_ok=True)
    batches = []
    for batch in range(20):
        started = time.perf_counter()
        for number in range(files // 20):
            os.close(os.open(probe / f"{batch}-{number}", os.O_WRONLY | os.O_CREAT | os.O_EXCL))
        batches.append((time.perf_counter() - started) / (files // 20) * 1e6)
    DONE.mkdir(parents=True, exist_ok=True)
    probe.rename(DONE / f"probe-{time.monotonic_ns()}")
    return statistics.median(batches)


def prepare(tool: str, folder: Path, count: int, groups: int = 1) -> None:
    """A fresh folder holding what TOOL needs to run COUNT trivial items."""
    if folder.exists():
        DONE.mkdir(parents=True, exist_ok=True)
        folder.rename(DONE / f"{folder.name}-{time.monotonic_ns()}")
    folder.mkdir(parents=True)
    if tool in BATCH_TOOLS:
        lines = ["---", "agent: command", 'command: ["true"]', "---", f"# {count} trivial items"]
        groups = groups if tool == "groups" else 1
        for group in range(groups):
            lines += ["", f"## Work {group}"]
            lines += [f"- [ ] m{number}: item {number}" for number in range(group * count // groups, (group + 1) * count // groups)]
        (folder / "task.md").write_text("\n".join(lines) + "\n")
    elif tool == "make":
        targets = " ".join(f"t{number}" for number in range(count))
        rules = "".join(f"t{number}:\n\t@true\n" for number in range(count))
        (folder / "Makefile").write_text(f".PHONY: all {targets}\nall: {targets}\n{rules}")
    elif tool == "doit":
        (folder / "dodo.py").write_text(BARE_DODO.format(count=count))
    elif tool == "doit-records":
        (folder / "dodo.py").write_text(RECORDS_DODO.format(bench=str(BENCH), count=count))


def command(tool: str, count: int, jobs: int, wide: int) -> list[str]:
    return {
        "batch": [sys.executable, "-m", "doit", "run-batch", "-n", str(jobs)],
        "base": [sys.executable, "-m", "doit", "run-batch", "-n", str(jobs)],
        "wide": [sys.executable, "-m", "doit", "run-batch", "-n", str(wide)],
        "groups": [sys.executable, "-m", "doit", "run-batch", "-n", str(jobs)],
        "make": ["make", "-s", f"-j{jobs}"],
        "parallel": ["parallel", f"-j{jobs}", "true"],
        "doit": [sys.executable, "-m", "doit", "-n", str(jobs), "-P", "thread"],
        "doit-records": [sys.executable, "-m", "doit", "-n", str(jobs), "-P", "thread"],
        "floor": [sys.executable, str(BENCH / "python_floor.py"), str(count), str(jobs)],
        "records": [sys.executable, str(BENCH / "python_floor.py"), str(count), str(jobs), "--records"],
    }[tool]


CPU: dict[str, list[float]] = {}  # by tool: the CPU seconds of each run, its children's included


def _adopt_orphans() -> None:
    """Become the subreaper of what the timed processes leave behind, so that its CPU counts."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise SystemExit(f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}")


def _reap_orphans() -> None:
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(tool: str, count: int, jobs: int, wide: int, baseline: str | None, groups: int = 1) -> tuple[float, float | None]:
    """The wall time of one run, and what batch-tasks' summary said it took."""
    folder = WORK / tool
    prepare(tool, folder, count, groups)
    feed = "".join(f"{number}\n" for number in range(count)) if tool == "parallel" else None
    env = {**ENVIRONMENT, "PYTHONPATH": baseline} if tool == "base" else ENVIRONMENT
    cpu_before = _children_cpu()
    started = time.perf_counter()
    result = subprocess.run(command(tool, count, jobs, wide), cwd=folder, input=feed, capture_output=True, text=True,
                            env=env)
    elapsed = time.perf_counter() - started
    _reap_orphans()
    CPU.setdefault(tool, []).append(_children_cpu() - cpu_before)
    if result.returncode != 0:
        raise SystemExit(f"{TOOLS[tool]} failed in {folder}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    said = None
    if tool in BATCH_TOOLS:
        if (folder / "task.md").read_text().count("- [x] ") != count:
            raise SystemExit(f"batch-tasks did not tick all {count} items in {folder}")
        if match := SUMMARY_TIME.search(result.stdout):
            said = int(match.group(1) or 0) * 60 + float(match.group(2))
    return elapsed, said


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tool", nargs="+", choices=[tool for tool in TOOLS if tool != "base"], default=None)
    parser.add_argument("--wide", type=int, default=16, help="-n of the `wide` tool [default: %(default)s]")
    parser.add_argument("--groups", type=int, default=100, help="groups of the `groups` tool [default: %(default)s]")
    parser.add_argument("--baseline", metavar="PYTHONPATH", help="also run batch-tasks imported from there (e.g. a clone of main)")
    options = parser.parse_args()
    options.tool = options.tool or [tool for tool in TOOLS if tool not in ("base", "wide", "groups")]
    TOOLS["wide"] = f"batch-tasks -n {options.wide}"
    TOOLS["groups"] = f"batch-tasks, {options.groups} groups"
    if options.baseline:
        options.tool.insert(options.tool.index("batch") + 1 if "batch" in options.tool else 0, "base")
    missing = [tool for tool in ("make", "parallel") if tool in options.tool and shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"{', '.join(missing)} not found (Debian: apt-get install -y {' '.join(missing)})")

    lines = [
        f"{datetime.datetime.now():%Y-%m-%d %H:%M} batch-tasks from {Path(batch_tasks.__file__).parent}, "
        f"-j {options.jobs}, median of {options.repeat}, load before {os.getloadavg()[0]:.2f}, "
        f"new file: {file_creation_us():.0f} us"
    ]
    print(lines[0], flush=True)
    _adopt_orphans()
    try:
        measure(options, lines)
    finally:
        shutil.rmtree(DONE, ignore_errors=True)
    lines.append(f"load after {os.getloadavg()[0]:.2f}\n")
    print(lines[-1])
    OUT.mkdir(parents=True, exist_ok=True)
    with open(RESULTS, "a", encoding="utf-8") as stream:
        stream.write("\n".join(lines) + "\n")


def measure(options, lines: list[str]) -> None:
    for count in options.sizes:
        times: dict[str, list[float]] = {tool: [] for tool in options.tool}
        said: dict[str, list[float]] = {tool: [] for tool in options.tool}
        for repetition in range(options.repeat):
            order = options.tool[repetition % len(options.tool) :] + options.tool[: repetition % len(options.tool)]
            for tool in order:
                elapsed, summary = run_once(tool, count, options.jobs, options.wide, options.baseline, options.groups)
                times[tool].append(elapsed)
                if summary is not None:
                    said[tool].append(summary / elapsed)
                print(f"  {count} {TOOLS[tool]}: {elapsed:.2f}s" + (f" (its summary: {summary:.1f}s)" if summary else ""),
                      file=sys.stderr, flush=True)
        medians = {tool: statistics.median(values) for tool, values in times.items()}
        width = max(len(TOOLS[t]) for t in options.tool) + 1
        lines.append(f"{count:>6} items".ljust(width) + f"{'wall':>9} {'per item':>9} "
                     + "".join(f"{'/' + TOOLS[t]:>{max(11, len(TOOLS[t]) + 2)}}" for t in options.tool) + "  summary/wall")
        for tool in options.tool:
            ratios = "".join(f"{medians[tool] / medians[other]:{max(11, len(TOOLS[other]) + 2)}.2f}" for other in options.tool)
            told = f"{statistics.median(said[tool]):14.2f}" if said[tool] else ""
            lines.append(f"{TOOLS[tool]:>{width}} {medians[tool]:8.2f}s {medians[tool] / count * 1000:6.2f} ms{ratios}{told}")
        lines.append("  CPU per item (user+sys, the tool's, its children's and orphans'; contention inflates it less): "
                     + ", ".join(f"{TOOLS[t]} {statistics.median(CPU[t][-options.repeat:]) / count * 1000:.2f} ms"
                                 for t in options.tool))
        print("\n".join(lines[-len(options.tool) - 2 :]), flush=True)


if __name__ == "__main__":
    main()
